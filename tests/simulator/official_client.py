"""Drive the simulator with Spotware's own OpenApiPy Client, the way its samples do.

Run as a script (never imported by pytest: it installs Twisted's default reactor):
    python official_client.py '{"host": ..., "port": ..., "client_id": ..., ...}'
It prints one JSON object describing everything it saw, then exits.
"""

from __future__ import annotations

import json
import sys

from ctrader_open_api import Client, EndPoints, Protobuf, TcpProtocol
from ctrader_open_api.messages.OpenApiCommonMessages_pb2 import ProtoHeartbeatEvent
from ctrader_open_api.messages.OpenApiMessages_pb2 import (
    ProtoOAAccountAuthReq, ProtoOAApplicationAuthReq, ProtoOAClosePositionReq,
    ProtoOAExecutionEvent, ProtoOAGetAccountListByAccessTokenReq, ProtoOANewOrderReq,
    ProtoOASpotEvent, ProtoOASubscribeSpotsReq, ProtoOASymbolByIdReq, ProtoOASymbolsListReq)
from ctrader_open_api.messages.OpenApiModelMessages_pb2 import (
    ProtoOAExecutionType, ProtoOAOrderType, ProtoOAPositionStatus)
from twisted.internet import reactor

config = json.loads(sys.argv[1])
seen: dict = {"responses": [], "executions": [], "spots": [], "errors": [],
              "port_constant": EndPoints.PROTOBUF_PORT}
state: dict = {"position_id": None, "closing": False}


def finish(reason: str) -> None:
    seen["finished"] = reason
    print(json.dumps(seen))
    sys.stdout.flush()
    if reactor.running:
        reactor.stop()


def on_error(failure) -> None:
    seen["errors"].append(str(failure.value))
    finish("error")


def record(message) -> object:
    payload = Protobuf.extract(message)
    seen["responses"].append(payload.DESCRIPTOR.name)
    return payload


def connected(client) -> None:
    request = ProtoOAApplicationAuthReq()
    request.clientId = config["client_id"]
    request.clientSecret = config["client_secret"]
    client.send(request).addCallbacks(on_application_auth, on_error)


def on_application_auth(message) -> None:
    record(message)
    request = ProtoOAGetAccountListByAccessTokenReq()
    request.accessToken = config["access_token"]
    client.send(request).addCallbacks(on_account_list, on_error)


def on_account_list(message) -> None:
    payload = record(message)
    seen["accounts"] = [a.ctidTraderAccountId for a in payload.ctidTraderAccount]
    request = ProtoOAAccountAuthReq()
    request.ctidTraderAccountId = config["account_id"]
    request.accessToken = config["access_token"]
    client.send(request).addCallbacks(on_account_auth, on_error)


def on_account_auth(message) -> None:
    record(message)
    request = ProtoOASymbolsListReq()
    request.ctidTraderAccountId = config["account_id"]
    request.includeArchivedSymbols = False
    client.send(request).addCallbacks(on_symbols, on_error)


def on_symbols(message) -> None:
    payload = record(message)
    seen["symbols"] = sorted(s.symbolName for s in payload.symbol)
    state["symbol_id"] = next(s.symbolId for s in payload.symbol if s.symbolName == "EURUSD")
    request = ProtoOASymbolByIdReq()
    request.ctidTraderAccountId = config["account_id"]
    request.symbolId.append(state["symbol_id"])
    client.send(request).addCallbacks(on_symbol, on_error)


def on_symbol(message) -> None:
    symbol = record(message).symbol[0]
    seen["eurusd"] = {"digits": symbol.digits, "pipPosition": symbol.pipPosition,
                      "lotSize": symbol.lotSize, "minVolume": symbol.minVolume}
    state["volume"] = symbol.lotSize // 10  # 0.1 lot
    request = ProtoOASubscribeSpotsReq()
    request.ctidTraderAccountId = config["account_id"]
    request.symbolId.append(state["symbol_id"])
    client.send(request).addCallbacks(on_subscribed, on_error)


def on_subscribed(message) -> None:
    record(message)
    request = ProtoOANewOrderReq()
    request.ctidTraderAccountId = config["account_id"]
    request.symbolId = state["symbol_id"]
    request.orderType = ProtoOAOrderType.Value("MARKET")
    request.tradeSide = 1  # BUY
    request.volume = state["volume"]
    request.relativeStopLoss = 500
    request.relativeTakeProfit = 1000
    request.label = "official-client"
    # The deferred fires on the first message echoing our clientMsgId (ORDER_ACCEPTED);
    # the fill and the protection arrive through the message callback.
    client.send(request, clientMsgId="market-1").addCallbacks(record, on_error)


def close_position() -> None:
    state["closing"] = True
    request = ProtoOAClosePositionReq()
    request.ctidTraderAccountId = config["account_id"]
    request.positionId = state["position_id"]
    request.volume = state["volume"]
    client.send(request, clientMsgId="close-1").addCallbacks(record, on_error)


def on_message(client, message) -> None:
    if message.payloadType == ProtoHeartbeatEvent().payloadType:
        return
    if message.payloadType == ProtoOASpotEvent().payloadType:
        spot = Protobuf.extract(message)
        seen["spots"].append({"bid": spot.bid if spot.HasField("bid") else None,
                              "ask": spot.ask if spot.HasField("ask") else None})
        return
    if message.payloadType != ProtoOAExecutionEvent().payloadType:
        return
    event = Protobuf.extract(message)
    seen["executions"].append({
        "type": ProtoOAExecutionType.Name(event.executionType),
        "orderType": ProtoOAOrderType.Name(event.order.orderType),
        "clientMsgId": message.clientMsgId,
        "isServerEvent": event.isServerEvent,
        "executionPrice": event.order.executionPrice if event.order.HasField(
            "executionPrice") else None,
        "stopPrice": event.order.stopPrice if event.order.HasField("stopPrice") else None,
        "limitPrice": event.order.limitPrice if event.order.HasField("limitPrice") else None,
        "positionId": event.position.positionId,
        "positionStatus": ProtoOAPositionStatus.Name(event.position.positionStatus),
        "positionVolume": event.position.tradeData.volume,
        "label": event.order.tradeData.label,
        "grossProfit": event.deal.closePositionDetail.grossProfit
        if event.deal.HasField("closePositionDetail") else None,
    })
    if (event.order.orderType == ProtoOAOrderType.Value("STOP_LOSS_TAKE_PROFIT")
            and not state["closing"]):
        state["position_id"] = event.position.positionId
        close_position()
    elif state["closing"] and event.position.positionStatus == ProtoOAPositionStatus.Value(
            "POSITION_STATUS_CLOSED"):
        finish("closed")


def disconnected(client, reason) -> None:
    if "finished" not in seen:
        seen["errors"].append(f"disconnected: {reason}")


client = Client(config["host"], config["port"], TcpProtocol)
client.setConnectedCallback(connected)
client.setDisconnectedCallback(disconnected)
client.setMessageReceivedCallback(on_message)
client.startService()
reactor.callLater(config.get("timeout", 40), finish, "timeout")
reactor.run()
