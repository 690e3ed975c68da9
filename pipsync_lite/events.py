"""The in-process event bus: what happened, for notifiers, metrics and the status page.

Event types (the user contract for outbound events): ``signal.received``, ``signal.rejected``,
``trade.opened``, ``trade.closed``, ``trade.sl_hit``, ``trade.tp_hit``, ``order.failed``,
``kill_switch.engaged``, ``broker.disconnected``, ``broker.connected``, ``token.expiring``.
Subscribers are called synchronously and must not block: anything slow (HTTP delivery) queues
the event and does its work elsewhere, so a failing endpoint never slows an order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

log = structlog.get_logger("pipsync_lite.events")

EVENT_TYPES = (
    "signal.received",
    "signal.rejected",
    "trade.opened",
    "trade.closed",
    "trade.sl_hit",
    "trade.tp_hit",
    "order.failed",
    "kill_switch.engaged",
    "broker.disconnected",
    "broker.connected",
    "token.expiring",
)

_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    sequence: int = field(default_factory=lambda: next(_ids))


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, type_: str, **data: Any) -> Event:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_}")
        event = Event(type_, {k: v for k, v in data.items() if v is not None})
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not break the trading path
                log.exception("event_subscriber_failed", event_type=type_)
        return event
