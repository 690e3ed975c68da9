"""A small independent Open API client for the simulator tests: asyncio streams, verified TLS."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator import SimCredentials, Simulator

M = protos.messages
MODEL = protos.model
_ids = itertools.count(1)


@dataclass(frozen=True)
class Inbound:
    message: Any
    client_msg_id: str | None

    @property
    def name(self) -> str:
        return self.message.DESCRIPTOR.name


class WireClient:
    """Sends requests, records every inbound message, waits on conditions with deadlines."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.inbox: list[Inbound] = []
        self._arrived = asyncio.Condition()
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, sim: Simulator, host: str = "localhost") -> WireClient:
        context = ssl.create_default_context(cafile=str(sim.ca_file))
        reader, writer = await asyncio.open_connection(
            sim.host, sim.port, ssl=context, server_hostname=host)
        return cls(reader, writer)

    async def _read(self) -> None:
        try:
            while True:
                (length,) = struct.unpack(">I", await self._reader.readexactly(4))
                envelope, message = protos.decode(await self._reader.readexactly(length))
                cmid = envelope.clientMsgId if envelope.HasField("clientMsgId") else None
                async with self._arrived:
                    self.inbox.append(Inbound(message, cmid))
                    self._arrived.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            self.closed.set()
            async with self._arrived:
                self._arrived.notify_all()

    def send_raw(self, data: bytes) -> None:
        self._writer.write(data)

    def send(self, message: Message, client_msg_id: str | None = None) -> str | None:
        body = protos.encode(message, client_msg_id)
        self._writer.write(struct.pack(">I", len(body)) + body)
        return client_msg_id

    async def request(self, message: Message, timeout: float = 5.0) -> Any:
        """Send with a fresh clientMsgId; return the first message echoing it."""
        cmid = f"t{next(_ids)}"
        start = len(self.inbox)
        self.send(message, cmid)
        found = await self.wait(lambda m: m.client_msg_id == cmid, timeout, start=start)
        return found.message

    async def request_all(self, message: Message, until: Callable[[list[Inbound]], bool],
                          timeout: float = 5.0, client_msg_id: str | None = None) -> list[Any]:
        """Send; collect every message echoing the clientMsgId until ``until`` holds."""
        cmid = client_msg_id or f"t{next(_ids)}"
        start = len(self.inbox)
        self.send(message, cmid)

        def ready() -> bool:
            return until([m for m in self.inbox[start:] if m.client_msg_id == cmid])
        await self._wait_until(ready, timeout)
        return [m.message for m in self.inbox[start:] if m.client_msg_id == cmid]

    async def wait(self, predicate: Callable[[Inbound], Any], timeout: float = 5.0,
                   start: int = 0) -> Inbound:
        def find() -> Inbound | None:
            return next((m for m in self.inbox[start:] if predicate(m)), None)
        await self._wait_until(lambda: find() is not None, timeout)
        found = find()
        assert found is not None
        return found

    async def wait_named(self, name: str, timeout: float = 5.0, start: int = 0,
                         where: Callable[[Any], Any] = lambda m: True) -> Any:
        found = await self.wait(lambda m: m.name == name and where(m.message), timeout, start)
        return found.message

    def named(self, name: str, start: int = 0) -> list[Any]:
        return [m.message for m in self.inbox[start:] if m.name == name]

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        async def until() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: condition() or self.closed.is_set())
        await asyncio.wait_for(until(), timeout)
        if not condition():
            raise ConnectionError("connection closed before the condition was met")

    async def wait_closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError):
            pass
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    # ------------------------------------------------------------- session helpers

    async def app_auth(self, creds: SimCredentials) -> Any:
        return await self.request(M.ProtoOAApplicationAuthReq(
            clientId=creds.client_id, clientSecret=creds.client_secret))

    async def account_auth(self, creds: SimCredentials) -> Any:
        return await self.request(M.ProtoOAAccountAuthReq(
            ctidTraderAccountId=creds.account_id, accessToken=creds.access_token))

    async def authorize(self, creds: SimCredentials) -> None:
        res = await self.app_auth(creds)
        assert res.DESCRIPTOR.name == "ProtoOAApplicationAuthRes", res
        res = await self.account_auth(creds)
        assert res.DESCRIPTOR.name == "ProtoOAAccountAuthRes", res


# ----------------------------------------------------------------- trading helpers

ANSWERS_WITH_ERROR = ("ProtoOAOrderErrorEvent", "ProtoOAErrorRes")


def new_order(sim: Simulator, symbol: str, side: str, volume: int,
              order_type: str = "MARKET", **fields: Any) -> Any:
    return M.ProtoOANewOrderReq(
        ctidTraderAccountId=sim.account_id, symbolId=sim.instrument(symbol).symbol_id,
        orderType=MODEL.ProtoOAOrderType.Value(order_type),
        tradeSide=MODEL.ProtoOATradeSide.Value(side), volume=volume, **fields)


async def trade(client: WireClient, request: Message, events: int = 1,
                timeout: float = 5.0) -> list[Any]:
    """Send a trading request; return every message echoing its clientMsgId once
    ``events`` execution events (or an error) came back and a round trip has settled."""
    def done(ms: list[Inbound]) -> bool:
        return (sum(m.name == "ProtoOAExecutionEvent" for m in ms) >= events
                or any(m.name in ANSWERS_WITH_ERROR for m in ms))
    cmid = f"t{next(_ids)}"
    await client.request_all(request, until=done, timeout=timeout, client_msg_id=cmid)
    await client.request(M.ProtoOAVersionReq())  # the server answers in order
    return [m.message for m in client.inbox if m.client_msg_id == cmid]


def kinds(messages: list[Any]) -> list[str]:
    """Execution types (or message names for anything else), in order."""
    return [MODEL.ProtoOAExecutionType.Name(m.executionType)
            if m.DESCRIPTOR.name == "ProtoOAExecutionEvent" else m.DESCRIPTOR.name
            for m in messages]
