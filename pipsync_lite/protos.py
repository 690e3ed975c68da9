"""Spotware's generated Open API protobuf classes and the payload-type registry.

``ctrader_open_api/__init__.py`` imports the package's Twisted ``Client``, which imports
``twisted.internet.reactor`` and so installs Twisted's *default* reactor as a side effect.
The daemon needs the asyncio reactor on its own loop (installed later, by
``pipsync_lite.ctrader.bridge.install_reactor``), and the simulator needs no reactor at all.
So the four generated modules are loaded here with their ``messages`` package registered
directly, without executing the top-level package body. Importing this module never
imports a reactor; importing ``ctrader_open_api`` later still works as usual.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from google.protobuf.message import Message


_GENERATED = (  # dependency order: each module's own imports are loaded before it
    "OpenApiCommonModelMessages_pb2",
    "OpenApiCommonMessages_pb2",
    "OpenApiModelMessages_pb2",
    "OpenApiMessages_pb2",
)


def _load_generated() -> dict[str, ModuleType]:
    """Load the generated modules as ``ctrader_open_api.messages.*``.

    The generated files say ``from ctrader_open_api.messages import X``; once X is an
    attribute of the registered ``messages`` module that statement imports nothing more.
    """
    package_name = "ctrader_open_api.messages"
    package = sys.modules.get(package_name)
    if package is not None and all(hasattr(package, m) for m in _GENERATED):
        return {m: getattr(package, m) for m in _GENERATED}
    top = importlib.util.find_spec("ctrader_open_api")  # finds, does not execute
    if top is None or top.origin is None:
        raise ImportError("the ctrader-open-api package is not installed")
    folder = Path(top.origin).parent / "messages"
    if package is None:
        package = _exec_file(package_name, folder / "__init__.py", [str(folder)])
    for module_name in _GENERATED:
        full = f"{package_name}.{module_name}"
        module = sys.modules.get(full) or _exec_file(full, folder / f"{module_name}.py")
        setattr(package, module_name, module)
    return {m: getattr(package, m) for m in _GENERATED}


def _exec_file(name: str, path: Path, search: list[str] | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=search)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_modules = _load_generated()
common_model = _modules["OpenApiCommonModelMessages_pb2"]
common = _modules["OpenApiCommonMessages_pb2"]
model = _modules["OpenApiModelMessages_pb2"]
messages = _modules["OpenApiMessages_pb2"]

ProtoMessage = common.ProtoMessage

#: payloadType -> message class, for every request, response and event.
BY_PAYLOAD_TYPE: dict[int, type[Message]] = {}
#: class name ("ProtoOANewOrderReq") -> message class.
BY_NAME: dict[str, type[Message]] = {}

for _module in (common, messages):
    for _name in dir(_module):
        _cls = getattr(_module, _name)
        if _name.startswith("Proto") and isinstance(_cls, type) and issubclass(_cls, Message):
            _field = _cls.DESCRIPTOR.fields_by_name.get("payloadType")
            if _field is None or _field.default_value in (None, 0):
                continue
            BY_PAYLOAD_TYPE[int(_field.default_value)] = _cls
            BY_NAME[_name] = _cls


#: message class -> its payloadType, for encoding without a descriptor lookup per message.
_PAYLOAD_TYPE_OF: dict[type[Message], int] = {cls: t for t, cls in BY_PAYLOAD_TYPE.items()}


def payload_type_of(message: Message) -> int:
    """The payloadType constant of a request/response/event message."""
    known = _PAYLOAD_TYPE_OF.get(type(message))
    if known is not None:
        return known
    return int(message.DESCRIPTOR.fields_by_name["payloadType"].default_value)


# The envelope, ``ProtoMessage {required uint32 payloadType = 1; optional bytes payload = 2;
# optional string clientMsgId = 3}``, is written and read by hand: with the pure-Python
# protobuf runtime ctrader-open-api pins, building and parsing it costs ~4 µs per frame each
# way, the code below ~1 µs. Same bytes as ``ProtoMessage.SerializeToString`` (fields in number
# order, payload always present); reading skips unknown fields and keeps the last occurrence
# of a field, as protobuf does (tests compare both ways).


def split(frame: bytes) -> tuple[int, bytes, str]:
    """One frame body's envelope: (payloadType, payload, clientMsgId); the payload not parsed.

    Raises ``ValueError`` (or ``UnicodeDecodeError``) for a frame protobuf could not parse.
    """
    payload_type, payload, client_msg_id = 0, b"", ""
    pos, end = 0, len(frame)
    while pos < end:
        tag, pos = _read_varint(frame, pos)
        field, wire_type = tag >> 3, tag & 7
        if field == 0:
            raise ValueError("field number 0 in a ProtoMessage")
        if wire_type == 0:
            value, pos = _read_varint(frame, pos)
            if field == 1:
                payload_type = value & 0xFFFFFFFF  # uint32, truncated as protobuf does
        elif wire_type == 2:
            length, pos = _read_varint(frame, pos)
            stop = pos + length
            if stop > end:
                raise ValueError("truncated ProtoMessage field")
            if field == 2:
                payload = frame[pos:stop]
            elif field == 3:
                client_msg_id = frame[pos:stop].decode()
            pos = stop
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire_type} in a ProtoMessage")
    if pos > end:
        raise ValueError("truncated ProtoMessage")
    return payload_type, payload, client_msg_id


def parse_payload(payload_type: int, payload: bytes) -> Message | None:
    """The message of a known payloadType (None for unknown types)."""
    cls = BY_PAYLOAD_TYPE.get(payload_type)
    if cls is None:
        return None
    inner = cls()
    inner.ParseFromString(payload)
    return inner


def decode(envelope: bytes) -> tuple[ProtoMessage, Message | None]:
    """Parse one frame body: the envelope, and its payload (None for unknown types)."""
    outer = ProtoMessage()
    outer.ParseFromString(envelope)
    return outer, parse_payload(outer.payloadType, outer.payload)


def encode(message: Message, client_msg_id: str | None = None) -> bytes:
    """Serialize a message into a ProtoMessage envelope (without the length prefix)."""
    payload = message.SerializeToString()
    parts = [b"\x08", _varint(payload_type_of(message)), b"\x12", _varint(len(payload)), payload]
    if client_msg_id:
        raw = client_msg_id.encode()
        parts += (b"\x1a", _varint(len(raw)), raw)
    return b"".join(parts)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    byte = data[pos]  # IndexError when truncated
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    while True:
        pos += 1
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")
