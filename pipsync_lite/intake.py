"""Admission of alerts around broker outages, and the queue of signals waiting for the broker.

The intake is *open* while the broker session is ready and the recovery after the last
(re)connect has run (unknown outcomes reconciled first, then the queue drained in order).
While it is closed, an alert that passed parsing and dedupe is:

- ``ctrader.on_disconnected: queue`` (default): stored as ``queued`` and answered 202
  ``{"status": "queued"}``. When the broker is back it is decided (symbol, plan, guard) and
  sent, in arrival order, unless it waited more than ``ctrader.max_queue_age_seconds``: then
  it is ``rejected`` with rule ``max_queue_age`` and never sent late.
- ``reject``: answered 503 (TradingView resends after 5 s); nothing waits.

The brief closure while the recovery runs after a (re)connect (well under a second) is waited
out for up to ``ADMISSION_WAIT`` seconds before queueing or refusing, so alerts arriving then
are answered as usual; while the broker is down, alerts are answered at once. Signals acknowledged before a crash and provably never sent are queued
again by the recovery and go through the same age rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import structlog

from pipsync_lite.config import CTraderConfig
from pipsync_lite.ctrader.model import Position
from pipsync_lite.events import EventBus
from pipsync_lite.journal import requests_for
from pipsync_lite.ledger import signal_id_from_label
from pipsync_lite.store import Store
from pipsync_lite.waits import wait_event

log = structlog.get_logger("pipsync_lite.intake")

Admission = Literal["open", "queue", "reject"]
ADMISSION_WAIT = 1.0  # seconds; TradingView abandons a request after 3
CLOCK_SLACK_MS = 5_000  # our clock against the broker's, for positions opened by hand


def open_at_alert(positions: list[Position], *, signal_id: int, received_at: datetime, prefix: str) -> list[Position]:
    """The positions a signal decided late may act on: those open when its alert arrived.

    Ours are told apart by their label (opened for an earlier signal); others by their open
    time (with some slack for the broker's clock). A queued "close EURUSD" must not close the
    position a later alert opened, nor an interrupted close-all the ones opened since.
    """
    received_ms = received_at.timestamp() * 1000 + CLOCK_SLACK_MS
    kept = []
    for position in positions:
        owner = signal_id_from_label(position.label) if position.label.startswith(prefix) else None
        if owner is not None:
            if owner < signal_id:
                kept.append(position)
        elif position.open_timestamp_ms <= received_ms:
            kept.append(position)
    return kept


class Intake:
    def __init__(
        self,
        config: CTraderConfig,
        store: Store,
        events: EventBus,
        clock: Callable[[], datetime],
    ) -> None:
        self.mode = config.on_disconnected
        self.max_age = config.max_queue_age_seconds
        self._store = store
        self._events = events
        self._clock = clock
        self._open = asyncio.Event()
        self._brief = False  # closed only while the recovery runs: worth waiting for
        self.reason = "connecting to cTrader"
        self._on_waiting: Callable[[], None] | None = None

    # --- the gate -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def open(self) -> None:
        if not self._open.is_set():
            log.info("intake_opened")
        self._open.set()

    def close(self, reason: str, brief: bool = False) -> None:
        if self._open.is_set():
            log.info("intake_closed", reason=reason, on_disconnected=self.mode)
        self._open.clear()
        self._brief = brief
        self.reason = reason

    async def wait_brief(self, wait: float = ADMISSION_WAIT) -> None:
        """Wait out a recovery under way (not an outage), up to ``wait`` seconds. Called before
        the engine takes its decision lock: the drain that opens the intake needs that lock."""
        if not self._open.is_set() and self._brief and wait > 0:
            await wait_event(self._open, wait)

    def admit(self) -> Admission:
        """``open``, or what to do with an alert now: ``queue`` it or ``reject`` it (503)."""
        if self._open.is_set():
            return "open"
        return "queue" if self.mode == "queue" else "reject"

    def on_waiting(self, callback: Callable[[], None]) -> None:
        """``callback`` is called when a signal starts waiting while the intake is open."""
        self._on_waiting = callback

    # --- the queue ------------------------------------------------------------------------

    def age_seconds(self, received_at: str) -> float:
        return (self._clock() - datetime.fromisoformat(received_at)).total_seconds()

    async def waiting(self) -> list[dict[str, Any]]:
        async with self._store.db.execute("SELECT * FROM signals WHERE status = 'queued' ORDER BY id") as cursor:
            return [dict(r) for r in await cursor.fetchall()]

    async def requeue(self, signal_id: int) -> bool:
        """Put a signal whose execution found the broker unavailable back in the queue.

        Only in ``queue`` mode, only while young enough, and only if the journal shows that
        every request it made found the broker unavailable (never sent, or refused for the
        token): a refusal on the merits is final. Returns False when the signal must fail.
        """
        if self.mode != "queue":
            return False
        row = await self._store.signal(signal_id)
        if row is None or self.age_seconds(row["received_at"]) > self.max_age:
            return False
        requests = await requests_for(self._store, signal_id)
        if not requests or any(r["state"] != "unavailable" for r in requests if r["state"] != "not_executed"):
            return False
        await self._store.set_signal_status(signal_id, "queued", reason="the broker was unavailable; waiting for it")
        log.info("signal_queued_again", signal_id=signal_id)
        if self._open.is_set() and self._on_waiting is not None:
            self._on_waiting()
        return True

    async def drain(self, resume: Callable[[dict[str, Any]], Awaitable[object]], ready: Callable[[], bool]) -> int:
        """Decide and start every queued signal in arrival order; expire the old ones.

        Stops when the broker stops being ready (the rest keeps waiting). Returns how many
        were resumed.
        """
        resumed = 0
        done: set[int] = set()
        while rows := [r for r in await self.waiting() if r["id"] not in done]:  # also those queued meanwhile
            for row in rows:
                if not ready():
                    return resumed
                done.add(row["id"])
                age = self.age_seconds(row["received_at"])
                if age > self.max_age:
                    await self.expire(row["id"], age)
                    continue
                log.info("signal_dequeued", signal_id=row["id"], waited_seconds=round(age, 3))
                await resume(row)
                resumed += 1
        return resumed

    async def expire(self, signal_id: int, age: float) -> None:
        reason = (
            f"waited {age:.0f} s for the broker, over ctrader.max_queue_age_seconds {self.max_age}: "
            "not sent late"
        )
        await self._store.set_signal_status(signal_id, "rejected", rule="max_queue_age", reason=reason)
        log.warning("signal_expired", signal_id=signal_id, waited_seconds=round(age, 3), max_age=self.max_age)
        self._events.emit("signal.rejected", signal_id=signal_id, status="rejected", rule="max_queue_age", reason=reason)
