"""The connected clients: accepting links, applying fault knobs, delivering answers and events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from google.protobuf.message import DecodeError, Message

from pipsync_lite import protos
from pipsync_lite.simulator import render
from pipsync_lite.simulator.connection import Connection, RateLimiter
from pipsync_lite.simulator.dispatch import HEARTBEAT, Received, RequestContext, Router
from pipsync_lite.simulator.faults import Decision, Faults
from pipsync_lite.simulator.feed import SpotChange

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LinkSettings:
    heartbeat_interval: float
    idle_timeout: float
    max_frame: int
    requests_per_second: int
    historical_requests_per_second: int


class Hub:
    """Every live connection, and the one place messages leave the simulator."""

    def __init__(self, router: Router, faults: Faults, settings: LinkSettings,
                 requests: list[Received], changed: Callable[[], None]) -> None:
        self._router = router
        self._faults = faults
        self._settings = settings
        self._requests = requests
        self._changed = changed
        self._connections: dict[int, Connection] = {}
        #: exceptions raised by request handlers (simulator bugs); tests assert it stays empty
        self.internal_errors: list[Exception] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1

    @property
    def connection_ids(self) -> list[int]:
        return sorted(self._connections)

    def connections(self, connection_id: int | None = None) -> list[Connection]:
        if connection_id is None:
            return list(self._connections.values())
        conn = self._connections.get(connection_id)
        return [conn] if conn is not None else []

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The asyncio server's client callback: serve one connection to its end."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        s = self._settings
        conn = Connection(
            self._next_id, reader, writer, heartbeat_interval=s.heartbeat_interval,
            idle_timeout=s.idle_timeout, max_frame=s.max_frame,
            limiter=RateLimiter(s.requests_per_second, s.historical_requests_per_second))
        self._next_id += 1
        self._connections[conn.id] = conn
        self._changed()
        try:
            await conn.serve(self._on_frame)
        finally:
            del self._connections[conn.id]
            self._tasks.discard(task)
            self._changed()

    async def close_all(self) -> None:
        for conn in list(self._connections.values()):
            conn.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_frame(self, conn: Connection, body: bytes) -> None:
        try:
            envelope, message = protos.decode(body)
        except DecodeError:
            conn.send(protos.common.ProtoErrorRes(errorCode="INVALID_REQUEST",
                                                  description="Malformed frame"))
            return
        ptype = envelope.payloadType
        client_msg_id = envelope.clientMsgId if envelope.HasField("clientMsgId") else None
        name = message.DESCRIPTOR.name if message is not None else f"unknown:{ptype}"
        self._requests.append(Received(ptype, name, message, client_msg_id, conn.id,
                                       time.monotonic(), time.time()))
        self._changed()
        if ptype == HEARTBEAT:
            return  # nothing to answer: the heartbeat already refreshed last_inbound
        decision = self._faults.decide(name)
        if decision.drop_before:
            conn.abort()
            return
        if decision.delay > 0 and decision.handle_late:
            conn.call_later(decision.delay, lambda: self._process(
                conn, ptype, message, client_msg_id, name, decision))
            return
        self._process(conn, ptype, message, client_msg_id, name, decision)

    def _process(self, conn: Connection, ptype: int, message: Message | None,
                 client_msg_id: str | None, name: str, decision: Decision) -> None:
        outbox: list[tuple[Message, str | None]] = []
        if decision.handle:
            try:
                outbox = self._router.handle(conn, ptype, message, client_msg_id)
            except Exception as exc:  # a simulator bug: answer, keep the link, report
                log.exception("sim_handler_failed", request=name)
                self.internal_errors.append(exc)
                outbox = [(protos.common.ProtoErrorRes(
                    errorCode="UNKNOWN_ERROR", description=f"Simulator error: {exc!r}"),
                    client_msg_id)]
        self._changed()
        if decision.drop_after:
            conn.abort()
        elif not decision.answer:
            return
        elif decision.delay > 0 and not decision.handle_late:
            conn.call_later(decision.delay, lambda: self._send_all(conn, outbox))
        else:
            self._send_all(conn, outbox)

    @staticmethod
    def _send_all(conn: Connection, outbox: list[tuple[Message, str | None]]) -> None:
        for out, cmid in outbox:
            conn.send(out, cmid)

    def publish(self, account_id: int, messages: list[Message],
                ctx: RequestContext | None = None) -> None:
        """Send account events to every session of the account.

        The requesting connection gets them through its outbox (so fault knobs can hold
        them back); other sessions get them at once, with the same (to them foreign)
        clientMsgId, as the real server does.
        """
        client_msg_id = ctx.client_msg_id if ctx is not None else None
        for conn in list(self._connections.values()):
            if account_id not in conn.accounts:
                continue
            for message in messages:
                if ctx is not None and conn is ctx.conn:
                    ctx.outbox.append((message, client_msg_id))
                else:
                    conn.send(message, client_msg_id)
        self._changed()

    def push_spots(self, changes: list[SpotChange]) -> None:
        now_ms = int(time.time() * 1000)
        for conn in list(self._connections.values()):
            for change in changes:
                sub = conn.spots.get(change.symbol_id)
                if sub is None:
                    continue
                account_id, with_timestamp = sub
                conn.send(render.spot(account_id, change.symbol_id, change.bid, change.ask,
                                      now_ms if with_timestamp else None))

    # ----------------------------------------------------------------- sessions

    @staticmethod
    def end_account_session(conn: Connection, account_id: int) -> None:
        conn.accounts.pop(account_id, None)
        for symbol_id, (sub_account, _) in list(conn.spots.items()):
            if sub_account == account_id:
                del conn.spots[symbol_id]

    def end_token_sessions(self, access_token: str, reason: str,
                           ctx: RequestContext | None = None) -> None:
        """End every account session authorized with ``access_token``, telling each."""
        for conn in list(self._connections.values()):
            ids = [a for a, token in conn.accounts.items() if token == access_token]
            if not ids:
                continue
            for account_id in ids:
                self.end_account_session(conn, account_id)
            event = protos.messages.ProtoOAAccountsTokenInvalidatedEvent(
                ctidTraderAccountIds=ids, reason=reason)
            if ctx is not None and conn is ctx.conn:
                ctx.reply(event)
            else:
                conn.send(event)
        self._changed()

    def disconnect_account(self, account_id: int, connection_id: int | None = None) -> None:
        for conn in self.connections(connection_id):
            if account_id in conn.accounts:
                self.end_account_session(conn, account_id)
                conn.send(protos.messages.ProtoOAAccountDisconnectEvent(
                    ctidTraderAccountId=account_id))
        self._changed()

    def disconnect_clients(self, reason: str, connection_id: int | None = None) -> None:
        for conn in self.connections(connection_id):
            conn.send(protos.messages.ProtoOAClientDisconnectEvent(reason=reason))
            conn.close()
