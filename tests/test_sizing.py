"""Sizing and the entry decision: precedence, pip values across currencies, rounding down, clamp."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipsync_lite.config import RiskConfig
from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import (
    AccountInfo,
    AccountSnapshot,
    AccountType,
    Quote,
    SymbolInfo,
)
from pipsync_lite.decision import (
    Market,
    apply_stop_defaults,
    context_from_json,
    context_json,
    judge_entry,
)
from pipsync_lite.losses import DayStats
from pipsync_lite.risk import AccountView, Inflight
from pipsync_lite.sizing import conversion_rate, find_conversion, pip_value, size_entry

from .factories import EURUSD, USDJPY, position, signal

D = Decimal
ONE = Decimal(1)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FX = {"lot_size": 10_000_000, "min_volume": 100_000, "max_volume": 10_000_000_000, "step_volume": 100_000}
GBPUSD = SymbolInfo(2, "GBPUSD", 5, 4, **FX, base_asset="GBP", quote_asset="USD")
EURGBP = SymbolInfo(9, "EURGBP", 5, 4, **FX, base_asset="EUR", quote_asset="GBP")
XAUUSD = SymbolInfo(41, "XAUUSD", 2, 1, 10_000, 100, 10_000_000, 100, base_asset="XAU", quote_asset="USD")
US500 = SymbolInfo(10015, "US500", 2, 0, 100, 10, 1_000_000, 10, base_asset="US500", quote_asset="USD")
ALL = (EURUSD, GBPUSD, EURGBP, USDJPY, XAUUSD, US500)


@pytest.mark.parametrize(
    ("symbol", "rate", "value"),
    [
        (EURUSD, D(1), D(10)),  # 0.0001 × 100,000 units
        (XAUUSD, D(1), D(10)),  # 0.1 × 100 oz
        (US500, D(1), D(1)),  # 1 point × 1 contract
        (USDJPY, 1 / D("151.5"), D(1000) / D("151.5")),  # 1,000 JPY per pip, in USD
        (EURGBP, D("1.265"), D("12.65")),  # 10 GBP per pip, at GBPUSD 1.265
    ],
)
def test_pip_value_of_one_lot_in_the_account_currency(symbol: SymbolInfo, rate: Decimal, value: Decimal) -> None:
    assert pip_value(symbol, rate) == value


def test_conversion_pairs_are_found_direct_or_inverse() -> None:
    gbp = find_conversion("GBP", "USD", ALL)
    jpy = find_conversion("JPY", "USD", ALL)
    assert gbp is not None and (gbp.symbol.name, gbp.inverse) == ("GBPUSD", False)
    assert jpy is not None and (jpy.symbol.name, jpy.inverse) == ("USDJPY", True)
    assert find_conversion("CHF", "USD", ALL) is None
    assert conversion_rate(jpy, Quote(D("151.4"), D("151.6"))) == 1 / D("151.5")
    assert conversion_rate(gbp, Quote(D("1.2649"), D("1.2651"))) == D("1.2650")
    assert conversion_rate(gbp, Quote(None, D(1))) is None


def size(limits: dict[str, Any] | None = None, *, sl_pips: str | None = "27", balance: str = "10000",
         rate: Decimal | None = ONE, symbol: SymbolInfo = EURUSD, **fields: Any):  # fmt: skip
    return size_entry(signal("buy", **fields), symbol, RiskConfig(**(limits or {})), balance=D(balance),
                      currency="USD", sl_pips=D(sl_pips) if sl_pips else None, rate=rate)  # fmt: skip


@pytest.mark.parametrize(
    ("limits", "fields", "lots", "source"),
    [
        ({"risk_percent": 1, "default_lots": "0.05"}, {"lots": "0.2", "risk": D(2)}, D("0.2"), "lots"),
        ({"risk_percent": 1}, {"risk": D(2)}, D("0.74"), "risk"),  # 200 / (27 × 10) = 0.7407
        ({"risk_percent": 1}, {}, D("0.37"), "risk_percent"),  # 100 / 270 = 0.3703 → down to 0.37
        ({"risk_money": 50}, {}, D("0.18"), "risk_money"),  # 50 / 270 = 0.185 → 0.18
        ({"default_lots": "0.05"}, {}, D("0.05"), "default_lots"),
    ],
)
def test_sizing_precedence_and_rounding_down(limits: dict, fields: dict, lots: Decimal, source: str) -> None:
    sized = size(limits, **fields)
    assert (sized.lots, sized.source, sized.rule) == (lots, source, None)


def test_risk_sizing_converts_the_pip_value_through_the_conversion_pair() -> None:
    # USDJPY: 1,000 JPY a pip = 6.6007 USD at 151.5; 100 USD over 20 pips → 0.7575 → 0.75 lots.
    sized = size({"risk_money": 100}, sl_pips="20", symbol=USDJPY, rate=1 / D("151.5"))
    assert sized.lots == D("0.75")
    assert sized.notes == ("lots 0.75 sized by risk_money 100.00 USD: 100.00 USD at 20 pips × 6.60 USD per pip per lot",)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"sl_pips": None}, "sizing by risk_percent needs a stop loss: give sl, sl_pips or sl_pct, or set risk.default_sl_pips"),
        ({"rate": None, "symbol": USDJPY}, "no live quote converts JPY into USD"),
        ({"sl_pips": "2000"}, ("1% of balance 10000.00 USD: 100.00 USD at 2000 pips × 10.00 USD per pip per lot "
                               "= 0.005 lots, below the minimum 0.01 lots of EURUSD")),
    ],
)
def test_risk_sizing_refusals_carry_the_numbers(kwargs: dict, reason: str) -> None:
    sized = size({"risk_percent": 1}, **kwargs)
    assert (sized.lots, sized.rule, sized.reason) == (None, "risk_sizing", reason)


def test_max_lots_clamp_cuts_any_size_with_a_note_and_reject_leaves_it_to_the_guard() -> None:
    clamped = size({"max_lots": 1, "on_excess": "clamp"}, lots="5")
    assert clamped.lots == D(1) and clamped.notes == ("lots 5.00 clamped to max_lots 1.00",)
    by_risk = size({"max_lots": "0.5", "on_excess": "clamp", "risk_percent": 5})
    assert by_risk.lots == D("0.5") and by_risk.notes[-1] == "lots 1.85 clamped to max_lots 0.50"
    assert size({"max_lots": 1}, lots="5").lots == D(5)  # the max_lots rule refuses it


def test_clamp_below_the_symbols_minimum_is_refused() -> None:
    sized = size({"max_lots": "0.005", "on_excess": "clamp", "default_lots": "0.001"}, lots="1")
    assert sized.rule == "max_lots" and "below the minimum size of EURUSD" in sized.reason


@pytest.mark.parametrize(
    ("lots", "volume"),
    [("0.379", 3_700_000), ("0.01", 100_000), ("0.0099", 0), ("0", 0), ("2", 20_000_000), ("0.123456789", 1_200_000)],
)
def test_floor_volume_rounds_down_to_the_step(lots: str, volume: int) -> None:
    assert units.floor_volume(D(lots), EURUSD) == volume


def test_floor_volume_respects_odd_steps() -> None:
    assert units.floor_volume(D("0.37"), XAUUSD) == 3_700
    assert units.floor_volume(D("1.25"), US500) == 120  # step 0.1 contract


# -- the whole entry decision ------------------------------------------------------------------

MARKET = Market(EURUSD, Quote(D("1.10000"), D("1.10010")), D(10_000), "USD", D(1))
ACCOUNT = AccountInfo(1, D(10_000), 2, "USD", D(100), AccountType.HEDGED)


def view(*positions_: Any, inflight: tuple[Inflight, ...] = (), day: DayStats | None = None) -> AccountView:
    return AccountView(AccountSnapshot(ACCOUNT, tuple(positions_)), inflight, day)


def test_stop_defaults_apply_only_when_the_alert_has_none() -> None:
    limits = RiskConfig(default_sl_pips=20, default_tp_pips=40)
    assert apply_stop_defaults(signal("buy"), limits).sl_pips == D(20)
    assert apply_stop_defaults(signal("buy"), limits).tp_pips == D(40)
    kept = apply_stop_defaults(signal("buy", sl="1.09", tp_pct="1"), limits)
    assert (kept.sl, kept.sl_pips, kept.tp_pips) == (D("1.09"), None, None)


def test_default_sl_satisfies_require_sl_and_sizes_by_risk() -> None:
    judged = judge_entry(signal("buy"), MARKET, view(), RiskConfig(require_sl=True, default_sl_pips=25, risk_percent=1), NOW)
    assert judged.status == "accepted" and judged.lots == D("0.4")  # 100 / (25 × 10)
    assert judged.plan is not None and judged.plan.request.relative_stop_loss == 250


def test_absolute_sl_distance_is_measured_from_the_quote_the_order_will_fill_at() -> None:
    # A sell fills at the bid 1.10000; SL 1.10250 is 25 pips away.
    judged = judge_entry(signal("sell", sl="1.10250"), MARKET, view(), RiskConfig(risk_money=50), NOW)
    assert judged.lots == D("0.2")


def test_pending_order_distance_is_measured_from_its_price() -> None:
    judged = judge_entry(signal("buy", price="1.09000", sl="1.08800"), MARKET, view(), RiskConfig(risk_money=40), NOW)
    assert judged.lots == D("0.2") and judged.plan is not None and judged.plan.request.order_type.is_pending


def test_clamp_note_reaches_the_answer_and_manual_approval_waits() -> None:
    limits = RiskConfig(max_lots=1, on_excess="clamp", manual_approval=True)
    judged = judge_entry(signal("buy", lots="3"), MARKET, view(), limits, NOW)
    assert (judged.status, judged.lots, judged.notes) == ("pending_approval", D(1), ("lots 3.00 clamped to max_lots 1.00",))
    again = judge_entry(signal("buy", lots="3"), MARKET, view(), limits, NOW, skip={"manual_approval"})
    assert again.status == "accepted"


def test_guard_before_sizing_answers_first() -> None:
    judged = judge_entry(signal("buy"), MARKET, view(), RiskConfig(kill_switch=True, risk_percent=1), NOW)
    assert (judged.status, judged.rule) == ("rejected", "kill_switch")
    judged = judge_entry(signal("buy"), MARKET, view(), RiskConfig(risk_percent=1), NOW)
    assert (judged.status, judged.rule) == ("rejected", "risk_sizing")


def test_wrong_side_stop_is_invalid_and_off_step_size_is_rejected() -> None:
    assert judge_entry(signal("buy", sl="1.2"), MARKET, view(), RiskConfig(), NOW).field == "sl"
    assert judge_entry(signal("buy", lots="0.015"), MARKET, view(), RiskConfig(), NOW).rule == "volume"


def test_context_round_trips_through_json() -> None:
    day = DayStats("2026-11-20", NOW.replace(hour=0), "USD", D(10_000), D(-5), D(2), 3, 1, D(10_010))
    original = view(position(7, "sell"), inflight=(Inflight(1, None, True),), day=day)
    market, back = context_from_json(context_json(MARKET, original))
    assert market == MARKET and back.day == day and back.inflight == original.inflight
    assert [(p.symbol_id, p.side, p.volume) for p in back.snapshot.positions] == [(1, "sell", 1_000_000)]
    assert back.snapshot.account is not None and back.snapshot.account.account_type is AccountType.HEDGED


@settings(max_examples=300, deadline=None)
@given(
    lots=st.one_of(st.none(), st.decimals(min_value=D("0.01"), max_value=D(500), places=2)),
    risk=st.one_of(st.none(), st.decimals(min_value=D("0.01"), max_value=D(100), places=2)),
    risk_percent=st.one_of(st.none(), st.decimals(min_value=D("0.01"), max_value=D(100), places=2)),
    balance=st.decimals(min_value=D(1), max_value=D(10_000_000), places=2),
    sl_pips=st.decimals(min_value=D("0.1"), max_value=D(500), places=1),
    max_lots=st.decimals(min_value=D("0.01"), max_value=D(50), places=2),
    on_excess=st.sampled_from(["reject", "clamp"]),
    held=st.integers(0, 12),
    flying=st.integers(0, 4),
    max_open=st.integers(0, 10),
)
def test_no_input_sends_more_than_max_lots_or_opens_beyond_max_open_positions(
    lots: Decimal | None, risk: Decimal | None, risk_percent: Decimal | None, balance: Decimal, sl_pips: Decimal,
    max_lots: Decimal, on_excess: str, held: int, flying: int, max_open: int,
) -> None:  # fmt: skip
    limits = RiskConfig(max_lots=max_lots, on_excess=on_excess, risk_percent=risk_percent, max_open_positions=max_open,
                        default_lots=min(max_lots, D("0.01")))  # fmt: skip
    market = Market(EURUSD, MARKET.quote, balance, "USD", D(1))
    account = view(*(position(i) for i in range(held)), inflight=tuple(Inflight(1, None) for _ in range(flying)))
    judged = judge_entry(signal("buy", lots=lots, risk=risk, sl_pips=sl_pips), market, account, limits, NOW)
    if judged.passed:
        assert judged.plan is not None and judged.lots is not None
        assert judged.lots <= max_lots
        assert judged.plan.request.volume <= units.lots_to_volume(max_lots, EURUSD) if max_lots >= D("0.01") else True
        assert held + flying < max_open


# -- entries that close first: reverse, flatten_first, a netted account's netting ----------------


def test_reverse_reopens_the_closed_volume_cut_to_max_lots_under_clamp() -> None:
    held = view(position(1, "buy", volume=30_000_000))  # a 3-lot long
    judged = judge_entry(signal("reverse"), MARKET, held, RiskConfig(max_lots=1, on_excess="clamp"), NOW)
    assert judged.status == "accepted" and judged.lots == D(1)
    assert judged.notes[0] == "lots 3.00 clamped to max_lots 1.00"
    assert judged.plan is not None and judged.plan.request.side == "sell" and len(judged.plan.closes_first) == 1
    refused = judge_entry(signal("reverse"), MARKET, held, RiskConfig(max_lots=1), NOW)
    assert (refused.status, refused.reason) == ("rejected", "lots 3.00 > max_lots 1.00")
    sized = judge_entry(signal("reverse", risk=D(1), sl_pips="20"), MARKET, held, RiskConfig(risk_percent=5), NOW)
    assert sized.lots == D("0.5")  # the alert's risk: 100 USD over 20 pips; risk_percent does not apply


def test_positions_an_entry_closes_first_do_not_count_against_it() -> None:
    short = view(position(1, "sell"))
    limits = RiskConfig(max_open_positions=1, allow_hedging=False)
    assert judge_entry(signal("buy"), MARKET, short, limits, NOW).rule == "max_open_positions"
    hedge = judge_entry(signal("buy"), MARKET, view(position(1, "sell")), RiskConfig(allow_hedging=False), NOW)
    assert hedge.rule == "allow_hedging"
    judged = judge_entry(signal("buy", flatten_first=True), MARKET, short, limits, NOW)
    assert judged.status == "accepted" and judged.plan is not None and len(judged.plan.closes_first) == 1
    flattening = RiskConfig(max_open_positions=1, allow_hedging=False, flatten_first=True)
    assert judge_entry(signal("buy"), MARKET, short, flattening, NOW).status == "accepted"
    assert judge_entry(signal("reverse"), MARKET, short, RiskConfig(max_open_positions=1), NOW).status == "accepted"


def test_a_netted_buy_that_only_reduces_a_short_is_an_exit_for_the_entry_limits() -> None:
    netted = AccountInfo(1, D(10_000), 2, "USD", D(100), AccountType.NETTED)
    short = AccountView(AccountSnapshot(netted, (position(1, "sell", volume=2_000_000),)))
    judged = judge_entry(signal("buy", lots="0.1"), MARKET, short, RiskConfig(max_open_positions=1), NOW)
    assert judged.status == "accepted" and judged.lots == D("0.1") and not hasattr(judged.plan, "request")
    killed = judge_entry(signal("buy", lots="0.1"), MARKET, short, RiskConfig(kill_switch=True), NOW)
    assert killed.status == "accepted" and not hasattr(killed.plan, "request")  # a close, not an order
    flipping = judge_entry(signal("buy", lots="0.3"), MARKET, short, RiskConfig(kill_switch=True), NOW)
    assert flipping.rule == "kill_switch"  # would open a long: an entry
    scoped = RiskConfig(kill_switch=True, allowed_symbols=("GBPUSD",))
    assert judge_entry(signal("buy", lots="0.1"), MARKET, short, scoped, NOW).rule == "allowed_symbols"
