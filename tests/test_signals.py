"""Alert parsing: the three dialects, every validation rule, times, and a fuzzing property."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipsync_lite.ctrader.model import OrderType, Side
from pipsync_lite.dialects import ALIASES, FIELD_NAMES
from pipsync_lite.errors import SignalError
from pipsync_lite.signal_model import Action, Dialect, MarketPosition, Signal
from pipsync_lite.signals import parse_signal

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
D = Decimal


def parse(body: str | bytes) -> Signal:
    return parse_signal(body.encode() if isinstance(body, str) else body, NOW)


def fails(body: str | bytes) -> SignalError:
    with pytest.raises(SignalError) as caught:
        parse(body)
    return caught.value


def check(signal: Signal, expected: dict[str, object]) -> None:
    actual = {name: getattr(signal, name) for name in expected}
    assert actual == expected


# --- JSON (PipSync's contract and ours), after TradingView expanded its placeholders ----------

JSON_CASES = [
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","lots":0.1,"sl":1.0950,"tp":1.1100}',
        {"action": Action.BUY, "symbol": "EURUSD", "lots": D("0.1"), "sl": D("1.0950"),
         "tp": D("1.1100"), "price": None, "order_type": None, "dialect": Dialect.JSON},
        id="pipsync-market-buy",
    ),
    pytest.param(
        '{"action":"BUY","symbol":"EURUSD","price":0,"sl":0,"tp":0}',
        {"action": Action.BUY, "price": None, "sl": None, "tp": None},
        id="zero-price-is-market-zero-stops-are-none",
    ),
    pytest.param(
        '{"action":"Sell","symbol":"GBPUSD","price":"1.25103","sl":"1.2600","tp":"1.2400"}',
        {"action": Action.SELL, "price": D("1.25103"), "order_type": None, "sl": D("1.2600")},
        id="numeric-strings-pending-sell",
    ),
    pytest.param(
        '{"action":"buy","ticker":"FX:EURUSD","contracts":"100000","signal_price":"1.10523",'
        '"time":"2024-05-01T11:59:58Z","id":"Long-2024-05-01T11:59:58Z","comment":"ema cross"}',
        {"symbol": "FX:EURUSD", "lots": D("100000"), "signal_price": D("1.10523"),
         "time": datetime(2024, 5, 1, 11, 59, 58, tzinfo=UTC),
         "id": "Long-2024-05-01T11:59:58Z", "comment": "ema cross"},
        id="tradingview-strategy-template",
    ),
    pytest.param(
        '{"action":"sell","ticker":"EURUSD","qty":"1","market_position":"flat","sl":"1.2",'
        '"price":"1.1"}',
        {"action": Action.CLOSE, "lots": None, "market_position": MarketPosition.FLAT,
         "sl": None, "price": None, "notes": (
             "ignored for close: price, sl",
             "ignored at market_position flat: lots (every position of the symbol is closed)")},
        id="strategy-exit-to-flat-is-close",
    ),
    pytest.param(
        '{"action":"sell","symbol":"EURUSD","lots":"0","market_position":"flat"}',
        {"action": Action.CLOSE, "lots": None},
        id="flat-with-market-position-size-0",
    ),
    pytest.param(
        '{"market_position":"flat","symbol":"EURUSD"}',
        {"action": Action.CLOSE},
        id="flat-without-action",
    ),
    pytest.param(
        '{"action":"flat","symbol":"EURUSD"}', {"action": Action.CLOSE}, id="action-flat"
    ),
    pytest.param(
        '{"action":"sell","symbol":"EURUSD","lots":"0.5","market_position":"long"}',
        {"action": Action.CLOSE_LONG, "lots": D("0.5")},
        id="sell-leaving-long-is-partial-exit",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","lots":"0.5","market_position":"short"}',
        {"action": Action.CLOSE_SHORT, "lots": D("0.5")},
        id="buy-leaving-short-is-partial-exit",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","market_position":"long"}',
        {"action": Action.BUY, "market_position": MarketPosition.LONG},
        id="buy-leaving-long-is-buy",
    ),
    pytest.param(
        '{"action":"close","symbol":"EURUSD","percent":50}',
        {"action": Action.CLOSE, "percent": D("50")},
        id="partial-close-percent",
    ),
    pytest.param('{"action":"close_all"}', {"action": Action.CLOSE_ALL, "symbol": None},
                 id="close-all-account"),
    pytest.param('{"action":"Close-Long","symbol":"EURUSD"}', {"action": Action.CLOSE_LONG},
                 id="action-spelling-tolerant"),
    pytest.param('{"action":"cancel_all","symbol":"EURUSD"}',
                 {"action": Action.CANCEL_ALL, "symbol": "EURUSD"}, id="cancel-all-symbol"),
    pytest.param('{"action":"cancel","order_id":"123456"}',
                 {"action": Action.CANCEL, "order_id": 123456, "symbol": None},
                 id="cancel-one-order"),
    pytest.param('{"action":"modify","symbol":"EURUSD","sl":1.09}',
                 {"action": Action.MODIFY, "sl": D("1.09"), "tp": None}, id="modify-sl"),
    pytest.param('{"action":"modify","symbol":"EURUSD","order_id":7,"price":1.1}',
                 {"action": Action.MODIFY, "price": D("1.1"), "order_id": 7},
                 id="modify-pending-price"),
    pytest.param('{"action":"breakeven","symbol":"EURUSD","offset_pips":2}',
                 {"action": Action.BREAKEVEN, "offset_pips": D("2")}, id="breakeven"),
    pytest.param('{"action":"breakeven","symbol":"EURUSD","offset_pips":0}',
                 {"offset_pips": D("0")}, id="breakeven-offset-zero"),
    pytest.param(
        '{"action":"reverse","symbol":"EURUSD","lots":1,"sl_pips":20,"trailing":"yes"}',
        {"action": Action.REVERSE, "lots": D("1"), "sl_pips": D("20"), "trailing": True},
        id="reverse",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","order_type":"market","price":"1.10523",'
        '"max_slippage_pips":2}',
        {"order_type": OrderType.MARKET, "price": None, "signal_price": D("1.10523"),
         "max_slippage_pips": D("2")},
        id="market-price-is-signal-price",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","order_type":"market_range","signal_price":1.1,'
        '"max_slippage_pips":1.5}',
        {"order_type": OrderType.MARKET_RANGE, "max_slippage_pips": D("1.5")},
        id="market-range",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","order_type":"LIMIT","price":1.09,"tif":"GTD",'
        '"expiry":3600}',
        {"order_type": OrderType.LIMIT, "price": D("1.09"), "tif": "gtd",
         "expiry": NOW + timedelta(hours=1)},
        id="limit-gtd-relative-expiry",
    ),
    pytest.param(
        '{"action":"sell","symbol":"EURUSD","order_type":"stop","price":1.08,'
        '"expiry":"2024-05-02T00:00:00+02:00"}',
        {"order_type": OrderType.STOP, "expiry": datetime(2024, 5, 1, 22, 0, tzinfo=UTC),
         "tif": None},
        id="stop-absolute-expiry",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","order_type":"stop_limit","price":1.11,'
        '"limit_price":1.1105,"sl":1.10,"tp":1.13}',
        {"order_type": OrderType.STOP_LIMIT, "price": D("1.11"), "limit_price": D("1.1105")},
        id="stop-limit",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","order_type":"stoplimit","price":1.11,'
        '"max_slippage_pips":3}',
        {"order_type": OrderType.STOP_LIMIT, "limit_price": None, "max_slippage_pips": D("3")},
        id="stop-limit-with-slippage",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","limit_price":1.09}',
        {"order_type": OrderType.LIMIT, "price": D("1.09")},
        id="crosstrade-limit-price-infers-limit",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","lots":1,"risk":1,"sl_pct":0.5,"tp_pct":"1.5"}',
        {"lots": D("1"), "risk": D("1"), "sl_pct": D("0.5"), "tp_pct": D("1.5")},
        id="lots-and-risk-both-kept",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","flatten_first":"true","trailing":1,"tif":"day"}',
        {"flatten_first": True, "trailing": True, "tif": "day"},
        id="booleans-and-day",
    ),
    pytest.param(
        '{"Action":"buy","SYMBOL":"EURUSD","Lots":"1","SL_Pips":"15"}',
        {"lots": D("1"), "sl_pips": D("15")},
        id="keys-case-insensitive",
    ),
    pytest.param(
        '{"action":"buy","symbol":"EURUSD","sl":"","tp":null,"comment":"","lots":" 2 "}',
        {"sl": None, "tp": None, "comment": None, "lots": D("2")},
        id="empty-and-null-are-absent",
    ),
    pytest.param(
        '\ufeff  {"action":"buy","symbol":"EURUSD","id":12345}\n',
        {"id": "12345"},
        id="bom-whitespace-numeric-id",
    ),
]


@pytest.mark.parametrize(("body", "expected"), JSON_CASES)
def test_json_alerts(body: str, expected: dict[str, object]) -> None:
    check(parse(body), expected)


def test_json_numbers_are_exact_decimals() -> None:
    """JSON numbers never pass through float: 1.10523 stays Decimal('1.10523')."""
    signal = parse('{"action":"buy","symbol":"EURUSD","signal_price":1.10523,"lots":0.30,'
                   '"sl":1.1,"tp":1.2000000000000001}')
    assert signal.signal_price == D("1.10523") and str(signal.signal_price) == "1.10523"
    assert str(signal.lots) == "0.30"
    assert str(signal.tp) == "1.2000000000000001"


# --- key=value (CrossTrade's style) ----------------------------------------------------------

KV_CASES = [
    pytest.param(
        "key=my-secret;\ncommand=PLACE;\naccount=sim101;\ninstrument=EURUSD;\naction=BUY;\n"
        "qty=1;\norder_type=MARKET;\ntif=DAY;\n",
        {"action": Action.BUY, "symbol": "EURUSD", "lots": D("1"), "order_type": OrderType.MARKET,
         "tif": "day", "dialect": Dialect.KEY_VALUE},
        id="crosstrade-market-buy",
    ),
    pytest.param(
        "command=PLACE; instrument=EURUSD; action=sell; qty=2; order_type=LIMIT; "
        "limit_price=1.1050; tif=GTC;",
        {"action": Action.SELL, "order_type": OrderType.LIMIT, "price": D("1.1050"), "tif": "gtc"},
        id="crosstrade-limit",
    ),
    pytest.param(
        "command=PLACE;instrument=EURUSD;action=BUY;qty=1;order_type=STOPMARKET;stop_price=1.11;",
        {"order_type": OrderType.STOP, "price": D("1.11")},
        id="crosstrade-stopmarket",
    ),
    pytest.param(
        "command=PLACE;instrument=EURUSD;action=BUY;qty=1;order_type=STOPLIMIT;"
        "stop_price=1.11;limit_price=1.1110;",
        {"order_type": OrderType.STOP_LIMIT, "price": D("1.11"), "limit_price": D("1.1110")},
        id="crosstrade-stoplimit",
    ),
    pytest.param(
        "command=FLATPLACE;instrument=EURUSD;action=BUY;qty=1;order_type=MARKET;",
        {"action": Action.BUY, "flatten_first": True},
        id="crosstrade-flatplace",
    ),
    pytest.param("command=CLOSEPOSITION;instrument=EURUSD;",
                 {"action": Action.CLOSE, "lots": None}, id="crosstrade-closeposition"),
    pytest.param("command=CLOSEPOSITION;instrument=EURUSD;qty=1;",
                 {"action": Action.CLOSE, "lots": D("1")}, id="crosstrade-partial-close"),
    pytest.param("command=REVERSE;instrument=EURUSD;", {"action": Action.REVERSE},
                 id="crosstrade-reverse"),
    pytest.param("command=REVERSEPOSITION;instrument=EURUSD;qty=2",
                 {"action": Action.REVERSE, "lots": D("2")}, id="crosstrade-reverseposition"),
    pytest.param("command=FLATTEN;instrument=EURUSD;",
                 {"action": Action.CLOSE_ALL, "symbol": "EURUSD", "cancel_orders": True},
                 id="crosstrade-flatten"),
    pytest.param("command=FLATTENEVERYTHING;",
                 {"action": Action.CLOSE_ALL, "symbol": None, "cancel_orders": True},
                 id="crosstrade-flatteneverything"),
    pytest.param("command=CANCEL;order_id=99;", {"action": Action.CANCEL, "order_id": 99},
                 id="crosstrade-cancel-one"),
    pytest.param("command=CANCEL;instrument=EURUSD;",
                 {"action": Action.CANCEL, "order_id": None}, id="crosstrade-cancel-instrument"),
    pytest.param("command=CANCELORDERS;instrument=EURUSD;", {"action": Action.CANCEL},
                 id="crosstrade-cancelorders"),
    pytest.param("command=CANCELALLORDERS;", {"action": Action.CANCEL_ALL, "symbol": None},
                 id="crosstrade-cancelallorders"),
    pytest.param("command=CHANGE;order_id=5;limit_price=1.1;",
                 {"action": Action.MODIFY, "order_id": 5, "price": D("1.1")},
                 id="crosstrade-change"),
    pytest.param(
        "action=buy\nsymbol=EURUSD\nlots=0.25\nsl_pips=20\ntp_pips=40\nid=abc",
        {"action": Action.BUY, "lots": D("0.25"), "sl_pips": D("20"), "id": "abc"},
        id="our-names-newline-separated",
    ),
    pytest.param(
        " ACTION = Sell ; Ticker = EURUSD ; Quantity = 1 ; comment = \"x=1, y\" ;",
        {"action": Action.SELL, "symbol": "EURUSD", "lots": D("1"), "comment": "x=1, y"},
        id="spaces-case-quotes",
    ),
    pytest.param(
        "action=buy;symbol=EURUSD;time=1714564800",
        {"time": datetime(2024, 5, 1, 12, 0, tzinfo=UTC)},
        id="epoch-seconds-string",
    ),
]


@pytest.mark.parametrize(("body", "expected"), KV_CASES)
def test_key_value_alerts(body: str, expected: dict[str, object]) -> None:
    check(parse(body), expected)


def test_crosstrade_account_and_key_are_noted_never_echoed() -> None:
    signal = parse("key=s3cr3t;command=PLACE;account=Sim101;instrument=EURUSD;action=BUY;")
    assert len(signal.notes) == 2
    assert "s3cr3t" not in " ".join(signal.notes)
    assert "Sim101" not in " ".join(signal.notes)


# --- PineConnector ----------------------------------------------------------------------------

PC_CASES = [
    pytest.param(
        "60123456789,buy,EURUSD,risk=0.5,sl=20,tp=40",
        {"action": Action.BUY, "symbol": "EURUSD", "lots": D("0.5"), "risk": None,
         "sl_pips": D("20"), "tp_pips": D("40"), "sl": None, "dialect": Dialect.PINECONNECTOR},
        id="buy-risk-is-lots-sl-tp-are-pips",
    ),
    pytest.param("60123456789 , SELL , GBPJPY , sl=50 , risk=1",
                 {"action": Action.SELL, "symbol": "GBPJPY", "lots": D("1"), "sl_pips": D("50")},
                 id="spaces-and-case"),
    pytest.param("60123456789,buy,AUDUSD", {"action": Action.BUY, "lots": None},
                 id="no-risk-is-default-sizing"),
    pytest.param("60123456789,long,US30.Cash,risk=1", {"action": Action.BUY, "symbol": "US30.Cash"},
                 id="long-alias"),
    pytest.param("60123456789,bearish,EURUSD", {"action": Action.SELL}, id="bearish-alias"),
    pytest.param("60123456789,buylimit,EURUSD,risk=1,price=1.0850,sl=20",
                 {"action": Action.BUY, "order_type": OrderType.LIMIT, "price": D("1.0850")},
                 id="buylimit"),
    pytest.param("60123456789,buystop,EURUSD,price=1.12",
                 {"action": Action.BUY, "order_type": OrderType.STOP}, id="buystop"),
    pytest.param("60123456789,selllimit,EURUSD,price=1.12",
                 {"action": Action.SELL, "order_type": OrderType.LIMIT}, id="selllimit"),
    pytest.param("60123456789,sellstop,EURUSD,price=1.08",
                 {"action": Action.SELL, "order_type": OrderType.STOP}, id="sellstop"),
    pytest.param("60123456789,closelong,GBPUSD", {"action": Action.CLOSE_LONG}, id="closelong"),
    pytest.param("60123456789,closeshort,GBPUSD", {"action": Action.CLOSE_SHORT},
                 id="closeshort"),
    pytest.param("60123456789,closeall,GBPUSD", {"action": Action.CLOSE, "symbol": "GBPUSD"},
                 id="closeall-is-symbol-close"),
    pytest.param("60123456789,closelongshort,GBPUSD", {"action": Action.CLOSE},
                 id="closelongshort"),
    pytest.param("60123456789,cancellong,GBPUSD", {"action": Action.CANCEL, "side": Side.BUY},
                 id="cancellong"),
    pytest.param("60123456789,cancelshort,GBPUSD", {"action": Action.CANCEL, "side": Side.SELL},
                 id="cancelshort"),
    pytest.param("60123456789,cancelall,GBPUSD", {"action": Action.CANCEL, "side": None},
                 id="cancelall-is-symbol-cancel"),
    pytest.param(
        "60123456789,closelong,EURUSD,risk=1,sl=20",
        {"action": Action.CLOSE_LONG, "lots": None, "sl_pips": None,
         "notes": ("ignored 'risk=' on closelong: it only applies to entries",
                   "ignored 'sl=' on closelong: it only applies to entries")},
        id="close-ignores-entry-keys",
    ),
    pytest.param('60123456789,buy,EURUSD,risk=1,comment="strategy 1, v2"',
                 {"comment": "strategy 1, v2"}, id="quoted-comment-with-comma"),
    pytest.param("60123456789,buy,EURUSD,risk=1,", {"lots": D("1")}, id="trailing-comma"),
]


@pytest.mark.parametrize(("body", "expected"), PC_CASES)
def test_pineconnector_alerts(body: str, expected: dict[str, object]) -> None:
    check(parse(body), expected)


# --- errors: (body, field, words the reason must contain) ------------------------------------

ERROR_CASES = [
    # body-level
    pytest.param(b"", "body", "is empty", id="empty"),
    pytest.param(b"   \n\t ", "body", "is empty", id="blank"),
    pytest.param(b"\xff\xfe{", "body", "not UTF-8", id="not-utf8"),
    pytest.param(b'{"action":"buy",', "body", "not valid JSON", id="truncated-json"),
    pytest.param(b"[1, 2]", "body", "must be a JSON object", id="json-array"),
    pytest.param(b'{"lots": NaN}', "body", "NaN is not a number", id="json-nan"),
    pytest.param(b'{"action":"buy","symbol":"X","lots":1e99999}', "lots", "out of range",
                 id="json-huge-number"),
    pytest.param(b"[" * 100_000, "body", "not valid JSON", id="json-deep-nesting"),
    pytest.param(b"hello world", "body", "expected key=value", id="plain-text"),
    pytest.param(b"{{strategy.order.alert_message}}", "body",
                 "placeholder {{strategy.order.alert_message}} unexpanded",
                 id="whole-body-placeholder"),
    pytest.param(b"Hello, world", "action", "unknown PineConnector command 'world'",
                 id="prose-with-comma-reads-as-pineconnector"),
    pytest.param(b'{"": 1}', "body", "field with an empty name", id="json-empty-key"),
    pytest.param(b"=buy", "body", "expected key=value", id="kv-empty-key"),
    # unknown fields, with suggestions
    pytest.param('{"action":"buy","symbol":"EURUSD","stoploss":1.1}', "stoploss",
                 "unknown field 'stoploss'; did you mean sl", id="unknown-stoploss"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lotz":1}', "lotz",
                 "did you mean lots", id="unknown-typo"),
    pytest.param('{"action":"buy","symbol":"EURUSD","zzz":1}', "zzz",
                 "known fields:", id="unknown-no-suggestion"),
    pytest.param("action=buy;symbol=EURUSD;tpips=20", "tpips", "did you mean tp_pips",
                 id="kv-unknown"),
    pytest.param('{"action":"buy","symbol":"EURUSD","side":"buy"}', "side",
                 "did you mean action", id="internal-field-not-public"),
    # duplicates
    pytest.param('{"action":"buy","symbol":"EURUSD","sl":1.1,"SL":1.2}', "sl",
                 "given twice (as 'sl' and 'SL')", id="duplicate-key"),
    pytest.param('{"action":"buy","symbol":"EURUSD","ticker":"GBPUSD"}', "symbol",
                 "given twice (as 'symbol' and 'ticker')", id="duplicate-alias"),
    # action
    pytest.param('{"action":"buyy","symbol":"EURUSD"}', "action",
                 "unknown action 'buyy'; expected one of buy, sell, close", id="unknown-action"),
    pytest.param('{"symbol":"EURUSD","lots":1}', "action", "is required", id="no-action"),
    pytest.param('{"action":"","symbol":"EURUSD"}', "action", "is required",
                 id="empty-action"),
    pytest.param('{"market_position":"long","symbol":"EURUSD"}', "action",
                 "market_position alone", id="position-without-action"),
    pytest.param('{"action":"sell","symbol":"EURUSD","market_position":"long"}', "lots",
                 "partial exit of the long", id="partial-exit-without-lots"),
    pytest.param('{"action":"buy","symbol":"EURUSD","market_position":"sideways"}',
                 "market_position", "unknown market_position", id="unknown-position"),
    pytest.param('{"action":"{{strategy.order.action}}","symbol":"EURUSD"}', "action",
                 "placeholder {{strategy.order.action}} unexpanded", id="placeholder-action"),
    pytest.param('{"action":"buy","symbol":"EURUSD","sl":"{{plot_0}}"}', "sl",
                 "placeholder {{plot_0}}", id="placeholder-sl"),
    pytest.param('{"action":"buy","symbol":"EURUSD","id":"{{strategy.order.idd}}"}', "id",
                 "placeholder", id="placeholder-id"),
    # symbol
    pytest.param('{"action":"buy"}', "symbol", "is required for action buy", id="no-symbol"),
    pytest.param('{"action":"close","symbol":""}', "symbol", "is required", id="empty-symbol"),
    pytest.param('{"action":"cancel"}', "symbol", "is required for action cancel",
                 id="cancel-needs-symbol-or-order-id"),
    pytest.param('{"action":"buy","symbol":["EURUSD"]}', "symbol", "not a list",
                 id="symbol-list"),
    pytest.param('{"action":"buy","symbol":true}', "symbol", "must be text", id="symbol-bool"),
    # numbers
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":-1}', "lots",
                 "must be > 0, got -1", id="negative-lots"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":0}', "lots", "must be > 0, got 0",
                 id="zero-lots"),
    pytest.param('{"action":"buy","symbol":"EURUSD","qty":"-2"}', "lots",
                 "must be > 0, got -2 (given as 'qty')", id="negative-lots-alias"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":"1,5"}', "lots",
                 "must be a number, got '1,5'", id="lots-comma-decimal"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":"NaN"}', "lots", "must be a number",
                 id="lots-nan-string"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":"Infinity"}', "lots",
                 "must be a number", id="lots-infinity-string"),
    pytest.param('{"action":"buy","symbol":"EURUSD","lots":true}', "lots",
                 "must be a number, got the boolean true", id="lots-bool"),
    pytest.param('{"action":"close","symbol":"EURUSD","percent":150}', "percent",
                 "must be > 0 and <= 100, got 150", id="percent-over-100"),
    pytest.param('{"action":"close","symbol":"EURUSD","percent":0}', "percent", "must be > 0",
                 id="percent-zero"),
    pytest.param('{"action":"close","symbol":"EURUSD","percent":50,"lots":1}', "percent",
                 "give lots or percent, not both", id="lots-and-percent"),
    pytest.param('{"action":"buy","symbol":"EURUSD","risk":101}', "risk", "<= 100",
                 id="risk-over-100"),
    pytest.param('{"action":"buy","symbol":"EURUSD","risk":-1}', "risk", "must be > 0",
                 id="risk-negative"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":-1.1}', "price",
                 "must be > 0 (or 0 for none), got -1.1", id="negative-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","signal_price":0}', "signal_price",
                 "must be > 0", id="zero-signal-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","sl_pips":-5}', "sl_pips", "must be > 0",
                 id="negative-sl-pips"),
    pytest.param('{"action":"buy","symbol":"EURUSD","tp_pct":100}', "tp_pct",
                 "must be > 0 and < 100, got 100", id="tp-pct-100"),
    pytest.param('{"action":"buy","symbol":"EURUSD","max_slippage_pips":0,"signal_price":1}',
                 "max_slippage_pips", "must be > 0", id="zero-slippage"),
    pytest.param('{"action":"breakeven","symbol":"EURUSD","offset_pips":-1}', "offset_pips",
                 "must be >= 0", id="negative-offset"),
    pytest.param('{"action":"cancel","order_id":1.5}', "order_id", "whole number",
                 id="fractional-order-id"),
    pytest.param('{"action":"cancel","order_id":-3}', "order_id", "positive order id",
                 id="negative-order-id"),
    pytest.param('{"action":"buy","symbol":"EURUSD","trailing":"maybe"}', "trailing",
                 "must be true or false", id="bad-boolean"),
    # stops
    pytest.param('{"action":"buy","symbol":"EURUSD","sl":1.09,"sl_pips":20}', "sl_pips",
                 "give only one of sl, sl_pips, sl_pct (got sl and sl_pips)", id="sl-twice"),
    pytest.param('{"action":"buy","symbol":"EURUSD","tp_pips":20,"tp_pct":1}', "tp_pct",
                 "give only one of tp, tp_pips, tp_pct", id="tp-twice"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.10,"sl":1.11}', "sl",
                 "must be below the entry 1.10 for a buy, got 1.11", id="buy-sl-above-entry"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.10,"tp":1.09}', "tp",
                 "must be above the entry 1.10 for a buy, got 1.09", id="buy-tp-below-entry"),
    pytest.param('{"action":"sell","symbol":"EURUSD","price":1.10,"sl":1.09}', "sl",
                 "must be above the entry 1.10 for a sell", id="sell-sl-below-entry"),
    pytest.param('{"action":"sell","symbol":"EURUSD","price":1.10,"tp":1.10}', "tp",
                 "must be below the entry 1.10 for a sell", id="sell-tp-at-entry"),
    pytest.param('{"action":"buy","symbol":"EURUSD","signal_price":1.10,"sl":1.2}', "sl",
                 "must be below the entry 1.10", id="market-buy-sl-vs-signal-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","sl":1.2,"tp":1.1}', "sl",
                 "wrong side of tp", id="buy-sl-above-tp-no-entry"),
    # order types
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"limitt","price":1}',
                 "order_type", "unknown order_type 'limitt'", id="unknown-order-type"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"limit"}', "price",
                 "is required for a limit order", id="limit-without-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"stop","price":0}', "price",
                 "is required for a stop order", id="stop-with-zero-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"stop_limit","price":1.1}',
                 "limit_price", "is required for a stop_limit order", id="stop-limit-no-limit"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"market_range",'
                 '"signal_price":1.1}', "max_slippage_pips", "is required for a market_range",
                 id="market-range-no-slippage"),
    pytest.param('{"action":"buy","symbol":"EURUSD","max_slippage_pips":2}',
                 "max_slippage_pips", "needs signal_price", id="slippage-without-reference"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"max_slippage_pips":2}',
                 "max_slippage_pips", "market and stop_limit orders only",
                 id="slippage-on-pending"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"market","price":1.1,'
                 '"signal_price":1.2}', "price", "read as signal_price",
                 id="market-price-and-signal-price-differ"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"market","limit_price":1.1}',
                 "limit_price", "not used by market orders", id="market-with-limit-price"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"limit_price":1.1}',
                 "limit_price", "give only one of price, limit_price", id="price-and-limit"),
    pytest.param('{"action":"buy","symbol":"EURUSD","order_type":"limit","price":1.1,'
                 '"stop_price":1.2}', "stop_price", "not used by limit orders",
                 id="limit-with-stop-price"),
    # time in force and expiry
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"tif":"gtx"}', "tif",
                 "unknown tif 'gtx'; expected one of gtc, gtd, ioc, fok, day", id="unknown-tif"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"tif":"gtd"}', "tif",
                 "gtd needs an expiry", id="gtd-without-expiry"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"tif":"gtc","expiry":60}',
                 "expiry", "only applies with tif gtd, got tif gtc", id="expiry-with-gtc"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":-60}', "expiry",
                 "must be in the future", id="expiry-negative"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":0}', "expiry",
                 "must be in the future", id="expiry-zero"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,'
                 '"expiry":"2024-05-01T11:00:00Z"}', "expiry", "must be in the future",
                 id="expiry-iso-past"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":1714600000}',
                 "expiry", "looks like an epoch timestamp", id="expiry-epoch-number"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":90.5}', "expiry",
                 "whole number", id="expiry-fractional"),
    pytest.param('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":"tomorrow"}',
                 "expiry", "must be an ISO-8601 time", id="expiry-garbage"),
    pytest.param('{"action":"buy","symbol":"EURUSD","expiry":60}', "expiry",
                 "applies to pending orders only", id="expiry-on-market"),
    # time
    pytest.param('{"action":"buy","symbol":"EURUSD","time":"yesterday"}', "time",
                 "must be an ISO-8601 time like 2024-05-01T12:00:00Z", id="time-garbage"),
    pytest.param('{"action":"buy","symbol":"EURUSD","time":-5}', "time", "must be >= 0",
                 id="time-negative"),
    pytest.param('{"action":"buy","symbol":"EURUSD","time":1e17}', "time", "out of range",
                 id="time-too-large"),
    pytest.param('{"action":"buy","symbol":"EURUSD","time":true}', "time",
                 "must be an ISO-8601 time or epoch number", id="time-bool"),
    # fields outside the action's scope
    pytest.param('{"action":"buy","symbol":"EURUSD","percent":50}', "percent",
                 "is not used by action buy", id="percent-on-buy"),
    pytest.param('{"action":"buy","symbol":"EURUSD","offset_pips":5}', "offset_pips",
                 "is not used by action buy", id="offset-on-buy"),
    pytest.param('{"action":"breakeven","symbol":"EURUSD","sl":1.1}', "sl",
                 "is not used by action breakeven (it takes offset_pips)", id="sl-on-breakeven"),
    pytest.param('{"action":"close_all","lots":1}', "lots", "is not used by action close_all",
                 id="lots-on-close-all"),
    pytest.param('{"action":"cancel","symbol":"EURUSD","lots":1}', "lots",
                 "is not used by action cancel", id="lots-on-cancel"),
    pytest.param('{"action":"reverse","symbol":"EURUSD","price":1.1}', "price",
                 "is not used by action reverse", id="price-on-reverse"),
    pytest.param('{"action":"modify","symbol":"EURUSD"}', "action", "modify needs a new sl",
                 id="modify-nothing"),
    pytest.param('{"action":"modify","symbol":"EURUSD","lots":2}', "lots",
                 "is not used by action modify", id="modify-lots"),
    # CrossTrade
    pytest.param("command=PLACE;instrument=EURUSD;qty=1;", "action",
                 "command=PLACE needs action=BUY or action=SELL", id="ct-place-no-action"),
    pytest.param("command=PLACE;instrument=EURUSD;action=SELLSHORT;", "action",
                 "got 'SELLSHORT'", id="ct-place-bad-action"),
    pytest.param("command=CLOSEPOSITION;instrument=EURUSD;action=SELL;", "action",
                 "only used with command=PLACE or FLATPLACE", id="ct-action-with-close"),
    pytest.param("command=FLATEN;instrument=EURUSD;", "command",
                 "unknown command 'FLATEN'", id="ct-unknown-command"),
    pytest.param("command=PLACE;command=CANCEL;", "command", "given twice", id="ct-two-commands"),
    pytest.param("command=FLATTEN;", "symbol", "is required for command=FLATTEN",
                 id="ct-flatten-needs-instrument"),
    pytest.param("command=FLATTENEVERYTHING;instrument=EURUSD;", "symbol",
                 "acts on the whole account", id="ct-flatteneverything-with-instrument"),
    pytest.param("command=CANCELALLORDERS;instrument=EURUSD;", "symbol",
                 "acts on the whole account", id="ct-cancelall-with-instrument"),
    pytest.param("command=FLATPLACE;instrument=EURUSD;action=BUY;flatten_first=false;",
                 "flatten_first", "given twice", id="ct-flatplace-contradiction"),
    pytest.param("command=PLACE;instrument=EURUSD;action=BUY;order_type=STOPLIMIT;"
                 "limit_price=1.1;", "price", "is required for a stop_limit order",
                 id="ct-stoplimit-without-stop-price"),
    pytest.param("command=PLACE;instrument=EURUSD;action=BUY;order_type=ICEBERG;",
                 "order_type", "unknown order_type 'ICEBERG'", id="ct-unknown-order-type"),
    # PineConnector
    pytest.param("60123456789,buyy,EURUSD", "action", "unknown PineConnector command 'buyy'",
                 id="pc-unknown-command"),
    pytest.param("buy,EURUSD,risk=1", "body", "start with the license ID",
                 id="pc-missing-license-id"),
    pytest.param("60123456789,buy", "symbol", "third item must be the symbol",
                 id="pc-no-symbol"),
    pytest.param("60123456789,buy,risk=1", "symbol", "third item must be the symbol",
                 id="pc-key-instead-of-symbol"),
    pytest.param("60123456789,buy,EURUSD,risk", "body", "expected key=value",
                 id="pc-bare-word"),
    pytest.param("60123456789,buy,EURUSD,lots=1", "lots", "unknown field 'lots'",
                 id="pc-unknown-key"),
    pytest.param("60123456789,buy,EURUSD,spread=2", "spread", "risk.max_spread_pips",
                 id="pc-spread-unsupported"),
    pytest.param("60123456789,buy,EURUSD,risk=-1", "lots",
                 "must be > 0, got -1 (given as 'risk=')", id="pc-negative-risk"),
    pytest.param("60123456789,buy,EURUSD,price=1.1", "price", "is for buylimit",
                 id="pc-price-on-market-buy"),
    pytest.param("60123456789,buylimit,EURUSD,risk=1", "price", "is required for a limit",
                 id="pc-buylimit-without-price"),
    pytest.param("60123456789,buy,EURUSD,risk=1,risk=2", "lots", "given twice",
                 id="pc-duplicate-key"),
    pytest.param('60123456789,buy,EURUSD,comment="open', "body", "unclosed double quote",
                 id="pc-unclosed-quote"),
    pytest.param("60123456789,buy,EURUSD\n60123456789,sell,EURUSD", "body",
                 "one command on one line", id="pc-two-lines"),
]


@pytest.mark.parametrize(("body", "field", "reason"), ERROR_CASES)
def test_errors_name_the_field_and_the_rule(body: str | bytes, field: str, reason: str) -> None:
    error = fails(body)
    assert (error.field, reason in error.reason) == (field, True), error.reason


def test_unknown_key_suggests_known_names_for_synonyms() -> None:
    assert "did you mean tp" in fails('{"action":"buy","symbol":"X","takeprofit":1}').reason
    assert "did you mean lots" in fails('{"action":"buy","symbol":"X","volume":1}').reason


def test_huge_unknown_key_is_cut_short_in_the_field_name() -> None:
    error = fails('{"' + "k" * 5000 + '": 1}')
    assert len(error.field) <= 41 and len(error.reason) < 400


# --- times ------------------------------------------------------------------------------------

TIME_CASES = [
    ('"2024-05-01T12:00:00Z"', datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # {{timenow}}
    ('"2024-05-01T14:00:00+02:00"', datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    ('"2024-05-01T12:00:00.250Z"', datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    ('"2024-05-01 12:00:00"', datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # no offset: UTC
    ("1714564800", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # epoch seconds
    ("1714564800.5", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    ('"1714564800"', datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # as a string
    ("1714564800000", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),  # epoch milliseconds
    ("1714564800123", datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)),
    ("99999999999", datetime(5138, 11, 16, 9, 46, 39, tzinfo=UTC)),  # just below: seconds
    ("100000000000", datetime(1973, 3, 3, 9, 46, 40, tzinfo=UTC)),  # threshold: milliseconds
    ("0", datetime(1970, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("value", "expected"), TIME_CASES)
def test_time_is_iso_or_epoch_seconds_or_milliseconds(value: str, expected: datetime) -> None:
    signal = parse('{"action":"buy","symbol":"EURUSD","time":' + value + "}")
    assert signal.time == expected
    assert signal.time is not None and signal.time.tzinfo is not None


def test_expiry_seconds_are_relative_to_the_given_now() -> None:
    body = b'{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":"90"}'
    later = NOW + timedelta(days=3)
    assert parse_signal(body, later).expiry == later + timedelta(seconds=90)


def test_expiry_iso_without_offset_is_utc() -> None:
    signal = parse('{"action":"buy","symbol":"EURUSD","price":1.1,"expiry":"2024-05-01T18:00"}')
    assert signal.expiry == datetime(2024, 5, 1, 18, 0, tzinfo=UTC)


def test_the_same_alert_in_three_dialects_gives_the_same_signal() -> None:
    """One model behind all dialects: only the dialect tag differs."""
    json_body = '{"action":"buy","symbol":"EURUSD","lots":0.5,"sl_pips":20,"tp_pips":40}'
    kv_body = "action=buy;symbol=EURUSD;lots=0.5;sl_pips=20;tp_pips=40;"
    pc_body = "60123456789,buy,EURUSD,risk=0.5,sl=20,tp=40"
    signals = [parse(body) for body in (json_body, kv_body, pc_body)]
    assert [s.dialect for s in signals] == [Dialect.JSON, Dialect.KEY_VALUE, Dialect.PINECONNECTOR]
    bare = {
        (s.action, s.symbol, s.lots, s.sl_pips, s.tp_pips, s.order_type, s.price) for s in signals
    }
    assert bare == {(Action.BUY, "EURUSD", D("0.5"), D("20"), D("40"), None, None)}


def test_field_names_cover_every_contract_field_and_alias() -> None:
    contract = {
        "action", "symbol", "lots", "percent", "risk", "price", "order_type", "signal_price",
        "sl", "tp", "sl_pips", "tp_pips", "sl_pct", "tp_pct", "trailing", "offset_pips",
        "max_slippage_pips", "expiry", "tif", "time", "id", "market_position", "comment",
        "flatten_first", "order_id", "limit_price", "stop_price",
    }  # fmt: skip
    assert set(FIELD_NAMES) == contract
    assert set(ALIASES) == {"ticker", "instrument", "qty", "quantity", "contracts"}


# --- property: any input gives a Signal or a SignalError, nothing else ------------------------


def _parses_or_refuses(body: bytes) -> None:
    try:
        signal = parse_signal(body, NOW)
    except SignalError as error:
        assert isinstance(error.field, str) and error.field
        assert isinstance(error.reason, str) and error.reason
    else:
        assert isinstance(signal, Signal)


@given(st.binary(max_size=512))
@settings(max_examples=400)
def test_any_bytes_give_a_signal_or_a_signal_error(body: bytes) -> None:
    _parses_or_refuses(body)


_KEYS = st.sampled_from([*FIELD_NAMES, *ALIASES, "Action", "SL", "stoploss", "side"]) | st.text(
    max_size=12
)
_WORDS = st.sampled_from([
    "buy", "sell", "close", "flat", "long", "short", "close_all", "cancel", "modify",
    "breakeven", "reverse", "market", "limit", "stop", "stop_limit", "market_range", "gtd",
    "gtc", "day", "true", "no", "", "{{close}}", "2024-05-01T12:00:00Z", "1.10523", "-1", "0",
    "1e400", "NaN", "EURUSD",
])  # fmt: skip
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _WORDS | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=5,
)


@given(st.dictionaries(_KEYS, _VALUES, max_size=10))
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_object_gives_a_signal_or_a_signal_error(alert: dict[str, object]) -> None:
    _parses_or_refuses(json.dumps(alert).encode())


@given(st.dictionaries(_KEYS, _WORDS | st.text(max_size=12), max_size=10),
       st.sampled_from([";", "\n", "; ", ","]))
@settings(max_examples=400)
def test_any_key_value_text_gives_a_signal_or_a_signal_error(
    alert: dict[str, str], separator: str
) -> None:
    body = separator.join(f"{key}={value}" for key, value in alert.items())
    _parses_or_refuses(body.encode())


@given(st.lists(_WORDS | st.text(max_size=10) | st.builds("{}={}".format, _KEYS, _WORDS),
                max_size=6))
@settings(max_examples=400)
def test_any_pineconnector_line_gives_a_signal_or_a_signal_error(items: list[str]) -> None:
    _parses_or_refuses(",".join(["60123456789", *items]).encode())
