"""The ProtoMessage envelope, written and read by hand: the same bytes and values as protobuf's."""

from __future__ import annotations

import asyncio
import time

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from pipsync_lite import protos
from pipsync_lite.ctrader.connection import Connection, Exchange
from pipsync_lite.ctrader.protocol import Pacer

P = protos.messages
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
msg_ids = st.text(max_size=60)


def reference(payload_type: int, payload: bytes, client_msg_id: str | None) -> bytes:
    envelope = protos.ProtoMessage(payloadType=payload_type, payload=payload)
    if client_msg_id:
        envelope.clientMsgId = client_msg_id
    return envelope.SerializeToString()


@settings(max_examples=300, deadline=None)
@given(
    cls=st.sampled_from(
        sorted(
            (c for c in protos.BY_PAYLOAD_TYPE.values() if c().IsInitialized()),
            key=lambda c: c.__name__,
        )
    ),
    comment=st.text(max_size=20_000),
    client_msg_id=st.none() | msg_ids,
)
def test_encode_writes_the_bytes_protobuf_writes(
    cls: type, comment: str, client_msg_id: str | None
) -> None:
    message = cls()
    if "comment" in cls.DESCRIPTOR.fields_by_name:  # payloads past 127 and 16,383 bytes
        message.comment = comment
    expected = reference(
        protos.payload_type_of(message), message.SerializeToString(), client_msg_id
    )
    assert protos.encode(message, client_msg_id) == expected


def _varint(value: int) -> bytes:
    return protos._varint(value)


#: one encoded field: (field number, wire type, value) → bytes
# the envelope's own fields, often
numbers = st.sampled_from([1, 2, 3]) | st.integers(4, 40)
fields = st.one_of(
    st.tuples(
        numbers, st.just(0), st.integers(0, 2**32 - 1) | st.integers(2**32, 2**64 - 1)
    ),
    st.tuples(numbers, st.just(2), st.binary(max_size=300)),
    st.tuples(st.integers(4, 40), st.just(1), st.binary(min_size=8, max_size=8)),
    st.tuples(st.integers(4, 40), st.just(5), st.binary(min_size=4, max_size=4)),
)


def encoded(field: int, wire_type: int, value: object) -> bytes:
    tag = _varint(field << 3 | wire_type)
    if wire_type == 0:
        return tag + _varint(value)  # type: ignore[arg-type]
    if wire_type == 2:
        return tag + _varint(len(value)) + value  # type: ignore[arg-type, operator]
    return tag + value  # type: ignore[operator]


@settings(max_examples=500, deadline=None)
@given(
    payload_type=uint32,
    payload=st.binary(max_size=400),
    client_msg_id=msg_ids,
    extra=st.lists(fields, max_size=6),
    cut=st.none() | st.integers(0, 900),
)
def test_split_reads_what_protobuf_reads(
    payload_type: int,
    payload: bytes,
    client_msg_id: str,
    extra: list[tuple[int, int, object]],
    cut: int | None,
) -> None:
    """Unknown fields, repeated fields (the last wins), wrong wire types, truncated frames."""
    frame = reference(payload_type, payload, client_msg_id)
    for field in extra:
        # a clientMsgId must be text for the frame to be valid at all
        if field[0] == 3 and field[1] == 2:
            field = (3, 2, bytes(field[2]).decode("utf-8", "replace").encode())  # type: ignore[arg-type]
        frame += encoded(*field)
    if cut is not None:
        frame = frame[:cut]
    try:
        envelope = protos.ProtoMessage.FromString(frame)
    except (DecodeError, UnicodeDecodeError):
        with pytest.raises((ValueError, IndexError)):
            protos.split(frame)
        return
    assert protos.split(frame) == (
        envelope.payloadType,
        envelope.payload,
        envelope.clientMsgId,
    )


def test_heartbeat_envelope_matches_the_reference_bytes() -> None:
    assert protos.encode(protos.common.ProtoHeartbeatEvent()).hex() == "08331200"
    assert protos.split(bytes.fromhex("08331200")) == (51, b"", "")


async def test_only_messages_someone_reads_are_parsed() -> None:
    """Events outside ``event_types`` are dropped unparsed unless they answer an exchange."""
    seen: list[tuple[str, str]] = []
    conn = Connection(
        host="localhost",
        port=1,
        ca_file=None,
        next_msg_id=lambda: "p-1",
        on_message=lambda _c, msg_id, _t, message: seen.append(
            (msg_id, type(message).__name__)
        ),
        clock=time.monotonic,
        pacer=Pacer(),
        event_types=frozenset({protos.payload_type_of(P.ProtoOASpotEvent())}),
    )
    conn.exchanges["p-1"] = Exchange(
        "p-1", "ProtoOAVersionReq", 1.0, asyncio.get_running_loop()
    )
    trader_updated = protos.payload_type_of(P.ProtoOATraderUpdatedEvent())
    conn.frame_received(
        reference(trader_updated, b"\xff\xff", "foreign-7")
    )  # would not parse
    conn.frame_received(
        protos.encode(P.ProtoOASpotEvent(ctidTraderAccountId=1, symbolId=1))
    )
    conn.frame_received(protos.encode(P.ProtoOAVersionRes(version="99"), "p-1"))
    assert seen == [("", "ProtoOASpotEvent"), ("p-1", "ProtoOAVersionRes")]
    # the unread garbage was never parsed, so never refused; as an answer it is parsed, refused
    assert not conn.closed.done()
    conn.frame_received(reference(trader_updated, b"\xff\xff", "p-1"))
    assert conn.closed.done()
