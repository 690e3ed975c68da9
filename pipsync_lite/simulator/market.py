"""Market-data and account-information requests: symbols, assets, spots and the trader."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from pipsync_lite import protos
from pipsync_lite.simulator import render
from pipsync_lite.simulator.dispatch import RequestContext, Router

if TYPE_CHECKING:
    from pipsync_lite.simulator.server import Simulator


class MarketHandlers:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def register(self, router: Router) -> None:
        router.add("ProtoOASymbolsListReq", self.symbols_list)
        router.add("ProtoOASymbolByIdReq", self.symbol_by_id)
        router.add("ProtoOAAssetListReq", self.asset_list)
        router.add("ProtoOASymbolCategoryListReq", self.category_list)
        router.add("ProtoOASubscribeSpotsReq", self.subscribe_spots)
        router.add("ProtoOAUnsubscribeSpotsReq", self.unsubscribe_spots)
        router.add("ProtoOATraderReq", self.trader)

    def symbols_list(self, ctx: RequestContext, req: Any) -> None:
        catalogue = self._sim.catalogue
        ctx.reply(protos.messages.ProtoOASymbolsListRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            symbol=[catalogue.light_symbol(i) for i in catalogue.instruments]))

    def symbol_by_id(self, ctx: RequestContext, req: Any) -> None:
        catalogue = self._sim.catalogue
        unknown = [s for s in req.symbolId if catalogue.by_id(s) is None]
        if unknown or not req.symbolId:
            # All or nothing: a partial answer would let a client silently miss a symbol.
            ctx.error("SYMBOL_NOT_FOUND", f"Symbols not found: {unknown}")
            return
        ctx.reply(protos.messages.ProtoOASymbolByIdRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            symbol=[catalogue.full_symbol(catalogue.by_id(s)) for s in req.symbolId]))

    def asset_list(self, ctx: RequestContext, req: Any) -> None:
        catalogue = self._sim.catalogue
        ctx.reply(protos.messages.ProtoOAAssetListRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            asset=[catalogue.asset_message(a) for a in catalogue.assets]))

    def category_list(self, ctx: RequestContext, req: Any) -> None:
        ctx.reply(protos.messages.ProtoOASymbolCategoryListRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            symbolCategory=self._sim.catalogue.category_messages()))

    def subscribe_spots(self, ctx: RequestContext, req: Any) -> None:
        symbol_ids = list(req.symbolId)
        catalogue = self._sim.catalogue
        unknown = [s for s in symbol_ids if catalogue.by_id(s) is None]
        if unknown or not symbol_ids:
            ctx.error("SYMBOL_NOT_FOUND", f"Symbols not found: {unknown}")
            return
        repeated = [s for s in symbol_ids if s in ctx.conn.spots]
        if repeated:
            ctx.error("ALREADY_SUBSCRIBED", f"Already subscribed to spots of {repeated}")
            return
        account_id = req.ctidTraderAccountId
        for symbol_id in symbol_ids:
            ctx.conn.spots[symbol_id] = (account_id, req.subscribeToSpotTimestamp)
        ctx.reply(protos.messages.ProtoOASubscribeSpotsRes(ctidTraderAccountId=account_id))
        # The "technical" first event: both sides, sent even when the market is closed.
        now_ms = int(time.time() * 1000) if req.subscribeToSpotTimestamp else None
        for symbol_id in symbol_ids:
            inst = catalogue.by_id(symbol_id)
            assert inst is not None
            quote = self._sim.feed.quote(symbol_id)
            ctx.reply(render.spot(account_id, symbol_id, quote.bid * inst.spot_per_point,
                                  quote.ask * inst.spot_per_point, now_ms))

    def unsubscribe_spots(self, ctx: RequestContext, req: Any) -> None:
        missing = [s for s in req.symbolId if s not in ctx.conn.spots]
        if missing:
            ctx.error("NOT_SUBSCRIBED_TO_SPOTS", f"Not subscribed to spots of {missing}")
            return
        for symbol_id in req.symbolId:
            del ctx.conn.spots[symbol_id]
        ctx.reply(protos.messages.ProtoOAUnsubscribeSpotsRes(
            ctidTraderAccountId=req.ctidTraderAccountId))

    def trader(self, ctx: RequestContext, req: Any) -> None:
        account = self._sim.account
        deposit = self._sim.catalogue.asset(account.deposit_asset).asset_id
        ctx.reply(protos.messages.ProtoOATraderRes(
            ctidTraderAccountId=req.ctidTraderAccountId,
            trader=account.trader_message(deposit)))
