"""The broker's OAuth token pair: kept in the database, refreshed ahead of expiry, never lost.

Contract (Tokens): the pair lives in the database with the time it was obtained. The YAML pair
is used when the database has none, or when the YAML pair changed since it was last read (the
user authorized again); otherwise the database's pair wins, because every refresh kills the
refresh token it used, so the YAML's is dead after the first one.

- Refresh a day before ``expiresIn`` runs out (the session does it, ``refresh_ahead``), and on
  CH_ACCESS_TOKEN_INVALID / OA_AUTH_TOKEN_EXPIRED (the session too). When the expiry is unknown
  (a pair from the YAML), refresh once the pair is older than 25 days, checked at start and
  then hourly.
- A new pair is written (one statement, fsynced) by ``save``, the client's ``on_tokens``
  callback, which the session awaits before it uses the new access token.
- ``/readyz`` shows ``token_expires_in_seconds``; the logs show the time left at start and
  after each refresh; ``token.expiring`` is emitted when less than a day is left and the
  refresh has not happened (no refresh token, or the broker refused it).

The database keeps the tokens encrypted (Fernet, with a key derived from the client secret)
and the YAML pair only as a keyed digest: the file alone does not open the account, and no
configured secret appears in it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from cryptography.fernet import Fernet, InvalidToken

from pipsync_lite.config import Config, CTraderConfig
from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.errors import BrokerError
from pipsync_lite.events import EventBus
from pipsync_lite.store import Store, utcnow_iso
from pipsync_lite.waits import wait_event

log = structlog.get_logger("pipsync_lite.tokens")

STALE_AFTER = timedelta(days=25)  # unknown expiry: refresh a pair older than this
EXPIRING_WITHIN = timedelta(days=1)
CHECK_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    obtained_at: datetime
    expires_in: int | None  # seconds from obtained_at, None = unknown
    source: str  # database | config

    @property
    def expires_at(self) -> datetime | None:
        return None if self.expires_in is None else self.obtained_at + timedelta(seconds=self.expires_in)


class TokenManager:
    def __init__(self, store: Store, config: CTraderConfig, events: EventBus, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._account_id = config.account_id
        # The YAML may carry no pair at all once `pipsync-lite auth` stored one in the database.
        self._yaml_access = config.access_token.get_secret_value() if config.access_token else ""
        self._yaml_refresh = config.refresh_token.get_secret_value() if config.refresh_token else ""
        secret = config.client_secret.get_secret_value().encode()
        self._key = hmac.new(secret, b"pipsync-lite broker_tokens v1", hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(self._key))
        self._events = events
        self._clock = clock
        self._changed = asyncio.Event()
        self._warned_for: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self.current: TokenPair | None = None

    # --- choosing the pair at start ---------------------------------------------------------

    async def load(self, *, mark_read: bool = True) -> TokenPair | None:
        """The pair to use now; None when neither the database nor the YAML has one.

        ``mark_read=False`` (a command that only looks) leaves a new YAML pair unread, so that
        the daemon still prefers it over the database's older pair at its next start."""
        digest = self._digest(self._yaml_access, self._yaml_refresh)
        async with self._store.db.execute(
            "SELECT * FROM broker_tokens WHERE account_id = ?", (self._account_id,)
        ) as cursor:
            row = await cursor.fetchone()
        pair: TokenPair | None = None
        if row is not None and row["config_digest"] == digest:
            try:
                pair = TokenPair(
                    self._fernet.decrypt(row["access_token"].encode()).decode(),
                    self._fernet.decrypt(row["refresh_token"].encode()).decode(),
                    datetime.fromisoformat(row["obtained_at"]),
                    row["expires_in"],
                    "database",
                )
            except InvalidToken:  # the client secret changed: the stored pair cannot be read
                log.warning("broker_tokens_unreadable", reason="encrypted with another client secret; using the YAML pair")
        elif row is not None:
            log.info("broker_tokens_from_config", reason="the YAML token pair changed since it was last read")
        if pair is None:
            if not self._yaml_access:
                return None
            pair = TokenPair(self._yaml_access, self._yaml_refresh, self._clock(), None, "config")
            if mark_read:
                await self._write(pair, digest)
        self.current = pair
        self._log_status("broker_token_loaded")
        return pair

    # --- the on_tokens callback -----------------------------------------------------------

    async def save(self, access_token: str, refresh_token: str, expires_in: int | None) -> None:
        """Persist a new pair (a refresh, awaited by the session before the pair is used, or
        `pipsync-lite auth`). The YAML pair of now counts as read: this pair wins over it."""
        pair = TokenPair(access_token, refresh_token, self._clock(), None if expires_in is None else int(expires_in), "database")
        await self._write(pair, self._digest(self._yaml_access, self._yaml_refresh))
        self.current = pair
        self._changed.set()
        self._log_status("broker_tokens_saved")

    async def _write(self, pair: TokenPair, digest: str) -> None:
        await self._store.db.execute(
            """INSERT INTO broker_tokens (account_id, access_token, refresh_token, obtained_at, expires_in, config_digest)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (account_id) DO UPDATE SET access_token = excluded.access_token,
                   refresh_token = excluded.refresh_token, obtained_at = excluded.obtained_at,
                   expires_in = excluded.expires_in, config_digest = excluded.config_digest""",
            (
                self._account_id,
                self._fernet.encrypt(pair.access_token.encode()).decode(),
                self._fernet.encrypt(pair.refresh_token.encode()).decode(),
                utcnow_iso(pair.obtained_at),
                pair.expires_in,
                digest,
            ),
        )

    def _digest(self, access: str, refresh: str) -> str:
        return hmac.new(self._key, b"config\0" + access.encode() + b"\0" + refresh.encode(), hashlib.sha256).hexdigest()

    # --- time left ------------------------------------------------------------------------

    def expires_in_seconds(self) -> int | None:
        pair = self.current
        if pair is None or pair.expires_at is None:
            return None
        return max(0, int((pair.expires_at - self._clock()).total_seconds()))

    def expires_at_epoch(self) -> float | None:
        pair = self.current
        return None if pair is None or pair.expires_at is None else pair.expires_at.timestamp()

    def _log_status(self, event: str) -> None:
        pair = self.current
        assert pair is not None
        age = self._clock() - pair.obtained_at
        log.info(
            event,
            source=pair.source,
            expires_in_seconds=self.expires_in_seconds(),
            age_days=round(age.total_seconds() / 86400, 2),
            refresh_token=bool(pair.refresh_token),
        )

    # --- the watcher ----------------------------------------------------------------------

    def start(self, broker: CTraderClient) -> None:
        self._task = asyncio.create_task(self._watch(broker), name="token-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self, broker: CTraderClient) -> None:
        while True:
            self._changed.clear()
            pair = self.current
            assert pair is not None
            wait = CHECK_EVERY
            now = self._clock()
            if pair.expires_at is None:
                if pair.refresh_token and now - pair.obtained_at > STALE_AFTER:
                    await self._refresh_stale(broker, now - pair.obtained_at)
                    continue
            else:
                left = pair.expires_at - now
                if left < EXPIRING_WITHIN:
                    self._warn(pair, left)
                else:  # wake just after the session's own refresh-ahead moment
                    wait = min(wait, (left - EXPIRING_WITHIN).total_seconds() + 60)
            await wait_event(self._changed, wait)

    async def _refresh_stale(self, broker: CTraderClient, age: timedelta) -> None:
        await broker.wait_ready(CHECK_EVERY)
        if not broker.ready:
            return
        log.info("broker_tokens_refreshing", reason="expiry unknown and the pair is older than 25 days", age_days=age.days)
        try:
            await broker.refresh_tokens()
        except BrokerError as exc:
            log.error("broker_token_refresh_failed", error=str(exc))
            await wait_event(self._changed, CHECK_EVERY)

    def _warn(self, pair: TokenPair, left: timedelta) -> None:
        if self._warned_for == pair.obtained_at:
            return
        self._warned_for = pair.obtained_at
        seconds = max(0, int(left.total_seconds()))
        log.warning("broker_token_expiring", expires_in_seconds=seconds, refresh_token=bool(pair.refresh_token))
        self._events.emit("token.expiring", account_id=self._account_id, expires_in_seconds=seconds)


# -- for the operator's commands (auth, accounts, symbols): one call each ------------------


async def choose(store: Store, config: Config, *, mark_read: bool = True) -> TokenPair | None:
    """The pair the daemon would use now (see :meth:`TokenManager.load`)."""
    return await TokenManager(store, config.ctrader, EventBus(), _utcnow).load(mark_read=mark_read)


async def save(store: Store, config: Config, access_token: str, refresh_token: str, expires_in: int | None) -> None:
    """Keep a pair obtained outside the daemon (``auth``, a command's own refresh)."""
    await TokenManager(store, config.ctrader, EventBus(), _utcnow).save(access_token, refresh_token, expires_in)
    _owner_only(store)


def seconds_left(expires_at: float | None, now: float | None = None) -> int | None:
    return None if expires_at is None else int(expires_at - (time.time() if now is None else now))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _owner_only(store: Store) -> None:
    """The database holds credentials: readable by its owner only."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):  # -wal/-shm may not exist right now
            os.chmod(f"{store.path}{suffix}", 0o600)
