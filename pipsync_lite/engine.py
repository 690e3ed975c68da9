"""Signal → store → guard → broker → store: the alert-to-order path, read top to bottom.

``receive`` decides (parse, dedupe, resolve, plan, guard), stores the signal with its
decision in ONE durable insert, starts the execution and returns, so the webhook answers
202 before the broker does (TradingView abandons a request after 3 s). ``_execute`` then
talks to the broker and records every order and its answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from pipsync_lite.config import Config
from pipsync_lite.ctrader.model import Broker, OrderResult, Quote, SymbolInfo
from pipsync_lite.errors import BrokerError, BrokerRejected, BrokerTimeout, SignalError
from pipsync_lite.logs import Redactor
from pipsync_lite.planner import (
    ClosePlan,
    EntryPlan,
    Plan,
    PlanRejected,
    expected_level,
    plan_close,
    plan_entry,
)
from pipsync_lite.risk import Proposal, entry_lots, evaluate
from pipsync_lite.signal_model import Action, Signal
from pipsync_lite.signals import parse_signal
from pipsync_lite.store import SignalRecord, Store
from pipsync_lite.symbols import UnknownSymbol, resolve

log = structlog.get_logger("pipsync_lite.engine")

_CLOSE_ACTIONS = (Action.CLOSE, Action.CLOSE_LONG, Action.CLOSE_SHORT)
_SUPPORTED = (Action.BUY, Action.SELL, *_CLOSE_ACTIONS)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the webhook answers. ``kind``: accepted|duplicate|invalid|rejected|unavailable."""

    kind: str
    signal_id: int
    rule: str | None = None
    field: str | None = None
    reason: str = ""
    lots: Decimal | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Decision:
    status: str  # accepted | rejected | invalid | unavailable
    plan: Plan | None = None
    symbol: str | None = None
    rule: str | None = None
    field: str | None = None
    reason: str = ""
    lots: Decimal | None = None


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        broker: Broker,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._store = store
        self._broker = broker
        self._clock = clock
        self._redactor = Redactor(config.secrets())
        self._decisions = asyncio.Lock()  # dedupe → guard → insert is one decision
        self._pending_entries = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- 1. in: decide and store ------------------------------------------------------------

    async def receive(self, body: bytes, source_ip: str | None = None) -> Outcome:
        now = self._clock()
        record = SignalRecord(
            received_at=now,
            raw_body=self._redactor.body(body),
            status="received",
            source_ip=source_ip,
            config_version=self._config.version,
        )
        try:
            signal = parse_signal(body, now)
        except SignalError as err:
            reason = self._redactor.text(err.reason)
            signal_id = await self._store.insert_signal(
                dataclasses.replace(record, status="invalid", field=err.field, reason=reason)
            )
            log.info("signal_invalid", signal_id=signal_id, field=err.field, reason=reason)
            return Outcome("invalid", signal_id, field=err.field, reason=reason)

        record = dataclasses.replace(
            record,
            dialect=signal.dialect.value,
            parsed=self._redacted_fields(signal),
            action=signal.action.value,
            symbol=signal.symbol,
            idempotency_key=signal.id,
        )
        async with self._decisions:
            if signal.id is not None:
                original = await self._store.find_accepted_by_key(signal.id)
                if original is not None:
                    signal_id = await self._store.insert_signal(
                        dataclasses.replace(record, status="duplicate", duplicate_of=original)
                    )
                    log.info("signal_duplicate", signal_id=signal_id, original=original)
                    return Outcome("duplicate", original)
            decision = await self._decide(signal, now)
            signal_id = await self._store.insert_signal(
                dataclasses.replace(
                    record,
                    status=decision.status,
                    symbol=decision.symbol or signal.symbol,
                    rule=decision.rule,
                    field=decision.field,
                    reason=decision.reason or None,
                    lots=decision.lots,
                )
            )
            if decision.plan is None:
                log.info(
                    "signal_rejected",
                    signal_id=signal_id,
                    status=decision.status,
                    rule=decision.rule,
                    field=decision.field,
                    reason=decision.reason,
                )
                return Outcome(
                    decision.status, signal_id, decision.rule, decision.field, decision.reason
                )
            self._start(signal_id, decision.plan)
        log.info("signal_accepted", signal_id=signal_id, action=signal.action.value, symbol=decision.symbol, lots=decision.lots)
        return Outcome("accepted", signal_id, lots=decision.lots, notes=signal.notes + decision.plan.notes)

    async def record_oversized(self, reason: str, source_ip: str | None) -> int:
        """A body over the size limit is not read, but its arrival is still recorded."""
        return await self._store.insert_signal(
            SignalRecord(
                received_at=self._clock(),
                raw_body="",
                status="invalid",
                source_ip=source_ip,
                field="body",
                reason=reason,
                config_version=self._config.version,
            )
        )

    async def _decide(self, signal: Signal, now: datetime) -> _Decision:
        if signal.action not in _SUPPORTED:
            return _Decision("rejected", rule="unsupported_action", reason=f"action {signal.action} is not supported yet")
        if not self._broker.ready:
            return _Decision("unavailable", rule="broker_unavailable", reason="not connected to cTrader")
        symbol = self._resolve(signal)
        if isinstance(symbol, UnknownSymbol):
            return _Decision("rejected", symbol=symbol.name, rule="unknown_symbol", reason=symbol.reason)
        lots = entry_lots(signal, self._config.risk) if signal.action.is_entry else None
        quote = await self._quote(symbol) if signal.action.is_entry else None
        try:
            plan = self._plan(signal, symbol, lots, quote)
        except SignalError as err:
            return _Decision("invalid", symbol=symbol.name, field=err.field, reason=err.reason, lots=lots)
        except PlanRejected as err:
            return _Decision("rejected", symbol=symbol.name, rule=err.rule, reason=err.reason, lots=lots)
        proposal = Proposal(
            signal,
            symbol.name,
            lots,
            has_stop_loss=_has_stop_loss(signal),
            pending_entries=self._pending_entries,
        )
        verdict = evaluate(proposal, self._broker.snapshot(), self._config.risk, now)
        if not verdict.allowed:
            return _Decision("rejected", symbol=symbol.name, rule=verdict.rule, reason=verdict.reason, lots=lots)
        return _Decision("accepted", plan=plan, symbol=symbol.name, lots=lots)

    def _resolve(self, signal: Signal) -> SymbolInfo | UnknownSymbol:
        if signal.symbol is None:  # the parser requires it for every supported action
            return UnknownSymbol("", "the alert names no symbol")
        return resolve(
            signal.symbol, self._config.symbols.map, self._broker.symbol, self._broker.symbol_names
        )

    def _plan(self, signal: Signal, symbol: SymbolInfo, lots: Decimal | None, quote: Quote | None) -> Plan:
        if signal.action in _CLOSE_ACTIONS:
            return plan_close(symbol, self._broker.positions(), signal.action)
        assert lots is not None
        return plan_entry(signal, symbol, quote, lots, label="")

    async def _quote(self, symbol: SymbolInfo, timeout: float = 2.0) -> Quote | None:
        """The live quote; the first alert on a symbol subscribes to it and waits for its first spot."""
        quote = self._broker.quote(symbol.symbol_id)
        if quote is not None and quote.bid is not None and quote.ask is not None:
            return quote
        await self._broker.subscribe_quotes({symbol.symbol_id})
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            quote = self._broker.quote(symbol.symbol_id)
            if quote is not None and quote.bid is not None and quote.ask is not None:
                return quote
            await asyncio.sleep(0.005)
        return quote

    # -- 2. out: execute and record ---------------------------------------------------------

    def _start(self, signal_id: int, plan: Plan) -> None:
        if isinstance(plan, EntryPlan):
            self._pending_entries += 1
        task = asyncio.create_task(self._execute(signal_id, plan), name=f"signal-{signal_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, signal_id: int, plan: Plan) -> None:
        structlog.contextvars.bind_contextvars(signal_id=signal_id)
        try:
            if isinstance(plan, EntryPlan):
                await self._open(signal_id, plan)
            else:
                await self._close(signal_id, plan)
        except BrokerTimeout as err:
            # Sent but unanswered: it may have been filled. Reconciled, never resent.
            await self._store.set_signal_status(signal_id, "unknown", reason=str(err))
            log.warning("signal_outcome_unknown", reason=str(err))
        except BrokerRejected as err:
            await self._store.set_signal_status(signal_id, "failed", rule="broker", reason=str(err))
            log.warning("signal_failed", code=err.code, description=err.description)
        except BrokerError as err:
            await self._store.set_signal_status(signal_id, "failed", rule="broker_unavailable", reason=str(err))
            log.warning("signal_failed", reason=str(err))
        except Exception:  # a bug must not kill the loop; the signal says what happened
            log.exception("signal_execution_crashed")
            await self._store.set_signal_status(signal_id, "failed", rule="internal_error", reason="internal error")
        else:
            await self._store.set_signal_status(signal_id, "executed")
        finally:
            if isinstance(plan, EntryPlan):
                self._pending_entries -= 1
            structlog.contextvars.unbind_contextvars("signal_id")

    def _redacted_fields(self, signal: Signal) -> dict[str, Any]:
        """The parsed fields for the trade log, with any secret an alert carried masked."""
        return {
            k: self._redactor.text(v) if isinstance(v, str) else [self._redactor.text(x) for x in v] if isinstance(v, list) else v
            for k, v in _describe(signal).items()
        }

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
        log.info("order_sending", **{k: v for k, v in order.items() if v is not None})
        try:
            result = await self._broker.place_order(request)
        except BrokerError as err:
            await self._store.insert_order(signal_id, "entry", _error_status(err), **order, **_error_fields(err))
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
        log.info("order_" + result.status, order_id=result.order_id, position_id=result.position_id, price=result.execution_price)
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

    async def _close(self, signal_id: int, plan: ClosePlan) -> None:
        failures: list[BrokerError] = []
        for position, volume in plan.closes:
            fields: dict[str, Any] = {
                "symbol": plan.symbol.name,
                "side": position.side.opposite.value,
                "order_type": "market",
                "volume": volume,
                "position_id": position.position_id,
            }
            try:
                deal = await self._broker.close_position(position.position_id, volume)
            except BrokerError as err:
                # Keep closing the others: one stuck position must not leave the rest open.
                failures.append(err)
                await self._store.insert_order(signal_id, "close", _error_status(err), **fields, **_error_fields(err))
                log.warning("position_close_failed", position_id=position.position_id, error=str(err))
                continue
            await self._store.insert_order(
                signal_id, "close", "filled", **fields, broker_order_id=deal.order_id, execution_price=deal.execution_price
            )
            log.info("position_closed", position_id=position.position_id, price=deal.execution_price, volume=volume)
        if failures:
            raise failures[0] if len(failures) == 1 else _combined(failures)

    # -- lifecycle -----------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight executions; True if all finished within ``timeout`` seconds."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending


def _has_stop_loss(signal: Signal) -> bool:
    return any(v is not None for v in (signal.sl, signal.sl_pips, signal.sl_pct))


def _describe(signal: Signal) -> dict[str, Any]:
    """The parsed fields that the alert set, as JSON-ready values."""
    described: dict[str, Any] = {}
    for f in dataclasses.fields(signal):
        value = getattr(signal, f.name)
        if value is None or value is False or value == ():
            continue
        if isinstance(value, tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, bool | int | str):
            value = str(value)
        described[f.name] = value
    return described


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

