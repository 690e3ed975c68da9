"""Carrying out a plan at the broker, and recording every order and its answer.

Steps run one after another, each awaited to its answer (a close to its fill): an entry
after ``closes_first`` is only sent once every close has filled, so a reverse never races
its own close. Exits and amends keep going past a failed step (one stuck position must not
leave the others open) and raise the failures at the end; an entry whose closes failed is
not sent at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog

from pipsync_lite.ctrader.model import Broker, OrderResult, OrderType
from pipsync_lite.errors import BrokerError, BrokerRejected, BrokerTimeout
from pipsync_lite.events import EventBus
from pipsync_lite.logs import Redactor
from pipsync_lite.planner import expected_level
from pipsync_lite.plans import Cancel, Close, ClosePlan, EntryPlan, OrderAmend, Plan, PositionAmend
from pipsync_lite.store import Store

log = structlog.get_logger("pipsync_lite.executor")


class Executor:
    """Runs one plan. Raises the broker's error for the signal's status; records everything."""

    def __init__(self, store: Store, broker: Broker, events: EventBus, redactor: Redactor) -> None:
        self._store = store
        self._broker = broker
        self._events = events
        self._redactor = redactor

    def _failed(self, signal_id: int, purpose: str, order: dict[str, Any], err: BrokerError) -> None:
        self._events.emit(
            "order.failed",
            signal_id=signal_id,
            purpose=purpose,
            symbol=order.get("symbol"),
            side=order.get("side"),
            volume=order.get("volume"),
            outcome=_error_status(err),
            **_error_fields(err),
        )

    async def run(self, signal_id: int, plan: Plan) -> None:
        if isinstance(plan, EntryPlan):
            if plan.closes_first:
                await self._steps([partial(self._close, signal_id, c) for c in plan.closes_first])
                log.info("closed_before_entry", positions=[c.position.position_id for c in plan.closes_first])
            await self._open(signal_id, plan)
        elif isinstance(plan, ClosePlan):
            await self._steps(
                [
                    *(partial(self._cancel, signal_id, c) for c in plan.cancels),
                    *(partial(self._close, signal_id, c) for c in plan.closes),
                ]
            )
        else:
            await self._steps(
                [
                    *(partial(self._amend_position, signal_id, a) for a in plan.positions),
                    *(partial(self._amend_order, signal_id, a) for a in plan.orders),
                ]
            )

    @staticmethod
    async def _steps(steps: list[Callable[[], Awaitable[BrokerError | None]]]) -> None:
        """Run every step in order, each to its answer; raise what failed once all have run."""
        failures = [err for step in steps if (err := await step()) is not None]
        if failures:
            raise failures[0] if len(failures) == 1 else _combined(failures)

    def label(self, signal_id: int) -> str:
        """Ties a broker order to its signal (label and clientOrderId): ``psl-<db>-<signal>``."""
        return f"psl-{self._store.instance_id}-{signal_id}"

    async def _open(self, signal_id: int, plan: EntryPlan) -> None:
        label = self.label(signal_id)
        request = dataclasses.replace(
            plan.request, label=label, client_order_id=label, comment=self._redactor.text(plan.request.comment)
        )
        order = {
            "client_order_id": label,
            "symbol": plan.symbol.name,
            "side": request.side.value,
            "order_type": request.order_type.value,
            "volume": request.volume,
            "price": request.limit_price or request.stop_price,
            "stop_loss": request.stop_loss or plan.target_stop_loss,
            "take_profit": request.take_profit or plan.target_take_profit,
        }
        try:
            result = await self._broker.place_order(request)
        except BrokerError as err:
            await self._store.insert_order(signal_id, "entry", _error_status(err), **order, **_error_fields(err))
            self._failed(signal_id, "entry", order, err)
            raise
        await self._store.insert_order(
            signal_id,
            "entry",
            result.status,
            **order,
            broker_order_id=result.order_id,
            position_id=result.position_id,
            execution_price=result.execution_price,
        )
        if result.status == "filled":
            await self._enforce_levels(signal_id, plan, result)

    async def _enforce_levels(self, signal_id: int, plan: EntryPlan, result: OrderResult) -> None:
        """Amend the position to the alert's exact SL/TP when the fill moved the relative ones."""
        if plan.target_stop_loss is None and plan.target_take_profit is None:
            return
        if result.execution_price is None or result.position_id is None:
            return
        req, digits = plan.request, plan.symbol.digits
        sl_now = expected_level(result.execution_price, req.relative_stop_loss, req.side, stop=True, digits=digits)
        tp_now = expected_level(result.execution_price, req.relative_take_profit, req.side, stop=False, digits=digits)
        sl = plan.target_stop_loss or sl_now
        tp = plan.target_take_profit or tp_now
        if (sl, tp) == (sl_now, tp_now):
            return
        fields: dict[str, Any] = {"symbol": plan.symbol.name, "position_id": result.position_id, "stop_loss": sl, "take_profit": tp}
        try:
            position = await self._broker.amend_position_sltp(result.position_id, sl, tp, req.trailing_stop_loss)
        except BrokerError as err:
            # The position keeps the broker's relative levels: still protected, a little off.
            await self._store.insert_order(signal_id, "amend", _error_status(err), **fields, **_error_fields(err))
            log.warning("sl_tp_amend_failed", position_id=result.position_id, error=str(err))
            return
        await self._store.insert_order(signal_id, "amend", "done", **fields)
        log.info("sl_tp_amended", position_id=position.position_id, stop_loss=position.stop_loss, take_profit=position.take_profit)

    async def _close(self, signal_id: int, close: Close) -> BrokerError | None:
        position = close.position
        fields: dict[str, Any] = {
            "symbol": close.symbol.name,
            "side": position.side.opposite.value,
            "order_type": "market",
            "volume": close.volume,
            "position_id": position.position_id,
        }
        try:
            deal = await self._broker.close_position(position.position_id, close.volume)
        except BrokerError as err:
            return await self._step_failed(signal_id, "close", fields, err)
        await self._store.insert_order(
            signal_id, "close", "filled", **fields, broker_order_id=deal.order_id, execution_price=deal.execution_price
        )
        log.info("position_closed", position_id=position.position_id, price=deal.execution_price, volume=close.volume)
        return None

    async def _cancel(self, signal_id: int, cancel: Cancel) -> BrokerError | None:
        order = cancel.order
        fields: dict[str, Any] = {
            "symbol": cancel.symbol.name,
            "side": order.side.value,
            "order_type": order.order_type.value,
            "volume": order.volume,
            "price": order.limit_price if order.order_type is OrderType.LIMIT else order.stop_price,
            "broker_order_id": order.order_id,
        }
        try:
            await self._broker.cancel_order(order.order_id)
        except BrokerError as err:
            return await self._step_failed(signal_id, "cancel", fields, err)
        await self._store.insert_order(signal_id, "cancel", "cancelled", **fields)
        log.info("pending_order_cancelled", order_id=order.order_id, symbol=cancel.symbol.name)
        return None

    async def _amend_position(self, signal_id: int, amend: PositionAmend) -> BrokerError | None:
        position_id = amend.position.position_id
        fields: dict[str, Any] = {
            "symbol": amend.symbol.name,
            "position_id": position_id,
            "stop_loss": amend.stop_loss,
            "take_profit": amend.take_profit,
        }
        try:
            await self._broker.amend_position_sltp(position_id, amend.stop_loss, amend.take_profit, amend.trailing)
        except BrokerError as err:
            return await self._step_failed(signal_id, "amend", fields, err)
        await self._store.insert_order(signal_id, "amend", "done", **fields)
        log.info("position_protection_set", position_id=position_id, stop_loss=amend.stop_loss,
                 take_profit=amend.take_profit, trailing=amend.trailing)
        return None

    async def _amend_order(self, signal_id: int, amend: OrderAmend) -> BrokerError | None:
        order = amend.order
        price = amend.limit_price if order.order_type is OrderType.LIMIT else amend.stop_price
        fields: dict[str, Any] = {
            "symbol": amend.symbol.name,
            "side": order.side.value,
            "order_type": order.order_type.value,
            "volume": order.volume,
            "price": price,
            "stop_loss": amend.stop_loss,
            "take_profit": amend.take_profit,
            "broker_order_id": order.order_id,
        }
        try:
            await self._broker.amend_order(
                order.order_id,
                limit_price=amend.limit_price,
                stop_price=amend.stop_price,
                stop_loss=amend.stop_loss,
                take_profit=amend.take_profit,
                trailing_stop_loss=amend.trailing,
            )
        except BrokerError as err:
            return await self._step_failed(signal_id, "amend", fields, err)
        await self._store.insert_order(signal_id, "amend", "done", **fields)
        log.info("pending_order_amended", order_id=order.order_id, price=price, stop_loss=amend.stop_loss,
                 take_profit=amend.take_profit)
        return None

    async def _step_failed(self, signal_id: int, purpose: str, fields: dict[str, Any], err: BrokerError) -> BrokerError:
        await self._store.insert_order(signal_id, purpose, _error_status(err), **fields, **_error_fields(err))
        self._failed(signal_id, purpose, fields, err)
        log.warning("broker_step_failed", purpose=purpose, error=str(err),
                    position_id=fields.get("position_id"), order_id=fields.get("broker_order_id"))
        return err


def _error_status(err: BrokerError) -> str:
    return "unknown" if isinstance(err, BrokerTimeout) else "rejected" if isinstance(err, BrokerRejected) else "failed"


def _error_fields(err: BrokerError) -> dict[str, Any]:
    if isinstance(err, BrokerRejected):
        return {"error_code": err.code, "error_text": err.description}
    return {"error_code": type(err).__name__, "error_text": str(err)}


def _combined(failures: list[BrokerError]) -> BrokerError:
    if any(isinstance(f, BrokerTimeout) for f in failures):
        return BrokerTimeout("; ".join(str(f) for f in failures))
    return BrokerRejected(failures[0].code if isinstance(failures[0], BrokerRejected) else "failed", "; ".join(str(f) for f in failures))

