"""Prometheus metrics at ``GET /metrics`` (text format; behind ``server.api_token``).

Counts of signals and orders are read from the trade log at each scrape, so they survive
restarts and include the final outcome of every signal. Broker state, token lifetime and
open positions are read live. Latencies are measured in-process:

- ``pipsync_webhook_to_order_sent_seconds``: the request reached the handler → the order went
  to the broker connection;
- ``pipsync_order_sent_to_fill_seconds``: → the broker reported the fill (or acceptance of a
  pending order: ``result="accepted"``);
- ``pipsync_webhook_to_fill_seconds``: the two together.

How the receipt time reaches the order: the middleware sets :data:`RECEIVED_AT` in the request's
context; the engine starts the execution task from inside the request, and asyncio copies the
context into every task it creates, so :class:`TimedBroker` reads the same value when it sends.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipsync_lite import history
from pipsync_lite.events import Event
from pipsync_lite.outbox import Outbox
from pipsync_lite.store import Store

T = TypeVar("T")

#: Monotonic time at which the current alert's request reached its handler.
RECEIVED_AT: contextvars.ContextVar[float | None] = contextvars.ContextVar("pipsync_received_at", default=None)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_EXECUTION_RESULTS = ("executed", "failed", "unknown")


class Metrics:
    """One registry per daemon (tests run several daemons in one process)."""

    def __init__(
        self,
        store: Store,
        *,
        broker_ready: Callable[[], bool],
        token_expires_at: Callable[[], float | None],
        open_positions: Callable[[], int],
        kill_switch: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry()
        self._store = store
        self._outbox = Outbox(store)
        self._live = _Live(broker_ready, token_expires_at, open_positions, kill_switch)
        self.registry.register(self._live)
        self.to_sent = Histogram(
            "pipsync_webhook_to_order_sent_seconds", "Alert received to order sent to the broker.",
            ["kind"], buckets=_BUCKETS, registry=self.registry,
        )
        self.to_fill = Histogram(
            "pipsync_order_sent_to_fill_seconds", "Order sent to the broker's fill (or acceptance).",
            ["kind", "result"], buckets=_BUCKETS, registry=self.registry,
        )
        self.end_to_end = Histogram(
            "pipsync_webhook_to_fill_seconds", "Alert received to the broker's fill (or acceptance).",
            ["kind", "result"], buckets=_BUCKETS, registry=self.registry,
        )
        self.answer = Histogram(
            "pipsync_webhook_answer_seconds", "Time to answer an alert (webhook or POST /v1/signals).",
            buckets=_BUCKETS, registry=self.registry,
        )
        self.reconnects = Counter(
            "pipsync_broker_reconnects", "Broker sessions made ready again after the first.", registry=self.registry
        )
        self.disconnects = Counter(
            "pipsync_broker_disconnects", "Broker sessions lost or stopped.", registry=self.registry
        )
        self._connected_once = False

    def on_event(self, event: Event) -> None:
        if event.type == "broker.connected":
            if self._connected_once:
                self.reconnects.inc()
            self._connected_once = True
        elif event.type == "broker.disconnected":
            self.disconnects.inc()

    async def render(self) -> bytes:
        self._live.signals = await history.signal_counts(self._store)
        self._live.orders = await history.order_counts(self._store)
        self._live.outbox = await self._outbox.counts()
        return generate_latest(self.registry)

    # -- latency -----------------------------------------------------------------------------

    async def timed(self, kind: str, call: Awaitable[T], result_of: Callable[[T], str]) -> T:
        """Await the broker call ``call``, observing the latencies of ``kind`` (entry/close)."""
        received = RECEIVED_AT.get()
        sent = time.monotonic()
        if received is not None:
            self.to_sent.labels(kind).observe(max(0.0, sent - received))
        outcome = await call
        done = time.monotonic()
        result = result_of(outcome)
        self.to_fill.labels(kind, result).observe(done - sent)
        if received is not None:
            self.end_to_end.labels(kind, result).observe(max(0.0, done - received))
        return outcome

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def received_at(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.method != "POST" or not (request.path.startswith("/webhook/") or request.path == "/v1/signals"):
                return await handler(request)
            started = time.monotonic()
            token = RECEIVED_AT.set(started)
            try:
                return await handler(request)
            finally:
                RECEIVED_AT.reset(token)
                self.answer.observe(time.monotonic() - started)

        return received_at

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self.middleware())

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.router.add_get("/metrics", metrics)


class TimedBroker:
    """The engine's broker, with entries and closes timed; everything else passes through."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def place_order(self, request: Any) -> Any:
        return await self._metrics.timed("entry", self._inner.place_order(request), lambda r: str(r.status))

    async def close_position(self, position_id: int, volume: int) -> Any:
        return await self._metrics.timed("close", self._inner.close_position(position_id, volume), lambda d: "filled")


class _Live(Collector):
    """Values computed at scrape time: counts from the log, state from the broker."""

    def __init__(
        self,
        broker_ready: Callable[[], bool],
        token_expires_at: Callable[[], float | None],
        open_positions: Callable[[], int],
        kill_switch: Callable[[], bool],
    ) -> None:
        self._broker_ready = broker_ready
        self._token_expires_at = token_expires_at
        self._open_positions = open_positions
        self._kill_switch = kill_switch
        self.signals: dict[str, int] = {}
        self.orders: dict[tuple[str, str], int] = {}
        self.outbox: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        by_outcome: dict[str, int] = {}
        for status, n in self.signals.items():
            by_outcome[history.verdict(status)] = by_outcome.get(history.verdict(status), 0) + n
        signals = CounterMetricFamily(
            "pipsync_signals", "Alerts received, by the guard's verdict (accepted, rejected, invalid, duplicate, ...).",
            labels=["outcome"],
        )
        for outcome, n in sorted(by_outcome.items()):
            signals.add_metric([outcome], n)
        yield signals
        executions = CounterMetricFamily(
            "pipsync_signal_executions", "Accepted signals by what the broker made of them.", labels=["result"]
        )
        for result in _EXECUTION_RESULTS:
            executions.add_metric([result], self.signals.get(result, 0))
        yield executions
        orders = CounterMetricFamily(
            "pipsync_orders", "Orders sent to the broker, by purpose and result.", labels=["purpose", "result"]
        )
        for (purpose, result), n in sorted(self.orders.items()):
            orders.add_metric([purpose, result], n)
        yield orders
        yield GaugeMetricFamily("pipsync_broker_connected", "1 when the broker session is ready.", value=int(self._broker_ready()))
        expires_at = self._token_expires_at()
        if expires_at is not None:
            yield GaugeMetricFamily(
                "pipsync_token_expires_in_seconds", "Seconds until the cTrader access token expires.",
                value=round(expires_at - time.time()),
            )
        yield GaugeMetricFamily("pipsync_open_positions", "Open positions at the broker.", value=self._open_positions())
        yield GaugeMetricFamily("pipsync_kill_switch_engaged", "1 while the kill switch is on.", value=int(self._kill_switch()))
        outbox = GaugeMetricFamily("pipsync_outbox_messages", "Outbound event deliveries by status.", labels=["status"])
        for status in ("pending", "delivered", "failed", "dropped"):
            outbox.add_metric([status], self.outbox.get(status, 0))
        yield outbox
