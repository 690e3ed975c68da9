"""One verified TLS connection to the Open API, and the requests in flight on it.

``Connection.open`` resolves the host with asyncio (Twisted's resolvers need a running reactor's
thread pool, see :mod:`bridge`), connects with ``optionsForClientTLS(host, trustRoot)`` so the
certificate chain AND the host name are verified, and waits for the TLS handshake.

Each request gets an :class:`Exchange`: its own clientMsgId, the messages routed to it, and the
rules for what a missing answer means. Its ``request_timeout`` counts from when its frame was
written, not from when it joined the pacer's queue. When the connection drops, an exchange whose
frame was written fails with ``BrokerTimeout`` (the server may have acted: outcome unknown), one
whose frame was still waiting for the rate limit fails with ``BrokerUnavailable`` (nothing was
sent); a caller cancelled while its frame waits takes the frame off the queue.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from google.protobuf.message import Message
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust, trustRootFromCertificates
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol

from pipsync_lite import protos
from pipsync_lite.ctrader import bridge
from pipsync_lite.ctrader.model import Execution
from pipsync_lite.ctrader.protocol import (
    HISTORICAL_PAYLOAD_TYPES,
    TRADING_PAYLOAD_TYPES,
    OpenApiProtocol,
    Outbound,
    Pacer,
)
from pipsync_lite.errors import BrokerTimeout, BrokerUnavailable

log = structlog.get_logger(__name__)

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def trust_root(ca_file: Path | None) -> Any:
    """The system CA store, or the certificates of ``ca_file`` (PEM) instead of it."""
    if ca_file is None:
        return platformTrust()
    try:
        data = Path(ca_file).read_bytes()
    except OSError as exc:
        raise BrokerUnavailable(f"cannot read ca_file {ca_file}: {exc.strerror}") from exc
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise BrokerUnavailable(f"ca_file {ca_file} holds no PEM certificate")
    return trustRootFromCertificates([Certificate.loadPEM(block) for block in blocks])


@dataclass(slots=True)
class Routed:
    """A message routed to an exchange; ``execution`` is set for execution events."""

    payload_type: int
    message: Message
    execution: Execution | None = None


class _Lost:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Exchange:
    """A request sent with our clientMsgId, and the answers routed to it.

    Its deadline starts when its frame leaves the pacer (``timeout`` after ``sent_at``): a
    request that waited its turn in a paced burst has its full time for the answer.
    """

    __slots__ = ("_items", "_loop", "_waiter", "msg_id", "name", "order_ids", "outbound", "position_ids",
                 "queue_until", "queue_wait", "sent_at", "timeout")

    def __init__(
        self, msg_id: str, name: str, timeout: float, loop: asyncio.AbstractEventLoop, queue_wait: float | None = None
    ) -> None:
        self.msg_id = msg_id
        self.name = name  # the request's message name, for logs and errors
        self.timeout = timeout
        #: loop time after which a frame still waiting for the pacer is not sent at all
        self.queue_wait = timeout if queue_wait is None else queue_wait
        self.queue_until = loop.time() + self.queue_wait
        self.outbound: Outbound | None = None
        self.sent_at: float | None = None  # loop time the frame was written
        #: ids learned from the answers (e.g. the orderId of ORDER_ACCEPTED), so events that do
        #: not echo our clientMsgId still reach the request that caused them
        self.order_ids: set[int] = set()
        self.position_ids: set[int] = set()
        self._items: deque[Routed | _Lost] = deque()
        self._waiter: asyncio.Future[bool] | None = None
        self._loop = loop

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    @property
    def deadline(self) -> float | None:
        """The loop time the answer is due by; None while the frame waits for the pacer."""
        return None if self.sent_at is None else self.sent_at + self.timeout

    def mark_sent(self) -> None:
        self.sent_at = self._loop.time()
        self._wake()

    def deliver(self, routed: Routed) -> None:
        self._items.append(routed)
        self._wake()

    def lose(self, reason: str) -> None:
        self._items.append(_Lost(reason))
        self._wake()

    def matches(self, order_id: int | None, position_id: int | None) -> bool:
        return (order_id is not None and order_id in self.order_ids) or (
            position_id is not None and position_id in self.position_ids
        )

    async def next(self, deadline: float | None = None) -> Routed:
        """The next routed message; raises when the deadline passes or the connection drops.

        ``deadline`` (loop time) defaults to ``timeout`` after the frame left the pacer, and
        until then the wait has no end but the connection's. An explicit deadline also bounds
        the wait for the pacer: a frame still waiting then is never sent (BrokerUnavailable).
        """
        items = self._items
        while not items:
            if deadline is None and self.sent_at is None:  # waiting for the pacer, not for ever
                remaining = self.queue_until - self._loop.time()
                if (remaining > 0 and await self._wait(remaining)) or items or self.sent_at is not None:
                    continue
                self._unsend()
                raise BrokerUnavailable(
                    f"{self.name} was not sent: still waiting for its turn under the API's rate limit "
                    f"after {self.queue_wait:g} s (too many requests ahead of it)"
                )
            due = deadline if deadline is not None else self.sent_at + self.timeout  # type: ignore[operator]
            remaining = due - self._loop.time()
            if (remaining <= 0 or not await self._wait(remaining)) and not items:
                if self.sent_at is None:
                    self._unsend()
                    raise BrokerUnavailable(f"{self.name} was not sent in time (rate limit)")
                raise BrokerTimeout(f"no answer to {self.name} in time: outcome unknown")
        item = items[0]
        if isinstance(item, _Lost):  # stays: every later call raises too
            if self.sent_at is not None:
                raise BrokerTimeout(
                    f"connection lost before the answer to {self.name} ({item.reason}): outcome unknown"
                )
            raise BrokerUnavailable(f"connection lost before {self.name} was sent ({item.reason})")
        return items.popleft()  # type: ignore[return-value]

    async def _wait(self, timeout: float | None) -> bool:
        """True once something happens (a message, the send, the loss), False after ``timeout``."""
        waiter: asyncio.Future[bool] = self._loop.create_future()
        self._waiter = waiter
        timer = None if timeout is None else self._loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            self._unsend()  # the caller gave up: a frame still waiting for the pacer never leaves
            raise
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _unsend(self) -> None:
        if self.sent_at is None and self.outbound is not None:
            self.outbound.cancelled = True


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


MessageHandler = Callable[["Connection", str, int, Message], None]


class Connection:
    """A TLS connection carrying ProtoMessages; the client handles what arrives."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        ca_file: Path | None,
        on_message: MessageHandler,
        next_msg_id: Callable[[], str],
        clock: Callable[[], float],
        pacer: Pacer,
        request_timeout: float = 10.0,
        max_queue_wait: float | None = None,
        event_types: frozenset[int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ca_file = ca_file
        self._on_message = on_message
        self._next_msg_id = next_msg_id
        self._clock = clock
        self._pacer = pacer
        self.request_timeout = request_timeout
        self.max_queue_wait = max_queue_wait
        #: payload types parsed whatever their clientMsgId (None: all); any other message is
        #: parsed only when it answers one of our exchanges, else dropped unparsed
        self._event_types = event_types
        self._loop = asyncio.get_running_loop()
        self.protocol: OpenApiProtocol | None = None
        self.exchanges: dict[str, Exchange] = {}
        self.last_received = clock()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._close_reason: str | None = None

    # --- opening --------------------------------------------------------------------------

    async def open(self, timeout: float) -> None:
        """Connect, verify the server (chain and host name) and complete the TLS handshake."""
        reactor = bridge.get_reactor()
        options = optionsForClientTLS(self.host, trustRoot=trust_root(self.ca_file))
        try:
            infos = await asyncio.wait_for(
                self._loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot resolve {self.host}: {exc}") from exc
        addresses = list(dict.fromkeys((info[0], info[4][0]) for info in infos))
        errors = []
        for family, address in addresses:
            endpoint_type = TCP6ClientEndpoint if family == socket.AF_INET6 else TCP4ClientEndpoint
            endpoint = endpoint_type(reactor, address, self.port, timeout=timeout)
            try:
                await asyncio.wait_for(bridge.as_future(endpoint.connect(_TLSFactory(options, self))), timeout)
                break
            except Exception as exc:  # TimeoutError, or Twisted's ConnectError family
                errors.append(f"{address}: {type(exc).__name__}: {exc}".strip())
        else:
            raise BrokerUnavailable(f"cannot connect to {self.host}:{self.port}: {'; '.join(errors)}")
        try:
            await asyncio.wait_for(asyncio.shield(self._handshake), timeout)
        except TimeoutError as exc:
            self.close("TLS handshake timed out", abort=True)
            raise BrokerUnavailable(f"TLS handshake with {self.host}:{self.port} timed out") from exc

    def build_protocol(self) -> OpenApiProtocol:
        return OpenApiProtocol(self, bridge.get_reactor(), self._pacer, now=self._clock)

    # --- FrameListener ---------------------------------------------------------------------

    def connection_made(self, protocol: OpenApiProtocol) -> None:
        self.protocol = protocol
        self.last_received = self._clock()

    def handshake_completed(self) -> None:
        transport = self.protocol.transport if self.protocol is not None else None
        # Twisted reports the handshake done even when the host-name check has just aborted it.
        if transport is None or getattr(transport, "disconnecting", False):
            return
        if not self._handshake.done():
            self._handshake.set_result(None)

    def frame_received(self, frame: bytes) -> None:
        self.last_received = self._clock()
        try:
            payload_type, payload, msg_id = protos.split(frame)
            events = self._event_types
            if events is not None and payload_type not in events and msg_id not in self.exchanges:
                return  # nobody reads it (a margin update, a late answer): not worth a parse
            message = protos.parse_payload(payload_type, payload)
        except Exception as exc:  # a corrupt frame: drop the link rather than guess
            log.error("broker_frame_undecodable", error=type(exc).__name__, length=len(frame))
            self.close("undecodable frame", abort=True)
            return
        if message is None:
            log.debug("broker_message_unknown", payload_type=payload_type)
            return
        try:
            self._on_message(self, msg_id, payload_type, message)
        except Exception:
            log.exception("broker_message_handling_failed", payload_type=payload_type)

    def connection_lost(self, reason: str) -> None:
        reason = self._close_reason or reason
        if not self._handshake.done():
            self._handshake.set_exception(BrokerUnavailable(f"connection refused or dropped: {reason}"))
            self._handshake.exception()  # retrieved: open() may already have given up
        for exchange in list(self.exchanges.values()):
            exchange.lose(reason)
        self.exchanges.clear()
        if not self.closed.done():
            self.closed.set_result(reason)

    # --- sending --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.protocol is not None and self.protocol.connected and not self.closed.done()

    def request(self, message: Message, timeout: float | None = None) -> Exchange:
        """Register an exchange for ``message`` and send it (now, or when the pacer allows).

        ``timeout`` (default ``request_timeout``) counts from when the frame is written.
        """
        name = type(message).__name__
        if not self.is_open:
            raise BrokerUnavailable(f"not connected: {name} not sent")
        timeout = timeout or self.request_timeout
        queue_wait = self.max_queue_wait if self.max_queue_wait is not None else timeout
        exchange = Exchange(self._next_msg_id(), name, timeout, self._loop, queue_wait)
        self.exchanges[exchange.msg_id] = exchange
        assert self.protocol is not None
        payload_type = protos.payload_type_of(message)
        exchange.outbound = self.protocol.send(
            protos.encode(message, exchange.msg_id),
            historical=payload_type in HISTORICAL_PAYLOAD_TYPES,
            urgent=payload_type in TRADING_PAYLOAD_TYPES,
            on_sent=exchange.mark_sent,
        )
        return exchange

    def forget(self, exchange: Exchange) -> None:
        self.exchanges.pop(exchange.msg_id, None)

    def send_heartbeat(self) -> None:
        if self.is_open and self.protocol is not None:
            self.protocol.send_heartbeat()

    @property
    def last_sent(self) -> float:
        return self.protocol.last_sent if self.protocol is not None else self._clock()

    def close(self, reason: str, abort: bool = False) -> None:
        """Drop the connection; ``closed`` resolves with ``reason`` once it is gone."""
        if self.closed.done():
            return
        if self._close_reason is None:
            self._close_reason = reason
        if self.protocol is not None and self.protocol.connected:
            self.protocol.close(abort=abort)
        elif not self.closed.done():
            self.connection_lost(reason)


class _Factory(Factory):
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def buildProtocol(self, addr: object) -> OpenApiProtocol:
        return self.connection.build_protocol()


class _TLSFactory(TLSMemoryBIOFactory):
    """``wrapClientTLS`` without write aggregation: Twisted's default TLS transport
    (``BufferingTLSTransport``) holds every write until the loop's next iteration; the
    protocol batches its own writes (see :mod:`protocol`)."""

    protocol = TLSMemoryBIOProtocol

    def __init__(self, options: Any, connection: Connection) -> None:
        super().__init__(options, True, _Factory(connection))

