"""The outbox table: outbound events waiting for delivery, their attempts and their results.

One row per (event, target). A row is ``pending`` until it is ``delivered``, ``failed`` (every
attempt used) or ``dropped`` (its target left the configuration). Each attempt is recorded in
``outbox_attempts`` with the HTTP status or the error and how long it took. Rows are written
before anything is sent, so a restart picks up where the last run stopped: delivery is at
least once, and receivers deduplicate on the event id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipsync_lite.store import Store, utcnow_iso

#: Rows per INSERT statement: one statement is one transaction (one fsync) on the shared
#: autocommit connection, and stays far below SQLite's limit on bound parameters.
_BATCH = 100


@dataclass(frozen=True, slots=True)
class NewMessage:
    event_id: str
    event_type: str
    target: str
    body: str


@dataclass(frozen=True, slots=True)
class Message:
    """A pending row, as the dispatcher sees it."""

    id: int
    event_id: str
    event_type: str
    target: str
    body: str
    attempts: int


class Outbox:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, messages: Sequence[NewMessage], now: float) -> None:
        """Queue messages for delivery now (atomically per batch of rows)."""
        created = utcnow_iso()
        for start in range(0, len(messages), _BATCH):
            batch = messages[start : start + _BATCH]
            marks = ", ".join("(?, ?, ?, ?, 'pending', 0, ?, ?)" for _ in batch)
            args: list[Any] = []
            for m in batch:
                args += [m.event_id, m.event_type, m.target, m.body, now, created]
            await self._store.db.execute(
                f"""INSERT OR IGNORE INTO outbox
                      (event_id, event_type, target, body, status, attempts, next_attempt_at, created_at)
                    VALUES {marks}""",
                args,
            )

    async def due(
        self, now: float, limit: int, exclude: Iterable[int] = (), busy_targets: Iterable[str] = ()
    ) -> list[Message]:
        """Pending rows whose next attempt is due, oldest first, leaving out those in flight
        and those of targets that have no free delivery slot."""
        where, args = _pending_except(exclude, busy_targets)
        async with self._store.db.execute(
            f"""SELECT id, event_id, event_type, target, body, attempts FROM outbox
                WHERE {where} AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?""",
            (*args, now, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [Message(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

    async def next_due_at(self, exclude: Iterable[int] = (), busy_targets: Iterable[str] = ()) -> float | None:
        where, args = _pending_except(exclude, busy_targets)
        async with self._store.db.execute(f"SELECT MIN(next_attempt_at) FROM outbox WHERE {where}", args) as cursor:
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def record(
        self,
        message: Message,
        *,
        status: str,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        next_attempt_at: float | None = None,
    ) -> None:
        """One attempt's result; ``status`` is the row's new status (pending = try again)."""
        attempt = message.attempts + 1
        now = utcnow_iso()
        await self._store.db.execute(
            """UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = COALESCE(?, next_attempt_at),
                   last_error = ?, delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END
               WHERE id = ?""",
            (status, attempt, next_attempt_at, error, status, now, message.id),
        )
        await self._store.db.execute(
            """INSERT INTO outbox_attempts (outbox_id, attempt, at, status_code, error, duration_ms)
               VALUES (?, ?, ?, ?, ?, ?)""",
            (message.id, attempt, now, status_code, error, duration_ms),
        )

    async def drop(self, message: Message, reason: str) -> None:
        await self._store.db.execute(
            "UPDATE outbox SET status = 'dropped', last_error = ? WHERE id = ? AND status = 'pending'",
            (reason, message.id),
        )

    async def counts(self) -> dict[str, int]:
        """Rows by status (for metrics)."""
        async with self._store.db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status") as cursor:
            return {str(r[0]): int(r[1]) for r in await cursor.fetchall()}

    async def rows(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Every row, oldest first (for tests and the operator)."""
        query, args = "SELECT * FROM outbox", ()
        if event_type is not None:
            query, args = query + " WHERE event_type = ?", (event_type,)
        async with self._store.db.execute(query + " ORDER BY id", args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def attempts(self, outbox_id: int) -> list[dict[str, Any]]:
        async with self._store.db.execute(
            "SELECT * FROM outbox_attempts WHERE outbox_id = ? ORDER BY attempt", (outbox_id,)
        ) as cursor:
            return [dict(r) for r in await cursor.fetchall()]


def _pending_except(ids: Iterable[int], targets: Iterable[str]) -> tuple[str, list[Any]]:
    skip_ids, skip_targets = sorted(set(ids)), sorted(set(targets))
    where = "status = 'pending'"
    if skip_ids:
        where += f" AND id NOT IN ({', '.join('?' for _ in skip_ids)})"
    if skip_targets:
        where += f" AND target NOT IN ({', '.join('?' for _ in skip_targets)})"
    return where, [*skip_ids, *skip_targets]
