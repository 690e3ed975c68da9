"""structlog set-up (console on a TTY, JSON otherwise) and the secret redactor.

Secrets are kept out of log lines by construction (they are never passed to a logger), and
a last processor masks any configured secret value that slips into an event anyway.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from decimal import Decimal
from typing import Any

import structlog

MASK = "***"


class Redactor:
    """Masks every occurrence of the configured secret values in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def body(self, raw: bytes) -> str:
        return self.text(raw.decode("utf-8", errors="replace"))

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = self.text(value)
            elif value is not None and not isinstance(value, int | float | bool):
                text = str(value)
                masked = self.text(text)
                if masked != text:
                    event[key] = masked
        return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (it may be replaced later)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _plain_values(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Decimals (prices, money) render as their digits, in console and JSON alike."""
    for key, value in event.items():
        if isinstance(value, Decimal):
            event[key] = str(value)
    return event


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Configure structlog for the process. ``fmt`` is auto|console|json."""
    stream = stream or _CurrentStderr()
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _plain_values,
            Redactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def set_level(level: str) -> None:
    """Change the level at runtime (keeps the rest of the configuration)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]))
