"""Routing of decoded requests: rate limits, authorization gates and the handler table."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from pipsync_lite import protos
from pipsync_lite.simulator.connection import Connection
from pipsync_lite.simulator.tokens import TokenBook, TokenState

Outgoing = tuple[Message, str | None]


def payload_type(name: str) -> int:
    return protos.payload_type_of(protos.BY_NAME[name]())


HEARTBEAT = payload_type("ProtoHeartbeatEvent")
APPLICATION_AUTH = payload_type("ProtoOAApplicationAuthReq")
ACCOUNT_AUTH = payload_type("ProtoOAAccountAuthReq")
VERSION = payload_type("ProtoOAVersionReq")
#: Requests that need no application authorization first. VersionReq is harmless
#: metadata, so it is answered before auth too (the real server's choice is unrecorded).
_OPEN_REQUESTS = frozenset({APPLICATION_AUTH, VERSION})


@dataclass(frozen=True, slots=True)
class Received:
    """One inbound message, as the inspection API shows it."""

    payload_type: int
    name: str
    message: Message | None
    client_msg_id: str | None
    connection_id: int
    monotonic: float
    wall: float


@dataclass(slots=True)
class RequestContext:
    """The request being handled and the messages its connection gets back."""

    conn: Connection
    client_msg_id: str | None
    request: Message
    outbox: list[Outgoing] = field(default_factory=list)

    @property
    def account_id(self) -> int | None:
        if "ctidTraderAccountId" in self.request.DESCRIPTOR.fields_by_name:
            return int(self.request.ctidTraderAccountId)  # type: ignore[attr-defined]
        return None

    def reply(self, message: Message) -> None:
        self.outbox.append((message, self.client_msg_id))

    def error(self, code: str, description: str = "") -> None:
        """Answer a non-trading request with ProtoOAErrorRes."""
        error = protos.messages.ProtoOAErrorRes(errorCode=code, description=description)
        if self.account_id is not None:
            error.ctidTraderAccountId = self.account_id
        self.reply(error)

    def order_error(self, code: str, description: str, order_id: int = 0,
                    position_id: int = 0) -> None:
        """Answer a trading request with ProtoOAOrderErrorEvent (recorded form)."""
        self.reply(protos.messages.ProtoOAOrderErrorEvent(
            ctidTraderAccountId=self.account_id or 0, errorCode=code, orderId=order_id,
            positionId=position_id, description=description))


Handler = Callable[[RequestContext, Message], None]


class Router:
    """Applies the gates every request passes, then calls its handler."""

    def __init__(self, tokens: TokenBook) -> None:
        self._tokens = tokens
        self._routes: dict[int, Handler] = {}

    def add(self, request_name: str, handler: Handler) -> None:
        self._routes[payload_type(request_name)] = handler

    def handle(self, conn: Connection, ptype: int, message: Message | None,
               client_msg_id: str | None) -> list[Outgoing]:
        if message is None:
            error = protos.common.ProtoErrorRes(
                errorCode="UNSUPPORTED_MESSAGE", description=f"Unknown payload type {ptype}")
            return [(error, client_msg_id)]
        ctx = RequestContext(conn, client_msg_id, message)
        if not conn.limiter.allow(ptype, time.monotonic()):
            # REQUEST_FREQUENCY_EXCEEDED (108) rather than BLOCKED_PAYLOAD_TYPE (11): it is the
            # OA-level code, and the 0.9.2 ProtoOAErrorRes cannot carry retryAfter anyway.
            # A refused request is not executed, so retrying it later is always safe.
            ctx.error("REQUEST_FREQUENCY_EXCEEDED", "Request frequency exceeded")
            return ctx.outbox
        handler = self._routes.get(ptype)
        if handler is None:
            ctx.error("UNSUPPORTED_MESSAGE",
                      f"{message.DESCRIPTOR.name} is not supported by the simulator")
        elif not message.IsInitialized():
            missing = ", ".join(message.FindInitializationErrors())
            ctx.error("INVALID_REQUEST", f"Missing required fields: {missing}")
        elif self._admitted(ctx, ptype):
            handler(ctx, message)
        return ctx.outbox

    def _admitted(self, ctx: RequestContext, ptype: int) -> bool:
        if ptype in _OPEN_REQUESTS:
            return True
        if not ctx.conn.app_authorized:
            ctx.error("CH_CLIENT_NOT_AUTHENTICATED", "Open API application is not authorized")
            return False
        account_id = ctx.account_id
        if account_id is None or ptype == ACCOUNT_AUTH:
            return True
        token = ctx.conn.accounts.get(account_id)
        if token is None:
            ctx.error("ACCOUNT_NOT_AUTHORIZED", "Trading account is not authorized")
            return False
        # A session keeps working while its token lives; once the token has expired every
        # account request says so, so a client must be able to refresh mid-session.
        if self._tokens.state(token) is TokenState.EXPIRED:
            ctx.error("OA_AUTH_TOKEN_EXPIRED", "Access token expired")
            return False
        return True
