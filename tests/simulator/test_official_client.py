"""A client nobody here wrote: Spotware's OpenApiPy, in its own process and reactor."""

from __future__ import annotations

import asyncio
import json
import sys
from decimal import Decimal
from pathlib import Path

from pipsync_lite.simulator import Simulator

SCRIPT = Path(__file__).with_name("official_client.py")


async def test_official_client_auths_trades_with_relative_sl_tp_and_closes(
        sim: Simulator) -> None:
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    creds = sim.credentials
    config = {"host": "localhost", "port": sim.port, "client_id": creds.client_id,
              "client_secret": creds.client_secret, "access_token": creds.access_token,
              "account_id": creds.account_id, "timeout": 40}
    # A subprocess: OpenApiPy installs Twisted's default reactor, which must never
    # happen in the test process (the daemon's tests use the asyncio reactor).
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), json.dumps(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["finished"] == "closed", seen
    assert not seen["errors"]
    assert seen["responses"][:6] == [
        "ProtoOAApplicationAuthRes", "ProtoOAGetAccountListByAccessTokenRes",
        "ProtoOAAccountAuthRes", "ProtoOASymbolsListRes", "ProtoOASymbolByIdRes",
        "ProtoOASubscribeSpotsRes"]
    assert seen["accounts"] == [creds.account_id]
    assert {"EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500", "BTCUSD"} <= set(seen["symbols"])
    assert seen["eurusd"] == {"digits": 5, "pipPosition": 4, "lotSize": 10_000_000,
                              "minVolume": 100_000}
    assert seen["spots"][0] == {"bid": 110000, "ask": 110010}
    opened = [e for e in seen["executions"] if e["clientMsgId"] == "market-1"]
    assert [(e["type"], e["orderType"]) for e in opened] == [
        ("ORDER_ACCEPTED", "MARKET"), ("ORDER_FILLED", "MARKET"),
        ("ORDER_ACCEPTED", "STOP_LOSS_TAKE_PROFIT")]
    assert opened[0]["positionStatus"] == "POSITION_STATUS_CREATED"
    assert opened[1]["executionPrice"] == 1.1001 and opened[1]["label"] == "official-client"
    assert opened[2]["isServerEvent"]
    assert (opened[2]["stopPrice"], opened[2]["limitPrice"]) == (1.0951, 1.1101)
    closed = [e for e in seen["executions"] if e["clientMsgId"] == "close-1"]
    assert [e["type"] for e in closed] == ["ORDER_ACCEPTED", "ORDER_FILLED"]
    assert closed[-1]["positionStatus"] == "POSITION_STATUS_CLOSED"
    assert closed[-1]["grossProfit"] == -100  # 0.1 lot closed at the bid: the spread
    assert not sim.positions()
    assert sim.balance == Decimal("10000") - Decimal("1.00") - Decimal("0.60")
    # The server saw the requests from the other process, in order, with ids.
    names = [r.name for r in sim.requests if r.name != "ProtoHeartbeatEvent"]
    assert names[-2:] == ["ProtoOANewOrderReq", "ProtoOAClosePositionReq"]
    assert sim.requests_named("ProtoOANewOrderReq")[0].client_msg_id == "market-1"
