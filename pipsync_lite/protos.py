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


def payload_type_of(message: Message) -> int:
    """The payloadType constant of a request/response/event message."""
    return int(message.DESCRIPTOR.fields_by_name["payloadType"].default_value)


def decode(envelope: bytes) -> tuple[ProtoMessage, Message | None]:
    """Parse one frame body: the envelope, and its payload (None for unknown types)."""
    outer = ProtoMessage()
    outer.ParseFromString(envelope)
    cls = BY_PAYLOAD_TYPE.get(outer.payloadType)
    if cls is None:
        return outer, None
    inner = cls()
    inner.ParseFromString(outer.payload)
    return outer, inner


def encode(message: Message, client_msg_id: str | None = None) -> bytes:
    """Serialize a message into a ProtoMessage envelope (without the length prefix)."""
    outer = ProtoMessage(payloadType=payload_type_of(message), payload=message.SerializeToString())
    if client_msg_id:
        outer.clientMsgId = client_msg_id
    return outer.SerializeToString()
