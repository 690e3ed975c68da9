"""One client connection: length-prefixed frames over TLS, heartbeats and the idle timeout."""

from __future__ import annotations

import asyncio
import collections
import ssl
import struct
import time
from collections.abc import Awaitable, Callable

import structlog
from google.protobuf.message import Message

from pipsync_lite import protos

log = structlog.get_logger(__name__)

_HEADER = struct.Struct(">I")

#: Requests the Open API counts as historical (5 per second instead of 50).
HISTORICAL_REQUESTS = frozenset({
    protos.BY_NAME["ProtoOADealListReq"]().payloadType,
    protos.BY_NAME["ProtoOAGetTrendbarsReq"]().payloadType,
    protos.BY_NAME["ProtoOAGetTickDataReq"]().payloadType,
    protos.BY_NAME["ProtoOACashFlowHistoryListReq"]().payloadType,
})


class RateLimiter:
    """The documented per-connection limits, as sliding one-second windows.

    Refused requests do not count, so a client that backs off for a second always gets
    through again.
    """

    def __init__(self, per_second: int, historical_per_second: int) -> None:
        self._limits = {False: per_second, True: historical_per_second}
        self._windows: dict[bool, collections.deque[float]] = {
            False: collections.deque(), True: collections.deque()}

    def allow(self, payload_type: int, now: float) -> bool:
        historical = payload_type in HISTORICAL_REQUESTS
        window = self._windows[historical]
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= self._limits[historical]:
            return False
        window.append(now)
        return True


FrameHandler = Callable[["Connection", bytes], Awaitable[None]]


class Connection:
    """Socket I/O and the per-connection session state the request handlers read."""

    def __init__(self, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, heartbeat_interval: float, idle_timeout: float, max_frame: int,
                 limiter: RateLimiter) -> None:
        self.id = conn_id
        self.app_authorized = False
        #: account id -> the access token that authorized it on this connection
        self.accounts: dict[int, str] = {}
        #: subscribed symbol id -> (account id, whether the client asked for timestamps)
        self.spots: dict[int, tuple[int, bool]] = {}
        self.limiter = limiter
        self._reader = reader
        self._writer = writer
        self._heartbeat_interval = heartbeat_interval
        self._idle_timeout = idle_timeout
        self._max_frame = max_frame
        self._closed = asyncio.Event()
        self._timers: set[asyncio.TimerHandle] = set()
        now = time.monotonic()
        self.last_inbound = now
        self.last_outbound = now
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def serve(self, on_frame: FrameHandler) -> None:
        """Read frames until the peer leaves, the link idles out or we are told to close."""
        keepalive = asyncio.create_task(self._keepalive(), name=f"sim-keepalive-{self.id}")
        log.info("sim_client_connected", connection=self.id, peer=self.peer)
        reason = "peer_closed"
        try:
            while not self.closed:
                try:
                    body = await self._read_frame()
                except TimeoutError:
                    reason = "idle_timeout"
                    break
                except _FrameTooLong as exc:
                    self.send(protos.common.ProtoErrorRes(
                        errorCode="FRAME_TOO_LONG",
                        description=f"Frame of {exc.length} bytes exceeds {self._max_frame}"))
                    reason = "frame_too_long"
                    break
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
                    break
                self.last_inbound = time.monotonic()
                await on_frame(self, body)
        finally:
            keepalive.cancel()
            if not self.closed:
                self._shutdown()
            log.info("sim_client_disconnected", connection=self.id, reason=reason)

    async def _read_frame(self) -> bytes:
        remaining = self.last_inbound + self._idle_timeout - time.monotonic()
        async with asyncio.timeout(max(remaining, 0.0)):
            header = await self._reader.readexactly(_HEADER.size)
            (length,) = _HEADER.unpack(header)
            if length > self._max_frame:
                raise _FrameTooLong(length)
            return await self._reader.readexactly(length)

    async def _keepalive(self) -> None:
        # The server speaks first when it has been silent for heartbeat_interval, so a
        # client measuring inbound silence never mistakes a quiet market for a dead link.
        heartbeat = protos.common.ProtoHeartbeatEvent()
        while not self.closed:
            wait = self.last_outbound + self._heartbeat_interval - time.monotonic()
            if wait <= 0:
                self.send(heartbeat)
                continue
            await asyncio.sleep(wait)

    def send(self, message: Message, client_msg_id: str | None = None) -> None:
        if self.closed or self._writer.is_closing():
            return
        body = protos.encode(message, client_msg_id)
        self._writer.write(_HEADER.pack(len(body)) + body)
        self.last_outbound = time.monotonic()

    def call_later(self, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay`` seconds unless the link is gone by then."""
        def fire() -> None:
            self._timers.discard(handle)
            if not self.closed:
                action()

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def abort(self) -> None:
        """Drop the link as a network failure would: no TLS close_notify, pending data lost."""
        if self.closed:
            return
        self._closed.set()
        self._cancel_timers()
        self._writer.transport.abort()

    def close(self) -> None:
        """Close after flushing what was already written."""
        if not self.closed:
            self._shutdown()

    def _shutdown(self) -> None:
        self._closed.set()
        self._cancel_timers()
        self._writer.close()

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()


class _FrameTooLong(Exception):
    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length
