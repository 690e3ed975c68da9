"""End to end, table-driven: real-looking alert bodies of each dialect (JSON from TradingView and
PipSync, CrossTrade's key=value, PineConnector's comma syntax) and what they leave at the broker,
on a hedged and on a netted account."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pipsync_lite.app import Daemon
from pipsync_lite.ctrader import units
from pipsync_lite.simulator import Simulator

from .alerts import BOTH, execute, pending
from .factories import EURUSD

LONG = {"action": "buy", "symbol": "EURUSD", "lots": "0.2"}
SHORT = {"action": "sell", "symbol": "EURUSD", "lots": "0.1"}
BUY_LIMIT = {"action": "buy", "symbol": "EURUSD", "price": "1.09", "lots": "0.1"}
SELL_LIMIT = {"action": "sell", "symbol": "EURUSD", "price": "1.11", "lots": "0.1"}


def book(sim: Simulator) -> list[str]:
    """The EURUSD book in words: positions with SL/TP in pips from the entry, then pending orders."""
    lines = []
    for p in sim.positions():
        line = f"{p.side} {units.volume_to_lots(p.volume, EURUSD)}"
        for name, level in (("sl", p.stop_loss), ("tp", p.take_profit)):
            if level is not None:
                line += f" {name} {units.distance_to_pips(level - p.entry_price, EURUSD):+}"
        lines.append(line)
    for o in pending(sim):
        line = f"{o.order_type} {o.side} {units.volume_to_lots(o.volume, EURUSD)} @{o.limit_price or o.stop_price}"
        if o.expiration_ms:
            line += " gtd"
        lines.append(line)
    return lines


CASES = [
    # -- JSON: TradingView strategy alerts, PipSync's contract --------------------------------------
    pytest.param([], {"action": "buy", "symbol": "FX:EURUSD", "lots": "0.25", "market_position": "long",
                      "id": "Long-2026-11-20T12:00:00Z", "signal_price": "1.1001", "comment": "Long"},
                 ["BUY 0.25"], id="json-tradingview-strategy-entry"),
    pytest.param([LONG, LONG], {"action": "sell", "symbol": "EURUSD", "lots": "0.2", "market_position": "flat"},
                 [], id="json-tradingview-strategy-exit-to-flat-closes-all"),
    pytest.param([LONG], {"action": "sell", "symbol": "EURUSD", "lots": "0.05", "market_position": "long"},
                 ["BUY 0.15"], id="json-tradingview-scale-out"),
    pytest.param([], {"action": "buy", "symbol": "EURUSD", "price": 0, "sl": 0, "tp": 0, "lots": 0.01},
                 ["BUY 0.01"], id="json-pipsync-zeros-mean-none"),
    pytest.param([], {"action": "sell", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 25, "tp_pips": 50},
                 ["SELL 0.1 sl +25 tp -50"], id="json-sell-with-pips"),
    pytest.param([LONG], {"action": "reverse", "symbol": "EURUSD"}, ["SELL 0.2"], id="json-reverse"),
    pytest.param([LONG, SELL_LIMIT], {"action": "close_all", "symbol": "EURUSD"},
                 ["LIMIT SELL 0.1 @1.11000"], id="json-close-all-keeps-orders"),
    pytest.param([], "action=buy\nsymbol=EURUSD\nlots=0.1\nsl_pips=10", ["BUY 0.1 sl -10"],
                 id="key-value-on-lines"),
    # -- CrossTrade key=value ------------------------------------------------------------------
    pytest.param([], "key=secret-key-0001;command=PLACE;account=Sim101;instrument=EURUSD;action=BUY;qty=0.1;"
                     "order_type=LIMIT;limit_price=1.0950;tif=DAY;",
                 ["LIMIT BUY 0.1 @1.09500 gtd"], id="crosstrade-place-limit-day"),
    pytest.param([], "command=PLACE; instrument=EURUSD; action=SELL; qty=0.1; order_type=STOPMARKET; "
                     "stop_price=1.0950; tif=GTC;",
                 ["STOP SELL 0.1 @1.09500"], id="crosstrade-place-stopmarket"),
    pytest.param([], "command=PLACE; instrument=EURUSD; action=BUY; qty=0.1; order_type=MARKET; tif=DAY; "
                     "sl_pips=20; tp_pips=40",
                 ["BUY 0.1 sl -20 tp +40"], id="crosstrade-place-market"),
    pytest.param([SHORT], "command=FLATPLACE; instrument=EURUSD; action=BUY; qty=0.3; order_type=MARKET",
                 ["BUY 0.3"], id="crosstrade-flatplace"),
    pytest.param([LONG], "command=CLOSEPOSITION; instrument=EURUSD;", [], id="crosstrade-closeposition"),
    pytest.param([LONG], "command=REVERSEPOSITION; instrument=EURUSD;", ["SELL 0.2"],
                 id="crosstrade-reverseposition"),
    pytest.param([SHORT], "command=REVERSE; instrument=EURUSD; qty=0.4", ["BUY 0.4"], id="crosstrade-reverse-qty"),
    pytest.param([LONG, BUY_LIMIT], "command=FLATTEN; instrument=EURUSD;", [], id="crosstrade-flatten"),
    pytest.param([LONG, SELL_LIMIT], "command=FLATTENEVERYTHING;", [], id="crosstrade-flatteneverything"),
    pytest.param([BUY_LIMIT, SELL_LIMIT], "command=CANCELALLORDERS;", [], id="crosstrade-cancelallorders"),
    pytest.param([BUY_LIMIT], "command=CANCEL; instrument=EURUSD;", [], id="crosstrade-cancel"),
    pytest.param([{**LONG, "sl_pips": 20}], "command=CHANGE; instrument=EURUSD; tp_pips=30;",
                 ["BUY 0.2 sl -20 tp +30"], id="crosstrade-change"),
    pytest.param([BUY_LIMIT], "command=CHANGE; instrument=EURUSD; limit_price=1.0925;",
                 ["LIMIT BUY 0.1 @1.09250"], id="crosstrade-change-price"),
    # -- PineConnector ------------------------------------------------------------------------
    pytest.param([], "60123456789,buy,EURUSD,risk=0.5,sl=20,tp=40", ["BUY 0.5 sl -20 tp +40"], id="pc-buy"),
    pytest.param([], '60123456789,sell,EURUSD,risk=0.1,sl=15,comment="PC, v2"', ["SELL 0.1 sl +15"],
                 id="pc-sell-quoted-comment"),
    pytest.param([], "60123456789,buylimit,EURUSD,risk=0.1,price=1.0900,sl=10,tp=20",
                 ["LIMIT BUY 0.1 @1.09000"], id="pc-buylimit"),
    pytest.param([], "60123456789,selllimit,EURUSD,price=1.1100", ["LIMIT SELL 0.01 @1.11000"], id="pc-selllimit"),
    pytest.param([], "60123456789,buystop,EURUSD,risk=0.2,price=1.1100", ["STOP BUY 0.2 @1.11000"], id="pc-buystop"),
    pytest.param([], "60123456789,sellstop,EURUSD,risk=0.2,price=1.0900", ["STOP SELL 0.2 @1.09000"],
                 id="pc-sellstop"),
    pytest.param([LONG], "60123456789,closelong,EURUSD", [], id="pc-closelong"),
    pytest.param([SHORT], "60123456789,closeshort,EURUSD,risk=1", [], id="pc-closeshort-ignores-risk"),
    pytest.param([LONG], "60123456789,closeall,EURUSD", [], id="pc-closeall"),
    pytest.param([SHORT], "60123456789,closelongshort,EURUSD", [], id="pc-closelongshort"),
    pytest.param([BUY_LIMIT, SELL_LIMIT], "60123456789,cancellong,EURUSD", ["LIMIT SELL 0.1 @1.11000"],
                 id="pc-cancellong"),
    pytest.param([BUY_LIMIT, SELL_LIMIT], "60123456789,cancelshort,EURUSD", ["LIMIT BUY 0.1 @1.09000"],
                 id="pc-cancelshort"),
    pytest.param([BUY_LIMIT, SELL_LIMIT], "60123456789,cancelall,EURUSD", [], id="pc-cancelall"),
]


@BOTH
@pytest.mark.parametrize(("setup", "alert", "expected"), CASES)
async def test_alert_bodies_of_every_dialect(
    daemon: Daemon,
    sim: Simulator,
    http: aiohttp.ClientSession,
    setup: list[dict[str, Any]],
    alert: dict[str, Any] | str,
    expected: list[str],
) -> None:
    for body in setup:
        await execute(http, daemon, body)
    await execute(http, daemon, alert)
    assert book(sim) == expected
