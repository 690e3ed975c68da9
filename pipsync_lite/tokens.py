"""The OAuth token pair: kept in the database, chosen at start, replaced on every refresh.

The contract's rule (Tokens): tokens live in the database with the time they were obtained;
the YAML pair is used when the database has none, or when the YAML pair changed since it was
last read (the user re-authorized by hand). The YAML pair itself is never copied into the
database: only a digest of it is kept (``meta.yaml_tokens_digest``) to notice that it changed.
Pairs come into the ``tokens`` table from ``pipsync-lite auth`` and from refreshes, which kill
the previous pair, so the newest row is the live one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime

from pipsync_lite.config import Config
from pipsync_lite.store import Store, utcnow_iso

_DIGEST_KEY = "yaml_tokens_digest"


@dataclass(frozen=True, slots=True)
class TokenPair:
    """An access/refresh pair and where it came from (``yaml``, ``auth`` or ``refresh``)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    source: str
    expires_at: float | None = None  # epoch seconds, when known
    obtained_at: str | None = None


def yaml_digest(config: Config) -> str | None:
    """A digest of the YAML pair (None when the YAML has no access token)."""
    c = config.ctrader
    if c.access_token is None:
        return None
    refresh = c.refresh_token.get_secret_value() if c.refresh_token else ""
    return hashlib.sha256(f"{c.access_token.get_secret_value()}\n{refresh}".encode()).hexdigest()


async def choose(store: Store, config: Config, *, mark_read: bool = True) -> TokenPair | None:
    """The pair to use now (see the module docstring); None when there is none at all.

    The daemon marks a new YAML pair as read; a command that only looks (``mark_read=False``)
    must not, or the daemon would take the database's older pair over the user's new one."""
    digest = yaml_digest(config)
    c = config.ctrader
    yaml_pair = None
    if c.access_token is not None:
        yaml_pair = TokenPair(
            c.access_token.get_secret_value(),
            c.refresh_token.get_secret_value() if c.refresh_token else "",
            source="yaml",
        )
    if yaml_pair is not None and digest != await _meta(store, _DIGEST_KEY):
        if mark_read:
            await _set_meta(store, _DIGEST_KEY, digest or "")
        return yaml_pair
    stored = await latest(store)
    return stored or yaml_pair


async def latest(store: Store) -> TokenPair | None:
    async with store.db.execute(
        "SELECT access_token, refresh_token, expires_in, obtained_at, source FROM tokens ORDER BY id DESC LIMIT 1"
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    expires_at = None
    if row["expires_in"] is not None:
        expires_at = datetime.fromisoformat(row["obtained_at"]).timestamp() + int(row["expires_in"])
    return TokenPair(row["access_token"], row["refresh_token"] or "", row["source"], expires_at, row["obtained_at"])


async def save(
    store: Store,
    access_token: str,
    refresh_token: str,
    expires_in: int | None,
    source: str,
    *,
    config: Config | None = None,
) -> None:
    """Keep a new pair (the newest row wins). With ``config``, its YAML pair counts as read:
    the user who just ran ``auth`` wants this pair, not the one still written in the YAML."""
    await store.db.execute(
        "INSERT INTO tokens (access_token, refresh_token, expires_in, obtained_at, source) VALUES (?, ?, ?, ?, ?)",
        (access_token, refresh_token, expires_in, utcnow_iso(), source),
    )
    if config is not None and (digest := yaml_digest(config)) is not None:
        await _set_meta(store, _DIGEST_KEY, digest)
    _owner_only(store)


def seconds_left(expires_at: float | None, now: float | None = None) -> int | None:
    return None if expires_at is None else int(expires_at - (time.time() if now is None else now))


def _owner_only(store: Store) -> None:
    """The database now holds credentials: readable by its owner only."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):  # -wal/-shm may not exist right now
            os.chmod(f"{store.path}{suffix}", 0o600)


async def _meta(store: Store, key: str) -> str | None:
    async with store.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def _set_meta(store: Store, key: str, value: str) -> None:
    await store.db.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )
