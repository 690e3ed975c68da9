"""Signal → store → guard → broker → store: the alert-to-order path, read top to bottom.

``receive`` decides (parse, dedupe, resolve, plan, guard), stores the signal with its
decision in ONE durable insert, starts the execution and returns, so the webhook answers
202 before the broker does (TradingView abandons a request after 3 s). ``_execute`` then
talks to the broker and records every order and its answer.

Planning is pure and per action (:mod:`planner` for buy/sell/reverse, :mod:`exits` for the
closes and cancels, :mod:`amends` for modify/breakeven), from the broker's positions, orders
and quote at the moment of the decision. A plan that closes before it opens (reverse,
``flatten_first``, a netted account's turn) is executed step by step by the executor, each
close awaited to its fill before the entry is sent.
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

from pipsync_lite.amends import plan_breakeven, plan_modify
from pipsync_lite.config import Config
from pipsync_lite.ctrader.model import AccountType, Broker, Quote, SymbolInfo
from pipsync_lite.errors import BrokerError, BrokerRejected, BrokerTimeout, SignalError
from pipsync_lite.events import EventBus
from pipsync_lite.executor import Executor
from pipsync_lite.exits import plan_cancel, plan_close, plan_close_all
from pipsync_lite.logs import Redactor
from pipsync_lite.planner import plan_buy_sell, plan_reverse
from pipsync_lite.plans import EntryPlan, Plan, PlanRejected
from pipsync_lite.risk import Proposal, entry_lots, evaluate
from pipsync_lite.signal_model import Action, Signal
from pipsync_lite.signals import parse_signal
from pipsync_lite.store import SignalRecord, Store
from pipsync_lite.symbols import UnknownSymbol, resolve

log = structlog.get_logger("pipsync_lite.engine")

_CLOSE_ACTIONS = (Action.CLOSE, Action.CLOSE_LONG, Action.CLOSE_SHORT)
# Actions whose plan reads the market: entries measure stops from it, amends check levels against it.
_NEEDS_QUOTE = (Action.BUY, Action.SELL, Action.REVERSE, Action.MODIFY, Action.BREAKEVEN)


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
        events: EventBus,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._store = store
        self._broker = broker
        self._clock = clock
        self._events = events
        self._redactor = Redactor(config.secrets())
        self._decisions = asyncio.Lock()  # dedupe → guard → insert is one decision
        self._pending_entries = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor = Executor(store, broker, events, self._redactor)

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
            self._events.emit("signal.received", signal_id=signal_id, status="invalid")
            self._events.emit("signal.rejected", signal_id=signal_id, status="invalid", field=err.field, reason=reason)
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
            self._events.emit(
                "signal.received", signal_id=signal_id, status=decision.status, action=signal.action.value,
                symbol=decision.symbol or signal.symbol,
            )
            if decision.plan is None:
                self._events.emit(
                    "signal.rejected", signal_id=signal_id, status=decision.status, rule=decision.rule,
                    field=decision.field, reason=decision.reason, symbol=decision.symbol or signal.symbol,
                )
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
        if not self._broker.ready:
            return _Decision("unavailable", rule="broker_unavailable", reason="not connected to cTrader")
        symbol = self._resolve(signal)
        if isinstance(symbol, UnknownSymbol):
            return _Decision("rejected", symbol=symbol.name, rule="unknown_symbol", reason=symbol.reason)
        name = symbol.name if symbol is not None else None
        lots = self._lots(signal)
        quote = await self._quote(symbol) if symbol is not None and signal.action in _NEEDS_QUOTE else None
        try:
            plan = self._plan(signal, symbol, lots, quote, now)
        except SignalError as err:
            return _Decision("invalid", symbol=name, field=err.field, reason=err.reason, lots=lots)
        except PlanRejected as err:
            return _Decision("rejected", symbol=name, rule=err.rule, reason=err.reason, lots=lots)
        proposal = Proposal(
            signal,
            name,
            plan.lots,
            has_stop_loss=_has_stop_loss(signal),
            pending_entries=self._pending_entries,
        )
        verdict = evaluate(proposal, self._broker.snapshot(), self._config.risk, now)
        if not verdict.allowed:
            return _Decision("rejected", symbol=name, rule=verdict.rule, reason=verdict.reason, lots=plan.lots)
        return _Decision("accepted", plan=plan, symbol=name, lots=plan.lots)

    def _resolve(self, signal: Signal) -> SymbolInfo | UnknownSymbol | None:
        """The broker's symbol; None when the alert names none (account-wide, or by order_id)."""
        if signal.symbol is None:
            return None
        return resolve(
            signal.symbol, self._config.symbols.map, self._broker.symbol, self._broker.symbol_names
        )

    def _lots(self, signal: Signal) -> Decimal | None:
        """The size of an entry; a reverse without a size of its own reopens what it closed."""
        if signal.action in (Action.BUY, Action.SELL):
            return entry_lots(signal, self._config.risk)
        if signal.action is Action.REVERSE and (signal.lots is not None or signal.risk is not None):
            return entry_lots(signal, self._config.risk)
        return None

    def _plan(
        self, signal: Signal, symbol: SymbolInfo | None, lots: Decimal | None, quote: Quote | None, now: datetime
    ) -> Plan:
        """What to send, from the broker's positions and orders now (pure planners, by action)."""
        action, positions, orders = signal.action, self._broker.positions(), self._broker.orders()
        by_id = self._broker.symbol_by_id
        if action is Action.CLOSE_ALL:
            return plan_close_all(
                symbol, positions, orders, by_id, percent=signal.percent, cancel_orders=signal.cancel_orders
            )
        if action in (Action.CANCEL, Action.CANCEL_ALL):
            return plan_cancel(symbol, orders, by_id, order_id=signal.order_id, side=signal.side)
        if action is Action.MODIFY:
            return plan_modify(signal, symbol, positions, orders, quote, by_id)
        if symbol is None:  # the parser requires a symbol for the other actions
            raise SignalError("symbol", f"is required for action {action}")
        if action in (Action.BUY, Action.SELL):
            assert lots is not None
            return plan_buy_sell(
                signal,
                symbol,
                quote,
                lots,
                positions,
                netted=self._netted(),
                flatten_first=_first(signal.flatten_first, self._config.risk.flatten_first),
                now=now,
            )
        if action is Action.REVERSE:
            return plan_reverse(signal, symbol, quote, lots, positions, now=now)
        if action in _CLOSE_ACTIONS:
            return plan_close(symbol, positions, action, lots=signal.lots, percent=signal.percent)
        return plan_breakeven(signal, symbol, positions, quote)

    def _netted(self) -> bool:
        account = self._broker.account
        return account is not None and account.account_type is AccountType.NETTED

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
            await self._executor.run(signal_id, plan)
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

    # -- lifecycle -----------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight executions; True if all finished within ``timeout`` seconds."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending


def _first(alert: bool | None, default: bool) -> bool:
    """The alert's own choice, else the YAML default."""
    return default if alert is None else alert


def _has_stop_loss(signal: Signal) -> bool:
    return any(v is not None for v in (signal.sl, signal.sl_pips, signal.sl_pct))


def _describe(signal: Signal) -> dict[str, Any]:
    """The parsed fields that the alert set, as JSON-ready values."""
    described: dict[str, Any] = {}
    for f in dataclasses.fields(signal):
        value = getattr(signal, f.name)
        if value is None or value == f.default:  # trailing: false on a modify is kept
            continue
        if isinstance(value, tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, bool | int | str):
            value = str(value)
        described[f.name] = value
    return described
