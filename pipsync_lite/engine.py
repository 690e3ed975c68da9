"""Signal → store → guard → broker → store: the alert-to-order path, read top to bottom.

``receive`` decides (rate, parse, dedupe, resolve, size, plan, guard), stores the signal
with its decision in ONE durable insert, starts the execution and returns, so the webhook
answers 202 before the broker does (TradingView abandons a request after 3 s). ``_execute``
then talks to the broker and records every order and its answer. Every decision records
the configuration version it was made under and, for entries, what it saw (``context``:
quote, balance, positions, the day's numbers) so that ``replay`` can judge it again.

Planning is pure and per action (:mod:`decision` sizes and plans buy/sell/reverse through
:mod:`planner`; :mod:`exits` plans the closes and cancels, :mod:`amends` modify/breakeven),
from the broker's positions, orders and quote at the moment of the decision. A plan that
closes before it opens (reverse, ``flatten_first``, a netted account's turn) is executed step
by step by the executor, each close awaited to its fill before the entry is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import structlog

from pipsync_lite.amends import plan_breakeven, plan_modify
from pipsync_lite.approvals import SKIPPED_ON_APPROVAL, Approvals
from pipsync_lite.config import Config
from pipsync_lite.ctrader.model import AccountSnapshot, Position, Quote, SymbolInfo
from pipsync_lite.database import lazily
from pipsync_lite.decision import context_json, inflight_of, judge_entry
from pipsync_lite.dedupe import Dedupe
from pipsync_lite.errors import BrokerError, BrokerRejected, BrokerTimeout, SignalError
from pipsync_lite.events import EventBus
from pipsync_lite.executor import Executor
from pipsync_lite.exits import plan_cancel, plan_close, plan_close_all
from pipsync_lite.intake import Intake, open_at_alert
from pipsync_lite.journal import JournalBroker, Prepared, bind_signal
from pipsync_lite.killswitch import KillSwitch
from pipsync_lite.logs import Redactor
from pipsync_lite.losses import LossBook, needs_equity
from pipsync_lite.market import MarketReader
from pipsync_lite.plans import Close, ClosePlan, EntryPlan, Plan, PlanRejected
from pipsync_lite.ratelimit import RateLimiter
from pipsync_lite.risk import AccountView, Inflight, Proposal, evaluate
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.signal_model import Action, Signal
from pipsync_lite.signals import parse_signal
from pipsync_lite.store import SignalRecord, Store, utcnow_iso
from pipsync_lite.symbols import UnknownSymbol, resolve, strip_exchange

log = structlog.get_logger("pipsync_lite.engine")

_CLOSE_ACTIONS = (Action.CLOSE, Action.CLOSE_LONG, Action.CLOSE_SHORT)
#: Sized, planned and guarded as entries by :func:`decision.judge_entry`.
_ENTRIES = (Action.BUY, Action.SELL, Action.REVERSE)
# Exits whose plan reads the market: amends check their levels against it.
_NEEDS_QUOTE = (Action.MODIFY, Action.BREAKEVEN)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the webhook answers. ``kind``: accepted|queued|pending_approval|duplicate|invalid|
    rejected|unavailable|rate_limited; for approve/reject also not_found|not_pending|expired."""

    kind: str
    signal_id: int
    rule: str | None = None
    field: str | None = None
    reason: str = ""
    lots: Decimal | None = None
    notes: tuple[str, ...] = ()
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    status: str  # accepted | queued | pending_approval | rejected | invalid | unavailable
    plan: Plan | None = None
    symbol: str | None = None
    rule: str | None = None
    field: str | None = None
    reason: str = ""
    lots: Decimal | None = None
    notes: tuple[str, ...] = ()
    context: dict[str, Any] | None = None
    limits: RiskLimits | None = None


class Engine:
    def __init__(
        self,
        config: Config,
        store: Store,
        broker: JournalBroker,
        *,
        events: EventBus,
        clock: Callable[[], datetime] = utcnow,
        intake: Intake | None = None,
    ) -> None:
        self._config = config
        self._store = store
        self._broker = broker
        self._clock = clock
        self._events = events
        self._redactor = Redactor(config.secrets())
        self._decisions = asyncio.Lock()  # dedupe → guard → insert is one decision
        self._inflight: dict[int, Inflight] = {}  # signal id → entry sent, not answered yet
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[int] = set()  # signal ids whose execution is under way
        self._intake = intake  # None: no queue, 503 while the broker is down
        self._executor = Executor(store, broker, events, self._redactor)
        self.kill_switch = KillSwitch(store, events)
        self.losses = LossBook(store, broker, events)
        self.approvals = Approvals(store)
        self._markets = MarketReader(broker)
        self._dedupe = Dedupe(store, config)
        limit = config.server.rate_limit
        self._limiter = None if limit is None else RateLimiter(limit.per_minute, limit.burst)

    @property
    def config(self) -> Config:
        return self._config

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    @property
    def broker(self) -> JournalBroker:
        return self._broker

    async def start(self) -> None:
        await self.kill_switch.load()
        await self._dedupe.load(self._clock())
        await self.losses.start(self._config.risk, self._clock())

    def apply_config(self, config: Config) -> None:
        """A reloaded configuration: every decision from now on is made under it."""
        self._config = config
        self._dedupe.apply_config(config)

    # -- 1. in: decide and store ------------------------------------------------------------

    async def receive(self, body: bytes, source_ip: str | None = None) -> Outcome:
        now = self._clock()
        config = self._config
        record = SignalRecord(
            received_at=now,
            raw_body=self._redactor.body(body),
            status="received",
            source_ip=source_ip,
            config_version=config.version,
            body_hash=hashlib.sha256(body.strip()).hexdigest(),
        )
        if self._limiter is not None:
            admission = self._limiter.admit(now)
            if not admission.allowed:
                return await self._rate_limited(record, body, now, admission.retry_after)
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

        record = self._with_signal(record, signal)
        if self._intake is not None:
            await self._intake.wait_brief()  # outside the lock: the drain that opens it needs it
        async with self._decisions:
            window = float(self._limits_for_alert(signal.symbol).dedupe_window_seconds)
            original = await self._dedupe.original(signal.id, record.body_hash, window, now)
            if original is not None:
                signal_id = await self._store.insert_signal(
                    dataclasses.replace(record, status="duplicate", duplicate_of=original)
                )
                log.info("signal_duplicate", signal_id=signal_id, original=original)
                return Outcome("duplicate", original)
            decision = await self._decide(signal, now)
            signal_id, row = self._store.signal_statement(
                dataclasses.replace(
                    record,
                    status=decision.status,
                    symbol=decision.symbol or signal.symbol,
                    rule=decision.rule,
                    field=decision.field,
                    reason=decision.reason or None,
                    lots=decision.lots,
                    context=decision.context,
                )
            )
            if decision.status in ("queued", "pending_approval"):  # rare: written under the lock
                await self._store.db.execute(*row)
                return await self._held(signal_id, signal, decision, now, record.body_hash)
            prepared = None
            if decision.plan is not None:
                # Accepted. Everything the next decision must see is in memory now (the dedupe
                # index, the entry in flight), so the lock is let go before the disk: concurrent
                # alerts share one commit. The journal row of the first broker request goes in
                # the same transaction, so the order can leave as soon as it is durable.
                prepared = self._broker.prepare(signal_id, decision.plan, self._executor.label(signal_id))
                self._dedupe.remember(signal_id, signal.id, record.body_hash, now)
                self._claim(signal_id, decision.plan)
                if signal.action in _ENTRIES:
                    self.losses.entry_accepted(signal_id, utcnow_iso(now))
        if decision.plan is None:  # rejected: nothing follows from it but the answer
            await self._store.db.execute(*row)
            self._received(signal_id, signal, decision)
            self._rejected(signal_id, decision, signal.symbol)
            return Outcome(decision.status, signal_id, decision.rule, decision.field, decision.reason)
        try:
            await self._store.db.atomic([row] if prepared is None else [row, prepared.statement])
        except BaseException:
            self._dedupe.forget(signal_id, signal.id, record.body_hash)
            self._release(signal_id)
            if signal.action in _ENTRIES:
                self.losses.entry_accepted(signal_id, utcnow_iso(now), counts=False)
            raise
        self._dedupe.written(signal_id, signal.id)
        self._received(signal_id, signal, decision)
        self._start(signal_id, decision.plan, prepared)
        await asyncio.sleep(0)  # the execution runs to its first send: the order leaves before the 202
        log.info("signal_accepted", signal_id=signal_id, action=signal.action.value, symbol=decision.symbol, lots=decision.lots)
        return Outcome("accepted", signal_id, lots=decision.lots, notes=signal.notes + decision.notes)

    async def _held(
        self, signal_id: int, signal: Signal, decision: _Decision, now: datetime, body_hash: str | None
    ) -> Outcome:
        """A signal that waits: for the broker (queued) or for the operator (pending_approval)."""
        self._dedupe.remember(signal_id, signal.id, body_hash, now)
        self._dedupe.written(signal_id, signal.id)
        self._received(signal_id, signal, decision)
        if decision.status == "queued":
            log.info("signal_queued", signal_id=signal_id, action=signal.action.value, reason=decision.reason)
            return Outcome("queued", signal_id, reason=decision.reason, notes=signal.notes + (decision.reason,))
        assert decision.limits is not None
        waiting = await self.approvals.add(signal_id, now, decision.limits.approval_timeout_seconds)
        log.info("signal_pending_approval", signal_id=signal_id, symbol=decision.symbol, lots=decision.lots,
                 expires_at=waiting.expires_at)  # fmt: skip
        return Outcome("pending_approval", signal_id, lots=decision.lots, notes=signal.notes + decision.notes)

    def _received(self, signal_id: int, signal: Signal, decision: _Decision) -> None:
        self._events.emit(
            "signal.received", signal_id=signal_id, status=decision.status, action=signal.action.value,
            symbol=decision.symbol or signal.symbol,
        )  # fmt: skip

    def _with_signal(self, record: SignalRecord, signal: Signal) -> SignalRecord:
        return dataclasses.replace(
            record,
            dialect=signal.dialect.value,
            parsed=self._redacted_fields(signal),
            action=signal.action.value,
            symbol=signal.symbol,
            idempotency_key=signal.id,
        )

    async def _rate_limited(self, record: SignalRecord, body: bytes, now: datetime, retry_after: int) -> Outcome:
        try:
            record = self._with_signal(record, parse_signal(body, now))
        except SignalError:
            pass  # stored as it came; it was not judged
        limit = self._config.server.rate_limit
        reason = f"more than {limit.per_minute} alerts per minute (burst {limit.burst}); retry after {retry_after} s" if limit else ""
        signal_id = await self._store.insert_signal(
            dataclasses.replace(record, status="rate_limited", rule="rate_limit", reason=reason)
        )
        log.warning("signal_rate_limited", signal_id=signal_id, retry_after=retry_after)
        return Outcome("rate_limited", signal_id, rule="rate_limit", reason=reason, retry_after=retry_after)

    def _limits_for_alert(self, alert_symbol: str | None) -> RiskLimits:
        """The limits for an alert's symbol before the broker is asked (through symbols.map)."""
        if alert_symbol is None:
            return self._config.risk
        bare = strip_exchange(alert_symbol)
        return self._config.risk.for_symbol(self._config.symbols.map.get(bare.upper(), bare))

    def _rejected(self, signal_id: int, decision: _Decision, alert_symbol: str | None) -> None:
        self._events.emit(
            "signal.rejected", signal_id=signal_id, status=decision.status, rule=decision.rule,
            field=decision.field, reason=decision.reason, symbol=decision.symbol or alert_symbol,
        )
        log.info("signal_rejected", signal_id=signal_id, status=decision.status, rule=decision.rule,
                 field=decision.field, reason=decision.reason)  # fmt: skip

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

    async def resume(self, row: dict[str, Any]) -> Outcome:
        """Decide a stored signal again and execute it: one that waited in the queue, or one
        acknowledged before a crash that provably never reached the broker. It acts only on
        the positions that were open when its alert arrived."""
        signal_id = int(row["id"])
        received_at = datetime.fromisoformat(row["received_at"])
        try:
            signal = parse_signal(row["raw_body"].encode(), received_at)
        except SignalError as err:  # the stored body is the redacted one
            reason = self._redactor.text(err.reason)
            await self._store.update_signal(signal_id, status="invalid", field=err.field, reason=reason)
            self._events.emit("signal.rejected", signal_id=signal_id, status="invalid", field=err.field, reason=reason)
            return Outcome("invalid", signal_id, field=err.field, reason=reason)
        async with self._decisions:
            if not self._broker.ready:  # gone again: it keeps waiting
                return Outcome("queued", signal_id, reason="not connected to cTrader")
            now = self._clock()
            at_alert = partial(open_at_alert, signal_id=signal_id, received_at=received_at, prefix=self._label_prefix)
            decision = await self._decide(signal, now, gated=False, only=at_alert)
            await self._store.update_signal(
                signal_id, status=decision.status, symbol=decision.symbol or signal.symbol, rule=decision.rule,
                field=decision.field, reason=decision.reason or None, lots=decision.lots, context=decision.context,
                config_version=self._config.version,
            )  # fmt: skip
            if decision.status == "pending_approval":
                assert decision.limits is not None
                await self.approvals.add(signal_id, now, decision.limits.approval_timeout_seconds)
                return Outcome("pending_approval", signal_id, lots=decision.lots)
            if decision.plan is None:
                self._rejected(signal_id, decision, signal.symbol)
                return Outcome(decision.status, signal_id, decision.rule, decision.field, decision.reason)
            self._start(signal_id, decision.plan)
        log.info("signal_resumed", signal_id=signal_id, action=signal.action.value, symbol=decision.symbol, lots=decision.lots)
        return Outcome("accepted", signal_id, lots=decision.lots)

    @property
    def _label_prefix(self) -> str:
        return f"psl-{self._store.instance_id}-"

    def in_flight(self) -> set[int]:
        """Signals whose execution is running in this process."""
        return set(self._running)

    async def _decide(
        self,
        signal: Signal,
        now: datetime,
        skip: frozenset[str] = frozenset(),
        *,
        gated: bool = True,
        only: Callable[[list[Position]], list[Position]] | None = None,
    ) -> _Decision:
        if gated and self._intake is not None:
            admission = self._intake.admit()
            if admission == "queue":
                reason = f"not connected to cTrader: waits up to {self._intake.max_age} s for the broker"
                return _Decision("queued", reason=reason)
            if admission == "reject":
                return _Decision("unavailable", rule="broker_unavailable", reason=f"not connected to cTrader ({self._intake.reason})")
        if not self._broker.ready:
            return _Decision("unavailable", rule="broker_unavailable", reason="not connected to cTrader")
        symbol = self._resolve(signal)
        if isinstance(symbol, UnknownSymbol):
            return _Decision("rejected", symbol=symbol.name, rule="unknown_symbol", reason=symbol.reason)
        name = symbol.name if symbol is not None else None
        limits = self._config.risk.for_symbol(name)
        if signal.action in _ENTRIES and symbol is not None:
            return await self._entry(signal, symbol, limits, now, skip, only)
        quote = await self._markets.quote(symbol) if symbol is not None and signal.action in _NEEDS_QUOTE else None
        try:
            plan = self._plan(signal, symbol, quote, only)
        except SignalError as err:
            return _Decision("invalid", symbol=name, field=err.field, reason=err.reason)
        except PlanRejected as err:
            return _Decision("rejected", symbol=name, rule=err.rule, reason=err.reason)
        proposal = Proposal(signal, name, plan.lots, has_stop_loss=False, info=symbol)
        verdict = evaluate(proposal, self._broker.snapshot(), limits, now)
        if not verdict.allowed:
            return _Decision("rejected", symbol=name, rule=verdict.rule, reason=verdict.reason, lots=plan.lots)
        return _Decision("accepted", plan=plan, symbol=name, lots=plan.lots, notes=plan.notes, limits=limits)

    async def _entry(
        self,
        signal: Signal,
        symbol: SymbolInfo,
        limits: RiskLimits,
        now: datetime,
        skip: frozenset[str],
        only: Callable[[list[Position]], list[Position]] | None = None,
    ) -> _Decision:
        market = await self._markets.market(symbol)
        view = await self._view(limits, now, only)
        judged = judge_entry(signal, market, view, limits, now, skip=skip)
        return _Decision(
            judged.status, plan=judged.plan if judged.status == "accepted" else None, symbol=symbol.name,
            rule=judged.rule, field=judged.field, reason=judged.reason, lots=judged.lots, notes=judged.notes,
            context=context_json(market, view), limits=limits,
        )  # fmt: skip

    async def _view(
        self, limits: RiskLimits, now: datetime, only: Callable[[list[Position]], list[Position]] | None = None
    ) -> AccountView:
        day = await self.losses.stats(limits, now, equity=needs_equity(limits))
        snapshot = self._broker.snapshot()
        inflight = self._unanswered(snapshot)
        if only is not None:  # a resumed signal: the positions open at its alert
            snapshot = dataclasses.replace(snapshot, positions=tuple(only(list(snapshot.positions))))
        return AccountView(snapshot, inflight, day=day, kill=self.kill_switch.state(now))

    def _unanswered(self, snapshot: AccountSnapshot) -> tuple[Inflight, ...]:
        """The entries sent whose position or order the broker does not show yet: an entry that
        filled counts once, as its position, even before its execution has returned."""
        if not self._inflight:
            return ()
        shown = {p.label for p in snapshot.positions} | {o.label for o in snapshot.orders}
        return tuple(i for sid, i in self._inflight.items() if self._executor.label(sid) not in shown)

    def _resolve(self, signal: Signal) -> SymbolInfo | UnknownSymbol | None:
        """The broker's symbol; None when the alert names none (account-wide, or by order_id)."""
        if signal.symbol is None:
            return None
        return resolve(
            signal.symbol, self._config.symbols.map, self._broker.symbol, self._broker.symbol_names
        )

    def _plan(
        self,
        signal: Signal,
        symbol: SymbolInfo | None,
        quote: Quote | None,
        only: Callable[[list[Position]], list[Position]] | None = None,
    ) -> Plan:
        """An exit's or amend's plan, from the broker's positions and orders now (entries are
        planned by :func:`decision.judge_entry`); ``only`` narrows the positions."""
        action, positions, orders = signal.action, self._broker.positions(), self._broker.orders()
        if only is not None:
            positions = only(positions)
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
        if action in _CLOSE_ACTIONS:
            return plan_close(symbol, positions, action, lots=signal.lots, percent=signal.percent)
        return plan_breakeven(signal, symbol, positions, quote)

    # -- manual approval ------------------------------------------------------------------------

    async def approve(self, signal_id: int) -> Outcome:
        """Judge a waiting signal again, as of now, and send it if it still passes."""
        async with self._decisions:
            now = self._clock()
            row, problem = await self._waiting_row(signal_id, now)
            if problem is not None:
                return problem
            assert row is not None
            try:
                signal = parse_signal(row["raw_body"].encode(), datetime.fromisoformat(row["received_at"]))
            except SignalError as err:
                await self._settle(signal_id, "rejected", now, rule="approval", reason=f"the stored alert no longer parses: {err.reason}")
                return Outcome("rejected", signal_id, rule="approval", reason=err.reason)
            decision = await self._decide(signal, now, skip=SKIPPED_ON_APPROVAL, gated=False)
            if decision.status == "unavailable":  # still waiting: try again once the broker is back
                return Outcome("unavailable", signal_id, decision.rule, reason=decision.reason)
            await self.approvals.decide(signal_id, "approved", now)
            await self._store.update_signal(
                signal_id, status=decision.status, rule=decision.rule, field=decision.field,
                reason=decision.reason or None, lots=decision.lots, context=decision.context,
                config_version=self._config.version,
            )  # fmt: skip
            if decision.plan is None:
                self._rejected(signal_id, decision, signal.symbol)
                return Outcome(decision.status, signal_id, decision.rule, decision.field, decision.reason)
            self._start(signal_id, decision.plan)
        log.info("signal_approved", signal_id=signal_id, symbol=decision.symbol, lots=decision.lots)
        return Outcome("accepted", signal_id, lots=decision.lots, notes=decision.notes)

    async def reject(self, signal_id: int) -> Outcome:
        async with self._decisions:
            now = self._clock()
            _, problem = await self._waiting_row(signal_id, now)
            if problem is not None:
                return problem
            reason = "rejected by the operator"
            await self._settle(signal_id, "rejected", now, rule="manual_approval", reason=reason)
            return Outcome("rejected", signal_id, rule="manual_approval", reason=reason)

    async def expire_approvals(self) -> list[int]:
        """Expire every waiting signal whose approval time ran out; returns their ids."""
        async with self._decisions:
            now = self._clock()
            due = await self.approvals.due(now)
            for waiting in due:
                await self._expire(waiting.signal_id, waiting.expires_at - waiting.requested_at, now)
            return [w.signal_id for w in due]

    async def _waiting_row(self, signal_id: int, now: datetime) -> tuple[dict[str, Any] | None, Outcome | None]:
        row = await self._store.signal(signal_id)
        if row is None:
            return None, Outcome("not_found", signal_id, reason=f"there is no signal {signal_id}")
        waiting = await self.approvals.waiting(signal_id)
        if row["status"] != "pending_approval" or waiting is None:
            return None, Outcome("not_pending", signal_id, reason=f"signal {signal_id} is {row['status']}, not waiting for approval")
        if waiting.expired(now):
            await self._expire(signal_id, waiting.expires_at - waiting.requested_at, now)
            return None, Outcome("expired", signal_id, rule="approval_timeout_seconds", reason=f"signal {signal_id} expired at {waiting.expires_at.isoformat()}")
        return row, None

    async def _expire(self, signal_id: int, timeout: timedelta, now: datetime) -> None:
        reason = f"not approved within approval_timeout_seconds {int(timeout.total_seconds())}"
        await self._settle(signal_id, "expired", now, rule="approval_timeout_seconds", reason=reason)

    async def _settle(self, signal_id: int, status: str, now: datetime, *, rule: str, reason: str) -> None:
        await self.approvals.decide(signal_id, status, now)
        await self._store.update_signal(signal_id, status=status, rule=rule, reason=reason)
        self._events.emit("signal.rejected", signal_id=signal_id, status=status, rule=rule, reason=reason)
        log.info("signal_" + status, signal_id=signal_id, rule=rule, reason=reason)

    # -- flattening (loss limits, end of a trading window) --------------------------------------

    async def flatten(self, cause: str, reason: str, symbol_ids: set[int] | None = None) -> int | None:
        """Close every position (of ``symbol_ids``), recorded as an internal signal; its id."""
        positions = [p for p in self._broker.positions() if symbol_ids is None or p.symbol_id in symbol_ids]
        closes = tuple(
            Close(symbol, p, p.volume) for p in positions if (symbol := self._broker.symbol_by_id(p.symbol_id)) is not None
        )
        if not closes:
            return None
        names = sorted({c.symbol.name for c in closes})
        record = SignalRecord(
            received_at=self._clock(), raw_body="", status="accepted", dialect="internal", action="close_all",
            symbol=names[0] if len(names) == 1 and symbol_ids is not None else None, rule=cause, reason=reason,
            config_version=self._config.version,
        )  # fmt: skip
        signal_id = await self._store.insert_signal(record)
        log.warning("flatten_started", signal_id=signal_id, cause=cause, positions=len(closes))
        self._start(signal_id, ClosePlan(closes))
        return signal_id

    # -- 2. out: execute and record ---------------------------------------------------------

    def _claim(self, signal_id: int, plan: Plan) -> None:
        """The signal's execution is under way as far as every other decision is concerned."""
        if isinstance(plan, EntryPlan):
            self._inflight[signal_id] = inflight_of(plan)
        self._running.add(signal_id)

    def _release(self, signal_id: int) -> None:
        self._inflight.pop(signal_id, None)
        self._running.discard(signal_id)

    def _start(self, signal_id: int, plan: Plan, prepared: Prepared | None = None) -> None:
        self._claim(signal_id, plan)
        task = asyncio.create_task(self._execute(signal_id, plan, prepared), name=f"signal-{signal_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._running.discard(signal_id))

    async def _execute(self, signal_id: int, plan: Plan, prepared: Prepared | None = None) -> None:
        structlog.contextvars.bind_contextvars(signal_id=signal_id)
        bind_signal(signal_id, plan, prepared)  # the journal ties each broker request to this signal
        try:
            await self._executor.run(signal_id, plan)
        except BrokerTimeout as err:
            # Sent but unanswered: it may have been filled. Reconciled, never resent.
            await self._store.set_signal_status(signal_id, "unknown", reason=str(err))
            log.warning("signal_outcome_unknown", reason=str(err))
        except BrokerError as err:
            # Every request found the broker unavailable (nothing executed): it waits for the
            # broker (queue mode, while young); otherwise it failed.
            if self._intake is not None and await self._intake.requeue(signal_id):
                pass
            elif isinstance(err, BrokerRejected):
                await self._store.set_signal_status(signal_id, "failed", rule="broker", reason=str(err))
                log.warning("signal_failed", code=err.code, description=err.description)
            else:
                await self._store.set_signal_status(signal_id, "failed", rule="broker_unavailable", reason=str(err))
                log.warning("signal_failed", reason=str(err))
        except Exception:  # a bug must not kill the loop; the signal says what happened
            log.exception("signal_execution_crashed")
            await self._store.set_signal_status(signal_id, "failed", rule="internal_error", reason="internal error")
        else:
            with lazily():  # nothing waits for it: it may share the next alert's commit
                await self._store.set_signal_status(signal_id, "executed")
        finally:
            self._inflight.pop(signal_id, None)
            structlog.contextvars.unbind_contextvars("signal_id")

    def _redacted_fields(self, signal: Signal) -> dict[str, Any]:
        """The parsed fields for the trade log, with any secret an alert carried masked."""
        text = self._redactor.text
        return {
            k: text(v) if isinstance(v, str) else [text(x) for x in v] if isinstance(v, list) else v
            for k, v in _describe(signal).items()
        }

    # -- lifecycle -----------------------------------------------------------------------

    async def drain(self, timeout: float) -> bool:
        """Wait for in-flight executions; True if all finished within ``timeout`` seconds."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        return not pending


#: Signal's fields and their defaults (MISSING for the required ones), read once.
_SIGNAL_FIELDS = tuple((f.name, f.default) for f in dataclasses.fields(Signal))


def _describe(signal: Signal) -> dict[str, Any]:
    """The parsed fields that the alert set, as JSON-ready values."""
    described: dict[str, Any] = {}
    for name, default in _SIGNAL_FIELDS:
        value = getattr(signal, name)
        if value is None or value == default:  # trailing: false on a modify is kept
            continue
        if isinstance(value, tuple):
            value = [str(v) for v in value]
        elif not isinstance(value, bool | int | str):
            value = str(value)
        described[name] = value
    return described
