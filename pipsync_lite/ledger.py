"""Broker execution events → the trade log: fills, SL/TP changes, closes and SL/TP hits.

The broker client calls ``on_event`` synchronously; events are queued and written by one
task, in the order they arrived, so the log never reorders a close before its open. Deals
are recorded once (an event seen again after a reconnect is ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from pipsync_lite.ctrader.model import (
    BrokerEvent,
    Execution,
    ExecutionKind,
    Position,
    SymbolInfo,
)
from pipsync_lite.events import EventBus
from pipsync_lite.store import Store, utcnow_iso

log = structlog.get_logger("pipsync_lite.ledger")

_LABEL = re.compile(r"^psl-[0-9a-f]+-(\d+)$")


def signal_id_from_label(label: str) -> int | None:
    match = _LABEL.match(label or "")
    return int(match.group(1)) if match else None


class Ledger:
    def __init__(self, store: Store, symbol_by_id: Callable[[int], SymbolInfo | None], events: EventBus) -> None:
        self._store = store
        self._events = events
        self._symbol_by_id = symbol_by_id
        self._queue: asyncio.Queue[Execution] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def on_event(self, event: BrokerEvent) -> None:
        if isinstance(event, Execution) and event.kind in (
            ExecutionKind.FILLED,
            ExecutionKind.PARTIAL_FILL,
            ExecutionKind.REPLACED,
        ):
            self._queue.put_nowait(event)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def flush(self) -> None:
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def _run(self) -> None:
        # Not lazily (see database.lazily): each event's writes wait for the previous ones, and
        # a chain of lazy waits would leave the log (and the day's realized P/L) behind.
        while True:
            event = await self._queue.get()
            try:
                await self._record(event)
            except Exception:  # one bad event must not stop the log
                log.exception("ledger_record_failed", order_id=event.order_id)
            finally:
                self._queue.task_done()

    async def _record(self, event: Execution) -> None:
        if event.kind is ExecutionKind.REPLACED:
            if event.position is not None:
                await self._store.upsert_position(
                    event.position.position_id,
                    stop_loss=event.position.stop_loss,
                    take_profit=event.position.take_profit,
                    status="open",
                )
            return
        deal = event.deal
        if deal is None:
            return
        symbol = self._symbol_by_id(deal.symbol_id)
        name = symbol.name if symbol else str(deal.symbol_id)
        executed_at = _iso(deal.execution_timestamp_ms)
        close = deal.close
        is_new = await self._store.insert_deal(
            deal.deal_id,
            order_id=deal.order_id,
            position_id=deal.position_id,
            symbol=name,
            side=deal.side.value,
            volume=deal.filled_volume or deal.volume,
            execution_price=deal.execution_price,
            commission=deal.commission,
            gross_profit=close.gross_profit if close else None,
            swap=close.swap if close else None,
            balance_after=close.balance if close else None,
            closed_volume=close.closed_volume if close else None,
            executed_at=executed_at,
        )
        if not is_new:
            return
        if close is None:
            await self._opened(event, name, executed_at)
            return
        reason = _close_reason(event)
        await self._store.upsert_position(
            deal.position_id,
            symbol=name,
            volume=event.position.volume if event.position else 0,
            status="closed" if event.position_closed else "open",
            closed_at=executed_at if event.position_closed else None,
            close_price=deal.execution_price,
            close_reason=reason,
        )
        self._events.emit(
            {"sl": "trade.sl_hit", "tp": "trade.tp_hit"}.get(reason, "trade.closed"),
            position_id=deal.position_id,
            signal_id=signal_id_from_label(event.label),
            symbol=name,
            reason=reason,
            closed_volume=close.closed_volume,
            fully_closed=event.position_closed,
            price=str(deal.execution_price),
            gross_profit=str(close.gross_profit),
            commission=str(close.commission),
            balance=str(close.balance),
        )
        log.info(
            "trade_closed" if event.position_closed else "trade_reduced",
            position_id=deal.position_id,
            symbol=name,
            reason=reason,
            price=deal.execution_price,
            gross_profit=close.gross_profit,
            balance=close.balance,
        )

    async def _opened(self, event: Execution, symbol: str, executed_at: str) -> None:
        position: Position | None = event.position
        if position is None:
            return
        await self._store.upsert_position(
            position.position_id,
            signal_id=signal_id_from_label(event.label or position.label),
            symbol=symbol,
            side=position.side.value,
            volume=position.volume,
            entry_price=position.entry_price,
            stop_loss=position.stop_loss,
            take_profit=position.take_profit,
            status="open",
            opened_at=executed_at,
        )
        self._events.emit(
            "trade.opened",
            position_id=position.position_id,
            signal_id=signal_id_from_label(event.label or position.label),
            symbol=symbol,
            side=position.side.value,
            volume=position.volume,
            price=str(position.entry_price),
            stop_loss=None if position.stop_loss is None else str(position.stop_loss),
            take_profit=None if position.take_profit is None else str(position.take_profit),
        )
        log.info("trade_opened", position_id=position.position_id, symbol=symbol, side=position.side.value, volume=position.volume, price=position.entry_price)


def _close_reason(event: Execution) -> str:
    """``sl``/``tp`` for a protective order (whichever level the fill is nearer), else who closed it."""
    if event.is_protective and event.deal is not None:
        price = event.deal.execution_price
        stop, limit = event.order_stop_price, event.order_limit_price
        if stop is not None and (limit is None or abs(price - stop) <= abs(price - limit)):
            return "sl"
        return "tp" if limit is not None else "sl"
    return "broker" if event.is_server_event else "signal"


def _iso(timestamp_ms: int) -> str:
    if not timestamp_ms:
        return utcnow_iso()
    return utcnow_iso(datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC))
