"""The wire: TLS trust, length framing, clientMsgId echo, heartbeats and the idle timeout."""

from __future__ import annotations

import ssl
import struct
from pathlib import Path

import pytest

from pipsync_lite import protos
from pipsync_lite.simulator import Simulator

from .wire import M, WireClient


async def test_certificate_is_trusted_through_ca_file_for_localhost_and_ip(sim: Simulator) -> None:
    for host in ("localhost", "127.0.0.1"):
        client = await WireClient.connect(sim, host=host)
        res = await client.request(M.ProtoOAVersionReq())
        assert res.version
        await client.close()


async def test_certificate_is_refused_without_the_ca(sim: Simulator) -> None:
    import asyncio
    context = ssl.create_default_context()  # system roots only
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(sim.host, sim.port, ssl=context,
                                      server_hostname="localhost")


async def test_given_certificate_files_are_used(tmp_path: Path) -> None:
    from pipsync_lite.simulator import tls
    files = tls.generate(tmp_path / "given")
    async with Simulator(seed=1, tls_files=files) as sim:
        assert sim.ca_file == files.ca_file
        client = await WireClient.connect(sim)
        assert (await client.request(M.ProtoOAVersionReq())).version
        await client.close()


async def test_response_echoes_client_msg_id_and_none_when_absent(sim: Simulator) -> None:
    client = await WireClient.connect(sim)
    client.send(M.ProtoOAVersionReq(), "abc-123")
    first = await client.wait(lambda m: m.name == "ProtoOAVersionRes")
    assert first.client_msg_id == "abc-123"
    client.send(M.ProtoOAVersionReq())
    second = await client.wait(lambda m: m.name == "ProtoOAVersionRes", start=1)
    assert second.client_msg_id is None
    await client.close()


async def test_frames_split_and_coalesced_across_writes_are_decoded(sim: Simulator) -> None:
    client = await WireClient.connect(sim)
    frames = b""
    for i in range(3):
        body = protos.encode(M.ProtoOAVersionReq(), f"c{i}")
        frames += struct.pack(">I", len(body)) + body
    client.send_raw(frames[:3])  # half a header
    client.send_raw(frames[3:20])
    client.send_raw(frames[20:])
    await client.wait(lambda m: m.client_msg_id == "c2")
    assert [m.client_msg_id for m in client.inbox] == ["c0", "c1", "c2"]
    await client.close()


async def test_frame_over_the_limit_gets_frame_too_long_and_closes(tmp_path: Path) -> None:
    async with Simulator(seed=1, cert_dir=tmp_path, max_frame=1000) as sim:
        client = await WireClient.connect(sim)
        client.send_raw(struct.pack(">I", 1001) + b"\0" * 10)
        await client.wait_closed()
        error = client.named("ProtoErrorRes")[0]
        assert error.errorCode == "FRAME_TOO_LONG"
        await client.close()


async def test_malformed_frame_gets_invalid_request(sim: Simulator) -> None:
    client = await WireClient.connect(sim)
    client.send_raw(struct.pack(">I", 3) + b"\xff\xff\xff")
    error = await client.wait_named("ProtoErrorRes")
    assert error.errorCode == "INVALID_REQUEST"
    await client.close()


async def test_unknown_payload_type_gets_unsupported_message(sim: Simulator) -> None:
    client = await WireClient.connect(sim)
    body = protos.ProtoMessage(payloadType=9999, clientMsgId="x").SerializeToString()
    client.send_raw(struct.pack(">I", len(body)) + body)
    found = await client.wait(lambda m: m.client_msg_id == "x")
    assert found.name == "ProtoErrorRes" and found.message.errorCode == "UNSUPPORTED_MESSAGE"
    await client.close()


async def test_missing_required_fields_get_invalid_request(client: WireClient,
                                                           sim: Simulator) -> None:
    partial = M.ProtoOAAccountAuthReq(ctidTraderAccountId=sim.account_id)  # no accessToken
    body = protos.ProtoMessage(payloadType=partial.payloadType, clientMsgId="p",
                               payload=partial.SerializePartialToString()).SerializeToString()
    client.send_raw(struct.pack(">I", len(body)) + body)
    found = await client.wait(lambda m: m.client_msg_id == "p")
    assert found.message.errorCode == "INVALID_REQUEST"
    assert "accessToken" in found.message.description


async def test_server_sends_heartbeats_when_silent_and_ignores_client_heartbeats(
        tmp_path: Path) -> None:
    async with Simulator(seed=1, cert_dir=tmp_path, heartbeat_interval=0.1) as sim:
        client = await WireClient.connect(sim)
        await client.wait(lambda m: m.name == "ProtoHeartbeatEvent")
        before = len(client.inbox)
        client.send(protos.common.ProtoHeartbeatEvent())
        await sim.wait_for_request("ProtoHeartbeatEvent")
        # Only the server's own periodic heartbeats follow; nothing answers ours.
        await client.wait(lambda m: m.name == "ProtoHeartbeatEvent", start=before)
        assert all(m.name == "ProtoHeartbeatEvent" for m in client.inbox)
        await client.close()


async def test_silent_client_is_disconnected_after_idle_timeout(tmp_path: Path) -> None:
    async with Simulator(seed=1, cert_dir=tmp_path, idle_timeout=0.3) as sim:
        client = await WireClient.connect(sim)
        await client.wait_closed(timeout=3)
        await sim.wait_for(lambda: not sim.connection_ids)
        await client.close()


async def test_client_heartbeats_keep_the_link_alive(tmp_path: Path) -> None:
    import time
    async with Simulator(seed=1, cert_dir=tmp_path, idle_timeout=0.4) as sim:
        client = await WireClient.connect(sim)
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            client.send(protos.common.ProtoHeartbeatEvent())
            count = len(sim.requests)
            await sim.wait_for(lambda: len(sim.requests) > count)
            await sim.wait_for(lambda: time.monotonic() > sim.requests[-1].monotonic + 0.15)
        assert not client.closed.is_set()
        assert len(sim.connection_ids) == 1
        await client.close()


async def test_requests_are_recorded_with_arrival_times(sim: Simulator) -> None:
    import time
    client = await WireClient.connect(sim)
    before = time.time()
    await client.request(M.ProtoOAVersionReq())
    record = sim.requests_named("ProtoOAVersionReq")[0]
    assert record.payload_type == 2104 and record.client_msg_id
    assert record.connection_id == sim.connection_ids[0]
    assert before <= record.wall <= time.time()
    assert record.monotonic <= time.monotonic()
    assert record.message.DESCRIPTOR.name == "ProtoOAVersionReq"
    await client.close()


async def test_known_but_unsimulated_request_gets_unsupported_message(
        sim: Simulator, client: WireClient) -> None:
    res = await client.request(M.ProtoOAGetTrendbarsReq(
        ctidTraderAccountId=sim.account_id, fromTimestamp=0, toTimestamp=1, period=1,
        symbolId=1))
    assert res.DESCRIPTOR.name == "ProtoOAErrorRes"
    assert res.errorCode == "UNSUPPORTED_MESSAGE"
