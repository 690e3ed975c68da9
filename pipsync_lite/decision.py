"""One entry's decision, pure: defaults → size → plan → guard → (manual approval).

Entries are ``buy``, ``sell`` and ``reverse``; around the order itself the plan applies
``flatten_first``, a netted account's netting and the reverse's closes (:mod:`planner`), and
the guard counts what those closes leave open.

The engine gathers the inputs from the broker (symbol, quote, balance, conversion rate) and
the trade log (day statistics, runtime kill switch) and calls :func:`judge_entry`; replay
rebuilds the same inputs from what the engine stored with the decision (``context``) and
calls it again under another configuration. Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountSnapshot,
    AccountType,
    OrderType,
    PendingOrder,
    Position,
    Quote,
    Side,
    SymbolInfo,
)
from pipsync_lite.errors import SignalError
from pipsync_lite.killswitch import KillState
from pipsync_lite.losses import DayStats
from pipsync_lite.planner import plan_buy_sell, plan_entry, plan_reverse
from pipsync_lite.plans import ClosePlan, EntryPlan, Plan, PlanRejected
from pipsync_lite.risk import RULES, AccountView, Inflight, Proposal, Verdict, evaluate
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.signal_model import Action, Signal
from pipsync_lite.sizing import (
    Sizing,
    clamp,
    size_entry,
    smallest_lots,
    stop_distance_pips,
)

#: Rules that need nothing but the signal and the account: judged before sizing, so that a
#: kill switch or a closed window is what the sender hears about first.
_BEFORE_SIZING = frozenset(
    ("kill_switch", "allowed_symbols", "trading_windows", "max_signal_age_seconds", "max_daily_loss",
     "max_drawdown", "max_trades_per_day", "max_consecutive_losses")
)  # fmt: skip
_FIRST = tuple(r for r in RULES if r.__name__ in _BEFORE_SIZING)
_THEN = tuple(r for r in RULES if r.__name__ not in _BEFORE_SIZING)
_EXIT_RULES = tuple(r for r in RULES if r.__name__ == "allowed_symbols")


@dataclass(frozen=True, slots=True)
class Market:
    """What the broker told the engine for one entry; stored with the decision for replay."""

    symbol: SymbolInfo
    quote: Quote | None
    balance: Decimal | None
    currency: str
    rate: Decimal | None  # one unit of the symbol's quote currency in the account currency


@dataclass(frozen=True, slots=True)
class Judgement:
    status: str  # accepted | pending_approval | rejected | invalid
    plan: Plan | None = None
    lots: Decimal | None = None
    rule: str | None = None
    field: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status in ("accepted", "pending_approval")


def has_stop_loss(signal: Signal) -> bool:
    return any(v is not None for v in (signal.sl, signal.sl_pips, signal.sl_pct))


def apply_stop_defaults(signal: Signal, limits: RiskLimits) -> Signal:
    """``default_sl_pips`` / ``default_tp_pips`` for an entry whose alert gives no SL / TP."""
    changes: dict[str, Decimal] = {}
    if limits.default_sl_pips is not None and not has_stop_loss(signal):
        changes["sl_pips"] = limits.default_sl_pips
    if limits.default_tp_pips is not None and all(v is None for v in (signal.tp, signal.tp_pips, signal.tp_pct)):
        changes["tp_pips"] = limits.default_tp_pips
    return dataclasses.replace(signal, **changes) if changes else signal


def judge_entry(
    signal: Signal,
    market: Market,
    account: AccountView,
    limits: RiskLimits,
    now: datetime,
    *,
    skip: Collection[str] = (),
) -> Judgement:
    """Size, plan and guard one buy/sell/reverse. ``skip`` names rules not to apply (approval)."""
    symbol, quote = market.symbol, market.quote
    signal = apply_stop_defaults(signal, limits)
    flatten_first = limits.flatten_first if signal.flatten_first is None else signal.flatten_first
    early = Proposal(signal, symbol.name, None, has_stop_loss(signal), info=symbol, quote=quote,
                     flatten_first=flatten_first)  # fmt: skip
    verdict = evaluate(early, account, limits, now, rules=_FIRST, skip=skip)
    if not verdict.allowed:
        reduction = None if verdict.rule == "allowed_symbols" else _netted_reduction(
            signal, symbol, quote, account, limits, flatten_first, now
        )
        if reduction is None:
            return _rejected(verdict, None)
        scope = evaluate(early, account, limits, now, rules=_EXIT_RULES, skip=skip)
        if not scope.allowed:  # exits still face the robot's scope
            return _rejected(scope, None)
        # Only reduces the position: an exit, which entry limits must not trap.
        note = f"{verdict.rule} applies to entries; this order only reduces the netted position"
        return Judgement("accepted", plan=reduction, lots=reduction.lots, notes=(*reduction.notes, note))
    notes: tuple[str, ...] = ()
    try:
        # Planned once at the smallest size: the stop distance exactly as the order will carry it.
        probe = _plan(signal, symbol, quote, smallest_lots(symbol), account, flatten_first, now, probe=True)
        assert isinstance(probe, EntryPlan)
        sl_pips = stop_distance_pips(probe)
        sizing = size_entry(signal, symbol, limits, balance=market.balance, currency=market.currency,
                            sl_pips=sl_pips, rate=market.rate)  # fmt: skip
        if not sizing.ok:
            return Judgement("rejected", rule=sizing.rule, reason=sizing.reason)
        plan = _plan(signal, symbol, quote, sizing.lots, account, flatten_first, now)
        notes = sizing.notes
        if sizing.lots is None and isinstance(plan, EntryPlan):  # a reverse reopening what it closes
            clamped = clamp(Sizing(plan.lots, sizing.source), symbol, limits)
            if not clamped.ok:
                return Judgement("rejected", rule=clamped.rule, reason=clamped.reason)
            if clamped.lots != plan.lots:
                plan = _plan(signal, symbol, quote, clamped.lots, account, flatten_first, now)
                notes = clamped.notes
    except SignalError as err:
        return Judgement("invalid", field=err.field, reason=err.reason)
    except PlanRejected as err:
        return Judgement("rejected", rule=err.rule, reason=err.reason)
    entry = plan if isinstance(plan, EntryPlan) else None
    closing = entry.closes_first if entry is not None else plan.closes if isinstance(plan, ClosePlan) else ()
    proposal = Proposal(
        signal, symbol.name, plan.lots, has_stop_loss=sl_pips is not None, info=symbol, quote=quote,
        pending_order=entry is not None and entry.request.order_type.is_pending, sl_pips=sl_pips,
        flatten_first=flatten_first, entry_side=probe.request.side,
        closing=tuple(c.position.position_id for c in closing),
    )  # fmt: skip
    verdict = evaluate(proposal, account, limits, now, rules=_THEN, skip=skip)
    if not verdict.allowed:
        return _rejected(verdict, plan.lots)
    notes = notes + plan.notes
    if limits.manual_approval and "manual_approval" not in skip:
        return Judgement("pending_approval", plan=plan, lots=plan.lots, notes=notes)
    return Judgement("accepted", plan=plan, lots=plan.lots, notes=notes)


def _plan(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    lots: Decimal | None,
    account: AccountView,
    flatten_first: bool,
    now: datetime,
    *,
    probe: bool = False,
) -> Plan:
    """The plan of an entry; ``probe``: the order alone (for its stop distance)."""
    positions = account.snapshot.positions
    if signal.action is Action.REVERSE:
        return plan_reverse(signal, symbol, quote, lots, positions, now=now)
    assert lots is not None
    if probe:
        return plan_entry(signal, symbol, quote, lots, now=now)
    acct = account.snapshot.account
    netted = acct is not None and acct.account_type is AccountType.NETTED
    return plan_buy_sell(signal, symbol, quote, lots, positions, netted=netted, flatten_first=flatten_first, now=now)


def _netted_reduction(
    signal: Signal,
    symbol: SymbolInfo,
    quote: Quote | None,
    account: AccountView,
    limits: RiskLimits,
    flatten_first: bool,
    now: datetime,
) -> ClosePlan | None:
    """On a netted account, an order against the position and no bigger than it is a close."""
    acct = account.snapshot.account
    if signal.action is Action.REVERSE or acct is None or acct.account_type is not AccountType.NETTED:
        return None
    lots = signal.lots
    if lots is None and signal.risk is None and not limits.risk_sized:
        lots = limits.default_lots
    if lots is None:  # a risk-sized order's size needs the guard's own path: stay refused
        return None
    try:
        plan = _plan(signal, symbol, quote, lots, account, flatten_first, now)
    except (SignalError, PlanRejected):
        return None
    return plan if isinstance(plan, ClosePlan) else None


def _rejected(verdict: Verdict, lots: Decimal | None) -> Judgement:
    return Judgement("rejected", lots=lots, rule=verdict.rule, reason=verdict.reason)


def inflight_of(plan: EntryPlan) -> Inflight:
    request = plan.request
    return Inflight(request.symbol_id, request.side, request.order_type.is_pending)


# -- the stored context: what the decision saw, as JSON ----------------------------------------


#: SymbolInfo holds only ints, strs and bools: its fields are read as they are (asdict deep-copies).
_SYMBOL_FIELDS = tuple(f.name for f in dataclasses.fields(SymbolInfo))
#: ``side.value`` by lookup: an enum's ``.value`` is a slow descriptor, read once per position.
_SIDE_VALUE = {side: side.value for side in Side}


def context_json(market: Market, account: AccountView) -> dict[str, Any]:
    snap = account.snapshot
    acct = snap.account
    return {
        "symbol": {name: getattr(market.symbol, name) for name in _SYMBOL_FIELDS},
        "bid": _s(market.quote.bid if market.quote else None),
        "ask": _s(market.quote.ask if market.quote else None),
        "balance": _s(market.balance),
        "currency": market.currency,
        "rate": _s(market.rate),
        "account_type": None if acct is None else acct.account_type.value,
        "positions": [[p.symbol_id, _SIDE_VALUE[p.side], p.volume] for p in snap.positions],
        "orders": [[o.symbol_id, _SIDE_VALUE[o.side]] for o in snap.orders],
        "inflight": [[i.symbol_id, None if i.side is None else i.side.value, i.pending_order] for i in account.inflight],
        "day": None if account.day is None else _day_json(account.day),
        "kill": None if account.kill is None else {
            "cause": account.kill.cause, "reason": account.kill.reason,
            "since": account.kill.since.isoformat(), "until": account.kill.until and account.kill.until.isoformat(),
        },
    }  # fmt: skip


def context_from_json(data: dict[str, Any]) -> tuple[Market, AccountView]:
    """The inverse of :func:`context_json`."""
    symbol = SymbolInfo(**data["symbol"])
    quote = Quote(_d(data.get("bid")), _d(data.get("ask")))
    market = Market(symbol, quote, _d(data.get("balance")), data.get("currency") or "", _d(data.get("rate")))
    kind = data.get("account_type")
    account = None
    if kind is not None:
        account = AccountInfo(0, market.balance or Decimal(0), 2, market.currency, Decimal(0), AccountType(kind))
    positions = tuple(
        Position(i, sid, Side(side), volume, Decimal(0)) for i, (sid, side, volume) in enumerate(data.get("positions", []))
    )
    orders = tuple(
        PendingOrder(i, sid, Side(side), 0, OrderType.LIMIT) for i, (sid, side) in enumerate(data.get("orders", []))
    )
    inflight = tuple(Inflight(sid, None if side is None else Side(side), bool(pending))
                     for sid, side, pending in data.get("inflight", []))  # fmt: skip
    day = None if data.get("day") is None else _day_from(data["day"])
    kill_data = data.get("kill")
    kill = None
    if kill_data is not None:
        until = kill_data.get("until")
        kill = KillState(kill_data["cause"], kill_data.get("reason") or "", datetime.fromisoformat(kill_data["since"]),
                         None if until is None else datetime.fromisoformat(until))  # fmt: skip
    snapshot = AccountSnapshot(account, positions, orders)
    return market, AccountView(snapshot, inflight, day, kill)


def _day_json(day: DayStats) -> dict[str, Any]:
    return {
        "day": day.day, "day_start": day.day_start.isoformat(), "currency": day.currency,
        "balance": str(day.balance), "realized": str(day.realized), "unrealized": str(day.unrealized),
        "trades": day.trades, "consecutive_losses": day.consecutive_losses, "peak_equity": _s(day.peak_equity),
    }  # fmt: skip


def _day_from(data: dict[str, Any]) -> DayStats:
    return DayStats(
        day=data["day"], day_start=datetime.fromisoformat(data["day_start"]), currency=data["currency"],
        balance=Decimal(data["balance"]), realized=Decimal(data["realized"]), unrealized=Decimal(data["unrealized"]),
        trades=int(data["trades"]), consecutive_losses=int(data["consecutive_losses"]), peak_equity=_d(data.get("peak_equity")),
    )  # fmt: skip


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
