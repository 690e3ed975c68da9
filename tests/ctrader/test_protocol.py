"""The wire protocol: framing, immediate sends, and the sliding-window pacing (on a fake clock);
and over real TLS, that a frame is on the socket when ``send`` returns."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from pipsync_lite import protos
from pipsync_lite.ctrader.connection import Connection
from pipsync_lite.ctrader.protocol import HISTORICAL_PAYLOAD_TYPES, OpenApiProtocol, Pacer, RateWindow
from pipsync_lite.errors import BrokerTimeout
from pipsync_lite.simulator import tls as sim_tls


class Recorder:
    """A FrameListener that keeps what it was told."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.lost: list[str] = []
        self.made = 0

    def connection_made(self, protocol: OpenApiProtocol) -> None:
        self.made += 1

    def handshake_completed(self) -> None:
        pass

    def frame_received(self, frame: bytes) -> None:
        self.frames.append(frame)

    def connection_lost(self, reason: str) -> None:
        self.lost.append(reason)


def connected(pacer: Pacer | None = None) -> tuple[OpenApiProtocol, StringTransport, Clock, Recorder]:
    clock = Clock()
    clock.advance(1000)
    listener = Recorder()
    protocol = OpenApiProtocol(listener, clock, pacer or Pacer())
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock, listener


def frames(data: bytes) -> list[bytes]:
    out = []
    while data:
        (length,) = struct.unpack("!I", data[:4])
        out.append(data[4 : 4 + length])
        data = data[4 + length :]
    return out


def test_frames_are_length_prefixed_big_endian_both_ways() -> None:
    protocol, transport, _, listener = connected()
    protocol.send(b"abc")
    assert transport.value() == b"\x00\x00\x00\x03abc"
    protocol.dataReceived(b"\x00\x00\x00\x02hi\x00\x00")
    protocol.dataReceived(b"\x00\x01x")
    assert listener.frames == [b"hi", b"x"]


def test_heartbeat_frame_matches_the_reference_bytes() -> None:
    protocol, transport, _, _ = connected()
    protocol.send_heartbeat()
    assert transport.value().hex() == "0000000408331200"


def test_a_send_under_the_limit_is_written_at_once_and_reports_it() -> None:
    protocol, transport, _, _ = connected()
    sent: list[int] = []
    protocol.send(b"order", on_sent=lambda: sent.append(1))
    assert frames(transport.value()) == [b"order"]
    assert sent == [1]


def test_fifty_go_at_once_the_51st_waits_exactly_until_the_first_leaves_the_window() -> None:
    protocol, transport, clock, _ = connected()
    for i in range(60):
        protocol.send(str(i).encode())
    assert len(frames(transport.value())) == 50
    assert protocol.queued == 10
    clock.advance(1.049)
    assert len(frames(transport.value())) == 50
    clock.advance(0.001)
    assert frames(transport.value())[50:] == [str(i).encode() for i in range(50, 60)]
    assert protocol.queued == 0


def test_queued_frames_keep_their_order_behind_newer_sends() -> None:
    protocol, transport, clock, _ = connected()
    for i in range(55):
        protocol.send(b"a%d" % i)
    protocol.send(b"late")  # must not overtake the queued ones even if a slot frees first
    clock.advance(2)
    sent = frames(transport.value())
    assert sent[-1] == b"late"
    assert sent[:55] == [b"a%d" % i for i in range(55)]


def test_no_window_ever_holds_more_than_the_limit_and_the_rate_stays_near_it() -> None:
    protocol, transport, clock, _ = connected()
    times: list[float] = []
    for _ in range(200):
        protocol.send(b"x", on_sent=lambda: times.append(clock.seconds()))
    while protocol.queued:
        clock.advance(0.001)
    assert len(frames(transport.value())) == len(times) == 200
    for i, t in enumerate(times):
        in_window = [u for u in times[i:] if u < t + 1.0]
        assert len(in_window) <= 50
    # 200 frames: 50 at once, then 50 per 1.05 s
    assert times[-1] - times[0] < 3 * 1.05 + 0.01


def test_historical_requests_are_limited_to_five_and_do_not_block_orders() -> None:
    protocol, transport, clock, _ = connected()
    for i in range(8):
        protocol.send(b"deals%d" % i, historical=True)
    protocol.send(b"order")
    sent = frames(transport.value())
    assert sent == [b"deals%d" % i for i in range(5)] + [b"order"]
    clock.advance(1.055)
    assert frames(transport.value())[6:] == [b"deals5", b"deals6", b"deals7"]


def test_trading_frames_go_first_when_the_window_is_full() -> None:
    protocol, transport, clock, _ = connected()
    for i in range(55):
        protocol.send(b"r%d" % i)
    protocol.send(b"order", urgent=True)
    protocol.send(b"later")
    clock.advance(1.05)
    sent = frames(transport.value())
    assert sent[50] == b"order"
    assert sent[51:] == [b"r%d" % i for i in range(50, 55)] + [b"later"]


def test_historical_payload_types_are_the_documented_ones() -> None:
    names = {protos.BY_PAYLOAD_TYPE[t].__name__ for t in HISTORICAL_PAYLOAD_TYPES}
    assert names == {
        "ProtoOADealListReq",
        "ProtoOAGetTrendbarsReq",
        "ProtoOAGetTickDataReq",
        "ProtoOACashFlowHistoryListReq",
    }


def test_queued_frames_are_dropped_unsent_when_the_connection_is_lost() -> None:
    protocol, transport, clock, listener = connected()
    sent: list[int] = []
    for _ in range(52):
        protocol.send(b"x", on_sent=lambda: sent.append(1))
    protocol.connectionLost(None)
    clock.advance(5)
    assert len(sent) == 50
    assert listener.lost == ["connection closed"]
    assert not clock.getDelayedCalls()


def test_each_connection_has_its_own_queue() -> None:
    first, first_transport, clock, _ = connected()
    second, second_transport, _, _ = connected()
    for _ in range(51):
        first.send(b"1")
    second.send(b"2")
    assert frames(second_transport.value()) == [b"2"]
    assert first.queued == 1 and second.queued == 0


def test_a_frame_over_the_length_limit_aborts_the_connection() -> None:
    protocol, transport, _, listener = connected()
    protocol.dataReceived(struct.pack("!I", OpenApiProtocol.MAX_LENGTH + 1))
    assert transport.disconnecting or transport.disconnected
    assert listener.frames == []


def test_rate_window_edges() -> None:
    window = RateWindow(2, 1.0)
    assert window.wait_time(0.0) == 0
    window.record(0.0)
    window.record(0.5)
    assert window.wait_time(0.9) == pytest.approx(0.1)
    assert window.wait_time(1.0) == 0  # the first send left the window


# --- over real TLS: the frame is handed to the socket before send() returns ------------------


@pytest_asyncio.fixture
async def tls_pair(tmp_path: Path) -> AsyncIterator[tuple[Connection, ssl.SSLSocket]]:
    """Our Connection, and the blocking server end of it (accepted and handshaken in a thread)."""
    files = sim_tls.generate(tmp_path / "tls")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    context = sim_tls.server_context(files)

    def accept() -> ssl.SSLSocket:
        raw, _ = listener.accept()
        return context.wrap_socket(raw, server_side=True)

    accepted = asyncio.get_running_loop().run_in_executor(None, accept)
    conn = Connection(host="127.0.0.1", port=listener.getsockname()[1], ca_file=files.ca_file,
                      on_message=lambda *_: None, next_msg_id=lambda: "t-1", clock=time.monotonic,
                      pacer=Pacer())
    await conn.open(10)
    server = await accepted
    server.settimeout(5)
    try:
        yield conn, server
    finally:
        conn.close("test over", abort=True)
        server.close()
        listener.close()


async def test_a_request_is_on_the_socket_before_the_loop_runs_again(
    tls_pair: tuple[Connection, ssl.SSLSocket],
) -> None:
    """No await between the request and the server's blocking read: the loop cannot run, so
    only a write made inside ``request()`` can be read (Twisted alone would still hold it)."""
    conn, server = tls_pair
    exchange = conn.request(protos.messages.ProtoOAVersionReq())
    data = server.recv(1 << 16)  # blocks this thread, loop included (times out if nothing came)
    assert exchange.sent
    [frame] = frames(data)
    envelope, message = protos.decode(frame)
    assert envelope.clientMsgId == "t-1" and type(message).__name__ == "ProtoOAVersionReq"


async def test_a_write_into_a_reset_link_ends_the_connection_at_once_as_outcome_unknown(
    tls_pair: tuple[Connection, ssl.SSLSocket],
) -> None:
    """The write fails inside ``request()``: handled as the reactor would (the connection is
    lost, the written request's outcome unknown), nothing raised to the sender."""
    conn, server = tls_pair
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # RST: the client's next send fails
    exchange = conn.request(protos.messages.ProtoOAVersionReq())
    assert conn.closed.done() and not conn.is_open
    with pytest.raises(BrokerTimeout, match="outcome unknown"):
        await exchange.next()
