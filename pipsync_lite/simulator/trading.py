"""Trading requests: orders, positions, reconcile, deal history and unrealized P/L."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator import render
from pipsync_lite.simulator.account import MONEY_DIGITS
from pipsync_lite.simulator.dispatch import RequestContext, Router
from pipsync_lite.simulator.engine import OrderRejected

if TYPE_CHECKING:
    from pipsync_lite.simulator.server import Simulator

log = structlog.get_logger(__name__)


class TradingHandlers:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def register(self, router: Router) -> None:
        desk = self._sim.desk
        router.add("ProtoOANewOrderReq", self._trade(desk.new_order))
        router.add("ProtoOAClosePositionReq", self._trade(desk.close_position))
        router.add("ProtoOAAmendPositionSLTPReq", self._trade(desk.amend_position))
        router.add("ProtoOAAmendOrderReq", self._trade(desk.amend_order))
        router.add("ProtoOACancelOrderReq", self._trade(desk.cancel_order))
        router.add("ProtoOAReconcileReq", self.reconcile)
        router.add("ProtoOADealListReq", self.deal_list)
        router.add("ProtoOAOrderDetailsReq", self.order_details)
        router.add("ProtoOAGetPositionUnrealizedPnLReq", self.unrealized_pnl)

    def _trade(self, action: Callable[[Any], list[Message]]
               ) -> Callable[[RequestContext, Any], None]:
        def handle(ctx: RequestContext, req: Any) -> None:
            try:
                events = action(req)
            except OrderRejected as exc:
                log.info("sim_order_rejected", request=req.DESCRIPTOR.name, code=exc.code)
                ctx.order_error(exc.code, exc.description, exc.order_id, exc.position_id)
                return
            # Execution events reach every session of the account; the requester's copies
            # carry its clientMsgId.
            self._sim.hub.publish(req.ctidTraderAccountId, events, ctx)
        return handle

    def reconcile(self, ctx: RequestContext, req: Any) -> None:
        engine = self._sim.engine
        book = engine.book
        # The protective STOP_LOSS_TAKE_PROFIT orders are listed too: the recorded answer
        # contains them even without returnProtectionOrders (absent from the 0.9.2 pb2).
        ctx.reply(protos.messages.ProtoOAReconcileRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            position=[engine.position_message(p) for _, p in sorted(book.positions.items())],
            order=[render.order(o) for _, o in sorted(book.orders.items())]))

    def deal_list(self, ctx: RequestContext, req: Any) -> None:
        if req.fromTimestamp > req.toTimestamp:
            ctx.error("INCORRECT_BOUNDARIES", "fromTimestamp is after toTimestamp")
            return
        deals = [d for d in self._sim.engine.book.deals
                 if req.fromTimestamp <= d.executed_ms <= req.toTimestamp]
        limit = req.maxRows if req.HasField("maxRows") and req.maxRows > 0 else len(deals)
        # Oldest first; with hasMore the client pages on from the last deal's time.
        ctx.reply(protos.messages.ProtoOADealListRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            deal=[render.deal(d) for d in deals[:limit]], hasMore=len(deals) > limit))

    def order_details(self, ctx: RequestContext, req: Any) -> None:
        book = self._sim.engine.book
        order = book.archive.get(req.orderId)
        if order is None:
            ctx.error("ORDER_NOT_FOUND", f"Order not found with id {req.orderId}")
            return
        ctx.reply(protos.messages.ProtoOAOrderDetailsRes(
            ctidTraderAccountId=req.ctidTraderAccountId, order=render.order(order),
            deal=[render.deal(d) for d in book.deals if d.order_id == order.order_id]))

    def unrealized_pnl(self, ctx: RequestContext, req: Any) -> None:
        engine = self._sim.engine
        pnl = []
        for position_id, pos in sorted(engine.book.positions.items()):
            gross, net = engine.unrealized_cents(pos)
            pnl.append(protos.model.ProtoOAPositionUnrealizedPnL(
                positionId=position_id, grossUnrealizedPnL=gross, netUnrealizedPnL=net))
        ctx.reply(protos.messages.ProtoOAGetPositionUnrealizedPnLRes(
            ctidTraderAccountId=req.ctidTraderAccountId, positionUnrealizedPnL=pnl,
            moneyDigits=MONEY_DIGITS))
