"""The trade log: SQLite, WAL, versioned schema, one writer connection with group commit.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``: a signal's row is fsynced before
the webhook answers 202, so neither a crash nor a power cut loses an acknowledged signal.
Every write goes through one :class:`~pipsync_lite.database.Database` (one thread, writes
issued together share one commit); the read API reads through its own aiosqlite connection
(``reader``), so a long page of history never holds up a signal's commit.
Migrations are numbered steps applied in order; ``PRAGMA user_version`` records the last.

Signal and journal row ids are handed out here, in memory (this process is the only writer):
the engine knows a signal's id before its row is written, so the signal and the journal row
of its first broker request go to disk in one transaction (:meth:`Store.signal_statement`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from pipsync_lite.database import Database, Statement

MIGRATIONS: tuple[str, ...] = (
    # 1: the first release
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE signals (
        id              INTEGER PRIMARY KEY,
        received_at     TEXT NOT NULL,
        source_ip       TEXT,
        dialect         TEXT,
        raw_body        TEXT NOT NULL,           -- secrets redacted
        parsed          TEXT,                    -- JSON of the parsed fields
        action          TEXT,
        symbol          TEXT,                    -- broker name once resolved
        idempotency_key TEXT,
        status          TEXT NOT NULL,           -- accepted|queued|rejected|invalid|duplicate|executed|failed|unknown
        rule            TEXT,
        field           TEXT,
        reason          TEXT,
        lots            TEXT,
        duplicate_of    INTEGER,
        config_version  TEXT,
        updated_at      TEXT NOT NULL
    );
    CREATE INDEX signals_idempotency ON signals (idempotency_key) WHERE idempotency_key IS NOT NULL;
    CREATE INDEX signals_status ON signals (status);
    CREATE TABLE orders (
        id               INTEGER PRIMARY KEY,
        signal_id        INTEGER NOT NULL REFERENCES signals (id),
        purpose          TEXT NOT NULL,          -- entry|close|amend|cancel
        client_order_id  TEXT,
        symbol           TEXT,
        side             TEXT,
        order_type       TEXT,
        volume           INTEGER,
        price            TEXT,
        stop_loss        TEXT,
        take_profit      TEXT,
        broker_order_id  INTEGER,
        position_id      INTEGER,
        status           TEXT NOT NULL,          -- filled|accepted|rejected|unknown|failed|done
        execution_price  TEXT,
        error_code       TEXT,
        error_text       TEXT,
        created_at       TEXT NOT NULL,
        updated_at       TEXT NOT NULL
    );
    CREATE INDEX orders_signal ON orders (signal_id);
    CREATE TABLE positions (
        position_id   INTEGER PRIMARY KEY,
        signal_id     INTEGER REFERENCES signals (id),
        symbol        TEXT,
        side          TEXT,
        volume        INTEGER,
        entry_price   TEXT,
        stop_loss     TEXT,
        take_profit   TEXT,
        status        TEXT NOT NULL,             -- open|closed
        opened_at     TEXT,
        closed_at     TEXT,
        close_price   TEXT,
        gross_profit  TEXT,
        commission    TEXT,
        swap          TEXT,
        close_reason  TEXT,                      -- signal|sl|tp|broker
        updated_at    TEXT NOT NULL
    );
    CREATE TABLE deals (
        deal_id          INTEGER PRIMARY KEY,
        order_id         INTEGER,
        position_id      INTEGER,
        symbol           TEXT,
        side             TEXT,
        volume           INTEGER,
        execution_price  TEXT,
        commission       TEXT,
        gross_profit     TEXT,
        swap             TEXT,
        balance_after    TEXT,
        closed_volume    INTEGER,
        executed_at      TEXT
    );
    CREATE INDEX deals_position ON deals (position_id);
    """,
    # 2: the full risk guard (body dedupe, decision context, kill switch, manual approval)
    """
    ALTER TABLE signals ADD COLUMN body_hash TEXT;  -- sha256 of the body as received
    ALTER TABLE signals ADD COLUMN context TEXT;    -- JSON: what the decision saw (replay)
    CREATE INDEX signals_body_hash ON signals (body_hash) WHERE body_hash IS NOT NULL;
    CREATE INDEX signals_received ON signals (received_at);
    CREATE INDEX deals_executed ON deals (executed_at);
    CREATE TABLE kill_switch (
        id       INTEGER PRIMARY KEY,
        at       TEXT NOT NULL,
        engaged  INTEGER NOT NULL,               -- 1 on, 0 off
        cause    TEXT NOT NULL,                  -- cli | max_daily_loss | ... | expired
        reason   TEXT,
        until    TEXT                            -- engaged by a loss limit: the next trading day
    );
    CREATE TABLE approvals (
        signal_id    INTEGER PRIMARY KEY REFERENCES signals (id),
        requested_at TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        decision     TEXT,                       -- approved | rejected | expired
        decided_at   TEXT
    );
    """,
    # 3 (issue 6): the journal of broker requests (written before each is sent) and the token pair
    """
    CREATE TABLE broker_requests (
        id                  INTEGER PRIMARY KEY,
        signal_id           INTEGER REFERENCES signals (id),
        kind                TEXT NOT NULL,       -- new_order|close|amend_sltp|cancel|amend_order
        client_order_id     TEXT,
        position_id         INTEGER,
        order_id            INTEGER,
        volume              INTEGER,
        stop_loss           TEXT,                -- new_order/amend_sltp: the absolute stop asked for
        relative_stop_loss  INTEGER,             -- new_order: the stop distance sent (1/100000)
        steps               INTEGER,             -- requests the signal's plan makes (without optional amends)
        state               TEXT NOT NULL,       -- sent|done|refused|unavailable|unknown|executed|not_executed
        detail              TEXT,
        sent_at             TEXT NOT NULL,
        settled_at          TEXT
    );
    CREATE INDEX broker_requests_signal ON broker_requests (signal_id);
    CREATE INDEX broker_requests_state ON broker_requests (state);
    CREATE TABLE broker_tokens (
        account_id     INTEGER PRIMARY KEY,
        access_token   TEXT NOT NULL,            -- encrypted (key derived from the client secret)
        refresh_token  TEXT NOT NULL,            -- encrypted
        obtained_at    TEXT NOT NULL,
        expires_in     INTEGER,                  -- seconds from obtained_at; NULL = unknown
        config_digest  TEXT NOT NULL             -- keyed digest of the YAML pair last read
    );
    """,
    # 4 (issue 7): outbound events (notify.py / outbox.py)
    """
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY,
        event_id         TEXT NOT NULL,          -- X-PipSync-Event-Id: the receiver's dedup key
        event_type       TEXT NOT NULL,
        target           TEXT NOT NULL,          -- the webhook URL, or telegram:<chat_id>
        body             TEXT NOT NULL,          -- the JSON body exactly as sent
        status           TEXT NOT NULL,          -- pending|delivered|failed|dropped
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL NOT NULL,          -- unix seconds
        created_at       TEXT NOT NULL,
        delivered_at     TEXT,
        last_error       TEXT
    );
    CREATE UNIQUE INDEX outbox_event_target ON outbox (event_id, target);
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    CREATE TABLE outbox_attempts (
        id           INTEGER PRIMARY KEY,
        outbox_id    INTEGER NOT NULL REFERENCES outbox (id),
        attempt      INTEGER NOT NULL,
        at           TEXT NOT NULL,
        status_code  INTEGER,                    -- the HTTP status, NULL when none came back
        error        TEXT,
        duration_ms  INTEGER NOT NULL
    );
    CREATE INDEX outbox_attempts_outbox ON outbox_attempts (outbox_id);
    """,
)


#: Statuses of signals that passed the guard: what duplicates are compared with.
PAST_THE_GUARD = ("accepted", "pending_approval", "queued", "executed", "failed", "unknown")

#: ``json.dumps(value, default=str)`` with its encoder built once, not on every call.
to_json = json.JSONEncoder(default=str).encode


def utcnow_iso(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="milliseconds")


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal row to insert: everything known at the moment of the decision."""

    received_at: datetime
    raw_body: str
    status: str
    source_ip: str | None = None
    dialect: str | None = None
    parsed: Mapping[str, Any] | None = None
    action: str | None = None
    symbol: str | None = None
    idempotency_key: str | None = None
    rule: str | None = None
    field: str | None = None
    reason: str | None = None
    lots: Decimal | None = None
    duplicate_of: int | None = None
    config_version: str | None = None
    body_hash: str | None = None
    context: Mapping[str, Any] | None = None


PRAGMAS = ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000")


class Store:
    """The trade log: ``db`` for everything the daemon does, ``reader`` for the read API."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: Database | None = None
        self._reader: aiosqlite.Connection | None = None
        self.instance_id = ""
        self._next_id: dict[str, int] = {}

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        """A read-only view for the API and the status page (committed rows only)."""
        if self._reader is None:
            raise RuntimeError("store is not open")
        return self._reader

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = Database(self.path, PRAGMAS)
        await self._db.open()
        await self._migrate()
        self.instance_id = await self._instance_id()
        for table in ("signals", "broker_requests"):
            async with self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}") as cursor:
                row = await cursor.fetchone()
            self._next_id[table] = int(row[0]) + 1 if row else 1
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = aiosqlite.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._reader.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._db is not None:
            await self._db.close()  # checkpoints the WAL
            self._db = None

    def new_id(self, table: str) -> int:
        """The next row id of ``signals`` or ``broker_requests`` (only this process writes them)."""
        value = self._next_id[table]
        self._next_id[table] = value + 1
        return value

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self.db.script(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")

    async def _instance_id(self) -> str:
        """A random id per database: labels stay unique if the database is ever replaced."""
        async with self.db.execute("SELECT value FROM meta WHERE key='instance_id'") as cursor:
            row = await cursor.fetchone()
        if row:
            return str(row[0])
        value = secrets.token_hex(3)
        await self.db.execute("INSERT INTO meta (key, value) VALUES ('instance_id', ?)", (value,))
        return value

    # -- signals --------------------------------------------------------------------------

    async def insert_signal(self, record: SignalRecord) -> int:
        signal_id, statement = self.signal_statement(record)
        await self.db.execute(*statement)
        return signal_id

    def signal_statement(self, record: SignalRecord) -> tuple[int, Statement]:
        """A new signal's id and the statement that inserts its row (not yet executed)."""
        signal_id = self.new_id("signals")
        now = utcnow_iso(record.received_at)
        return signal_id, (
            """INSERT INTO signals (id, received_at, source_ip, dialect, raw_body, parsed, action, symbol,
                   idempotency_key, status, rule, field, reason, lots, duplicate_of, config_version,
                   updated_at, body_hash, context)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                signal_id,
                now,
                record.source_ip,
                record.dialect,
                record.raw_body,
                None if record.parsed is None else to_json(record.parsed),
                record.action,
                record.symbol,
                record.idempotency_key,
                record.status,
                record.rule,
                record.field,
                record.reason,
                _text(record.lots),
                record.duplicate_of,
                record.config_version,
                now,
                record.body_hash,
                None if record.context is None else to_json(record.context),
            ),
        )

    async def set_signal_status(
        self, signal_id: int, status: str, *, rule: str | None = None, reason: str | None = None
    ) -> None:
        await self.db.execute(
            """UPDATE signals SET status = ?, rule = COALESCE(?, rule), reason = COALESCE(?, reason),
                   updated_at = ? WHERE id = ?""",
            (status, rule, reason, utcnow_iso(), signal_id),
        )

    async def update_signal(self, signal_id: int, **fields: Any) -> None:
        """Set columns of a signal row (a decision taken later: approval, expiry)."""
        values = {
            k: _text(v) if isinstance(v, Decimal) else to_json(v) if isinstance(v, Mapping) else v
            for k, v in fields.items()
        }
        values["updated_at"] = utcnow_iso()
        assignments = ", ".join(f"{k} = ?" for k in values)
        await self.db.execute(f"UPDATE signals SET {assignments} WHERE id = ?", (*values.values(), signal_id))

    async def signal(self, signal_id: int) -> dict[str, Any] | None:
        async with self.db.execute("SELECT * FROM signals WHERE id = ?", (signal_id,)) as cursor:
            row = await cursor.fetchone()
        return dict(row) if row else None

    async def signals(self, status: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM signals", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        async with self.db.execute(query + " ORDER BY id", args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    # -- orders, positions, deals -----------------------------------------------------------

    async def insert_order(self, signal_id: int, purpose: str, status: str, **fields: Any) -> int:
        now = utcnow_iso()
        columns = {"signal_id": signal_id, "purpose": purpose, "status": status}
        columns.update({k: _text(v) if isinstance(v, Decimal) else v for k, v in fields.items()})
        columns["created_at"] = columns["updated_at"] = now
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        cursor = await self.db.execute(
            f"INSERT INTO orders ({names}) VALUES ({marks})", tuple(columns.values())
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def orders_for(self, signal_id: int) -> list[dict[str, Any]]:
        async with self.db.execute(
            "SELECT * FROM orders WHERE signal_id = ? ORDER BY id", (signal_id,)
        ) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def upsert_position(self, position_id: int, **fields: Any) -> None:
        values = {k: _text(v) if isinstance(v, Decimal) else v for k, v in fields.items()}
        values["updated_at"] = utcnow_iso()
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        updates = ", ".join(f"{k} = COALESCE(excluded.{k}, {k})" for k in values)
        await self.db.execute(
            f"""INSERT INTO positions (position_id, {names}) VALUES (?, {marks})
                ON CONFLICT (position_id) DO UPDATE SET {updates}""",
            (position_id, *values.values()),
        )

    async def positions(self, status: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM positions", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        async with self.db.execute(query + " ORDER BY position_id", args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def insert_deal(self, deal_id: int, **fields: Any) -> bool:
        """Record a deal once (events can be seen again after a reconnect). True if new."""
        values = {k: _text(v) if isinstance(v, Decimal) else v for k, v in fields.items()}
        names = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cursor = await self.db.execute(
            f"INSERT OR IGNORE INTO deals (deal_id, {names}) VALUES (?, {marks})",
            (deal_id, *values.values()),
        )
        return cursor.rowcount == 1

    async def deals(self) -> list[dict[str, Any]]:
        async with self.db.execute("SELECT * FROM deals ORDER BY deal_id") as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def count(self, table: str, where: str = "", args: Iterable[Any] = ()) -> int:
        if table not in {"signals", "orders", "positions", "deals", "kill_switch", "approvals"}:
            raise ValueError(f"unknown table {table}")
        async with self.db.execute(
            f"SELECT COUNT(*) FROM {table} {'WHERE ' + where if where else ''}", tuple(args)
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
