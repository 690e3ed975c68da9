"""The base guard: each rule, table-driven; rejections carry the rule and the numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipsync_lite.config import RiskConfig
from pipsync_lite.ctrader.model import AccountSnapshot
from pipsync_lite.risk import Proposal, evaluate

from .factories import position, signal

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def judge(action: str = "buy", *, lots: str | None = "0.1", has_sl: bool = True, open_positions: int = 0,
          pending: int = 0, symbol: str = "EURUSD", **limits: object):
    sig = signal(action, symbol=symbol)
    proposal = Proposal(sig, symbol, Decimal(lots) if lots else None, has_sl, pending)
    snapshot = AccountSnapshot(None, tuple(position(i) for i in range(open_positions)))
    return evaluate(proposal, snapshot, RiskConfig(**limits), NOW)


@pytest.mark.parametrize(
    ("kwargs", "rule", "reason"),
    [
        ({"kill_switch": True}, "kill_switch", "kill switch is on: entries are refused, exits still work"),
        ({"lots": "5", "max_lots": Decimal(2)}, "max_lots", "lots 5.00 > max_lots 2.00"),
        ({"lots": "0.015", "max_lots": Decimal("0.01"), "default_lots": Decimal("0.01")}, "max_lots",
         "lots 0.015 > max_lots 0.01"),
        ({"open_positions": 3, "max_open_positions": 3}, "max_open_positions",
         "positions 3 open >= max_open_positions 3"),
        ({"open_positions": 1, "pending": 2, "max_open_positions": 3}, "max_open_positions",
         "positions 1 open + 2 being opened >= max_open_positions 3"),
        ({"has_sl": False, "require_sl": True}, "require_sl",
         "require_sl: the alert has no stop loss (sl, sl_pips or sl_pct)"),
        ({"symbol": "GBPUSD", "allowed_symbols": ("EURUSD", "XAUUSD")}, "allowed_symbols",
         "symbol GBPUSD is not in allowed_symbols [EURUSD, XAUUSD]"),
    ],
)
def test_entry_rejections_name_the_rule_and_numbers(kwargs: dict, rule: str, reason: str) -> None:
    verdict = judge(**kwargs)
    assert (verdict.allowed, verdict.rule, verdict.reason) == (False, rule, reason)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lots": "2", "max_lots": Decimal(2)},
        {"open_positions": 2, "max_open_positions": 3},
        {"has_sl": True, "require_sl": True},
        {"symbol": "eurusd", "allowed_symbols": ("EURUSD",)},
        {},
    ],
)
def test_entries_within_limits_pass(kwargs: dict) -> None:
    assert judge(**kwargs).allowed


@pytest.mark.parametrize("action", ["close", "close_long", "close_short"])
def test_exits_pass_the_kill_switch_and_exposure_limits(action: str) -> None:
    verdict = judge(action, lots=None, has_sl=False, open_positions=9, kill_switch=True,
                    max_open_positions=1, require_sl=True, max_lots=Decimal("0.01"))
    assert verdict.allowed


def test_allowed_symbols_scopes_exits_too() -> None:
    verdict = judge("close", lots=None, symbol="GBPUSD", allowed_symbols=("EURUSD",))
    assert verdict.rule == "allowed_symbols"


@given(
    lots=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
    max_lots=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
    open_positions=st.integers(0, 20),
    pending=st.integers(0, 20),
    max_open=st.integers(0, 20),
)
def test_no_entry_passes_above_max_lots_or_beyond_max_open_positions(
    lots: Decimal, max_lots: Decimal, open_positions: int, pending: int, max_open: int
) -> None:
    verdict = judge(lots=str(lots), open_positions=open_positions, pending=pending,
                    max_lots=max_lots, max_open_positions=max_open, default_lots=min(max_lots, Decimal("0.01")))
    if verdict.allowed:
        assert lots <= max_lots
        assert open_positions + pending < max_open
