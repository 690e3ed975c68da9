"""State truth after a gap: the deals the trade log missed, and positions as the broker has them.

While the daemon was down or disconnected the broker went on: SL/TP hits, closes in cTrader,
fills of orders whose answers were lost. After every (re)connect the session has rebuilt its
positions and pending orders from Reconcile; this module then

1. asks DealList for every deal since the last one the trade log holds (the ledger records
   deals in the order the server executed them, so what it missed came after; both times are
   the server's), or since the oldest signal still being reconciled (our clock: a minute of
   slack), and for each deal the trade log does not have, asks
   OrderDetails for its order (label, clientOrderId, whether it is the protective SL/TP order)
   and replays it through the ledger as the execution event it missed: the same rows, the
   same ``trade.*`` events and log lines as if it had been online (``deal_recovered`` first);
2. makes the ``positions`` table agree with Reconcile: open positions the broker no longer has
   are closed (``position_closed_while_away``), positions it has that the log lacks are added
   (``position_found_at_broker``), volumes and levels refreshed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import (
    Deal,
    Execution,
    ExecutionKind,
    OrderDetails,
    Position,
)
from pipsync_lite.errors import BrokerRejected
from pipsync_lite.journal import requests_for_position
from pipsync_lite.ledger import Ledger, signal_id_from_label
from pipsync_lite.store import Store, utcnow_iso

log = structlog.get_logger("pipsync_lite.catchup")

SKEW_MS = 60 * 1000  # our clock against the server's
DEAL_SLACK_MS = 10 * 1000  # server time against server time: events racing each other
MAX_LOOKBACK_MS = 30 * 24 * 3600 * 1000


@dataclass(slots=True)
class DealIndex:
    """The deals of one catch-up window and what is known of their orders."""

    deals: list[Deal] = field(default_factory=list)
    orders: dict[int, OrderDetails] = field(default_factory=dict)
    missed: list[Deal] = field(default_factory=list)

    def for_label(self, label: str) -> list[Deal]:
        ids = {o.order_id for o in self.orders.values() if label in (o.label, o.client_order_id)}
        return [d for d in self.deals if d.order_id in ids]

    def closing(self, position_id: int, after_ms: int) -> list[Deal]:
        return [
            d for d in self.deals
            if d.position_id == position_id and d.close is not None and d.execution_timestamp_ms >= after_ms
        ]


class CatchUp:
    def __init__(self, store: Store, broker: CTraderClient, ledger: Ledger) -> None:
        self._store = store
        self._broker = broker
        self._ledger = ledger

    async def window_start(self, now_ms: int, signals_ms: Iterable[int] = ()) -> int:
        """Where DealList starts: just before the last deal logged (else the oldest open
        position, else now), earlier if a signal being reconciled is older."""
        candidates = [t - SKEW_MS for t in signals_ms]
        async with self._store.db.execute("SELECT MAX(executed_at) FROM deals") as cursor:
            row = await cursor.fetchone()
        if row and row[0]:
            candidates.append(_ms(row[0]) - DEAL_SLACK_MS)
        else:
            async with self._store.db.execute("SELECT MIN(opened_at) FROM positions WHERE status = 'open'") as cursor:
                row = await cursor.fetchone()
            candidates.append((_ms(row[0]) if row and row[0] else now_ms) - SKEW_MS)
        return max(min(candidates), now_ms - MAX_LOOKBACK_MS)

    async def run(self, since_ms: int, now_ms: int) -> DealIndex:
        """DealList over [since, now], replay what the log missed, sync positions."""
        index = DealIndex(deals=await self._broker.deal_list(since_ms, now_ms + SKEW_MS))
        index.missed = await self._unknown(index.deals)
        for deal in index.missed:
            await self._details(index, deal.order_id)
        await self._replay(index)
        await self._sync_positions()
        return index

    async def details_for(self, index: DealIndex, deals: Iterable[Deal]) -> None:
        """Load the orders of these deals too (to find a label among deals already logged)."""
        for deal in deals:
            await self._details(index, deal.order_id)

    async def _details(self, index: DealIndex, order_id: int) -> OrderDetails | None:
        if order_id in index.orders:
            return index.orders[order_id]
        try:
            details = await self._broker.order_details(order_id)
        except BrokerRejected as exc:  # e.g. ORDER_NOT_FOUND: replayed without its order
            log.warning("order_details_unavailable", order_id=order_id, code=exc.code)
            return None
        index.orders[order_id] = details
        return details

    async def _unknown(self, deals: list[Deal]) -> list[Deal]:
        if not deals:
            return []
        known: set[int] = set()
        ids = [d.deal_id for d in deals]
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            async with self._store.db.execute(f"SELECT deal_id FROM deals WHERE deal_id IN ({marks})", chunk) as cursor:
                known.update(int(r[0]) for r in await cursor.fetchall())
        return [d for d in deals if d.deal_id not in known]

    async def _replay(self, index: DealIndex) -> None:
        if not index.missed:
            return
        open_now = {p.position_id: p for p in self._broker.positions()}
        last_close: dict[int, int] = {}
        for deal in index.missed:
            if deal.close is not None:
                last_close[deal.position_id] = deal.deal_id
        for deal in index.missed:
            details = index.orders.get(deal.order_id)
            ours_close = bool(await requests_for_position(self._store, deal.position_id, "close"))
            event = _execution(deal, details, open_now.get(deal.position_id), last_close, ours_close)
            log.info(
                "deal_recovered",
                deal_id=deal.deal_id,
                order_id=deal.order_id,
                position_id=deal.position_id,
                signal_id=signal_id_from_label(event.label),
                closing=deal.close is not None,
                protective=event.is_protective,
                price=deal.execution_price,
            )
            self._ledger.on_event(event)
        await self._ledger.flush()

    async def _sync_positions(self) -> None:
        open_now = {p.position_id: p for p in self._broker.positions()}
        for row in await self._store.positions("open"):
            if row["position_id"] not in open_now:
                await self._store.upsert_position(row["position_id"], status="closed", closed_at=utcnow_iso(), close_reason=row["close_reason"] or "broker")
                log.warning("position_closed_while_away", position_id=row["position_id"], symbol=row["symbol"])
        logged = {r["position_id"] for r in await self._store.positions()}
        for position in open_now.values():
            symbol = self._broker.symbol_by_id(position.symbol_id)
            if position.position_id not in logged:
                log.warning("position_found_at_broker", position_id=position.position_id, label=position.label)
            await self._store.upsert_position(
                position.position_id,
                signal_id=signal_id_from_label(position.label),
                symbol=symbol.name if symbol else str(position.symbol_id),
                side=position.side.value,
                volume=position.volume,
                entry_price=position.entry_price,
                stop_loss=position.stop_loss,
                take_profit=position.take_profit,
                status="open",
                opened_at=_iso(position.open_timestamp_ms) if position.position_id not in logged else None,
            )


def _execution(
    deal: Deal,
    details: OrderDetails | None,
    open_position: Position | None,
    last_close: dict[int, int],
    ours_close: bool,
) -> Execution:
    """The execution event a missed deal would have come with."""
    label = details.label if details else ""
    position = open_position
    if deal.close is None and position is None:  # opened and already closed again
        position = Position(
            position_id=deal.position_id,
            symbol_id=deal.symbol_id,
            side=deal.side,
            volume=deal.filled_volume or deal.volume,
            entry_price=deal.execution_price,
            label=label,
            open_timestamp_ms=deal.execution_timestamp_ms,
        )
    protective = details.is_protective if details else False
    return Execution(
        kind=ExecutionKind.FILLED,
        order_id=deal.order_id,
        order_type=details.order_type if details else None,
        is_protective=protective,
        closing_order=details.closing_order if details else deal.close is not None,
        position=position,
        position_id=deal.position_id,
        position_closed=deal.close is not None and open_position is None and last_close.get(deal.position_id) == deal.deal_id,
        deal=deal,
        label=label,
        client_order_id=details.client_order_id if details else "",
        is_server_event=protective or (deal.close is not None and not ours_close),
        order_stop_price=details.stop_price if details else None,
        order_limit_price=details.limit_price if details else None,
    )


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def _iso(timestamp_ms: int) -> str | None:
    return utcnow_iso(datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)) if timestamp_ms else None
