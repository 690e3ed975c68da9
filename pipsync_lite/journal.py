"""The request journal: every trading request is written down, durably, BEFORE it is sent.

``JournalBroker`` wraps the broker the engine trades through. For each trading call
(``place_order``, ``close_position``, ``amend_position_sltp``, ``cancel_order``,
``amend_order``) it first inserts a ``broker_requests`` row in state ``sent`` (fsynced:
``synchronous=FULL``), then sends, then settles the row:

- ``done``: answered; ``refused``: the broker said no (nothing executed);
- ``unavailable``: nothing was sent, or the server refused the token (nothing executed);
- ``unknown``: sent, no answer (it may have executed): the recovery reconciles it later
  and sets ``executed`` or ``not_executed``.

So after a crash, a signal with no row, or only rows that prove nothing executed, provably
never reached the broker; a row left in ``sent`` means "maybe": reconcile, never resend.

A request refused for the rate limit (``REQUEST_FREQUENCY_EXCEEDED``/``BLOCKED_PAYLOAD_TYPE``)
was not executed, so it is sent again after a short pause (a few times at most).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from pipsync_lite.ctrader.model import (
    Broker,
    Deal,
    OrderRequest,
    OrderResult,
    PendingOrder,
    Position,
)
from pipsync_lite.database import lazily
from pipsync_lite.errors import BrokerRejected, BrokerTimeout, BrokerUnavailable
from pipsync_lite.ledger import signal_id_from_label
from pipsync_lite.plans import ClosePlan, EntryPlan, Plan
from pipsync_lite.store import Statement, Store, utcnow_iso

log = structlog.get_logger("pipsync_lite.journal")
T = TypeVar("T")

#: The signal whose execution is running in this task, and how many requests its plan makes.
CURRENT_SIGNAL: ContextVar[int | None] = ContextVar("pipsync_current_signal", default=None)
CURRENT_STEPS: ContextVar[int | None] = ContextVar("pipsync_current_steps", default=None)
#: The journal row of the plan's first request, already written with the signal's row.
PREPARED: ContextVar[Prepared | None] = ContextVar("pipsync_prepared_request", default=None)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A journal row written ahead, in the signal's own transaction: the first request's."""

    kind: str
    row: int
    statement: Statement


def bind_signal(signal_id: int, plan: Plan, prepared: Prepared | None = None) -> None:
    """Tie the broker requests of this task to the signal (called as its execution starts)."""
    CURRENT_SIGNAL.set(signal_id)
    CURRENT_STEPS.set(plan_steps(plan))
    PREPARED.set(prepared)


def first_request(plan: Plan, label: str) -> tuple[str, dict[str, Any]] | None:
    """The kind and journal fields of the first request ``plan`` sends (as the executor sends it)."""
    if isinstance(plan, EntryPlan):
        if plan.closes_first:
            close = plan.closes_first[0]
            return "close", {"position_id": close.position.position_id, "volume": close.volume}
        request = plan.request
        return "new_order", {
            "client_order_id": label,
            "volume": request.volume,
            "stop_loss": request.stop_loss,
            "relative_stop_loss": request.relative_stop_loss,
        }
    if isinstance(plan, ClosePlan):
        if plan.cancels:
            return "cancel", {"order_id": plan.cancels[0].order.order_id}
        if plan.closes:
            close = plan.closes[0]
            return "close", {"position_id": close.position.position_id, "volume": close.volume}
        return None
    if plan.positions:
        amend = plan.positions[0]
        return "amend_sltp", {"position_id": amend.position.position_id, "stop_loss": amend.stop_loss}
    if plan.orders:
        return "amend_order", {"order_id": plan.orders[0].order.order_id}
    return None


def plan_steps(plan: Plan) -> int:
    """The requests a plan makes, in order; the amend that may follow a fill is not counted."""
    if isinstance(plan, EntryPlan):
        return len(plan.closes_first) + 1
    if isinstance(plan, ClosePlan):
        return len(plan.cancels) + len(plan.closes)
    return len(plan.positions) + len(plan.orders)


def unsent_steps(rows: list[dict[str, Any]]) -> int:
    """How many of the plan's requests were never even journaled (the daemon stopped first)."""
    if not rows or rows[0]["steps"] is None:
        return 0
    kinds = [r["kind"] for r in rows]
    mandatory = len(rows)
    if "new_order" in kinds:  # amendments after the entry's fill are optional refinements
        mandatory = kinds.index("new_order") + 1 + sum(1 for k in kinds[kinds.index("new_order") + 1 :] if k != "amend_sltp")
    return max(0, int(rows[0]["steps"]) - mandatory)

RATE_LIMIT_CODES = frozenset({"REQUEST_FREQUENCY_EXCEEDED", "BLOCKED_PAYLOAD_TYPE"})
#: States that prove the request did not execute at the broker.
NOT_EXECUTED = frozenset({"refused", "unavailable", "not_executed"})
#: States whose outcome is open: reconcile them.
OPEN = frozenset({"sent", "unknown"})


class JournalBroker:
    """A ``Broker`` that journals each trading request before it leaves (see the module doc).

    Everything else (state, quotes, symbols) is read from the wrapped broker unchanged.
    """

    def __init__(
        self,
        broker: Broker,
        store: Store,
        *,
        on_unknown: Callable[[int | None], None] | None = None,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0),
    ) -> None:
        self._broker = broker
        self._store = store
        self._on_unknown = on_unknown
        self._retry_delays = tuple(retry_delays)
        self._settling: set[asyncio.Task[None]] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    @property
    def inner(self) -> Broker:
        return self._broker

    @property
    def ready(self) -> bool:
        return self._broker.ready

    # --- trading --------------------------------------------------------------------------

    async def place_order(self, request: OrderRequest) -> OrderResult:
        label = request.client_order_id or request.label
        signal_id = CURRENT_SIGNAL.get()
        if signal_id is None:
            signal_id = signal_id_from_label(label)
        row = await self._open(
            "new_order",
            signal_id,
            client_order_id=label or None,
            volume=request.volume,
            stop_loss=request.stop_loss,
            relative_stop_loss=request.relative_stop_loss,
        )
        result = await self._call(row, signal_id, lambda: self._broker.place_order(request))
        self._done(row, order_id=result.order_id, position_id=result.position_id)
        return result

    async def close_position(self, position_id: int, volume: int) -> Deal:
        signal_id = CURRENT_SIGNAL.get()
        row = await self._open("close", signal_id, position_id=position_id, volume=volume)
        deal = await self._call(row, signal_id, lambda: self._broker.close_position(position_id, volume))
        self._done(row, order_id=deal.order_id)
        return deal

    async def amend_position_sltp(
        self,
        position_id: int,
        stop_loss: Decimal | None,
        take_profit: Decimal | None,
        trailing_stop_loss: bool = False,
    ) -> Position:
        signal_id = CURRENT_SIGNAL.get()
        row = await self._open("amend_sltp", signal_id, position_id=position_id, stop_loss=stop_loss)
        position = await self._call(
            row,
            signal_id,
            lambda: self._broker.amend_position_sltp(position_id, stop_loss, take_profit, trailing_stop_loss),
        )
        self._done(row)
        return position

    async def cancel_order(self, order_id: int) -> None:
        signal_id = CURRENT_SIGNAL.get()
        row = await self._open("cancel", signal_id, order_id=order_id)
        await self._call(row, signal_id, lambda: self._broker.cancel_order(order_id))
        self._done(row)

    async def amend_order(self, order_id: int, **changes: Any) -> PendingOrder:
        signal_id = CURRENT_SIGNAL.get()
        row = await self._open("amend_order", signal_id, order_id=order_id)
        amend: Callable[..., Awaitable[PendingOrder]] = self._broker.amend_order  # type: ignore[attr-defined]
        order = await self._call(row, signal_id, lambda: amend(order_id, **changes))
        self._done(row)
        return order

    # --- the journal ----------------------------------------------------------------------

    def prepare(self, signal_id: int, plan: Plan, label: str) -> Prepared | None:
        """The journal row of ``plan``'s first request, to be written with the signal's row
        (one commit instead of two before the order leaves); its execution then uses it."""
        first = first_request(plan, label)
        if first is None:
            return None
        kind, fields = first
        row, statement = self._row(kind, signal_id, plan_steps(plan), fields)
        return Prepared(kind, row, statement)

    async def _open(self, kind: str, signal_id: int | None, **fields: Any) -> int:
        """Write the request's row, durably, before it is sent; its id."""
        prepared = PREPARED.get()
        if prepared is not None and signal_id == CURRENT_SIGNAL.get():
            PREPARED.set(None)  # written in the signal's transaction: use it, once
            if prepared.kind == kind:
                return prepared.row
            log.error("journal_prepared_mismatch", prepared=prepared.kind, sent=kind)  # a bug: journal anew
        steps = CURRENT_STEPS.get() if signal_id is not None and signal_id == CURRENT_SIGNAL.get() else None
        row, statement = self._row(kind, signal_id, steps, fields)
        await self._store.db.execute(*statement)
        return row

    def _row(self, kind: str, signal_id: int | None, steps: int | None, fields: dict[str, Any]) -> tuple[int, Statement]:
        values = {k: str(v) if isinstance(v, Decimal) else v for k, v in fields.items()}
        row = self._store.new_id("broker_requests")
        columns = {"id": row, "signal_id": signal_id, "kind": kind, "steps": steps, "state": "sent",
                   "sent_at": utcnow_iso(), **values}  # fmt: skip
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        return row, (f"INSERT INTO broker_requests ({names}) VALUES ({marks})", tuple(columns.values()))

    async def _settle(self, row: int, state: str, detail: str | None = None, **fields: Any) -> None:
        await settle(self._store, row, state, detail, **fields)

    def _done(self, row: int, **fields: Any) -> None:
        """Record an answered request without holding up its caller: if this write is lost,
        the row stays ``sent`` and the recovery finds the answer at the broker."""
        task = asyncio.create_task(_settle_lazily(self._store, row, "done", **fields), name="journal-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def flush(self) -> None:
        """Wait for the outcomes still being written (before the store closes)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _call(self, row: int, signal_id: int | None, send: Callable[[], Awaitable[T]]) -> T:
        delays = iter(self._retry_delays)
        while True:
            try:
                return await send()
            except BrokerRejected as exc:
                delay = next(delays, None) if exc.code in RATE_LIMIT_CODES else None
                if delay is None:
                    await self._settle(row, "refused", str(exc))
                    raise
                log.warning("broker_rate_limited", code=exc.code, retry_in=delay)
                await asyncio.sleep(delay)  # the server refused it, so sending again is safe
            except BrokerTimeout as exc:
                await self._settle(row, "unknown", str(exc))
                if self._on_unknown is not None:
                    self._on_unknown(signal_id)
                raise
            except BrokerUnavailable as exc:
                await self._settle(row, "unavailable", str(exc))
                raise
            # Anything else (cancelled at shutdown, a bug): whether it left is unknown; the
            # row stays "sent" and the next start reconciles it.


async def _settle_lazily(store: Store, row: int, state: str, **fields: Any) -> None:
    with lazily():
        await settle(store, row, state, **fields)


async def settle(store: Store, row: int, state: str, detail: str | None = None, **fields: Any) -> None:
    """Record the outcome of one journaled request."""
    values: dict[str, Any] = {"state": state, "settled_at": utcnow_iso(), **fields}
    if detail is not None:
        values["detail"] = detail[:500]
    assignments = ", ".join(f"{k} = ?" for k in values)
    await store.db.execute(f"UPDATE broker_requests SET {assignments} WHERE id = ?", (*values.values(), row))


async def requests_for(store: Store, signal_id: int) -> list[dict[str, Any]]:
    async with store.db.execute(
        "SELECT * FROM broker_requests WHERE signal_id = ? ORDER BY id", (signal_id,)
    ) as cursor:
        return [dict(r) for r in await cursor.fetchall()]


async def requests_for_position(store: Store, position_id: int, kind: str) -> list[dict[str, Any]]:
    async with store.db.execute(
        "SELECT * FROM broker_requests WHERE position_id = ? AND kind = ? ORDER BY id", (position_id, kind)
    ) as cursor:
        return [dict(r) for r in await cursor.fetchall()]


def never_executed(rows: list[dict[str, Any]]) -> bool:
    """True when these journal rows prove that nothing of the signal executed at the broker."""
    return all(r["state"] in NOT_EXECUTED for r in rows)
