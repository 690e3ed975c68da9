"""Live configuration: re-read the YAML on SIGHUP or when the file changes, apply what may change.

The new file is validated as a whole first; if it is invalid, the running configuration
stays in force and every error is logged with its key path. Only ``risk``, ``symbols``,
``notify`` and ``logging.level`` take effect at once; a change anywhere else is logged as
needing a restart (and does not take effect, so the running daemon keeps one consistent
configuration). Every changed key is logged with its old and new value, secrets masked.
The file's content is polled every ``poll_interval`` seconds, so a save is
applied within ``2 × poll_interval`` at worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

import structlog
from pydantic import BaseModel, SecretStr

from pipsync_lite.config import Config, load_config
from pipsync_lite.errors import ConfigError
from pipsync_lite.waits import wait_event

log = structlog.get_logger("pipsync_lite.reload")

#: What a reload applies; everything else needs a restart.
RELOADABLE = ("risk", "symbols", "notify", "logging.level")
MASK = "***"


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    old: Any
    new: Any
    live: bool  # applied now (True) or after a restart (False)


def changes(old: Config, new: Config) -> list[Change]:
    """Every key whose value differs, with secrets masked."""
    before, after = _flatten(old), _flatten(new)
    found = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a != b:
            found.append(Change(key, _shown(a), _shown(b), live=_reloadable(key)))
    return found


def merged(old: Config, new: Config) -> Config:
    """``old`` with the reloadable parts taken from ``new``."""
    update: dict[str, Any] = {
        section: getattr(new, section)
        for section in ("risk", "symbols", "notify")
        if section in Config.model_fields
    }
    update["logging"] = old.logging.model_copy(update={"level": new.logging.level})
    return old.model_copy(update=update)


def _reloadable(key: str) -> bool:
    return any(key == r or key.startswith(r + ".") for r in RELOADABLE)


def _flatten(model: BaseModel, prefix: str = "", only_set: bool = False) -> dict[str, Any]:
    """Dotted key → value; maps of models (``risk.symbols``) list only the keys they set."""
    flat: dict[str, Any] = {}
    fields = type(model).model_fields
    names = sorted(model.model_fields_set) if only_set else list(fields)
    for name in names:
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            flat.update(_flatten(value, key + "."))
        elif _is_model_map(fields[name].annotation):
            for item, sub in value.items():
                flat.update(_flatten(sub, f"{key}.{item}.", only_set=True))
        else:
            flat[key] = value
    return flat


def _is_model_map(annotation: Any) -> bool:
    args = get_args(annotation)
    return get_origin(annotation) is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel)


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, tuple | list):
        return [_shown(v) for v in value]
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    return value if value is None or isinstance(value, bool | int | float) else str(value)


class Reloader:
    """Watches one YAML file; ``request()`` (SIGHUP) reloads at once."""

    def __init__(
        self,
        path: Path,
        current: Callable[[], Config],
        apply: Callable[[Config, list[Change]], None],
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self._path = path
        self._current = current
        self._apply = apply
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._seen = self._fingerprint()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="config-reloader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request(self) -> None:
        """Reload now (SIGHUP, systemd's ``reload``)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, self._poll)
            forced = self._wake.is_set()
            self._wake.clear()
            seen = self._fingerprint()
            if forced or seen != self._seen:
                self._seen = seen
                try:
                    self.reload(reason="signal" if forced else "file_changed")
                except Exception:  # a reload bug must not stop the watcher
                    log.exception("config_reload_crashed")

    def reload(self, reason: str = "requested") -> bool:
        """Validate and apply the file; False (old configuration kept) when it is invalid."""
        old = self._current()
        try:
            new = load_config(self._path)
        except ConfigError as err:
            log.error("config_reload_failed", path=str(self._path), reason=reason, errors=err.errors,
                      kept_version=old.version)  # fmt: skip
            return False
        found = changes(old, new)
        for change in found:
            if change.live:
                log.info("config_key_changed", key=change.key, old=change.old, new=change.new)
            else:
                log.warning("config_change_needs_restart", key=change.key, old=change.old, new=change.new)
        applied = merged(old, new)
        self._apply(applied, found)
        log.info("config_reloaded", path=str(self._path), reason=reason, version=applied.version,
                 previous_version=old.version, changed=len([c for c in found if c.live]),
                 needs_restart=len([c for c in found if not c.live]))  # fmt: skip
        return True

    def _fingerprint(self) -> str | None:
        """The file's content digest: a save that changes nothing does not reload."""
        try:
            return hashlib.sha256(self._path.read_bytes()).hexdigest()
        except OSError:
            return None
