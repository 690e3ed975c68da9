"""``CTraderClient``: the engine's broker (``model.Broker``) on one cTrader account.

The session (:mod:`session`) keeps the connection authorized and the state current; this module
turns requests into results:

- ``place_order``: MARKET / MARKET_RANGE orders return once ORDER_FILLED arrives for the order
  (learned from ORDER_ACCEPTED, which echoes our clientMsgId). When relative SL/TP were asked
  for, the answer waits up to ``protection_grace`` seconds more for the server's protective
  STOP_LOSS_TAKE_PROFIT order so the returned position carries its levels. Pending orders
  return at ORDER_ACCEPTED. ORDER_REJECTED, a cancellation without any fill, ProtoOAErrorRes
  and ProtoOAOrderErrorEvent raise ``BrokerRejected`` with the server's code.
- **Partial fills**: ORDER_PARTIAL_FILL deals are summed. ORDER_FILLED ends the wait as usual;
  if the rest of the order is cancelled or expires after a partial fill, the result is still
  ``status="filled"`` with ``filled_volume`` below the requested volume, and ``deal`` the last
  fill: the engine compares ``filled_volume`` with what it asked for.
- No answer within ``request_timeout`` of the frame leaving the pacer → ``BrokerTimeout``
  (outcome unknown, never resent); not ready, or the link dropped while the frame still waited
  for the rate limit → ``BrokerUnavailable``. Time spent in the pacer's queue is not counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Final, ParamSpec, TypeVar

import structlog
from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.ctrader import translate, units
from pipsync_lite.ctrader.connection import Connection, Exchange
from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountSnapshot,
    AccountType,
    Deal,
    Execution,
    ExecutionKind,
    OrderDetails,
    OrderRequest,
    OrderResult,
    PendingOrder,
    Position,
    Quote,
    SymbolInfo,
    UnrealizedPnL,
)
from pipsync_lite.ctrader.session import TOKEN_ERRORS, Session, Subscriber, raise_if_error
from pipsync_lite.ctrader.settings import ClientSettings, TokenCallback
from pipsync_lite.errors import BrokerAuthError, BrokerError, BrokerRejected, BrokerUnavailable

log = structlog.get_logger(__name__)
P = protos.messages

P_ = ParamSpec("P_")
T = TypeVar("T")
WEEK_MS: Final = 7 * 24 * 3600 * 1000  # the widest DealListReq window the API accepts


def _token_refusal_is_unavailable(method: Callable[P_, Awaitable[T]]) -> Callable[P_, Awaitable[T]]:
    """A request refused because the access token died mid-session was not executed, and the
    session refreshes and re-authorizes by itself: that is ``BrokerUnavailable`` (retry later),
    not the user-must-act ``BrokerAuthError``."""

    @functools.wraps(method)
    async def wrapper(*args: P_.args, **kwargs: P_.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except BrokerAuthError as exc:
            if exc.code not in TOKEN_ERRORS:
                raise
            raise BrokerUnavailable(
                f"the server refused the access token ({exc.code}); not executed, re-authorizing"
            ) from exc

    return wrapper


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``amend_order`` default: leave this field as it is.
KEEP: Final = _Keep()


class CTraderClient:
    """A cTrader Open API session for one account, implementing ``model.Broker``."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        on_tokens: TokenCallback | None = None,
        rng: random.Random | None = None,
        protection_grace: float = 1.0,
    ) -> None:
        self.settings = settings
        self._session = Session(settings, on_tokens=on_tokens, rng=rng)
        self._state = self._session.state
        self._protection_grace = protection_grace

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect in the background; reconnects until ``stop()``."""
        await self._session.start()

    async def stop(self) -> None:
        """Close the connection cleanly; requests in flight fail."""
        await self._session.stop()

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until ready (authorized, symbols and trader loaded, reconciled); False on timeout."""
        return await self._session.wait_ready(timeout)

    @property
    def ready(self) -> bool:
        return self._session.ready

    @property
    def last_error(self) -> str | None:
        """Why the session is not ready (for /readyz), None once ready."""
        return self._session.last_error

    @property
    def token_expires_at(self) -> float | None:
        """Epoch seconds when the access token expires, when known."""
        return self._session.token_expires_at

    async def refresh_tokens(self) -> None:
        """Refresh the token pair now (``on_tokens`` is awaited before the new one is used)."""
        await self._session.refresh_and_reauthorize()

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every ``Execution`` and ``ConnectionChange``; returns an unsubscribe."""
        return self._session.subscribe(callback)

    async def subscribe_quotes(self, symbol_ids: list[int] | set[int]) -> None:
        """Keep spot quotes of these symbols (besides those with positions/orders), across
        reconnects. When ready, returns once the server confirmed the subscription (its first
        SpotEvent follows at once)."""
        await self._session.want_spots(symbol_ids)

    # --- state ----------------------------------------------------------------------------

    @property
    def account(self) -> AccountInfo | None:
        return self._state.account

    @property
    def account_type(self) -> AccountType | None:
        return self._state.account.account_type if self._state.account is not None else None

    def symbol(self, name: str) -> SymbolInfo | None:
        return self._state.symbol(name)

    def symbol_by_id(self, symbol_id: int) -> SymbolInfo | None:
        return self._state.symbols.get(symbol_id)

    def symbol_names(self) -> list[str]:
        return sorted(s.name for s in self._state.symbols.values())

    def quote(self, symbol_id: int) -> Quote | None:
        return self._state.quotes.get(symbol_id)

    def positions(self) -> list[Position]:
        return list(self._state.positions.values())

    def orders(self) -> list[PendingOrder]:
        return list(self._state.orders.values())

    def snapshot(self) -> AccountSnapshot:
        return self._state.snapshot()

    # --- trading --------------------------------------------------------------------------

    @_token_refusal_is_unavailable
    async def place_order(self, request: OrderRequest) -> OrderResult:
        """Send a new order at once; see the module docstring for when it returns."""
        conn = self._session.trading_connection()
        symbol = self._require_symbol(request.symbol_id)
        translate.check_order_request(request, symbol)
        message = translate.new_order_request(request, self.settings.account_id, symbol)
        exchange = conn.request(message)
        log.info("order_sent", msg_id=exchange.msg_id, symbol=symbol.name, side=request.side.value,
                 volume=request.volume, order_type=request.order_type.value,
                 client_order_id=request.client_order_id, label=request.label)
        try:
            return await self._await_order(conn, exchange, request)
        except BrokerRejected as exc:
            log.warning("order_rejected", msg_id=exchange.msg_id, code=exc.code, description=exc.description)
            raise
        except BrokerError as exc:
            log.warning("order_outcome_unknown", msg_id=exchange.msg_id, error=type(exc).__name__,
                        order_id=next(iter(exchange.order_ids), None))  # when it was accepted
            raise
        finally:
            conn.forget(exchange)

    async def _await_order(self, conn: Connection, exchange: Exchange, request: OrderRequest) -> OrderResult:
        order_id: int | None = None
        partial: list[Deal] = []
        while True:
            routed = await exchange.next()
            raise_if_error(routed)
            ex, event = routed.execution, routed.message
            if ex is None or ex.order_id is None or ex.is_protective:
                continue
            if order_id is None:
                order_id = ex.order_id
                exchange.order_ids.add(order_id)
            if ex.order_id != order_id:
                continue
            if ex.kind is ExecutionKind.REJECTED:
                raise BrokerRejected(ex.error_code or "ORDER_REJECTED", "the order was rejected")
            if ex.kind is ExecutionKind.ACCEPTED:
                if request.order_type.is_pending:
                    log.info("order_accepted", order_id=order_id, msg_id=exchange.msg_id)
                    pending = self._state.orders.get(order_id) or translate.pending_order(
                        event.order, self._state.digits_of
                    )
                    return OrderResult(order_id=order_id, status="accepted", order=pending)
                # A market order's fill follows within ms and its line carries the same ids (and
                # order_outcome_unknown the order id): one info line per order less, ~25 µs.
                log.debug("order_accepted", order_id=order_id, msg_id=exchange.msg_id)
            elif ex.kind is ExecutionKind.PARTIAL_FILL and ex.deal is not None:
                partial.append(ex.deal)
                log.info("order_partially_filled", order_id=order_id, volume=ex.deal.filled_volume)
            elif ex.kind is ExecutionKind.FILLED and ex.deal is not None:
                deals = [*partial, ex.deal]
                result = self._fill_result(order_id, event, deals)
                if _wants_protection(request, result.position):
                    result = await self._await_protection(exchange, result)
                log.info("order_filled", order_id=order_id, msg_id=exchange.msg_id, position_id=result.position_id,
                         price=str(result.execution_price), volume=result.filled_volume)
                return result
            elif ex.kind in (ExecutionKind.CANCELLED, ExecutionKind.EXPIRED):
                if partial:
                    result = self._fill_result(order_id, event, partial)
                    log.info("order_partially_filled_rest_cancelled", order_id=order_id,
                             filled=result.filled_volume, requested=request.volume)
                    return result
                raise BrokerRejected(f"ORDER_{ex.kind.value.upper()}", "the order ended without a fill")

    def _fill_result(self, order_id: int, event: Message, deals: list[Deal]) -> OrderResult:
        last = deals[-1]
        order = event.order
        digits = self._state.digits_of(last.symbol_id)
        price = (
            units.price_from_wire(order.executionPrice, digits)
            if order.HasField("executionPrice")
            else last.execution_price
        )
        position = self._state.positions.get(last.position_id)
        return OrderResult(
            order_id=order_id,
            status="filled",
            position_id=last.position_id,
            execution_price=price,
            filled_volume=sum(d.filled_volume for d in deals),
            position=position,
            deal=last,
        )

    async def _await_protection(self, exchange: Exchange, result: OrderResult) -> OrderResult:
        """Give the server's protective order a moment to put SL/TP on the new position."""
        assert result.position_id is not None and exchange.deadline is not None
        exchange.position_ids.add(result.position_id)
        loop = asyncio.get_running_loop()
        grace = min(exchange.deadline, loop.time() + self._protection_grace)
        while True:
            try:
                routed = await exchange.next(grace)
            except BrokerError:
                break  # the fill is certain; the levels show up through events later
            ex = routed.execution
            if ex is not None and ex.position is not None and ex.position.position_id == result.position_id:
                if ex.position.stop_loss is not None or ex.position.take_profit is not None:
                    break
        position = self._state.positions.get(result.position_id, result.position)
        return dataclasses.replace(result, position=position)

    @_token_refusal_is_unavailable
    async def close_position(self, position_id: int, volume: int) -> Deal:
        """Close ``volume`` of a position; returns the closing deal (with its close detail)."""
        conn = self._session.trading_connection()
        message = P.ProtoOAClosePositionReq(ctidTraderAccountId=self.settings.account_id,
                                            positionId=position_id, volume=volume)
        exchange = conn.request(message)
        exchange.position_ids.add(position_id)
        log.info("close_sent", msg_id=exchange.msg_id, position_id=position_id, volume=volume)
        order_id: int | None = None
        partial: list[Deal] = []
        try:
            while True:
                routed = await exchange.next()
                raise_if_error(routed)
                ex = routed.execution
                if ex is None or ex.order_id is None or ex.is_protective or not ex.closing_order:
                    continue
                if order_id is None:
                    order_id = ex.order_id
                    exchange.order_ids.add(order_id)
                if ex.order_id != order_id:
                    continue
                if ex.kind is ExecutionKind.REJECTED:
                    raise BrokerRejected(ex.error_code or "ORDER_REJECTED", "the close was rejected")
                if ex.kind is ExecutionKind.PARTIAL_FILL and ex.deal is not None:
                    partial.append(ex.deal)
                elif ex.kind is ExecutionKind.FILLED and ex.deal is not None:
                    log.info("position_closed", position_id=position_id, deal_id=ex.deal.deal_id,
                             volume=ex.deal.filled_volume, price=str(ex.deal.execution_price))
                    return ex.deal
                elif ex.kind in (ExecutionKind.CANCELLED, ExecutionKind.EXPIRED):
                    if partial:
                        return partial[-1]
                    raise BrokerRejected(f"ORDER_{ex.kind.value.upper()}", "the close ended without a fill")
        finally:
            conn.forget(exchange)

    @_token_refusal_is_unavailable
    async def amend_position_sltp(
        self,
        position_id: int,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        trailing_stop_loss: bool = False,
    ) -> Position:
        """Set both protection levels of a position; a level given as None is REMOVED.

        cTrader drops any level an amend omits, so callers pass the level they keep too.
        """
        conn = self._session.trading_connection()
        current = self._state.positions.get(position_id)
        digits = self._state.digits_of(current.symbol_id) if current is not None else translate.DEFAULT_DIGITS
        message = P.ProtoOAAmendPositionSLTPReq(ctidTraderAccountId=self.settings.account_id,
                                                positionId=position_id, trailingStopLoss=trailing_stop_loss)
        if stop_loss is not None:
            message.stopLoss = units.price_to_wire(stop_loss, digits)
        if take_profit is not None:
            message.takeProfit = units.price_to_wire(take_profit, digits)
        exchange = conn.request(message)
        exchange.position_ids.add(position_id)
        log.info("amend_sltp_sent", msg_id=exchange.msg_id, position_id=position_id,
                 stop_loss=_str(stop_loss), take_profit=_str(take_profit), trailing=trailing_stop_loss)
        try:
            while True:
                routed = await exchange.next()
                raise_if_error(routed)
                ex = routed.execution
                if ex is None or ex.position_id != position_id or ex.is_server_event:
                    continue  # a server event (trailing, SL/TP fill) is not our answer
                if ex.kind in (ExecutionKind.REJECTED, ExecutionKind.CANCEL_REJECTED):
                    raise BrokerRejected(ex.error_code or "ORDER_REJECTED", "the amend was rejected")
                position = self._state.positions.get(position_id) or ex.position
                if position is None:
                    raise BrokerRejected("POSITION_NOT_OPEN", f"position {position_id} is not open")
                log.info("position_amended", position_id=position_id, stop_loss=_str(position.stop_loss),
                         take_profit=_str(position.take_profit))
                return position
        finally:
            conn.forget(exchange)

    @_token_refusal_is_unavailable
    async def cancel_order(self, order_id: int) -> None:
        """Cancel a pending order; returns once ORDER_CANCELLED arrives."""
        conn = self._session.trading_connection()
        exchange = conn.request(P.ProtoOACancelOrderReq(ctidTraderAccountId=self.settings.account_id,
                                                        orderId=order_id))
        exchange.order_ids.add(order_id)
        log.info("cancel_sent", msg_id=exchange.msg_id, order_id=order_id)
        try:
            while True:
                ex, _ = await self._next_execution_of(exchange, order_id)
                if ex.kind is ExecutionKind.CANCEL_REJECTED:
                    raise BrokerRejected(ex.error_code or "ORDER_CANCEL_REJECTED", "the cancel was rejected")
                if ex.kind in (ExecutionKind.CANCELLED, ExecutionKind.EXPIRED):
                    log.info("order_cancelled", order_id=order_id)
                    return
                if ex.kind is ExecutionKind.FILLED:
                    raise BrokerRejected("ORDER_FILLED", f"order {order_id} filled before the cancel")
        finally:
            conn.forget(exchange)

    @_token_refusal_is_unavailable
    async def amend_order(
        self,
        order_id: int,
        *,
        volume: int | _Keep = KEEP,
        limit_price: Decimal | _Keep = KEEP,
        stop_price: Decimal | _Keep = KEEP,
        stop_loss: Decimal | None | _Keep = KEEP,
        take_profit: Decimal | None | _Keep = KEEP,
        expiration_ms: int | None | _Keep = KEEP,
        trailing_stop_loss: bool | _Keep = KEEP,
    ) -> PendingOrder:
        """Change a pending order. Fields left as ``KEEP`` are resent with their current value
        (so an omitted SL/TP is never dropped); ``None`` removes a level or the expiry."""
        conn = self._session.trading_connection()
        current = self._state.orders.get(order_id)
        if current is None:
            raise BrokerRejected("ORDER_NOT_FOUND", f"no pending order {order_id} is known")
        digits = self._state.digits_of(current.symbol_id)

        def pick(value: object, now: object) -> object:
            return now if isinstance(value, _Keep) else value

        message = P.ProtoOAAmendOrderReq(ctidTraderAccountId=self.settings.account_id, orderId=order_id,
                                         volume=pick(volume, current.volume))
        prices = {
            "limitPrice": pick(limit_price, current.limit_price),
            "stopPrice": pick(stop_price, current.stop_price),
            "stopLoss": pick(stop_loss, current.stop_loss),
            "takeProfit": pick(take_profit, current.take_profit),
        }
        for name, value in prices.items():
            if value is not None:
                setattr(message, name, units.price_to_wire(value, digits))  # type: ignore[arg-type]
        expiry = pick(expiration_ms, current.expiration_ms)
        if expiry is not None:
            message.expirationTimestamp = expiry
        # Resent like the levels: a flag left out would be switched off.
        message.trailingStopLoss = bool(pick(trailing_stop_loss, current.trailing_stop_loss))
        exchange = conn.request(message)
        exchange.order_ids.add(order_id)
        log.info("amend_order_sent", msg_id=exchange.msg_id, order_id=order_id)
        try:
            while True:
                ex, event = await self._next_execution_of(exchange, order_id)
                if ex.kind is ExecutionKind.REJECTED:
                    raise BrokerRejected(ex.error_code or "ORDER_REJECTED", "the amend was rejected")
                if ex.kind is ExecutionKind.REPLACED:
                    order = self._state.orders.get(order_id) or translate.pending_order(
                        event.order, self._state.digits_of
                    )
                    log.info("order_amended", order_id=order_id)
                    return order
        finally:
            conn.forget(exchange)

    @_token_refusal_is_unavailable
    async def reconcile(self) -> AccountSnapshot:
        """Rebuild positions and pending orders from the server; returns the new snapshot."""
        await self._session.reconcile(self._session.trading_connection())
        return self._state.snapshot()

    @_token_refusal_is_unavailable
    async def deal_list(self, from_ms: int, to_ms: int, max_rows: int = 1000) -> list[Deal]:
        """Every deal executed in [from_ms, to_ms], oldest first.

        The API serves at most one week per request and ``maxRows`` deals per answer, with
        ``hasMore`` when more match, but no cursor, and which deals a truncated answer holds
        (oldest or newest) is not documented. So a truncated window is split in two (at the
        median time of the deals it returned) and each part is asked again, deals deduplicated
        by id: complete whatever the server's order. A single millisecond holding more than a page is asked again with twice the
        rows (up to 64×, then left with a warning). Historical requests are paced at 5/s.
        """
        conn = self._session.trading_connection()
        seen: dict[int, Deal] = {}
        windows = [(start, min(to_ms, start + WEEK_MS - 1), max_rows)
                   for start in range(from_ms, to_ms + 1, WEEK_MS)]
        windows.reverse()
        while windows:
            low, high, rows = windows.pop()
            res = await self._session.call(
                conn,
                P.ProtoOADealListReq(ctidTraderAccountId=self.settings.account_id,
                                     fromTimestamp=low, toTimestamp=high, maxRows=rows),
                P.ProtoOADealListRes,
            )
            page = [translate.deal(x, self._state.digits_of) for x in res.deal]
            seen.update((d.deal_id, d) for d in page)
            if not res.hasMore:
                continue
            if low < high:
                # split where the answer's deals are (their median time), else in the middle
                times = sorted(d.execution_timestamp_ms for d in page if low <= d.execution_timestamp_ms <= high)
                split = times[len(times) // 2] if times else (low + high) // 2
                split = min(split, high - 1)
                windows += [(split + 1, high, max_rows), (low, split, max_rows)]  # low part next
            elif rows < 64 * max_rows:
                windows.append((low, high, rows * 2))
            else:
                log.warning("deal_list_millisecond_truncated", timestamp_ms=low, rows=rows)
        return sorted(seen.values(), key=lambda d: (d.execution_timestamp_ms, d.deal_id))

    @_token_refusal_is_unavailable
    async def order_details(self, order_id: int) -> OrderDetails:
        """Any order of the account, past ones too, with its deals (label, clientOrderId, type)."""
        conn = self._session.trading_connection()
        res = await self._session.call(
            conn,
            P.ProtoOAOrderDetailsReq(ctidTraderAccountId=self.settings.account_id, orderId=order_id),
            P.ProtoOAOrderDetailsRes,
        )
        return translate.order_details(res, self._state.digits_of)

    @_token_refusal_is_unavailable
    async def unrealized_pnl(self) -> list[UnrealizedPnL]:
        """Floating P/L of every open position, in the deposit currency."""
        conn = self._session.trading_connection()
        res = await self._session.call(
            conn,
            P.ProtoOAGetPositionUnrealizedPnLReq(ctidTraderAccountId=self.settings.account_id),
            P.ProtoOAGetPositionUnrealizedPnLRes,
        )
        return translate.unrealized_pnl(res)

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    async def _next_execution_of(exchange: Exchange, order_id: int) -> tuple[Execution, Message]:
        """The next execution event of ``order_id`` routed to ``exchange`` (translated, and as
        received); an error reply raises ``BrokerRejected``."""
        while True:
            routed = await exchange.next()
            raise_if_error(routed)
            ex = routed.execution
            if ex is not None and ex.order_id == order_id:
                return ex, routed.message

    def _require_symbol(self, symbol_id: int) -> SymbolInfo:
        symbol = self._state.symbols.get(symbol_id)
        if symbol is None:
            raise BrokerRejected("SYMBOL_NOT_FOUND", f"symbol id {symbol_id} is not known")
        return symbol


def _wants_protection(request: OrderRequest, position: Position | None) -> bool:
    if position is None:
        return False
    missing_sl = request.relative_stop_loss is not None and position.stop_loss is None
    missing_tp = request.relative_take_profit is not None and position.take_profit is None
    return missing_sl or missing_tp


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


__all__ = ["KEEP", "CTraderClient", "ClientSettings", "TokenCallback"]
