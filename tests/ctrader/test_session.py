"""The session against the simulator over real TLS: connect, authorize, load, stay current."""

from __future__ import annotations

from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import AccountType
from pipsync_lite.simulator import Simulator


async def test_connects_authorizes_and_loads_everything(sim: Simulator, client: CTraderClient) -> None:
    assert client.ready
    assert client.last_error is None
    names = [r.name for r in sim.requests if r.name != "ProtoHeartbeatEvent"]
    for expected in (
        "ProtoOAApplicationAuthReq",
        "ProtoOAGetAccountListByAccessTokenReq",
        "ProtoOAAccountAuthReq",
        "ProtoOASymbolsListReq",
        "ProtoOAAssetListReq",
        "ProtoOASymbolByIdReq",
        "ProtoOATraderReq",
        "ProtoOAReconcileReq",
    ):
        assert expected in names
    assert names.index("ProtoOAApplicationAuthReq") < names.index("ProtoOAAccountAuthReq")
    assert names.index("ProtoOAAccountAuthReq") < names.index("ProtoOATraderReq") < names.index("ProtoOAReconcileReq")
    eurusd = client.symbol("EURUSD")
    assert eurusd is not None
    assert eurusd.lot_size > 0 and eurusd.digits > 0
    assert eurusd.base_asset == "EUR" and eurusd.quote_asset == "USD"
    assert "EURUSD" in client.symbol_names()
    assert client.symbol_by_id(eurusd.symbol_id) == eurusd
    account = client.account
    assert account is not None
    assert account.account_id == sim.account_id
    assert account.balance == sim.balance
    assert client.account_type is AccountType.HEDGED
    assert client.positions() == [] and client.orders() == []
