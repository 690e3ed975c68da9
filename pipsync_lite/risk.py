"""The guard: pure rules that judge a proposed action and return a verdict.

Rules never raise, never read the clock and never do I/O: everything they look at (the
proposal, the account as the engine saw it, the limits in force for the symbol, the time)
is passed in. Each rule is named after the YAML key it enforces; a rejection names that
rule and carries the numbers (``lots 5.00 > max_lots 2.00``). Exits (close, cancel, modify)
are only subject to ``allowed_symbols``: neither the kill switch, nor exposure, time or loss
limits may trap a position.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipsync_lite.config import RiskConfig
from pipsync_lite.ctrader.model import (
    AccountSnapshot,
    AccountType,
    Position,
    Quote,
    Side,
    SymbolInfo,
)
from pipsync_lite.killswitch import KillState
from pipsync_lite.losses import DayStats, money
from pipsync_lite.risk_config import LossLimit, RiskLimits
from pipsync_lite.signal_model import Action, Signal
from pipsync_lite.windows import describe_local, open_window

__all__ = ["RULES", "AccountView", "Inflight", "Proposal", "RiskConfig", "Verdict", "evaluate", "fmt_lots"]


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the engine intends to do for one signal, before anything is sent."""

    signal: Signal
    symbol: str | None  # broker name, resolved
    lots: Decimal | None  # entries: the size that would be sent
    has_stop_loss: bool
    pending_entries: int = 0  # entries accepted but not yet filled, when no AccountView says which
    info: SymbolInfo | None = None
    quote: Quote | None = None
    pending_order: bool = False  # the entry rests at the broker as a limit/stop order
    sl_pips: Decimal | None = None  # distance of the stop loss from the entry
    flatten_first: bool = False  # an opposite position is closed before this entry opens
    entry_side: Side | None = None  # the side the plan opens (a reverse's is the held one's opposite)
    closing: tuple[int, ...] = ()  # position ids the plan closes before it opens (reverse, flatten_first)

    @property
    def is_entry(self) -> bool:
        return self.signal.action.is_entry

    @property
    def side(self) -> Side | None:
        if self.entry_side is not None:
            return self.entry_side
        return _SIDE_OF.get(self.signal.action)

    def staying(self, positions: tuple[Position, ...]) -> list[Position]:
        """The positions still open when this entry's order goes out."""
        return [p for p in positions if p.position_id not in self.closing]


_SIDE_OF = {Action.BUY: Side.BUY, Action.SELL: Side.SELL}


@dataclass(frozen=True, slots=True)
class Inflight:
    """An entry that passed the guard and has not been answered by the broker yet."""

    symbol_id: int
    side: Side | None
    pending_order: bool = False


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account as the guard sees it: the broker's snapshot plus what only we know."""

    snapshot: AccountSnapshot
    inflight: tuple[Inflight, ...] = ()
    day: DayStats | None = None  # None: not gathered (no loss limit configured)
    kill: KillState | None = None  # the runtime kill switch, when engaged


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str | None = None
    reason: str = ""

    @staticmethod
    def allow() -> Verdict:
        return Verdict(True)

    @staticmethod
    def reject(rule: str, reason: str) -> Verdict:
        return Verdict(False, rule, reason)


Rule = Callable[[Proposal, AccountView, RiskLimits, datetime], Verdict | None]


def fmt_lots(value: Decimal) -> str:
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value.normalize()}"


_lots = fmt_lots


def _num(value: Decimal) -> str:
    """A number as a person writes it: 12.5, 3, 0.25."""
    return f"{value.quantize(Decimal('0.01')).normalize():f}"


# -- switches and scope -----------------------------------------------------------------------


def kill_switch(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry:
        return None
    if cfg.kill_switch:
        return Verdict.reject("kill_switch", "kill switch is on: entries are refused, exits still work")
    if a.kill is not None and a.kill.active(now):
        return Verdict.reject("kill_switch", a.kill.describe())
    return None


def allowed_symbols(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    # Applies to every action on a symbol: the list is the robot's scope, not only its entries.
    if not cfg.allowed_symbols or p.symbol is None:
        return None
    allowed = {s.upper() for s in cfg.allowed_symbols}
    if p.symbol.upper() in allowed or (p.signal.symbol or "").upper() in allowed:
        return None
    return Verdict.reject(
        "allowed_symbols",
        f"symbol {p.symbol} is not in allowed_symbols [{', '.join(cfg.allowed_symbols)}]",
    )


# -- time -------------------------------------------------------------------------------------


def trading_windows(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or not cfg.trading_windows:
        return None
    if open_window(now, cfg.trading_windows, cfg.zone) is not None:
        return None
    windows = "; ".join(w.describe() for w in cfg.trading_windows)
    return Verdict.reject(
        "trading_windows", f"outside trading_windows: {describe_local(now, cfg.zone)} is not in {windows}"
    )


def max_signal_age_seconds(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry:
        return None
    fired = p.signal.time
    if fired is None:
        if cfg.require_time:
            return Verdict.reject("require_time", "require_time: the alert has no time (e.g. TradingView {{timenow}})")
        return None
    if cfg.max_signal_age_seconds is None:
        return None
    age = Decimal(str((now - fired).total_seconds()))
    limit = cfg.max_signal_age_seconds
    when = fired.isoformat().replace("+00:00", "Z")
    if age > limit:
        return Verdict.reject(
            "max_signal_age_seconds", f"age {_num(age)} s > max_signal_age_seconds {_num(limit)} (time {when})"
        )
    if -age > limit:
        return Verdict.reject(
            "max_signal_age_seconds",
            f"time {when} is {_num(-age)} s in the future (> max_signal_age_seconds {_num(limit)}): "
            "check the sender's clock",
        )
    return None


# -- losses (the trading day) -----------------------------------------------------------------


def _unknown_day(rule: str) -> Verdict:
    return Verdict.reject(rule, f"{rule} cannot be checked: the account balance is not known yet")


def _threshold(limit: LossLimit, base: Decimal, currency: str, what: str) -> str:
    if limit.percent:
        return f"{limit} of {what} {money(base)} = {money(limit.of(base))} {currency}"
    return f"{money(limit.amount)} {currency}"


def max_daily_loss(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_daily_loss is None:
        return None
    day = a.day
    if day is None:
        return _unknown_day("max_daily_loss")
    loss, limit = -day.pnl, cfg.max_daily_loss.of(day.start_balance)
    if loss <= 0 or loss < limit:
        return None
    threshold = _threshold(cfg.max_daily_loss, day.start_balance, day.currency, "starting balance")
    return Verdict.reject(
        "max_daily_loss",
        f"daily loss {money(loss)} {day.currency} >= max_daily_loss {threshold} "
        f"(realized {money(day.realized)}, unrealized {money(day.unrealized)})",
    )


def max_drawdown(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_drawdown is None:
        return None
    day = a.day
    if day is None:
        return _unknown_day("max_drawdown")
    drawdown, limit = day.drawdown, cfg.max_drawdown.of(day.peak)
    if drawdown <= 0 or drawdown < limit:
        return None
    threshold = _threshold(cfg.max_drawdown, day.peak, day.currency, "peak equity")
    return Verdict.reject(
        "max_drawdown",
        f"drawdown {money(drawdown)} {day.currency} from peak equity {money(day.peak)} >= max_drawdown {threshold} "
        f"(equity {money(day.equity)})",
    )


def max_trades_per_day(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_trades_per_day is None:
        return None
    if a.day is None:
        return _unknown_day("max_trades_per_day")
    if a.day.trades >= cfg.max_trades_per_day:
        return Verdict.reject(
            "max_trades_per_day",
            f"trades today {a.day.trades} >= max_trades_per_day {cfg.max_trades_per_day} (day {a.day.day})",
        )
    return None


def max_consecutive_losses(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_consecutive_losses is None:
        return None
    if a.day is None:
        return _unknown_day("max_consecutive_losses")
    if a.day.consecutive_losses >= cfg.max_consecutive_losses:
        return Verdict.reject(
            "max_consecutive_losses",
            f"consecutive losses {a.day.consecutive_losses} >= max_consecutive_losses {cfg.max_consecutive_losses}",
        )
    return None


# -- size and exposure ------------------------------------------------------------------------


def max_lots(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.max_lots is not None and p.lots is not None and p.lots > cfg.max_lots:
        return Verdict.reject("max_lots", f"lots {_lots(p.lots)} > max_lots {_lots(cfg.max_lots)}")
    return None


def _opening(a: AccountView) -> list[Inflight]:
    """Entries being opened now (market orders in flight, not resting orders)."""
    return [i for i in a.inflight if not i.pending_order]


def max_open_positions(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_open_positions is None:
        return None
    opening = len(_opening(a)) + p.pending_entries
    return _at_most("max_open_positions", len(p.staying(a.snapshot.positions)), opening, cfg.max_open_positions, "")


def max_positions_per_symbol(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_positions_per_symbol is None or p.info is None:
        return None
    sid = p.info.symbol_id
    open_now = sum(1 for pos in p.staying(a.snapshot.positions) if pos.symbol_id == sid)
    opening = sum(1 for i in _opening(a) if i.symbol_id == sid)
    return _at_most("max_positions_per_symbol", open_now, opening, cfg.max_positions_per_symbol, f" on {p.info.name}")


def max_positions_per_direction(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    side = p.side
    if not p.is_entry or cfg.max_positions_per_direction is None or p.info is None or side is None:
        return None
    sid = p.info.symbol_id
    open_now = sum(1 for pos in p.staying(a.snapshot.positions) if pos.symbol_id == sid and pos.side is side)
    opening = sum(1 for i in _opening(a) if i.symbol_id == sid and i.side is side)
    return _at_most(
        "max_positions_per_direction", open_now, opening, cfg.max_positions_per_direction, f" {side} on {p.info.name}"
    )


def _at_most(rule: str, open_now: int, opening: int, limit: int, scope: str) -> Verdict | None:
    if open_now + opening < limit:
        return None
    detail = f"{open_now} open" + (f" + {opening} being opened" if opening else "")
    return Verdict.reject(rule, f"positions{scope} {detail} >= {rule} {limit}")


def max_pending_orders(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or not p.pending_order or cfg.max_pending_orders is None:
        return None
    resting = len(a.snapshot.orders)
    placing = sum(1 for i in a.inflight if i.pending_order)
    if resting + placing < cfg.max_pending_orders:
        return None
    detail = f"{resting} resting" + (f" + {placing} being placed" if placing else "")
    return Verdict.reject("max_pending_orders", f"pending orders {detail} >= max_pending_orders {cfg.max_pending_orders}")


def allow_hedging(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    side = p.side
    if not p.is_entry or cfg.allow_hedging or p.flatten_first or p.info is None or side is None:
        return None
    account = a.snapshot.account
    if account is not None and account.account_type is AccountType.NETTED:
        return None  # a netted account cannot hold both sides: the order reduces instead
    sid = p.info.symbol_id
    opposite = sum(1 for pos in p.staying(a.snapshot.positions) if pos.symbol_id == sid and pos.side is side.opposite)
    opposite += sum(1 for i in _opening(a) if i.symbol_id == sid and i.side is side.opposite)
    if not opposite:
        return None
    return Verdict.reject(
        "allow_hedging",
        f"allow_hedging is false: {p.info.name} has {opposite} {side.opposite} position(s) and this is a {side} "
        "(send flatten_first: true to close them first)",
    )


# -- stops ------------------------------------------------------------------------------------


def require_sl(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.require_sl and not p.has_stop_loss:
        return Verdict.reject("require_sl", "require_sl: the alert has no stop loss (sl, sl_pips or sl_pct)")
    return None


def min_sl_pips(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.min_sl_pips is not None and p.sl_pips is not None and p.sl_pips < cfg.min_sl_pips:
        return Verdict.reject("min_sl_pips", f"sl {_num(p.sl_pips)} pips < min_sl_pips {_num(cfg.min_sl_pips)}")
    return None


def max_sl_pips(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.max_sl_pips is not None and p.sl_pips is not None and p.sl_pips > cfg.max_sl_pips:
        return Verdict.reject("max_sl_pips", f"sl {_num(p.sl_pips)} pips > max_sl_pips {_num(cfg.max_sl_pips)}")
    return None


# -- price ------------------------------------------------------------------------------------


def _no_quote(rule: str) -> Verdict:
    return Verdict.reject(rule, f"{rule} cannot be checked: no live quote from the broker")


def max_spread_pips(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    if not p.is_entry or cfg.max_spread_pips is None or p.info is None:
        return None
    quote = p.quote
    if quote is None or quote.bid is None or quote.ask is None:
        return _no_quote("max_spread_pips")
    spread = (quote.ask - quote.bid) / p.info.pip
    if spread <= cfg.max_spread_pips:
        return None
    return Verdict.reject(
        "max_spread_pips",
        f"spread {_num(spread)} pips > max_spread_pips {_num(cfg.max_spread_pips)} (bid {quote.bid}, ask {quote.ask})",
    )


def max_deviation_pips(p: Proposal, a: AccountView, cfg: RiskLimits, now: datetime) -> Verdict | None:
    reference = p.signal.signal_price
    side = p.side
    if not p.is_entry or cfg.max_deviation_pips is None or reference is None or p.info is None or side is None:
        return None
    quote = p.quote
    live = None if quote is None else quote.ask if side is Side.BUY else quote.bid
    if live is None:
        return _no_quote("max_deviation_pips")
    deviation = abs(live - reference) / p.info.pip
    if deviation <= cfg.max_deviation_pips:
        return None
    name = "ask" if side is Side.BUY else "bid"
    return Verdict.reject(
        "max_deviation_pips",
        f"deviation {_num(deviation)} pips > max_deviation_pips {_num(cfg.max_deviation_pips)} "
        f"(signal_price {reference}, {name} {live})",
    )


#: Evaluated in order; the first rejection wins.
RULES: tuple[Rule, ...] = (
    kill_switch,
    allowed_symbols,
    trading_windows,
    max_signal_age_seconds,
    max_daily_loss,
    max_drawdown,
    max_trades_per_day,
    max_consecutive_losses,
    max_lots,
    max_open_positions,
    max_positions_per_symbol,
    max_positions_per_direction,
    max_pending_orders,
    allow_hedging,
    require_sl,
    min_sl_pips,
    max_sl_pips,
    max_spread_pips,
    max_deviation_pips,
)

#: The rules about the trading day's losses: a breach engages the kill switch.
LOSS_RULES: tuple[Rule, ...] = (max_daily_loss, max_drawdown, max_trades_per_day, max_consecutive_losses)


def evaluate(
    proposal: Proposal,
    account: AccountView | AccountSnapshot,
    config: RiskLimits,
    now: datetime,
    rules: tuple[Rule, ...] = RULES,
    skip: Collection[str] = (),
) -> Verdict:
    """The first rejection among ``rules`` (except those named in ``skip``), else allow."""
    view = account if isinstance(account, AccountView) else AccountView(account)
    for rule in rules:
        if rule.__name__ in skip:
            continue
        verdict = rule(proposal, view, config, now)
        if verdict is not None and not verdict.allowed:
            return verdict
    return Verdict.allow()


def loss_breaches(day: DayStats, config: RiskLimits, now: datetime, signal: Signal) -> list[Verdict]:
    """Every loss limit the day breaches (judged as an entry would be)."""
    probe = Proposal(signal, None, None, has_stop_loss=True)
    view = AccountView(AccountSnapshot(None), day=day)
    found = (rule(probe, view, config, now) for rule in LOSS_RULES)
    return [v for v in found if v is not None and not v.allowed]
