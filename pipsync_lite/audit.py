"""Stop-loss audit: every open position that should have a stop still has one at the broker.

Every ``ctrader.stop_audit_interval_seconds`` (0 = off), while the broker is ready, each open
position opened by one of our signals is checked:

- it *should* have a stop when its entry order asked for one (absolute, or a distance sent
  with a market order) and no later amendment of ours removed it (both read from the request
  journal, so it holds whatever command set the stop: alert, default_sl_pips, modify);
- the level it should have is the last one seen on it (the audit records what it observes,
  which follows trailing stops and breakevens), else the one the entry asked for;
- a missing stop is put back (``stop_loss_restored``); if the broker refuses (the price is
  already past the level, the market is closed), ``stop_loss_missing`` is logged as an error
  and ``order.failed`` (``purpose: stop_audit``) is emitted, once per position until it has a
  stop again.

Positions younger than ``min_age`` seconds or whose signal is still executing are left alone:
the broker's protective order follows the fill by a moment, and the executor may be amending.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import structlog

from pipsync_lite.ctrader.model import Broker, Position
from pipsync_lite.errors import BrokerError
from pipsync_lite.events import EventBus
from pipsync_lite.journal import requests_for, requests_for_position
from pipsync_lite.ledger import signal_id_from_label
from pipsync_lite.planner import expected_level
from pipsync_lite.store import Store, utcnow_iso

log = structlog.get_logger("pipsync_lite.audit")

_SETTLED_OK = ("done", "executed")


class StopAudit:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        events: EventBus,
        *,
        interval: float,
        busy: Callable[[], set[int]] = set,
        min_age: float = 2.0,
    ) -> None:
        self._store = store
        self._broker = broker
        self._events = events
        self._interval = interval
        self._busy = busy
        self._min_age = min_age
        self._alerted: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._loop(), name="stop-audit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self._broker.ready:
                continue
            try:
                await self.run_once()
            except BrokerError as exc:
                log.warning("stop_audit_interrupted", error=str(exc))
            except Exception:  # the audit must outlive a bug in one round
                log.exception("stop_audit_failed")

    async def run_once(self) -> dict[str, int]:
        """One round; returns counts (checked, restored, missing)."""
        prefix = f"psl-{self._store.instance_id}-"
        busy = self._busy()
        counts = {"checked": 0, "restored": 0, "missing": 0}
        now_ms = time.time() * 1000
        for position in self._broker.positions():
            signal_id = signal_id_from_label(position.label) if position.label.startswith(prefix) else None
            if signal_id is None or signal_id in busy:
                continue
            if position.open_timestamp_ms and now_ms - position.open_timestamp_ms < self._min_age * 1000:
                continue
            counts["checked"] += 1
            if position.stop_loss is not None:
                self._alerted.discard(position.position_id)
                await self._remember(position)
                continue
            level = await self._expected_stop(position, signal_id)
            if level is None:
                continue
            counts["restored" if await self._restore(position, signal_id, level) else "missing"] += 1
        self.runs += 1
        return counts

    async def _remember(self, position: Position) -> None:
        async with self._store.db.execute(
            "SELECT stop_loss FROM positions WHERE position_id = ?", (position.position_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or (row[0] is not None and Decimal(row[0]) == position.stop_loss):
            return
        await self._set_stop(position.position_id, position.stop_loss)

    async def _expected_stop(self, position: Position, signal_id: int) -> Decimal | None:
        """The stop this position should have, or None when it should have none."""
        amends = [r for r in await requests_for_position(self._store, position.position_id, "amend_sltp") if r["state"] in _SETTLED_OK]
        if amends and amends[-1]["stop_loss"] is None:
            return None  # our last amendment removed it on purpose
        entry = [r for r in await requests_for(self._store, signal_id) if r["kind"] == "new_order" and r["state"] in _SETTLED_OK]
        asked = entry[-1] if entry else None
        if not amends and (asked is None or (asked["stop_loss"] is None and asked["relative_stop_loss"] is None)):
            return None
        async with self._store.db.execute(
            "SELECT stop_loss FROM positions WHERE position_id = ?", (position.position_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is not None and row[0] is not None:
            return Decimal(row[0])
        if amends:
            return Decimal(amends[-1]["stop_loss"])
        assert asked is not None
        if asked["stop_loss"] is not None:
            return Decimal(asked["stop_loss"])
        symbol = self._broker.symbol_by_id(position.symbol_id)
        digits = symbol.digits if symbol is not None else 5
        return expected_level(position.entry_price, int(asked["relative_stop_loss"]), position.side, stop=True, digits=digits)

    async def _restore(self, position: Position, signal_id: int, level: Decimal) -> bool:
        fields: dict[str, Any] = {"position_id": position.position_id, "signal_id": signal_id, "stop_loss": str(level)}
        try:
            await self._broker.amend_position_sltp(
                position.position_id, level, position.take_profit, position.trailing_stop_loss
            )
        except BrokerError as exc:
            if position.position_id not in self._alerted:
                self._alerted.add(position.position_id)
                log.error("stop_loss_missing", error=str(exc), **fields)
                symbol = self._broker.symbol_by_id(position.symbol_id)
                self._events.emit(
                    "order.failed", purpose="stop_audit", symbol=symbol.name if symbol else None,
                    outcome="missing_stop", error_text=str(exc), **fields,
                )
            return False
        self._alerted.discard(position.position_id)
        log.warning("stop_loss_restored", **fields)
        await self._set_stop(position.position_id, level)
        return True

    async def _set_stop(self, position_id: int, level: Decimal | None) -> None:
        """The last stop seen on the position: what to put back if it disappears."""
        await self._store.db.execute(
            "UPDATE positions SET stop_loss = ?, updated_at = ? WHERE position_id = ?",
            (None if level is None else str(level), utcnow_iso(), position_id),
        )
