"""The wire: length-prefixed ProtoMessage frames, sent at once and paced under the API's limits.

Replaces ``ctrader_open_api``'s ``TcpProtocol``, whose send path queues every message behind a
one-second ``LoopingCall`` (at most 5 per tick) in a queue shared by every connection.

Pacing (per connection, :class:`Pacer`):

- at most ``per_second`` (50) frames in any sliding window of ``1 s + margin``, and at most
  ``historical_per_second`` (5) historical requests (DealList, trendbars, ticks, cash flow) in
  such a window, which also count towards the 50;
- a frame goes out immediately when its window has room and nothing of its class waits before
  it, so orders see no added latency under the limit; otherwise it waits in a FIFO queue of its
  class and a single timer fires exactly when the oldest send leaves the window: the client
  never idles below the limit while frames wait;
- three FIFO queues, flushed in this order: trading requests (new/close/amend/cancel), then
  other requests, then historical ones; so when the window is full an order goes out at the
  first free slot, ahead of a Reconcile or DealList backlog;
- heartbeats are counted like any frame. They are only sent after ``heartbeat_interval`` of
  outbound silence, when the window is empty, so they never wait in practice.

The margin (50 ms by default) absorbs jitter between our send times and the server's arrival
times: 50 frames spread over 1.05 s at our end cannot land within 1 s at the server unless the
network delays the first and not the 51st by more than 50 ms. (25 ms proved too thin: a busy
simulator, timing arrivals as it reads them, saw 51 in a second.)

Writing: "sent" means handed to the socket, at once. Twisted would hold a write twice until the
loop's next iterations (its TLS transport aggregates small writes behind a ``callLater(0)``,
and its TCP transport only buffers and waits for the socket to be reported writable), ~0.3 ms
per order. So the connection uses the unbuffered ``TLSMemoryBIOProtocol`` (see
:mod:`connection`), the frames of one send or one pacer flush go to TLS as one write, and then
:meth:`OpenApiProtocol._push` does what the reactor would do when the socket is writable: the
TCP transport's own ``doWrite`` (a partial write or EAGAIN keeps the rest in Twisted's buffer,
still watched by the reactor; nothing is written twice) and, when that reports the connection
lost, the reactor's own disconnect handling. Not while a received frame is being handled: the
reactor flushes those writes on its next iteration, as before.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import structlog
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from pipsync_lite import protos

log = structlog.get_logger(__name__)

#: The historical-data requests limited to 5/s (per the Open API docs and FAQ).
HISTORICAL_PAYLOAD_TYPES = frozenset(
    protos.payload_type_of(cls())
    for cls in (
        protos.messages.ProtoOADealListReq,
        protos.messages.ProtoOAGetTrendbarsReq,
        protos.messages.ProtoOAGetTickDataReq,
        protos.messages.ProtoOACashFlowHistoryListReq,
    )
)

#: Requests that act on the account: first in line when the window is full.
TRADING_PAYLOAD_TYPES = frozenset(
    protos.payload_type_of(cls())
    for cls in (
        protos.messages.ProtoOANewOrderReq,
        protos.messages.ProtoOAClosePositionReq,
        protos.messages.ProtoOAAmendPositionSLTPReq,
        protos.messages.ProtoOAAmendOrderReq,
        protos.messages.ProtoOACancelOrderReq,
    )
)

HEARTBEAT_FRAME = protos.encode(protos.common.ProtoHeartbeatEvent())
_LENGTH = struct.Struct(">I")  # Int32StringReceiver's prefix


class RateWindow:
    """At most ``limit`` events in any sliding window of ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(f"a rate window needs limit >= 1 and window > 0, got {limit}/{window}")
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more event fits (0 if it fits now)."""
        times = self._times
        while times and times[0] + self.window <= now:
            times.popleft()
        if len(times) < self.limit:
            return 0.0
        return times[0] + self.window - now

    def record(self, now: float) -> None:
        self._times.append(now)


class Pacer:
    """The Open API's per-connection request limits: 50/s overall, 5/s historical."""

    def __init__(
        self, per_second: int = 50, historical_per_second: int = 5, margin: float = 0.05
    ) -> None:
        self.all = RateWindow(per_second, 1.0 + margin)
        self.historical = RateWindow(historical_per_second, 1.0 + margin)

    def wait_time(self, now: float, historical: bool) -> float:
        wait = self.all.wait_time(now)
        if historical:
            wait = max(wait, self.historical.wait_time(now))
        return wait

    def record(self, now: float, historical: bool) -> None:
        self.all.record(now)
        if historical:
            self.historical.record(now)


class FrameListener(TypingProtocol):
    """What the protocol reports to (the client's connection object)."""

    def connection_made(self, protocol: OpenApiProtocol) -> None: ...

    def handshake_completed(self) -> None: ...

    def frame_received(self, frame: bytes) -> None: ...

    def connection_lost(self, reason: str) -> None: ...


@dataclass(slots=True)
class Outbound:
    """A frame waiting for its turn; ``on_sent`` runs when it is written to the transport."""

    frame: bytes
    historical: bool = False
    urgent: bool = False
    on_sent: Callable[[], None] | None = None
    cancelled: bool = False  # given up by its sender while waiting: never written


@implementer(IHandshakeListener)
class OpenApiProtocol(Int32StringReceiver):
    """4-byte big-endian length framing; each frame is one serialized ProtoMessage."""

    MAX_LENGTH = 15_000_000  # as ctrader_open_api's TcpProtocol; the server's limit is undocumented

    def __init__(
        self,
        listener: FrameListener,
        clock: IReactorTime,
        pacer: Pacer,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.listener = listener
        self.clock = clock  # for callLater
        self.now = now or clock.seconds  # the pacer's time source (monotonic in production)
        self.pacer = pacer
        self.connected = False
        self.last_sent = self.now()
        self.frames_sent = 0
        self._urgent_queue: deque[Outbound] = deque()
        self._queue: deque[Outbound] = deque()
        self._historical_queue: deque[Outbound] = deque()
        self._timer: IDelayedCall | None = None
        self._socket: FileDescriptor | None = None  # the TCP transport under TLS, to push
        self._receiving = False

    # --- Twisted callbacks ----------------------------------------------------------------

    def connectionMade(self) -> None:
        self.connected = True
        self.last_sent = self.now()
        below = getattr(self.transport, "transport", None)
        self._socket = below if isinstance(below, FileDescriptor) else None
        self.listener.connection_made(self)
        self._schedule()  # anything queued before the connection existed

    def handshakeCompleted(self) -> None:
        self.listener.handshake_completed()

    def dataReceived(self, data: bytes) -> None:
        self._receiving = True
        try:
            super().dataReceived(data)
        finally:
            self._receiving = False

    def stringReceived(self, string: bytes) -> None:
        self.listener.frame_received(string)

    def lengthLimitExceeded(self, length: int) -> None:
        log.error("broker_frame_too_long", length=length, limit=self.MAX_LENGTH)
        if self.transport is not None:
            self.transport.abortConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self.connected = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._urgent_queue.clear()
        self._queue.clear()
        self._historical_queue.clear()
        self.listener.connection_lost(describe_failure(reason))

    # --- sending --------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Frames waiting for the rate limit."""
        return len(self._urgent_queue) + len(self._queue) + len(self._historical_queue)

    def send(
        self,
        frame: bytes,
        *,
        historical: bool = False,
        urgent: bool = False,
        on_sent: Callable[[], None] | None = None,
    ) -> Outbound:
        """Write ``frame`` now if the limits allow and nothing of its class waits, else queue it.

        Returns the queue entry: setting its ``cancelled`` keeps a waiting frame off the wire.
        """
        item = Outbound(frame, historical, urgent, on_sent)
        if historical:
            queue = self._historical_queue
        elif urgent:
            queue = self._urgent_queue
        else:
            queue = self._queue
        # a general frame must not overtake waiting trading frames (they go first anyway)
        waiting = queue or (not historical and not urgent and self._urgent_queue)
        if waiting or not self.connected:
            queue.append(item)
            self._schedule()
            return item
        now = self.now()
        if self.pacer.wait_time(now, historical) > 0:
            queue.append(item)
            self._schedule()
            return item
        self.pacer.record(now, historical)
        self._write([item], now)
        return item

    def send_heartbeat(self) -> None:
        """Send a ProtoHeartbeatEvent (counted by the pacer like any frame)."""
        self.send(HEARTBEAT_FRAME)

    def close(self, abort: bool = False) -> None:
        if self.transport is None or not self.connected:
            return
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def _write(self, items: list[Outbound], now: float) -> None:
        """Frames the pacer let through (and recorded): one TLS write, reported sent, pushed."""
        chunks = []
        for item in items:
            chunks.append(_LENGTH.pack(len(item.frame)))
            chunks.append(item.frame)
        self.last_sent = now
        self.frames_sent += len(items)
        assert self.transport is not None
        self.transport.write(b"".join(chunks))
        for item in items:  # before the push: a link lost in it makes them "sent, unanswered"
            if item.on_sent is not None:
                item.on_sent()
        self._push()

    def _push(self) -> None:
        """Hand what TLS wrote to the socket now, as the reactor does when it is writable."""
        sock = self._socket
        if sock is None or self._receiving or not sock.connected or sock.fileno() == -1:
            return
        # AsyncioSelectorReactor._readOrWrite(sock, read=False), minus the wait for the loop
        try:
            why = sock.doWrite()
        except Exception as exc:  # as the reactor: a failed write ends the connection
            log.exception("broker_socket_write_failed")
            why = exc
        if why:
            sock.reactor._disconnectSelectable(sock, why, False)

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            return
        if not self.connected:
            return
        now = self.now()
        waits = []
        if self._urgent_queue or self._queue:
            waits.append(self.pacer.wait_time(now, False))
        if self._historical_queue:
            waits.append(self.pacer.wait_time(now, True))
        if waits:
            self._timer = self.clock.callLater(max(0.0, min(waits)), self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not self.connected:
            return
        now = self.now()
        # Trading frames first, then the rest; historical ones take what room is left.
        due: list[Outbound] = []
        for queue, historical in (
            (self._urgent_queue, False),
            (self._queue, False),
            (self._historical_queue, True),
        ):
            while queue and (queue[0].cancelled or self.pacer.wait_time(now, historical) <= 0):
                item = queue.popleft()
                if not item.cancelled:
                    self.pacer.record(now, historical)
                    due.append(item)
        if due:
            self._write(due, now)
        self._schedule()


def describe_failure(reason: Failure | None) -> str:
    """A short, secret-free description of why a connection ended."""
    if reason is None:
        return "connection closed"
    value = reason.value
    text = str(value) or type(value).__name__
    if type(value).__name__ == "Error" and type(value).__module__.startswith("OpenSSL"):
        return f"TLS error: {_openssl_reason(value)}"
    return f"{type(value).__name__}: {text}"


def _openssl_reason(error: BaseException) -> str:
    # OpenSSL.SSL.Error carries [(lib, func, reason), ...]
    parts = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(entry, tuple) and entry:
            parts.append(str(entry[-1]))
    return "; ".join(parts) or str(error)
