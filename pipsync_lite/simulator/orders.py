"""The order desk: validates trading requests and turns them into engine actions."""

from __future__ import annotations

import dataclasses
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator.book import (
    BUY, FOK, GTC, GTD, IOC, LIMIT, MARKET, MARKET_RANGE, PENDING_TYPES, SELL, STOP,
    STOP_LIMIT, Order, Position, opposite, side_name)
from pipsync_lite.simulator.engine import (
    ACCEPTED, CANCELLED, REJECTED, REPLACED, Engine, OrderRejected)
from pipsync_lite.simulator.faults import Faults
from pipsync_lite.simulator.instruments import Instrument

_MODEL = protos.model
_LIMITS = {"label": 100, "comment": 512, "clientOrderId": 50}


class OrderDesk:
    def __init__(self, engine: Engine, faults: Faults) -> None:
        self._engine = engine
        self._faults = faults

    # ------------------------------------------------------------- NewOrderReq

    def new_order(self, req: Any) -> list[Message]:
        engine = self._engine
        inst = engine.catalogue.by_id(req.symbolId)
        if inst is None:
            raise OrderRejected("SYMBOL_NOT_FOUND", f"Symbol not found with id {req.symbolId}")
        rejection = self._faults.take_order_rejection()
        if rejection is not None:
            if rejection.via == "order_error":
                raise OrderRejected(rejection.code, rejection.description)
            order = self._build(req, inst, validate=False)
            order.status = _MODEL.ORDER_STATUS_REJECTED
            engine.book.add_order(order, live=False)
            return [engine.event(REJECTED, order=order, error_code=rejection.code)]
        self._require_open(inst)
        _check_volume(inst, req.volume)
        order = self._build(req, inst, validate=True)
        if order.order_type in (MARKET, MARKET_RANGE):
            return self._market(order, inst)
        return self._pending(order)

    def _build(self, req: Any, inst: Instrument, validate: bool) -> Order:
        now = self._engine.clock_ms()
        if req.tradeSide not in (BUY, SELL) or req.orderType not in (
                MARKET, MARKET_RANGE, *PENDING_TYPES):
            raise OrderRejected("INVALID_REQUEST", "Unsupported order type or trade side")
        for field, limit in _LIMITS.items():
            if len(getattr(req, field)) > limit:
                raise OrderRejected("INVALID_REQUEST", f"{field} is longer than {limit}")
        market_like = req.orderType in (MARKET, MARKET_RANGE)
        order = Order(
            self._engine.book.ids.take("order"), inst.symbol_id, req.tradeSide, req.volume,
            req.orderType, IOC if market_like else req.timeInForce, now, now,
            label=req.label, comment=req.comment, client_order_id=req.clientOrderId,
            trailing=req.trailingStopLoss, guaranteed=req.guaranteedStopLoss,
            stop_trigger_method=req.stopTriggerMethod)
        if req.HasField("relativeStopLoss"):
            order.relative_stop_loss = req.relativeStopLoss
        if req.HasField("relativeTakeProfit"):
            order.relative_take_profit = req.relativeTakeProfit
        if req.HasField("slippageInPoints"):
            order.slippage_in_points = req.slippageInPoints
        if not validate:
            return order
        if market_like:
            if req.HasField("stopLoss") or req.HasField("takeProfit"):
                # INVALID_REQUEST, not TRADING_BAD_STOPS: the levels are not wrong, the
                # request shape is ("not supported for MARKET orders"); a client reading
                # TRADING_BAD_STOPS would blame the user's prices for its own bug.
                raise OrderRejected("INVALID_REQUEST", "Absolute stopLoss/takeProfit are not "
                                    "supported for MARKET orders; use relativeStopLoss/"
                                    "relativeTakeProfit")
            if req.orderType == MARKET_RANGE:
                if not (req.HasField("baseSlippagePrice") and req.HasField("slippageInPoints")):
                    raise OrderRejected("TRADING_BAD_PRICES", "MARKET_RANGE needs "
                                        "baseSlippagePrice and slippageInPoints")
                order.base_slippage_price = _price(req.baseSlippagePrice, inst,
                                                   "TRADING_BAD_PRICES")
        else:
            if req.HasField("limitPrice"):
                order.limit_price = _price(req.limitPrice, inst, "TRADING_BAD_PRICES")
            if req.HasField("stopPrice"):
                order.stop_price = _price(req.stopPrice, inst, "TRADING_BAD_PRICES")
            if req.HasField("stopLoss"):
                order.stop_loss = _price(req.stopLoss, inst, "TRADING_BAD_STOPS")
            if req.HasField("takeProfit"):
                order.take_profit = _price(req.takeProfit, inst, "TRADING_BAD_STOPS")
            if req.HasField("expirationTimestamp"):
                order.expiration_ms = req.expirationTimestamp
            self._check_pending(order, now)
        _check_relative(order)
        if req.HasField("positionId"):
            self._attach_to_position(order, req.positionId)
        return order

    @staticmethod
    def _check_pending(order: Order, now: int) -> None:
        """The price, SL/TP and expiry rules a pending order must satisfy."""
        kind = _MODEL.ProtoOAOrderType.Name(order.order_type)
        if order.order_type == LIMIT and order.limit_price is None:
            raise OrderRejected("TRADING_BAD_PRICES", "LIMIT order needs limitPrice")
        if order.order_type in (STOP, STOP_LIMIT) and order.stop_price is None:
            raise OrderRejected("TRADING_BAD_PRICES", f"{kind} order needs stopPrice")
        if order.order_type == STOP_LIMIT and order.slippage_in_points is None:
            raise OrderRejected("TRADING_BAD_PRICES", "STOP_LIMIT order needs slippageInPoints")
        if order.time_in_force not in (GTC, GTD, IOC, FOK):
            raise OrderRejected("INVALID_REQUEST", "Unsupported timeInForce")
        if order.time_in_force == GTD and (order.expiration_ms is None
                                           or order.expiration_ms <= now):
            raise OrderRejected("TRADING_BAD_EXPIRATION_DATE",
                                "GOOD_TILL_DATE needs an expirationTimestamp in the future")
        entry = order.entry_price
        assert entry is not None
        side = side_name(order.side)
        buy = order.side == BUY
        if order.stop_loss is not None and (order.stop_loss >= entry if buy
                                            else order.stop_loss <= entry):
            raise OrderRejected("TRADING_BAD_STOPS", f"SL for {side} order should be "
                                f"{'<' if buy else '>'} the order price {entry}")
        if order.take_profit is not None and (order.take_profit <= entry if buy
                                              else order.take_profit >= entry):
            raise OrderRejected("TRADING_BAD_STOPS", f"TP for {side} order should be "
                                f"{'>' if buy else '<'} the order price {entry}")

    def _attach_to_position(self, order: Order, position_id: int) -> None:
        pos = self._engine.book.positions.get(position_id)
        if pos is None or pos.symbol_id != order.symbol_id:
            raise OrderRejected("POSITION_NOT_FOUND", f"Position not found with id {position_id}",
                                position_id=position_id)
        if pos.side != order.side:
            if order.volume > pos.volume:
                raise OrderRejected("TRADING_BAD_VOLUME", f"Volume {order.volume} exceeds "
                                    f"position volume {pos.volume}", position_id=position_id)
            order.closing = True
        order.position_id = position_id

    def _market(self, order: Order, inst: Instrument) -> list[Message]:
        engine = self._engine
        price = engine.pricing.opening_price(inst, order.side)
        target = engine.target_position(order)
        opening = order.volume
        if target is not None:
            opening = order.volume if target.side == order.side else max(
                0, order.volume - target.volume)
        if opening and engine.pricing.margin_cents(
                inst, opening, engine.account.leverage) > engine.free_margin_cents():
            raise OrderRejected("NOT_ENOUGH_MONEY", "Not enough money to open the position")
        engine.book.add_order(order)
        new_position_id = None
        shown = target
        if target is None:
            # Recorded: ORDER_ACCEPTED already names the position, CREATED with volume 0.
            new_position_id = engine.book.ids.take("position")
            shown = Position(new_position_id, order.symbol_id, order.side, 0, price,
                             order.created_ms, order.created_ms, label=order.label,
                             comment=order.comment, status=_MODEL.POSITION_STATUS_CREATED)
        events = [engine.event(ACCEPTED, order=order, position=shown)]
        if order.order_type == MARKET_RANGE:
            assert order.base_slippage_price is not None
            band = inst.point * (order.slippage_in_points or 0)
            if abs(price - order.base_slippage_price) > band:
                return events + self._cancel(order)
        return events + engine.execute(order, price, server=False, position_id=new_position_id)

    def _pending(self, order: Order) -> list[Message]:
        engine = self._engine
        engine.book.add_order(order)
        events = [engine.event(ACCEPTED, order=order)]
        # A pending order that is already marketable fills at once, at the market price
        # (never worse than its limit): exchange semantics, and it spares the client a
        # rejection it could not have predicted from a stale quote.
        price = engine.pending_fill_price(order)
        if price is not None:
            return events + engine.execute(order, price, server=False)
        if order.time_in_force in (IOC, FOK):  # no partial fills, so the two coincide
            return events + self._cancel(order)
        return events

    def _cancel(self, order: Order) -> list[Message]:
        order.status = _MODEL.ORDER_STATUS_CANCELLED
        order.updated_ms = self._engine.clock_ms()
        self._engine.book.orders.pop(order.order_id, None)
        return [self._engine.event(CANCELLED, order=order)]

    # ------------------------------------------------------------- positions

    def close_position(self, req: Any) -> list[Message]:
        engine = self._engine
        pos = self._position(req.positionId)
        inst = engine.instrument(pos.symbol_id)
        self._require_open(inst)
        volume = req.volume
        if (volume <= 0 or volume > pos.volume or volume % inst.step_volume
                or volume < min(inst.min_volume, pos.volume)):
            raise OrderRejected("TRADING_BAD_VOLUME", f"Cannot close volume {volume} of "
                                f"position {pos.position_id} with volume {pos.volume}",
                                position_id=pos.position_id)
        now = engine.clock_ms()
        # The server closes with a MARKET, closingOrder, IOC order (recorded).
        order = Order(engine.book.ids.take("order"), pos.symbol_id, opposite(pos.side), volume,
                      MARKET, IOC, now, now, closing=True, position_id=pos.position_id,
                      label=pos.label, comment=pos.comment)
        engine.book.add_order(order)
        events = [engine.event(ACCEPTED, order=order, position=pos)]
        price = engine.pricing.opening_price(inst, order.side)
        return events + engine.execute(order, price, server=False)

    def amend_position(self, req: Any) -> list[Message]:
        engine = self._engine
        pos = self._position(req.positionId)
        inst = engine.instrument(pos.symbol_id)
        # As on the real server, a level left out of the request is removed.
        stop_loss = (_price(req.stopLoss, inst, "TRADING_BAD_STOPS")
                     if req.HasField("stopLoss") else None)
        take_profit = (_price(req.takeProfit, inst, "TRADING_BAD_STOPS")
                       if req.HasField("takeProfit") else None)
        close = engine.pricing.closing_price(inst, pos.side)
        buy = pos.side == BUY
        reference = f"current {'BID' if buy else 'ASK'} price {close}"
        if stop_loss is not None and (stop_loss >= close if buy else stop_loss <= close):
            raise OrderRejected("TRADING_BAD_STOPS", f"New SL for {side_name(pos.side)} position "
                                f"should be {'<' if buy else '>'} {reference}",
                                position_id=pos.position_id)
        if take_profit is not None and (take_profit < close if buy else take_profit > close):
            raise OrderRejected("TRADING_BAD_STOPS", f"New TP for {side_name(pos.side)} position "
                                f"should be {'>=' if buy else '<='} {reference}",
                                position_id=pos.position_id)
        pos.guaranteed = req.guaranteedStopLoss
        pos.stop_loss_trigger_method = req.stopLossTriggerMethod
        events = engine.protect(pos, stop_loss, take_profit, trailing=req.trailingStopLoss,
                                server=False)
        return events or [engine.event(REPLACED, position=pos)]

    def _position(self, position_id: int) -> Position:
        pos = self._engine.book.positions.get(position_id)
        if pos is None:
            raise OrderRejected("POSITION_NOT_FOUND", f"Position not found with id {position_id}",
                                position_id=position_id)
        return pos

    # ------------------------------------------------------------- pending orders

    def amend_order(self, req: Any) -> list[Message]:
        engine = self._engine
        order = self._live_order(req.orderId, "UNABLE_TO_AMEND_ORDER")
        inst = engine.instrument(order.symbol_id)
        changes: dict[str, Any] = {}
        if req.HasField("volume"):
            _check_volume(inst, req.volume)
            changes["volume"] = req.volume
        if req.HasField("limitPrice"):
            changes["limit_price"] = _price(req.limitPrice, inst, "TRADING_BAD_PRICES")
        if req.HasField("stopPrice"):
            changes["stop_price"] = _price(req.stopPrice, inst, "TRADING_BAD_PRICES")
        if req.HasField("expirationTimestamp"):
            changes["expiration_ms"] = req.expirationTimestamp
        if req.HasField("slippageInPoints"):
            changes["slippage_in_points"] = req.slippageInPoints
        # Protection levels follow AmendPositionSLTP's rule: whatever is left out is
        # removed (UNVERIFIED for orders; the stricter reading, so a client must resend).
        changes["stop_loss"] = (_price(req.stopLoss, inst, "TRADING_BAD_STOPS")
                                if req.HasField("stopLoss") else None)
        changes["take_profit"] = (_price(req.takeProfit, inst, "TRADING_BAD_STOPS")
                                  if req.HasField("takeProfit") else None)
        changes["relative_stop_loss"] = (req.relativeStopLoss
                                         if req.HasField("relativeStopLoss") else None)
        changes["relative_take_profit"] = (req.relativeTakeProfit
                                           if req.HasField("relativeTakeProfit") else None)
        changes["trailing"] = req.trailingStopLoss
        changes["guaranteed"] = req.guaranteedStopLoss
        changes["stop_trigger_method"] = req.stopTriggerMethod
        now = engine.clock_ms()
        amended = dataclasses.replace(order, updated_ms=now, **changes)
        self._check_pending(amended, now)
        _check_relative(amended)
        engine.book.orders[order.order_id] = amended
        engine.book.archive[order.order_id] = amended
        events = [engine.event(REPLACED, order=amended)]
        if engine.market_open(inst.symbol_id):
            price = engine.pending_fill_price(amended)
            if price is not None:
                events += engine.execute(amended, price, server=False)
        return events

    def cancel_order(self, req: Any) -> list[Message]:
        order = self._live_order(req.orderId, "UNABLE_TO_CANCEL_ORDER")
        return self._cancel(order)

    def _live_order(self, order_id: int, protection_code: str) -> Order:
        order = self._engine.book.orders.get(order_id)
        if order is None:
            raise OrderRejected("ORDER_NOT_FOUND", f"Order not found with id {order_id}",
                                order_id=order_id)
        if order.is_protection:
            # The STOP_LOSS_TAKE_PROFIT order belongs to its position: change it with
            # AmendPositionSLTPReq.
            raise OrderRejected(protection_code, "Use AmendPositionSLTPReq to change a "
                                "position's protection", order_id=order_id,
                                position_id=order.position_id or 0)
        return order

    def _require_open(self, inst: Instrument) -> None:
        if not self._engine.market_open(inst.symbol_id):
            # ProtoOAErrorCode has no market-closed value; ProtoErrorCode MARKET_CLOSED (9)
            # names the condition exactly, and errorCode is a string on the wire.
            raise OrderRejected("MARKET_CLOSED", f"Market is closed for {inst.name}")


def _check_volume(inst: Instrument, volume: int) -> None:
    if volume < inst.min_volume or volume > inst.max_volume or volume % inst.step_volume:
        raise OrderRejected("TRADING_BAD_VOLUME", f"Volume {volume} is outside "
                            f"{inst.min_volume}..{inst.max_volume} or not a multiple of "
                            f"{inst.step_volume} for {inst.name}")


def _check_relative(order: Order) -> None:
    for name, value in (("relativeStopLoss", order.relative_stop_loss),
                        ("relativeTakeProfit", order.relative_take_profit)):
        if value is not None and value <= 0:
            raise OrderRejected("TRADING_BAD_STOPS", f"{name} must be positive")
    if (order.relative_stop_loss is not None and order.stop_loss is not None) or (
            order.relative_take_profit is not None and order.take_profit is not None):
        raise OrderRejected("TRADING_BAD_STOPS", "Give either an absolute or a relative level")


def _price(value: float, inst: Instrument, code: str) -> Decimal:
    """A wire double -> the symbol's price grid.

    Binary noise (1.1000100000000001) is tolerated; a price genuinely finer than the
    symbol's digits (1.100005 for EURUSD) is refused, since the doc warns the live server
    may refuse those: clients must round to ``digits`` themselves.
    """
    exact = Decimal(repr(value))
    rounded = exact.quantize(inst.point, rounding=ROUND_HALF_UP)
    if rounded <= 0 or abs(exact - rounded) > inst.point / 1000:
        raise OrderRejected(code, f"Price {value} is not a positive price with "
                            f"{inst.digits} digits for {inst.name}")
    return rounded
