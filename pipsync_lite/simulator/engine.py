"""Execution: fills, positions, protective orders, price triggers, trailing stops, expiry.

Every method returns the execution events it caused, already rendered, in the order the
recorded live server sends them. Fills are always complete (no partial fills). The
balance moves only when volume closes: gross P/L plus the commission of both sides of
the closed volume (the opening deal shows its side's commission, charged at close).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator import render
from pipsync_lite.simulator.account import Account, AccountType
from pipsync_lite.simulator.book import (
    BUY, GTD, LIMIT, STOP, STOP_LIMIT, STOP_LOSS_TAKE_PROFIT, Book, CloseDetail, Deal,
    Order, Position, opposite)
from pipsync_lite.simulator.instruments import Catalogue, Instrument
from pipsync_lite.simulator.money import Pricing

_MODEL = protos.model
ACCEPTED: int = _MODEL.ORDER_ACCEPTED
FILLED: int = _MODEL.ORDER_FILLED
REPLACED: int = _MODEL.ORDER_REPLACED
CANCELLED: int = _MODEL.ORDER_CANCELLED
EXPIRED: int = _MODEL.ORDER_EXPIRED
REJECTED: int = _MODEL.ORDER_REJECTED
_OPPOSITE_TRIGGERS = frozenset({_MODEL.OPPOSITE, _MODEL.DOUBLE_OPPOSITE})


class OrderRejected(Exception):
    """A trading request refused; answered with ProtoOAOrderErrorEvent."""

    def __init__(self, code: str, description: str, order_id: int = 0,
                 position_id: int = 0) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.order_id = order_id
        self.position_id = position_id


class Engine:
    def __init__(self, account: Account, catalogue: Catalogue, pricing: Pricing, book: Book,
                 market_open: Callable[[int], bool], clock_ms: Callable[[], int]) -> None:
        self.account = account
        self.catalogue = catalogue
        self.pricing = pricing
        self.book = book
        self.market_open = market_open
        self.clock_ms = clock_ms

    # ------------------------------------------------------------- renderings

    def instrument(self, symbol_id: int) -> Instrument:
        inst = self.catalogue.by_id(symbol_id)
        assert inst is not None
        return inst

    def position_message(self, pos: Position) -> Message:
        margin = 0
        if pos.status == _MODEL.POSITION_STATUS_OPEN:
            margin = self.pricing.margin_cents(self.instrument(pos.symbol_id), pos.volume,
                                               self.account.leverage)
        return render.position(pos, margin)

    def event(self, execution_type: int, *, order: Order | None = None,
              position: Position | None = None, deal: Deal | None = None,
              server: bool = False, error_code: str | None = None) -> Message:
        return render.execution(
            self.account.account_id, execution_type,
            order_msg=render.order(order) if order is not None else None,
            position_msg=self.position_message(position) if position is not None else None,
            deal_msg=render.deal(deal) if deal is not None else None,
            server=server, error_code=error_code)

    # ------------------------------------------------------------- money

    def unrealized_cents(self, pos: Position) -> tuple[int, int]:
        """(gross, net) P/L of a position at the current closing price; net also pays the
        exit commission."""
        inst = self.instrument(pos.symbol_id)
        close = self.pricing.closing_price(inst, pos.side)
        gross, _ = self.pricing.gross_cents(inst, pos.side, pos.entry, close, pos.volume)
        return gross, gross + pos.commission - self.pricing.commission_cents(inst, pos.volume)

    def free_margin_cents(self) -> int:
        equity = self.account.balance
        used = 0
        for pos in self.book.positions.values():
            equity += self.unrealized_cents(pos)[1]
            used += self.pricing.margin_cents(self.instrument(pos.symbol_id), pos.volume,
                                              self.account.leverage)
        return equity - used

    # ------------------------------------------------------------- fills

    def target_position(self, order: Order) -> Position | None:
        """The position a fill of ``order`` changes, or None when it opens a new one."""
        if order.position_id is not None and (order.closing or order.is_protection
                                              or order.position_id in self.book.positions):
            return self.book.positions.get(order.position_id)
        if self.account.account_type is AccountType.NETTED:
            return self.book.position_for_symbol(order.symbol_id)
        return None

    def execute(self, order: Order, price: Decimal, *, server: bool,
                position_id: int | None = None) -> list[Message]:
        """Fill ``order`` in full at ``price``: ORDER_FILLED, then protection changes."""
        inst = self.instrument(order.symbol_id)
        now = self.clock_ms()
        pos = self.target_position(order)
        close: CloseDetail | None = None
        stops_cleared = False
        if pos is None:
            pos = Position(position_id or self.book.ids.take("position"), order.symbol_id,
                           order.side, order.volume, price, now, now, label=order.label,
                           comment=order.comment, guaranteed=order.guaranteed)
            pos.commission = -self.pricing.commission_cents(inst, order.volume)
            deal_commission = pos.commission
            self.book.positions[pos.position_id] = pos
        elif pos.side == order.side:
            total = pos.volume + order.volume
            pos.entry = (pos.entry * pos.volume + price * order.volume) / total
            pos.volume = total
            deal_commission = -self.pricing.commission_cents(inst, order.volume)
            pos.commission += deal_commission
        else:
            closed = min(order.volume, pos.volume)
            close, deal_commission = self._close_part(inst, pos, closed, price)
            remainder = order.volume - closed
            if remainder:  # netted: the position turns around and keeps its id
                pos.side, pos.volume, pos.entry, pos.opened_ms = order.side, remainder, price, now
                pos.commission = -self.pricing.commission_cents(inst, remainder)
                deal_commission += pos.commission
                pos.status = _MODEL.POSITION_STATUS_OPEN
                stops_cleared = True
        pos.updated_ms = now
        order.status = _MODEL.ORDER_STATUS_FILLED
        order.execution_price = price
        order.executed_volume = order.volume
        order.updated_ms = now
        order.position_id = pos.position_id
        self.book.orders.pop(order.order_id, None)
        deal = Deal(self.book.ids.take("deal"), order.order_id, pos.position_id, order.symbol_id,
                    order.side, order.volume, price, now, deal_commission, close)
        self.book.deals.append(deal)
        if pos.volume == 0:
            self._retire(pos, order)
        events = [self.event(FILLED, order=order, position=pos, deal=deal, server=server)]
        if pos.volume == 0:
            return events
        if stops_cleared:
            events += self.protect(pos, None, None, trailing=False, server=True)
        if order.has_protection_request and not order.closing:
            stop_loss, take_profit = self._levels_for_fill(inst, order, price)
            distance = (Decimal(order.relative_stop_loss) / 100_000
                        if order.relative_stop_loss is not None else None)
            events += self.protect(pos, stop_loss, take_profit, trailing=order.trailing,
                                   server=True, trail_distance=distance)
        elif pos.protection is not None and pos.protection.volume != pos.volume:
            pos.protection.volume = pos.volume
            pos.protection.updated_ms = now
            events.append(self.event(REPLACED, order=pos.protection, position=pos, server=True))
        return events

    def _close_part(self, inst: Instrument, pos: Position, closed: int,
                    price: Decimal) -> tuple[CloseDetail, int]:
        gross, rate = self.pricing.gross_cents(inst, pos.side, pos.entry, price, closed)
        entry_share = pos.commission if closed == pos.volume else int(
            (Decimal(pos.commission) * closed / pos.volume).to_integral_value(ROUND_HALF_UP))
        exit_commission = -self.pricing.commission_cents(inst, closed)
        commission = entry_share + exit_commission
        self.account.credit(gross + commission)
        pos.commission -= entry_share
        pos.volume -= closed
        detail = CloseDetail(pos.entry, gross, 0, commission, self.account.balance, rate, closed,
                             self.account.balance_version)
        return detail, exit_commission

    def _retire(self, pos: Position, filled: Order) -> None:
        pos.status = _MODEL.POSITION_STATUS_CLOSED
        del self.book.positions[pos.position_id]
        protection = pos.protection
        # The protective order dies with its position without an event of its own (the
        # recorded SL/TP hit is a single ORDER_FILLED); Reconcile stops listing it.
        if protection is not None and protection is not filled:
            protection.status = _MODEL.ORDER_STATUS_CANCELLED
            self.book.orders.pop(protection.order_id, None)

    def _levels_for_fill(self, inst: Instrument, order: Order,
                         fill: Decimal) -> tuple[Decimal | None, Decimal | None]:
        """SL/TP for a new fill: relative distances apply from the fill price."""
        sign = 1 if order.side == BUY else -1
        stop_loss, take_profit = order.stop_loss, order.take_profit
        if order.relative_stop_loss is not None:
            stop_loss = _round(fill - sign * Decimal(order.relative_stop_loss) / 100_000, inst)
        if order.relative_take_profit is not None:
            take_profit = _round(fill + sign * Decimal(order.relative_take_profit) / 100_000, inst)
        return stop_loss, take_profit

    # ------------------------------------------------------------- protection

    def protect(self, pos: Position, stop_loss: Decimal | None, take_profit: Decimal | None,
                *, trailing: bool, server: bool,
                trail_distance: Decimal | None = None) -> list[Message]:
        """Set a position's SL/TP and mirror them in its STOP_LOSS_TAKE_PROFIT order.

        A new protection is ORDER_ACCEPTED, a changed one ORDER_REPLACED, a removed one
        ORDER_CANCELLED; each event carries the position.
        """
        now = self.clock_ms()
        pos.stop_loss, pos.take_profit = stop_loss, take_profit
        pos.trailing = trailing and stop_loss is not None
        pos.trail_distance = None
        if pos.trailing and stop_loss is not None:
            close = self.pricing.closing_price(self.instrument(pos.symbol_id), pos.side)
            pos.trail_distance = trail_distance or abs(close - stop_loss)
        pos.updated_ms = now
        protection = pos.protection
        if stop_loss is None and take_profit is None:
            if protection is None:
                return []
            protection.status = _MODEL.ORDER_STATUS_CANCELLED
            protection.updated_ms = now
            self.book.orders.pop(protection.order_id, None)
            pos.protection = None
            return [self.event(CANCELLED, order=protection, position=pos, server=server)]
        kind = REPLACED
        if protection is None:
            kind = ACCEPTED
            protection = Order(self.book.ids.take("order"), pos.symbol_id, opposite(pos.side),
                               pos.volume, STOP_LOSS_TAKE_PROFIT, _MODEL.GOOD_TILL_CANCEL, now,
                               now, closing=True, position_id=pos.position_id, label=pos.label,
                               comment=pos.comment)
            self.book.add_order(protection)
            pos.protection = protection
        protection.stop_price, protection.limit_price = stop_loss, take_profit
        protection.volume = pos.volume
        protection.trailing = pos.trailing
        protection.guaranteed = pos.guaranteed
        protection.stop_trigger_method = pos.stop_loss_trigger_method
        protection.updated_ms = now
        return [self.event(kind, order=protection, position=pos, server=server)]

    # ------------------------------------------------------------- price-driven

    def on_quotes(self, symbol_ids: set[int]) -> list[Message]:
        """Fill crossed pending orders, fire hit SL/TP, trail stops: all server events."""
        events: list[Message] = []
        live = {s for s in symbol_ids if self.market_open(s)}
        for order in sorted(self.book.orders.values(), key=lambda o: o.order_id):
            if order.symbol_id not in live or order.is_protection:
                continue
            if order.closing and order.position_id not in self.book.positions:
                # Its position closed meanwhile: filling it would open a new one instead.
                order.status = _MODEL.ORDER_STATUS_CANCELLED
                order.updated_ms = self.clock_ms()
                del self.book.orders[order.order_id]
                events.append(self.event(CANCELLED, order=order, server=True))
                continue
            price = self.pending_fill_price(order)
            if price is not None:
                events += self.execute(order, price, server=True)
        for pos in sorted(self.book.positions.values(), key=lambda p: p.position_id):
            if pos.symbol_id not in live or pos.position_id not in self.book.positions:
                continue  # (a fill above may have closed it)
            close = self.pricing.closing_price(self.instrument(pos.symbol_id), pos.side)
            if pos.protection is not None and self._protection_hit(pos, close):
                events += self.execute(pos.protection, close, server=True)
            elif pos.trailing:
                events += self._trail(pos, close)
        return events

    def pending_fill_price(self, order: Order) -> Decimal | None:
        """The price a pending order fills at now, or None if the market has not reached it."""
        inst = self.instrument(order.symbol_id)
        bid, ask = self.pricing.bid_ask(inst)
        buy = order.side == BUY
        trade = ask if buy else bid
        if order.order_type == LIMIT:
            assert order.limit_price is not None
            return trade if (trade <= order.limit_price if buy else trade >= order.limit_price) \
                else None
        assert order.stop_price is not None
        trigger = self._trigger_price(order.side, order.stop_trigger_method, bid, ask)
        reached = trigger >= order.stop_price if buy else trigger <= order.stop_price
        if order.order_type == STOP:
            return trade if reached else None
        if order.order_type == STOP_LIMIT:
            order.triggered = order.triggered or reached
            if not order.triggered:
                return None
            # Once triggered it waits as a limit at stop ± slippage.
            slip = inst.point * (order.slippage_in_points or 0)
            bound = order.stop_price + slip if buy else order.stop_price - slip
            return trade if (trade <= bound if buy else trade >= bound) else None
        return None

    @staticmethod
    def _trigger_price(side: int, method: int, bid: Decimal, ask: Decimal) -> Decimal:
        # TRADE: the side the order trades on; OPPOSITE: the other one. The DOUBLE_*
        # variants (two consecutive ticks) are treated as their single-tick forms.
        trade_side_ask = side == BUY
        if method in _OPPOSITE_TRIGGERS:
            trade_side_ask = not trade_side_ask
        return ask if trade_side_ask else bid

    def _protection_hit(self, pos: Position, close: Decimal) -> bool:
        buy = pos.side == BUY
        if pos.take_profit is not None and (close >= pos.take_profit if buy
                                            else close <= pos.take_profit):
            return True
        if pos.stop_loss is None:
            return False
        bid, ask = self.pricing.bid_ask(self.instrument(pos.symbol_id))
        trigger = self._trigger_price(opposite(pos.side), pos.stop_loss_trigger_method, bid, ask)
        return trigger <= pos.stop_loss if buy else trigger >= pos.stop_loss

    def _trail(self, pos: Position, close: Decimal) -> list[Message]:
        assert pos.trail_distance is not None and pos.stop_loss is not None
        inst = self.instrument(pos.symbol_id)
        candidate = _round(close - pos.trail_distance if pos.side == BUY
                           else close + pos.trail_distance, inst)
        better = candidate > pos.stop_loss if pos.side == BUY else candidate < pos.stop_loss
        if not better or pos.protection is None:
            return []
        now = self.clock_ms()
        pos.stop_loss = pos.protection.stop_price = candidate
        pos.updated_ms = pos.protection.updated_ms = now
        return [protos.messages.ProtoOATrailingSLChangedEvent(
            ctidTraderAccountId=self.account.account_id, positionId=pos.position_id,
            orderId=pos.protection.order_id, stopPrice=float(candidate),
            utcLastUpdateTimestamp=now)]

    # ------------------------------------------------------------- time-driven

    def next_expiry_ms(self) -> int | None:
        times = [o.expiration_ms for o in self.book.orders.values()
                 if o.time_in_force == GTD and o.expiration_ms is not None]
        return min(times) if times else None

    def expire_due(self, now_ms: int) -> list[Message]:
        events = []
        for order in sorted(self.book.orders.values(), key=lambda o: o.order_id):
            if (order.time_in_force == GTD and order.expiration_ms is not None
                    and order.expiration_ms <= now_ms):
                order.status = _MODEL.ORDER_STATUS_EXPIRED
                order.updated_ms = now_ms
                del self.book.orders[order.order_id]
                events.append(self.event(EXPIRED, order=order, server=True))
        return events


def _round(price: Decimal, inst: Instrument) -> Decimal:
    return price.quantize(inst.point, rounding=ROUND_HALF_UP)

