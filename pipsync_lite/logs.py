"""structlog set-up (console on a TTY, JSON otherwise) and the secret redactor.

Secrets are kept out of log lines by construction (they are never passed to a logger), and
a last processor masks any configured secret value that slips into an event anyway.

A line costs a few µs and an alert writes several, so the chain is kept lean: one pass
that renders Decimals as digits and masks secrets, a timestamp formatted once per second,
a JSON encoder built once, one writer object shared by every logger. Loggers are not cached
on first use: a cached logger would keep the configuration of its first call (level, stream,
secrets) across ``configure``, ``set_level`` (a reload) and ``structlog.testing.capture_logs``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
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
        # Text shorter than every secret holds none: most values are checked by length alone.
        self._shortest = len(self._secrets[-1]) if self._secrets else sys.maxsize

    def text(self, value: str) -> str:
        if len(value) < self._shortest:
            return value
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


class _Scrub:
    """Decimals (prices, money) render as their digits, in console and JSON alike; then every
    value is masked by the :class:`Redactor` (``level`` and ``timestamp`` are ours: skipped)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redact = redactor

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        text = self._redact.text
        for key, value in event.items():
            if isinstance(value, Decimal):
                event[key] = value = str(value)
            if isinstance(value, str):
                if key != "level" and key != "timestamp":
                    event[key] = text(value)
            elif value is not None and not isinstance(value, int | float | bool):
                shown = str(value)
                masked = text(shown)
                if masked != shown:
                    event[key] = masked
        return event


class _Timestamp:
    """``timestamp``: ISO 8601 in UTC with microseconds, as ``TimeStamper(fmt="iso", utc=True)``
    writes it (``2024-05-01T12:00:00.123456Z``), the date and time formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        second, nanos = divmod(time.time_ns(), 1_000_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        micros = nanos // 1000
        event["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else f"{self._prefix}Z"
        return event


def _fallback(value: Any) -> Any:
    """What JSON cannot encode, as structlog's JSONRenderer shows it."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


_JSON = json.JSONEncoder(default=_fallback)  # json.dumps(..., default=...) builds one per call


def _render_json(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    return _JSON.encode(event)


class _Lines:
    """The logger every structlog logger wraps: one flushed write per line, as PrintLogger."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            self._stream.write(message + "\n")
            self._stream.flush()

    log = debug = info = warn = warning = err = error = critical = exception = failure = fatal = msg


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Configure structlog for the process. ``fmt`` is auto|console|json."""
    stream = stream or _CurrentStderr()
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else _render_json
    lines = _Lines(stream)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _Timestamp(),
            structlog.processors.format_exc_info,
            _Scrub(Redactor(secrets)),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_: lines,
        cache_logger_on_first_use=False,
    )


def set_level(level: str) -> None:
    """Change the level at runtime (keeps the rest of the configuration)."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]))
