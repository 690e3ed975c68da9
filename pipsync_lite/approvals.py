"""Manual approval: signals that wait for ``pipsync-lite approve ID`` / ``reject ID``.

A signal judged under ``manual_approval: true`` is stored as ``pending_approval`` (HTTP 202
``pending_approval``) with a row here saying until when it may be approved
(``approval_timeout_seconds``). Approving judges it again, as it would be judged now
(the kill switch, exposure, the quote: everything but its age, which a person's delay
would always exceed), and only then sends it. Rejected signals end as ``rejected`` (rule
``manual_approval``); unapproved ones as ``expired`` (rule ``approval_timeout_seconds``).
Waiting signals survive a restart: the row and the stored body are all that is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pipsync_lite.store import Store, utcnow_iso

#: Rules not applied again when a person approves: the delay is theirs, not the sender's.
SKIPPED_ON_APPROVAL = frozenset(("manual_approval", "max_signal_age_seconds", "require_time"))


@dataclass(frozen=True, slots=True)
class Waiting:
    signal_id: int
    requested_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class Approvals:
    """The approval rows of the trade log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, signal_id: int, now: datetime, timeout_seconds: Decimal) -> Waiting:
        expires = now + timedelta(seconds=float(timeout_seconds))
        await self._store.db.execute(
            "INSERT INTO approvals (signal_id, requested_at, expires_at) VALUES (?, ?, ?)",
            (signal_id, utcnow_iso(now), utcnow_iso(expires)),
        )
        return Waiting(signal_id, now, expires)

    async def waiting(self, signal_id: int) -> Waiting | None:
        async with self._store.db.execute(
            "SELECT signal_id, requested_at, expires_at FROM approvals WHERE signal_id = ? AND decision IS NULL",
            (signal_id,),
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _waiting(row)

    async def due(self, now: datetime) -> list[Waiting]:
        """Undecided approvals whose time ran out at ``now``."""
        async with self._store.db.execute(
            "SELECT signal_id, requested_at, expires_at FROM approvals WHERE decision IS NULL AND expires_at <= ?"
            " ORDER BY signal_id",
            (utcnow_iso(now),),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_waiting(r) for r in rows]

    async def pending(self) -> list[Waiting]:
        async with self._store.db.execute(
            "SELECT signal_id, requested_at, expires_at FROM approvals WHERE decision IS NULL ORDER BY signal_id"
        ) as cursor:
            rows = await cursor.fetchall()
        return [_waiting(r) for r in rows]

    async def decide(self, signal_id: int, decision: str, now: datetime) -> None:
        await self._store.db.execute(
            "UPDATE approvals SET decision = ?, decided_at = ? WHERE signal_id = ?",
            (decision, utcnow_iso(now), signal_id),
        )


def _waiting(row: tuple[int, str, str]) -> Waiting:
    return Waiting(int(row[0]), datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]))
