"""Fault knobs tests turn on to break the link or the answers in controlled ways."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from pipsync_lite import protos

log = structlog.get_logger(__name__)

When = Literal["before", "after"]
RejectVia = Literal["order_error", "execution"]
Handling = Literal["late", "now"]


@dataclass(slots=True)
class _Rule:
    remaining: int | None  # None: until cleared

    def take(self) -> bool:
        """Consume one use; False once used up."""
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


@dataclass(frozen=True, slots=True)
class Decision:
    """What the dispatcher does with one request."""

    drop_before: bool = False  # close the link without handling the request
    handle: bool = True  # run the handler (state changes happen)
    answer: bool = True  # send what the handler produced
    drop_after: bool = False  # close the link after handling, without answering
    delay: float = 0.0  # seconds before the request is handled (or answered)
    handle_late: bool = True  # with a delay: handle after it (else: now, answer after it)


@dataclass(frozen=True, slots=True)
class OrderRejection:
    code: str
    via: RejectVia
    description: str


class Faults:
    """Knobs are counted from the moment they are set and apply to every connection.

    Heartbeats never count: they are not requests, and their timing is the client's.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._served_before_drop: int | None = None
        self._drop_on: dict[str, tuple[When, _Rule]] = {}
        self._delay: dict[str | None, tuple[float, bool, _Rule]] = {}
        self._swallow: dict[str, tuple[bool, _Rule]] = {}
        self._rejections: list[OrderRejection] = []

    def drop_after(self, n: int) -> None:
        """Serve exactly ``n`` more requests; the connection that receives the next one is
        dropped (network-style, no TLS close) before handling it. One-shot."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._served_before_drop = n

    def drop_on(self, request: str, when: When = "before", times: int | None = 1) -> None:
        """Drop the connection on this request type.

        ``before``: the request is never handled. ``after``: it is handled (an order is
        placed, a position closed) but its answer and events are lost with the link.
        """
        if when not in ("before", "after"):
            raise ValueError("when must be 'before' or 'after'")
        self._drop_on[_check(request)] = (when, _Rule(times))

    def delay(self, request: str | None, seconds: float, times: int | None = None,
              handle: Handling = "late") -> None:
        """Answer this request type (every request with ``None``) ``seconds`` late.

        ``handle="late"``: the request reaches the server late, as if slow on the wire: it
        is handled after the delay (the market may have moved) and answered then.
        ``handle="now"``: it is handled at once and only its answer (with the events it
        caused, on the requesting connection) is held back. Either way the connection
        keeps serving other requests meanwhile; a link that closes in between loses them.
        """
        if handle not in ("late", "now"):
            raise ValueError("handle must be 'late' or 'now'")
        key = None if request is None else _check(request)
        self._delay[key] = (seconds, handle == "late", _Rule(times))

    def swallow(self, request: str, times: int | None = None, handle: bool = False) -> None:
        """Never answer this request type; with ``handle=True`` it is still executed."""
        self._swallow[_check(request)] = (handle, _Rule(times))

    def reject_next_order(self, code: str, via: RejectVia = "order_error",
                          description: str | None = None) -> None:
        """Reject the next NewOrderReq with ``code``: as ProtoOAOrderErrorEvent
        (``order_error``) or as an ORDER_REJECTED execution event (``execution``). The live
        server's form is unrecorded, so clients must handle both. Calls queue up."""
        if via not in ("order_error", "execution"):
            raise ValueError("via must be 'order_error' or 'execution'")
        self._rejections.append(OrderRejection(code, via, description or f"Rejected: {code}"))

    def take_order_rejection(self) -> OrderRejection | None:
        return self._rejections.pop(0) if self._rejections else None

    def decide(self, request_name: str) -> Decision:
        """Consume the knobs that apply to one incoming request."""
        if self._served_before_drop is not None:
            if self._served_before_drop == 0:
                self._served_before_drop = None
                log.info("sim_fault_drop_after", request=request_name)
                return Decision(drop_before=True, handle=False, answer=False)
            self._served_before_drop -= 1
        drop = self._drop_on.get(request_name)
        if drop is not None and drop[1].take():
            log.info("sim_fault_drop_on", request=request_name, when=drop[0])
            if drop[0] == "before":
                return Decision(drop_before=True, handle=False, answer=False)
            return Decision(answer=False, drop_after=True)
        swallow = self._swallow.get(request_name)
        if swallow is not None and swallow[1].take():
            log.info("sim_fault_swallowed", request=request_name, handled=swallow[0])
            return Decision(handle=swallow[0], answer=False)
        for key in (request_name, None):
            delay = self._delay.get(key)
            if delay is not None and delay[2].take():
                return Decision(delay=delay[0], handle_late=delay[1])
        return Decision()


def _check(request: str) -> str:
    if request not in protos.BY_NAME:
        raise ValueError(f"unknown message name {request!r} (use e.g. 'ProtoOANewOrderReq')")
    return request
