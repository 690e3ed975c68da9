"""Trading windows and the trading day: time zones, past-midnight windows, DST, validation."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pipsync_lite.config import parse_config
from pipsync_lite.errors import ConfigError
from pipsync_lite.risk_config import LossLimit, RiskConfig, TradingWindow
from pipsync_lite.windows import (
    describe_local,
    next_trading_day_start,
    open_window,
    trading_day_label,
    trading_day_start,
)

from .test_config import MINIMAL

UTC_ZONE = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


SESSION = TradingWindow(days="mon-fri", start="08:00", end="17:00")
NIGHT = TradingWindow(days=["fri"], start="22:00", end="06:00")


@pytest.mark.parametrize(
    ("window", "moment", "zone", "inside"),
    [
        (SESSION, at(2026, 11, 20, 8, 0), UTC_ZONE, True),  # Friday, start included
        (SESSION, at(2026, 11, 20, 17, 0), UTC_ZONE, False),  # end excluded
        (SESSION, at(2026, 11, 21, 12, 0), UTC_ZONE, False),  # Saturday
        (SESSION, at(2026, 7, 10, 7, 30), LONDON, True),  # 08:30 BST
        (SESSION, at(2026, 12, 11, 7, 30), LONDON, False),  # 07:30 GMT
        (NIGHT, at(2026, 11, 20, 23, 0), UTC_ZONE, True),  # Friday night
        (NIGHT, at(2026, 11, 21, 5, 59), UTC_ZONE, True),  # Saturday morning belongs to Friday
        (NIGHT, at(2026, 11, 21, 22, 30), UTC_ZONE, False),  # Saturday night is not listed
        (NIGHT, at(2026, 11, 20, 5, 0), UTC_ZONE, False),  # Friday morning belongs to Thursday
        (TradingWindow(days="sun", start="23:00", end="24:00"), at(2026, 11, 22, 23, 59), UTC_ZONE, True),
    ],
)
def test_windows(window: TradingWindow, moment: datetime, zone: ZoneInfo, inside: bool) -> None:
    assert (open_window(moment, (window,), zone) is not None) is inside


def test_no_windows_means_always_open_and_several_windows_add_up() -> None:
    assert open_window(at(2026, 11, 21, 3, 0), (), UTC_ZONE) is not None
    both = (SESSION, TradingWindow(days="sat", start="10:00", end="12:00"))
    assert open_window(at(2026, 11, 21, 11, 0), both, UTC_ZONE) == both[1]


def test_moments_are_described_in_the_configured_zone() -> None:
    assert describe_local(at(2026, 11, 21, 10, 15), LONDON) == "Sat 10:15 Europe/London"


@pytest.mark.parametrize(
    ("moment", "boundary", "zone", "start", "following", "label"),
    [
        (at(2026, 11, 20, 12), time(0), UTC_ZONE, at(2026, 11, 20), at(2026, 11, 21), "2026-11-20"),
        (at(2026, 11, 20, 21), time(22), UTC_ZONE, at(2026, 11, 19, 22), at(2026, 11, 20, 22), "2026-11-19"),
        # New York 17:00, across the start of daylight saving time (8 March 2026).
        (at(2026, 3, 8, 20), time(17), NEW_YORK, at(2026, 3, 7, 22), at(2026, 3, 8, 21), "2026-03-07"),
        (at(2026, 3, 8, 21, 30), time(17), NEW_YORK, at(2026, 3, 8, 21), at(2026, 3, 9, 21), "2026-03-08"),
    ],
)
def test_trading_day(moment: datetime, boundary: time, zone: ZoneInfo, start: datetime, following: datetime, label: str) -> None:
    assert trading_day_start(moment, boundary, zone) == start
    assert next_trading_day_start(moment, boundary, zone) == following
    assert trading_day_label(moment, boundary, zone) == label


def test_window_and_limit_syntax() -> None:
    window = TradingWindow(days=["mon-wed", "fri"], start="8:30", end="24:00")
    assert window.days == (0, 1, 2, 4) and window.start == time(8, 30) and window.describe() == "mon,tue,wed,fri 08:30-24:00"
    assert TradingWindow(days="sat-mon").days == (0, 5, 6)
    assert TradingWindow(start=510, end=1020).describe() == "mon-fri 08:30-17:00"  # YAML 1.1 sexagesimal 08:30
    assert RiskConfig(max_daily_loss="2.5%").max_daily_loss == LossLimit(Decimal("2.5"), True)


@pytest.mark.parametrize(
    ("yaml", "error"),
    [
        ("risk: {trading_windows: [{days: [funday]}]}", "risk.trading_windows.0.days: unknown day 'funday'; use mon, tue, wed, thu, fri, sat, sun"),
        ("risk: {trading_windows: [{start: '25:00'}]}", "risk.trading_windows.0.start: must be a time of day HH:MM (24-hour clock)"),
        ("risk: {trading_windows: [{start: '09:00', end: '09:00'}]}", "risk.trading_windows.0: start 09:00 equals end: the window would be empty"),
        ("risk: {timezone: Mars/Olympus}", "risk.timezone: unknown time zone (use an IANA name such as Europe/London or America/New_York)"),
        ("risk: {max_daily_loss: 150%}", "risk.max_daily_loss: a percentage must be <= 100%"),
        ("risk: {max_drawdown: lots}", "risk.max_drawdown: must be an amount (500) or a percentage ('2%')"),
        ("risk: {on_excess: shrink}", "risk.on_excess: must be one of 'reject' or 'clamp'"),
        ("risk: {risk_percent: 1, risk_money: 10}", "risk: give risk_percent or risk_money, not both"),
        ("risk: {min_sl_pips: 20, max_sl_pips: 10}", "risk: min_sl_pips 20 > max_sl_pips 10: every entry would be rejected"),
        ("risk: {symbols: {XAUUSD: {max_lot: 1}}}", "risk.symbols.XAUUSD.max_lot: unknown key (did you mean max_lots?)"),
        ("risk: {max_lots: 1, symbols: {XAUUSD: {default_lots: 2}}}", "risk.symbols: XAUUSD: default_lots 2 > max_lots 1: every default-sized entry would be rejected"),
        ("risk: {symbols: {XAUUSD: {symbols: {}}}}", "risk.symbols.XAUUSD.symbols: unknown key"),
        ("server: {rate_limit: {per_minute: 0}}", "server.rate_limit.per_minute: must be > 0, got 0"),
    ],
)
def test_configuration_errors_name_the_key(yaml: str, error: str) -> None:
    text = MINIMAL + yaml if not yaml.startswith("server") else MINIMAL.replace(
        "server: {webhook_token: a-long-random-webhook-token}",
        "server: {webhook_token: a-long-random-webhook-token, rate_limit: {per_minute: 0}}",
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, environ={})
    assert any(e.startswith(error) for e in info.value.errors), info.value.errors


def test_symbol_overrides_replace_only_what_they_set() -> None:
    config = parse_config(MINIMAL + """
risk:
  risk_percent: 1
  max_lots: 2
  trading_windows: [{days: mon-fri, start: "08:00", end: "17:00"}]
  symbols:
    xauusd: {risk_money: 25, max_lots: 0.5, trading_windows: []}
""", environ={})  # fmt: skip
    gold, euro = config.risk.for_symbol("XAUUSD"), config.risk.for_symbol("EURUSD")
    assert (gold.risk_percent, gold.risk_money, gold.max_lots, gold.trading_windows) == (None, 25, 0.5, ())
    assert (euro.risk_percent, euro.max_lots, len(euro.trading_windows)) == (1, 2, 1)
    assert config.risk.for_symbol("XauUsd") is gold and config.risk.for_symbol(None) is config.risk
