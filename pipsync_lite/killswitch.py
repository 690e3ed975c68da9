"""The runtime kill switch: engaged by the CLI or by a loss limit, stored, survives restarts.

Every change is a row in ``kill_switch`` (when, on/off, cause, reason, until), so the history
of engagements and their causes stays in the trade log; the state is the latest row. A
loss limit engages it until the next trading day (``until``); ``pipsync-lite kill on``
engages it until ``kill off``. An alert can never turn it off. YAML ``risk.kill_switch: true``
is separate and wins: it holds whatever the database says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from pipsync_lite.events import EventBus
from pipsync_lite.store import Store, utcnow_iso

log = structlog.get_logger("pipsync_lite.killswitch")

#: The cause recorded when the operator engages or releases it from the command line.
OPERATOR = "cli"


@dataclass(frozen=True, slots=True)
class KillState:
    """An engaged runtime kill switch."""

    cause: str  # "cli" or the loss rule that engaged it (max_daily_loss, ...)
    reason: str
    since: datetime
    until: datetime | None = None  # None: until `pipsync-lite kill off`

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until

    def describe(self) -> str:
        until = "until `pipsync-lite kill off`" if self.until is None else f"until {self.until.isoformat(timespec='minutes')}"
        source = "by the operator" if self.cause == OPERATOR else f"by {self.cause}: {self.reason}"
        return f"kill switch engaged {source}; entries are refused {until}, exits still work"


class KillSwitch:
    def __init__(self, store: Store, events: EventBus) -> None:
        self._store = store
        self._events = events
        self._state: KillState | None = None
        self._released: set[tuple[str, str]] = set()  # (cause, day) released by the operator

    async def load(self) -> None:
        async with self._store.db.execute(
            "SELECT engaged, cause, reason, at, until FROM kill_switch ORDER BY id DESC LIMIT 1"
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0]:
            until = datetime.fromisoformat(row[4]) if row[4] else None
            self._state = KillState(row[1], row[2] or "", datetime.fromisoformat(row[3]), until)
        if self._state is not None:
            log.info("kill_switch_restored", cause=self._state.cause, until=self._state.until)

    def state(self, now: datetime) -> KillState | None:
        """The engaged state at ``now``; None when off (or an engagement ran out)."""
        if self._state is not None and self._state.active(now):
            return self._state
        return None

    async def engage(
        self, cause: str, reason: str, now: datetime, until: datetime | None = None, **detail: object
    ) -> KillState:
        state = KillState(cause, reason, now, until)
        await self._write(True, cause, reason, now, until)
        self._state = state
        log.warning("kill_switch_engaged", cause=cause, reason=reason, until=until)
        self._events.emit(
            "kill_switch.engaged",
            cause=cause,
            reason=reason,
            until=None if until is None else until.isoformat(),
            **detail,
        )
        return state

    async def release(self, now: datetime, cause: str = OPERATOR, day: str | None = None) -> KillState | None:
        """Turn it off. Returns what was engaged (None if it was off already)."""
        was = self.state(now)
        if was is not None and day is not None and was.cause != OPERATOR:
            # The operator overrode a loss limit: do not engage again for it the same day.
            self._released.add((was.cause, day))
        self._state = None
        await self._write(False, cause, "released", now, None)
        log.warning("kill_switch_released", cause=cause, was=None if was is None else was.cause)
        return was

    async def expire(self, now: datetime) -> KillState | None:
        """Record the end of an engagement whose ``until`` has passed (once)."""
        state = self._state
        if state is None or state.active(now):
            return None
        self._state = None
        await self._write(False, "expired", f"{state.cause} engagement ended at the new trading day", now, None)
        log.info("kill_switch_expired", cause=state.cause, until=state.until)
        return state

    def released_today(self, cause: str, day: str) -> bool:
        return (cause, day) in self._released

    async def history(self, limit: int = 50) -> list[dict[str, object]]:
        async with self._store.db.execute(
            "SELECT at, engaged, cause, reason, until FROM kill_switch ORDER BY id DESC LIMIT ?", (limit,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            {"at": r[0], "state": "on" if r[1] else "off", "cause": r[2], "reason": r[3], "until": r[4]}
            for r in rows
        ]

    async def _write(self, engaged: bool, cause: str, reason: str, now: datetime, until: datetime | None) -> None:
        await self._store.db.execute(
            "INSERT INTO kill_switch (at, engaged, cause, reason, until) VALUES (?, ?, ?, ?, ?)",
            (utcnow_iso(now), int(engaged), cause, reason, None if until is None else utcnow_iso(until)),
        )
