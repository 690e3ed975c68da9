"""Outbound events: the ``notify:`` targets hear about every event they subscribed to.

Path of an event: the bus calls ``on_event`` (a queue put, nothing else: the trading path
never waits for a notifier) → the writer task stores one outbox row per interested target →
the dispatcher sends due rows, several at a time, each attempt with its own timeout →
success (2xx; for Telegram ``ok: true``) marks the row delivered; anything else is retried
with exponential backoff (``backoff``, 2×, 4×, 8× ...) up to ``max_attempts`` attempts in all,
then the row is marked failed. Every attempt is recorded (:mod:`outbox`).

A webhook POST carries the JSON body ``{"id", "type", "time", "data"}`` and the headers
``X-PipSync-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (Stripe's scheme:
the signature is computed at each attempt, so ``t`` is the time of that attempt),
``X-PipSync-Event-Id`` (the same for every attempt and target: deduplicate on it),
``X-PipSync-Event-Type`` and ``X-PipSync-Delivery-Attempt``. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC

import aiohttp
import structlog

from pipsync_lite import __version__, telegram
from pipsync_lite.config import NotifyTarget
from pipsync_lite.events import Event
from pipsync_lite.logs import Redactor
from pipsync_lite.outbox import Message, NewMessage, Outbox
from pipsync_lite.store import Store
from pipsync_lite.waits import wait_event

log = structlog.get_logger("pipsync_lite.notify")

SIGNATURE_HEADER = "X-PipSync-Signature"
EVENT_ID_HEADER = "X-PipSync-Event-Id"
MAX_ATTEMPTS = 5


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event: Event, event_id: str) -> str:
    """The JSON body every target gets for ``event`` (compact, keys in a stable order)."""
    payload = {
        "id": event_id,
        "type": event.type,
        "time": event.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), default=str, ensure_ascii=False)


class Notifier:
    """Owns the outbox writer and dispatcher tasks and one HTTP client session."""

    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        store: Store,
        *,
        secrets: Iterable[str] = (),
        lots_of: telegram.LotsOf = lambda symbol, volume: None,
        backoff: float = 10.0,
        max_attempts: int = MAX_ATTEMPTS,
        timeout: float = 10.0,
        per_target: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = Outbox(store)
        self._secrets = list(secrets)
        self._targets: dict[str, NotifyTarget] = {}
        self._redactor = Redactor(self._secrets)
        self.set_targets(targets)
        self._lots_of = lots_of
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._per_target = per_target
        self._clock = clock
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: dict[int, tuple[str, asyncio.Task[None]]] = {}
        self._writes: set[asyncio.Future[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._writer: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def set_targets(self, targets: Iterable[NotifyTarget]) -> None:
        """Replace the targets (configuration reload). Pending rows of a removed target are
        dropped when they come due; new targets get events from now on."""
        self._targets = {t.key: t for t in targets}
        own = [t.secret for t in self._targets.values()] + [
            t.telegram.bot_token for t in self._targets.values() if t.telegram is not None
        ]
        self._redactor = Redactor([*self._secrets, *(s.get_secret_value() for s in own if s is not None)])

    # -- the bus side: never blocks ---------------------------------------------------------

    def on_event(self, event: Event) -> None:
        if any(t.wants(event.type) for t in self._targets.values()):
            self._queue.put_nowait(event)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            headers={"User-Agent": f"pipsync-lite/{__version__}"},
            trust_env=False,
        )
        self._writer = asyncio.create_task(self._write_loop(), name="notify-writer")
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="notify-dispatcher")

    async def stop(self, grace: float = 2.0) -> None:
        """Store what is queued, give deliveries in flight ``grace`` seconds, then stop.
        Unfinished deliveries stay pending and go out at the next start.

        Nothing is cancelled while it talks to the database (a query interrupted half-way
        would leave a statement open on the shared connection): the loops stop at their own
        pace, and a delivery is only cancelled in its HTTP part."""
        self._stopping = True
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
        self._wake.set()
        if self._dispatcher is not None:
            await self._dispatcher
        self._writer = self._dispatcher = None
        inflight = [task for _, task in self._inflight.values()]
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued event is in the outbox (tests, shutdown)."""
        await asyncio.wait_for(self._queue.join(), timeout)

    # -- writer: events → outbox rows ---------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 200:
                batch.append(self._queue.get_nowait())
            events = [e for e in batch if e is not None]
            try:
                rows = [
                    NewMessage(event_id, event.type, target.key, event_body(event, event_id))
                    for event in events
                    for event_id in [f"evt_{uuid.uuid4().hex}"]
                    for target in self._targets.values()
                    if target.wants(event.type)
                ]
                await self._outbox.add(rows, self._clock())
                self._wake.set()
            except Exception:  # a failed write loses these events, never the loop
                log.exception("notify_outbox_write_failed", events=len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(events) < len(batch):  # the stop sentinel
                return

    # -- dispatcher: due rows → attempts ----------------------------------------------------

    def _busy_targets(self) -> set[str]:
        """Targets with ``per_target`` deliveries in flight: a hanging endpoint holds its own
        slots only, never the other targets'."""
        counts: dict[str, int] = {}
        for target, _ in self._inflight.values():
            counts[target] = counts.get(target, 0) + 1
        return {t for t, n in counts.items() if n >= self._per_target}

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                due = await self._outbox.due(self._clock(), 100, self._inflight, self._busy_targets())
                for message in due:
                    if message.target in self._busy_targets():
                        continue
                    task = asyncio.create_task(self._deliver(message), name=f"notify-{message.id}")
                    self._inflight[message.id] = (message.target, task)
                    task.add_done_callback(lambda t, i=message.id: self._finished(i, t))
                next_at = await self._outbox.next_due_at(self._inflight, self._busy_targets())
            except Exception:
                log.exception("notify_dispatch_failed")
                next_at = self._clock() + self._backoff
            wait = 60.0 if next_at is None else max(0.0, next_at - self._clock())
            if wait > 0 and not self._stopping:
                await wait_event(self._wake, min(wait, 60.0))

    def _finished(self, message_id: int, task: asyncio.Task[None]) -> None:
        self._inflight.pop(message_id, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("notify_delivery_crashed", error=type(task.exception()).__name__)
        self._wake.set()

    async def _persist(self, write: Awaitable[None]) -> None:
        """Run a database write to its end even if the delivery is cancelled meanwhile."""
        future = asyncio.ensure_future(write)
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)
        await asyncio.shield(future)

    async def _deliver(self, message: Message) -> None:
        target = self._targets.get(message.target)
        if target is None:
            await self._persist(self._outbox.drop(message, "the target is no longer configured"))
            log.info("notify_dropped", event_id=message.event_id, reason="target_removed")
            return
        attempt = message.attempts + 1
        started = time.monotonic()
        status_code: int | None = None
        retry_after: float | None = None
        try:
            if target.telegram is not None:
                text = telegram.message_text(json.loads(message.body), self._lots_of)
                result = await telegram.send(self._http(), target.telegram, text)
                status_code, error, retry_after = result.status_code, result.error, result.retry_after
            else:
                status_code = await self._post(target, message, attempt)
                error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # network, timeout, or a bug: this attempt failed, the row stays
            error = self._redactor.text(f"{type(exc).__name__}: {exc}".rstrip(": "))[:300]
        duration_ms = int((time.monotonic() - started) * 1000)
        if error is None:
            await self._persist(self._outbox.record(
                message, status="delivered", status_code=status_code, error=None, duration_ms=duration_ms
            ))
            log.info("notify_delivered", event_id=message.event_id, event_type=message.event_type, attempt=attempt)
            return
        if attempt >= self._max_attempts:
            await self._persist(self._outbox.record(
                message, status="failed", status_code=status_code, error=error, duration_ms=duration_ms
            ))
            log.warning("notify_failed", event_id=message.event_id, event_type=message.event_type, attempts=attempt, error=error)
            return
        delay = max(self._backoff * 2 ** (attempt - 1), retry_after or 0.0)
        await self._persist(self._outbox.record(
            message, status="pending", status_code=status_code, error=error, duration_ms=duration_ms,
            next_attempt_at=self._clock() + delay,
        ))
        log.info("notify_retry_scheduled", event_id=message.event_id, attempt=attempt, retry_in=delay, error=error)

    async def _post(self, target: NotifyTarget, message: Message, attempt: int) -> int:
        assert target.url is not None and target.secret is not None
        body = message.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(target.secret.get_secret_value(), int(self._clock()), body),
            EVENT_ID_HEADER: message.event_id,
            "X-PipSync-Event-Type": message.event_type,
            "X-PipSync-Delivery-Attempt": str(attempt),
        }
        async with self._http().post(target.url, data=body, headers=headers, allow_redirects=False) as response:
            await response.read()
            return response.status

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the notifier is not started")
        return self._session
