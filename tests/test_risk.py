"""The guard: each rule, table-driven; rejections carry the rule and the numbers; exits pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipsync_lite.config import RiskConfig
from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountSnapshot,
    AccountType,
    OrderType,
    PendingOrder,
    Quote,
    Side,
)
from pipsync_lite.killswitch import KillState
from pipsync_lite.losses import DayStats
from pipsync_lite.risk import (
    RULES,
    AccountView,
    Inflight,
    Proposal,
    evaluate,
    loss_breaches,
)

from .factories import EURUSD, position, signal

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
D = Decimal
QUOTE = Quote(D("1.10000"), D("1.10010"))


def day(**fields: Any) -> DayStats:
    values: dict[str, Any] = {"day": "2026-11-20", "day_start": NOW.replace(hour=0), "currency": "USD", "balance": D(10_000)}
    values.update(fields)
    return DayStats(**values)


def judge(
    action: str = "buy", *, lots: str | None = "0.1", has_sl: bool = True, open_positions: int = 0,
    pending: int = 0, symbol: str = "EURUSD", positions: tuple = (), orders: int = 0,
    inflight: tuple[Inflight, ...] = (), stats: DayStats | None = None, kill: KillState | None = None,
    quote: Quote | None = QUOTE, sl_pips: str | None = None, pending_order: bool = False,
    flatten_first: bool = False, account_type: AccountType = AccountType.HEDGED, now: datetime = NOW,
    fields: dict[str, Any] | None = None, **limits: Any,
):  # fmt: skip
    sig = signal(action, symbol=symbol, **(fields or {}))
    proposal = Proposal(sig, symbol, D(lots) if lots else None, has_sl, pending, info=EURUSD, quote=quote,
                        pending_order=pending_order, sl_pips=D(sl_pips) if sl_pips else None,
                        flatten_first=flatten_first)  # fmt: skip
    account = AccountInfo(1, D(10_000), 2, "USD", D(100), account_type)
    held = positions or tuple(position(i) for i in range(open_positions))
    resting = tuple(PendingOrder(i, 1, Side.BUY, 100_000, OrderType.LIMIT) for i in range(orders))
    view = AccountView(AccountSnapshot(account, held, resting), inflight, stats, kill)
    return evaluate(proposal, view, RiskConfig(**limits), now)


WINDOWS = ({"days": "mon-fri", "start": "08:00", "end": "17:00"},)

REJECTIONS = [
    ({"kill_switch": True}, "kill_switch", "kill switch is on: entries are refused, exits still work"),
    ({"kill": KillState("max_daily_loss", "daily loss 600.00 USD >= max_daily_loss 500.00 USD", NOW,
                        NOW + timedelta(hours=12))},
     "kill_switch", ("kill switch engaged by max_daily_loss: daily loss 600.00 USD >= max_daily_loss 500.00 USD; "
     "entries are refused until 2026-11-21T00:00+00:00, exits still work")),
    ({"kill": KillState("cli", "engaged from the command line", NOW)}, "kill_switch",
     "kill switch engaged by the operator; entries are refused until `pipsync-lite kill off`, exits still work"),
    ({"symbol": "GBPUSD", "allowed_symbols": ("EURUSD", "XAUUSD")}, "allowed_symbols",
     "symbol GBPUSD is not in allowed_symbols [EURUSD, XAUUSD]"),
    ({"now": NOW.replace(hour=18), "trading_windows": WINDOWS}, "trading_windows",
     "outside trading_windows: Fri 18:00 UTC is not in mon-fri 08:00-17:00"),
    ({"now": NOW + timedelta(days=1), "trading_windows": WINDOWS, "timezone": "Europe/London"}, "trading_windows",
     "outside trading_windows: Sat 12:00 Europe/London is not in mon-fri 08:00-17:00"),
    ({"fields": {"time": NOW - timedelta(seconds=95)}, "max_signal_age_seconds": 60}, "max_signal_age_seconds",
     "age 95 s > max_signal_age_seconds 60 (time 2026-11-20T11:58:25Z)"),
    ({"fields": {"time": NOW + timedelta(seconds=120)}, "max_signal_age_seconds": 60}, "max_signal_age_seconds",
     "time 2026-11-20T12:02:00Z is 120 s in the future (> max_signal_age_seconds 60): check the sender's clock"),
    ({"require_time": True}, "require_time", "require_time: the alert has no time (e.g. TradingView {{timenow}})"),
    ({"stats": day(realized=D(-300), unrealized=D(-220)), "max_daily_loss": 500}, "max_daily_loss",
     "daily loss 520.00 USD >= max_daily_loss 500.00 USD (realized -300.00, unrealized -220.00)"),
    ({"stats": day(balance=D(9_800), realized=D(-200), unrealized=D(-100)), "max_daily_loss": "3%"}, "max_daily_loss",
     ("daily loss 300.00 USD >= max_daily_loss 3% of starting balance 10000.00 = 300.00 USD "
     "(realized -200.00, unrealized -100.00)")),
    ({"stats": day(realized=D(300), unrealized=D(-150), peak_equity=D(10_400)), "max_drawdown": "5%"}, "max_drawdown",
     ("drawdown 550.00 USD from peak equity 10400.00 >= max_drawdown 5% of peak equity 10400.00 = 520.00 USD "
     "(equity 9850.00)")),
    ({"stats": day(trades=5), "max_trades_per_day": 5}, "max_trades_per_day",
     "trades today 5 >= max_trades_per_day 5 (day 2026-11-20)"),
    ({"stats": day(consecutive_losses=3), "max_consecutive_losses": 3}, "max_consecutive_losses",
     "consecutive losses 3 >= max_consecutive_losses 3"),
    ({"max_daily_loss": 500}, "max_daily_loss",
     "max_daily_loss cannot be checked: the account balance is not known yet"),
    ({"lots": "5", "max_lots": D(2)}, "max_lots", "lots 5.00 > max_lots 2.00"),
    ({"lots": "0.015", "max_lots": D("0.01"), "default_lots": D("0.01")}, "max_lots", "lots 0.015 > max_lots 0.01"),
    ({"open_positions": 3, "max_open_positions": 3}, "max_open_positions", "positions 3 open >= max_open_positions 3"),
    ({"open_positions": 1, "pending": 2, "max_open_positions": 3}, "max_open_positions",
     "positions 1 open + 2 being opened >= max_open_positions 3"),
    ({"open_positions": 1, "inflight": (Inflight(2, Side.BUY),), "max_open_positions": 2}, "max_open_positions",
     "positions 1 open + 1 being opened >= max_open_positions 2"),
    ({"positions": (position(1), position(2, symbol_id=2)), "inflight": (Inflight(1, Side.SELL),),
      "max_positions_per_symbol": 2}, "max_positions_per_symbol",
     "positions on EURUSD 1 open + 1 being opened >= max_positions_per_symbol 2"),
    ({"positions": (position(1), position(2, "sell"), position(3)), "max_positions_per_direction": 2},
     "max_positions_per_direction", "positions buy on EURUSD 2 open >= max_positions_per_direction 2"),
    ({"pending_order": True, "orders": 2, "inflight": (Inflight(1, Side.BUY, pending_order=True),),
      "max_pending_orders": 3}, "max_pending_orders", "pending orders 2 resting + 1 being placed >= max_pending_orders 3"),
    ({"positions": (position(1, "sell"),), "allow_hedging": False}, "allow_hedging",
     "allow_hedging is false: EURUSD has 1 sell position(s) and this is a buy (send flatten_first: true to close them first)"),
    ({"has_sl": False, "require_sl": True}, "require_sl",
     "require_sl: the alert has no stop loss (sl, sl_pips or sl_pct)"),
    ({"sl_pips": "4.5", "min_sl_pips": 5}, "min_sl_pips", "sl 4.5 pips < min_sl_pips 5"),
    ({"sl_pips": "120", "max_sl_pips": 100}, "max_sl_pips", "sl 120 pips > max_sl_pips 100"),
    ({"quote": Quote(D("1.10000"), D("1.10032")), "max_spread_pips": 2}, "max_spread_pips",
     "spread 3.2 pips > max_spread_pips 2 (bid 1.10000, ask 1.10032)"),
    ({"quote": None, "max_spread_pips": 2}, "max_spread_pips", "max_spread_pips cannot be checked: no live quote from the broker"),
    ({"fields": {"signal_price": "1.09885"}, "max_deviation_pips": 5}, "max_deviation_pips",
     "deviation 12.5 pips > max_deviation_pips 5 (signal_price 1.09885, ask 1.10010)"),
    ({"action": "sell", "fields": {"signal_price": "1.10100"}, "max_deviation_pips": 5}, "max_deviation_pips",
     "deviation 10 pips > max_deviation_pips 5 (signal_price 1.10100, bid 1.10000)"),
]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "rule", "reason"), REJECTIONS, ids=[f"{r[1]}-{i}" for i, r in enumerate(REJECTIONS)])
def test_entry_rejections_name_the_rule_and_numbers(kwargs: dict, rule: str, reason: str) -> None:
    verdict = judge(**kwargs)
    assert (verdict.allowed, verdict.rule, verdict.reason) == (False, rule, reason)


ALLOWED = [
    {"lots": "2", "max_lots": D(2)},
    {"open_positions": 2, "max_open_positions": 3},
    {"inflight": (Inflight(1, Side.BUY, pending_order=True),), "open_positions": 2, "max_open_positions": 3},
    {"positions": (position(1), position(2, symbol_id=2)), "max_positions_per_symbol": 2},
    {"positions": (position(1), position(2, "sell")), "max_positions_per_direction": 2},
    {"orders": 5, "max_pending_orders": 1},  # a market entry rests nowhere
    {"positions": (position(1, "sell"),), "allow_hedging": False, "flatten_first": True},
    {"positions": (position(1, "sell"),), "allow_hedging": False, "account_type": AccountType.NETTED},
    {"positions": (position(1, "sell", symbol_id=2),), "allow_hedging": False},
    {"has_sl": True, "require_sl": True},
    {"sl_pips": "5", "min_sl_pips": 5, "max_sl_pips": 5},
    {"symbol": "eurusd", "allowed_symbols": ("EURUSD",)},
    {"now": NOW.replace(hour=16, minute=59), "trading_windows": WINDOWS},
    {"now": NOW.replace(hour=23), "trading_windows": ({"days": "fri", "start": "22:00", "end": "06:00"},)},
    {"now": NOW.replace(day=21, hour=5), "trading_windows": ({"days": "fri", "start": "22:00", "end": "06:00"},)},
    {"fields": {"time": NOW - timedelta(seconds=60)}, "max_signal_age_seconds": 60},
    {"max_signal_age_seconds": 60},  # no time and require_time false: passes
    {"stats": day(realized=D(-300), unrealized=D(-199)), "max_daily_loss": 500},
    {"stats": day(realized=D(600), unrealized=D(-400), peak_equity=D(10_600)), "max_daily_loss": 100},
    {"stats": day(trades=4, consecutive_losses=2), "max_trades_per_day": 5, "max_consecutive_losses": 3},
    {"quote": Quote(D("1.10000"), D("1.10020")), "max_spread_pips": 2},
    {"fields": {"signal_price": "1.10060"}, "max_deviation_pips": 5},
    {"kill": KillState("max_daily_loss", "x", NOW - timedelta(days=1), NOW)},  # ran out at the new day
    {},
]


@pytest.mark.parametrize("kwargs", ALLOWED)
def test_entries_within_limits_pass(kwargs: dict) -> None:
    verdict = judge(**kwargs)
    assert verdict.allowed, verdict.reason


@pytest.mark.parametrize("action", ["close", "close_long", "close_short"])
def test_exits_pass_every_rule_but_allowed_symbols(action: str) -> None:
    verdict = judge(
        action, lots=None, has_sl=False, open_positions=9, kill_switch=True, max_open_positions=1, require_sl=True,
        max_lots=D("0.01"), now=NOW.replace(hour=20), trading_windows=WINDOWS, require_time=True,
        kill=KillState("cli", "", NOW), max_daily_loss=1, max_spread_pips=0.1, quote=None,
        stats=day(realized=D(-5000), trades=99, consecutive_losses=9), max_trades_per_day=1, max_consecutive_losses=1,
        positions=(position(1, "sell"),), allow_hedging=False, max_positions_per_symbol=0,
    )  # fmt: skip
    assert verdict.allowed


def test_allowed_symbols_scopes_exits_too() -> None:
    verdict = judge("close", lots=None, symbol="GBPUSD", allowed_symbols=("EURUSD",))
    assert verdict.rule == "allowed_symbols"


def test_every_rule_is_named_after_its_yaml_key() -> None:
    keys = set(RiskConfig.model_fields)
    assert {rule.__name__ for rule in RULES} <= keys


def test_rules_can_be_skipped_by_name() -> None:
    stale = {"fields": {"time": NOW - timedelta(hours=1)}, "max_signal_age_seconds": 60}
    assert judge(**stale).rule == "max_signal_age_seconds"
    sig = signal("buy", time=NOW - timedelta(hours=1))
    proposal = Proposal(sig, "EURUSD", D("0.1"), True, info=EURUSD, quote=QUOTE)
    verdict = evaluate(proposal, AccountSnapshot(None), RiskConfig(max_signal_age_seconds=60), NOW,
                       skip={"max_signal_age_seconds"})  # fmt: skip
    assert verdict.allowed


def test_loss_breaches_lists_every_limit_the_day_breaks() -> None:
    stats = day(realized=D(-600), trades=3, consecutive_losses=3)
    breaches = loss_breaches(stats, RiskConfig(max_daily_loss=500, max_consecutive_losses=3, max_trades_per_day=10),
                             NOW, signal("buy"))  # fmt: skip
    assert [b.rule for b in breaches] == ["max_daily_loss", "max_consecutive_losses"]


def test_the_first_rejection_wins_in_a_fixed_order() -> None:
    verdict = judge(lots="5", max_lots=D(1), open_positions=9, max_open_positions=1, kill_switch=True)
    assert verdict.rule == "kill_switch"
    assert judge(lots="5", max_lots=D(1), open_positions=9, max_open_positions=1).rule == "max_lots"


@settings(max_examples=300, deadline=None)
@given(
    lots=st.decimals(min_value=D("0.01"), max_value=D(1000), places=2),
    max_lots=st.decimals(min_value=D("0.01"), max_value=D(100), places=2),
    open_positions=st.integers(0, 20),
    pending=st.integers(0, 20),
    inflight=st.lists(st.tuples(st.integers(1, 3), st.sampled_from([Side.BUY, Side.SELL]), st.booleans()), max_size=8),
    max_open=st.integers(0, 20),
)
def test_no_entry_passes_above_max_lots_or_beyond_max_open_positions(
    lots: Decimal, max_lots: Decimal, open_positions: int, pending: int, inflight: list, max_open: int
) -> None:
    flying = tuple(Inflight(s, side, p) for s, side, p in inflight)
    verdict = judge(lots=str(lots), open_positions=open_positions, pending=pending, inflight=flying,
                    max_lots=max_lots, max_open_positions=max_open, default_lots=min(max_lots, D("0.01")))  # fmt: skip
    if verdict.allowed:
        assert lots <= max_lots
        opening = sum(1 for i in flying if not i.pending_order)
        assert open_positions + pending + opening < max_open
