"""After a restart, a reconnect or an unanswered request: find out what really happened at the
broker BEFORE anything is sent again.

On every ``ConnectionChange(ready=True)`` (the session has re-authorized and Reconcile has
rebuilt positions and orders) the intake is closed and a *pass* runs:

1. Reconcile + the catch-up (:mod:`catchup`): missed deals replayed, positions synced.
2. Every signal whose outcome is unknown (``accepted`` and not executing in this process,
   i.e. interrupted by a crash, or ``unknown`` after a timeout or a dropped link) is looked up
   by its label/clientOrderId ``psl-<db>-<signal>``:
   - its journal (:mod:`journal`) proves that nothing was executed (no request was ever
     written, or every one was refused / never left) → it is ``queued`` again, and the
     intake's age rule decides: sent now if younger than ``max_queue_age_seconds``, else
     rejected ``max_queue_age``;
   - part of a multi-step plan executed and the rest was never sent: a full close or cancel
     is ``queued`` again (re-planned on what was open at its alert and still is); anything
     else (a reverse between its close and its entry, a partial close) → ``failed`` with rule
     ``interrupted`` and an error: the account has changed, so it is not re-planned;
   - a request may have left → evidence is looked for: a position or pending order with the
     label (Reconcile), a deal of an order with the label (DealList + OrderDetails), a
     position the ledger already tied to the signal; for a close, the position gone or
     reduced. Found → ``executed`` (the order row completed), never sent again. Not found
     after a restart or a reconnect → the link it left on is gone, so it never reached the
     broker and never will: it is ``queued`` like above (sent again only while young). Not
     found after a timeout on a live link → it may still be on its way: ``failed`` with rule
     ``not_executed``, never resent (a late answer still turns it ``executed``).
3. The queue is drained in arrival order, then the intake opens.

A request that times out while the link stays up triggers a pass ``request_timeout`` later.
An execution event that arrives late for a signal already marked ``unknown`` or
``not_executed`` settles it as ``executed`` at once (late evidence).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from pipsync_lite.catchup import CatchUp, DealIndex
from pipsync_lite.ctrader.client import CTraderClient
from pipsync_lite.ctrader.model import (
    BrokerEvent,
    ConnectionChange,
    Execution,
    ExecutionKind,
)
from pipsync_lite.engine import Engine
from pipsync_lite.errors import BrokerError
from pipsync_lite.events import EventBus
from pipsync_lite.intake import Intake
from pipsync_lite.journal import (
    OPEN,
    never_executed,
    requests_for,
    settle,
    unsent_steps,
)
from pipsync_lite.ledger import signal_id_from_label
from pipsync_lite.store import Store, utcnow_iso
from pipsync_lite.waits import wait_event

log = structlog.get_logger("pipsync_lite.recovery")

#: Exits that may be planned again after an interruption: what they leave is what they close.
_IDEMPOTENT_ACTIONS = frozenset({"close", "close_long", "close_short", "close_all", "cancel", "cancel_all"})


def _idempotent(row: dict[str, Any]) -> bool:
    parsed = json.loads(row["parsed"] or "{}")
    return row["action"] in _IDEMPOTENT_ACTIONS and "percent" not in parsed and "lots" not in parsed


def _is_evidence(event: Execution) -> bool:
    """A fill of one of our orders, or the acceptance of a pending one (a market order's
    acceptance is not yet a trade: it can still be cancelled)."""
    if event.is_protective or event.closing_order:
        return False
    if event.kind in (ExecutionKind.FILLED, ExecutionKind.PARTIAL_FILL):
        return True
    return event.kind is ExecutionKind.ACCEPTED and event.order_type is not None and event.order_type.is_pending


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the broker shows for one journaled request."""

    executed: bool
    detail: str
    order_id: int | None = None
    position_id: int | None = None
    price: Any = None
    status: str = "filled"  # the order row's status: filled | accepted


class Recovery:
    def __init__(
        self,
        *,
        store: Store,
        broker: CTraderClient,
        catchup: CatchUp,
        engine: Engine,
        intake: Intake,
        events: EventBus,
        clock: Callable[[], datetime],
        timeout_grace: float,
    ) -> None:
        self._store = store
        self._broker = broker
        self._catchup = catchup
        self._engine = engine
        self._intake = intake
        self._events = events
        self._clock = clock
        self._grace = timeout_grace
        self._pass_lock = asyncio.Lock()
        self._ready_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._restarted = True  # the first pass follows a (re)start
        self._timeout_pass_due = False
        self.passes = 0
        intake.on_waiting(lambda: self._spawn(self._drain()))

    @property
    def _prefix(self) -> str:
        return f"psl-{self._store.instance_id}-"

    # --- triggers -------------------------------------------------------------------------

    def on_broker_event(self, event: BrokerEvent) -> None:
        if isinstance(event, ConnectionChange):
            if event.ready:
                self._intake.close("reconciling with the broker", brief=True)
                self._spawn(self._on_ready())
            else:
                self._intake.close(event.reason or "disconnected from cTrader")
            return
        if _is_evidence(event):
            label = event.client_order_id or event.label
            if label.startswith(self._prefix):
                signal_id = signal_id_from_label(label)
                if signal_id is not None and signal_id not in self._engine.in_flight():
                    self._spawn(self._late_evidence(signal_id, label, event))

    def on_unknown(self, signal_id: int | None) -> None:
        """A request went unanswered on a live link: reconcile once a late answer had its chance."""
        if not self._timeout_pass_due:
            self._timeout_pass_due = True
            self._spawn(self._after_timeout())

    async def stop(self, timeout: float = 2.0) -> None:
        """Let a pass under way finish (it is short), then cancel what is left."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except BrokerError as exc:  # the next ready (or timeout) tries again
                log.warning("recovery_interrupted", error=str(exc))
            except Exception:
                log.exception("recovery_failed")

        task = asyncio.create_task(guarded(), name="recovery")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_ready(self) -> None:
        async with self._ready_lock:
            if not self._broker.ready:
                return
            self._intake.close("reconciling with the broker", brief=True)
            reason = "restart" if self._restarted else "reconnect"
            while True:
                try:
                    await self.run_pass(reason)
                    break
                except BrokerError as exc:
                    if not self._broker.ready or self._stopping.is_set():
                        raise  # the link went again: the next ready starts over
                    # a request of the pass went unanswered on a live link: try again shortly
                    log.warning("recovery_pass_retrying", reason=reason, error=str(exc))
                    await wait_event(self._stopping, self._grace)
                except Exception:
                    # A bug must not keep the intake shut for good. What the pass did not
                    # settle stays unknown (never resent); only signals it queued are drained.
                    log.exception("recovery_pass_failed", reason=reason)
                    break
            self._restarted = False
            await self._intake.drain(self._engine.resume, lambda: self._broker.ready)
            if self._broker.ready:
                self._intake.open()

    async def _drain(self) -> None:
        async with self._ready_lock:
            if self._broker.ready and self._intake.is_open:
                await self._intake.drain(self._engine.resume, lambda: self._broker.ready)

    async def _after_timeout(self) -> None:
        # a late answer (then settled as late evidence) is cheaper than a pass
        await wait_event(self._stopping, self._grace)
        self._timeout_pass_due = False  # unknowns from here on get a pass of their own
        if self._broker.ready and not self._stopping.is_set():
            await self.run_pass("timeout")

    # --- the pass -------------------------------------------------------------------------

    async def run_pass(self, reason: str) -> None:
        async with self._pass_lock:
            started = asyncio.get_running_loop().time()
            await self._broker.reconcile()
            unresolved = await self._unresolved()
            now_ms = int(self._clock().timestamp() * 1000)
            since = await self._catchup.window_start(
                now_ms, (int(datetime.fromisoformat(r["received_at"]).timestamp() * 1000) for r in unresolved)
            )
            index = await self._catchup.run(since, now_ms)
            counts = {"executed": 0, "not_executed": 0, "queued": 0}
            for row in unresolved:
                counts[await self._resolve(row, index, reason)] += 1
            self.passes += 1
            log.info(
                "recovery_pass_done",
                reason=reason,
                deals_recovered=len(index.missed),
                seconds=round(asyncio.get_running_loop().time() - started, 3),
                **counts,
            )

    async def _unresolved(self) -> list[dict[str, Any]]:
        running = self._engine.in_flight()
        async with self._store.db.execute(
            "SELECT * FROM signals WHERE status IN ('accepted', 'unknown') ORDER BY id"
        ) as cursor:
            rows = [dict(r) for r in await cursor.fetchall()]
        return [r for r in rows if r["id"] not in running]

    async def _resolve(self, row: dict[str, Any], index: DealIndex, reason: str) -> str:
        signal_id = int(row["id"])
        label = f"{self._prefix}{signal_id}"
        requests = await requests_for(self._store, signal_id)
        if requests and all(r["state"] == "refused" for r in requests):
            # the broker answered no before the daemon could record it: that is final
            detail = requests[-1]["detail"] or "refused by the broker"
            await self._store.set_signal_status(signal_id, "failed", rule="broker", reason=detail)
            return "not_executed"
        if never_executed(requests):
            note = "acknowledged but never sent to the broker" + (" (the daemon stopped first)" if reason == "restart" else "")
            await self._store.set_signal_status(signal_id, "queued", reason=note)
            log.info("signal_never_sent", signal_id=signal_id, label=label)
            return "queued"
        outcomes: list[bool] = []
        for request in requests:
            if request["state"] in OPEN:
                evidence = await self._evidence(request, label, signal_id, index)
                await settle(
                    self._store, request["id"], "executed" if evidence.executed else "not_executed", evidence.detail,
                    **{k: v for k, v in (("order_id", evidence.order_id), ("position_id", evidence.position_id)) if v is not None},
                )
                if evidence.executed and request["kind"] == "new_order":
                    await self._record_entry(signal_id, label, evidence)
                outcomes.append(evidence.executed)
                log.info("request_reconciled", signal_id=signal_id, kind=request["kind"], executed=evidence.executed, detail=evidence.detail)
            else:
                outcomes.append(request["state"] in ("done", "executed"))
        unsent = unsent_steps(requests)
        if any(outcomes) and unsent and row["status"] == "accepted" and _idempotent(row):
            # A full close (or cancel) cut short: closing what is still open of what was open
            # at its alert finishes it, and doing it twice does no harm.
            note = f"interrupted after {len(requests)} of its requests; the rest is sent when the broker is ready"
            await self._store.set_signal_status(signal_id, "queued", reason=note)
            log.warning("signal_interrupted", signal_id=signal_id, label=label, unsent=unsent, resumed=True)
            return "queued"
        if any(outcomes) and unsent and row["status"] == "accepted":
            # Part of a multi-step plan (a reverse's close, a partial close of several
            # positions) executed, the rest was never sent. Re-planning now would act on a
            # changed account (a reverse after its close finds nothing to reverse, a percent
            # close would cut twice): it is reported, not resumed.
            detail = (
                f"the daemon stopped after {len(requests)} of its requests; {unsent} more were never sent "
                "and are not sent now: check the account, send a new alert if still wanted"
            )
            await self._store.set_signal_status(signal_id, "failed", rule="interrupted", reason=detail)
            log.error("signal_interrupted", signal_id=signal_id, label=label, unsent=unsent, resumed=False)
            self._events.emit("order.failed", signal_id=signal_id, purpose="plan", outcome="interrupted", error_text=detail)
            return "executed"
        if any(outcomes):
            await self._store.set_signal_status(signal_id, "executed", reason=f"reconciled with the broker after a {reason}")
            log.info("signal_reconciled", signal_id=signal_id, label=label, outcome="executed", after=reason)
            return "executed"
        if reason in ("restart", "reconnect"):
            # Whatever went out did so on a link that is gone: the server acted on it at once
            # (then Reconcile/DealList would show it) or never will. Nothing executed, so it
            # waits like a queued alert: sent if still young, else rejected max_queue_age.
            note = f"sent before the {reason} but never reached the broker (no trace in Reconcile, DealList)"
            await self._store.set_signal_status(signal_id, "queued", reason=note)
            log.warning("signal_reconciled", signal_id=signal_id, label=label, outcome="never_reached", after=reason)
            return "queued"
        detail = f"the broker has no trace of {label} (Reconcile, DealList): it did not execute; not resent"
        await self._store.set_signal_status(signal_id, "failed", rule="not_executed", reason=detail)
        log.warning("signal_reconciled", signal_id=signal_id, label=label, outcome="not_executed", after=reason)
        self._events.emit("order.failed", signal_id=signal_id, purpose="entry", outcome="not_executed", error_text=detail)
        return "not_executed"

    async def _evidence(self, request: dict[str, Any], label: str, signal_id: int, index: DealIndex) -> Evidence:
        kind = request["kind"]
        if kind == "new_order":
            return await self._entry_evidence(request["client_order_id"] or label, signal_id, index)
        position_id = request["position_id"]
        if kind == "close":
            open_now = {p.position_id: p for p in self._broker.positions()}
            sent_ms = int(datetime.fromisoformat(request["sent_at"]).timestamp() * 1000) - 1000
            closes = index.closing(position_id, sent_ms)
            if closes:
                return Evidence(True, f"position {position_id} was closed (deal {closes[-1].deal_id})", order_id=closes[-1].order_id)
            if position_id not in open_now:
                return Evidence(True, f"position {position_id} is no longer open")
            return Evidence(False, f"position {position_id} is still open, not reduced")
        if kind == "cancel":
            gone = all(o.order_id != request["order_id"] for o in self._broker.orders())
            return Evidence(gone, f"order {request['order_id']} is {'gone' if gone else 'still pending'}")
        if kind == "amend_sltp":
            position = next((p for p in self._broker.positions() if p.position_id == position_id), None)
            if position is None:
                return Evidence(False, f"position {position_id} is gone")
            wanted = None if request["stop_loss"] is None else Decimal(request["stop_loss"])
            return Evidence(
                position.stop_loss == wanted, f"position {position_id} has stop {position.stop_loss}, asked {wanted}"
            )
        return Evidence(True, "amendment not verifiable; counted as done")

    async def _entry_evidence(self, label: str, signal_id: int, index: DealIndex) -> Evidence:
        for position in self._broker.positions():
            if position.label == label:
                return Evidence(True, f"position {position.position_id} is open", position_id=position.position_id, price=position.entry_price)
        for order in self._broker.orders():
            if label in (order.label, order.client_order_id):
                return Evidence(True, f"order {order.order_id} is pending", order_id=order.order_id, status="accepted")
        deals = index.for_label(label)
        if deals:
            deal = deals[0]
            return Evidence(True, f"deal {deal.deal_id} filled it", order_id=deal.order_id, position_id=deal.position_id, price=deal.execution_price)
        async with self._store.db.execute(
            "SELECT position_id, entry_price FROM positions WHERE signal_id = ? ORDER BY position_id LIMIT 1", (signal_id,)
        ) as cursor:
            logged = await cursor.fetchone()
        if logged is not None:
            return Evidence(True, f"position {logged[0]} was opened for it", position_id=int(logged[0]), price=logged[1])
        return Evidence(False, "no position, order or deal carries its label")

    async def _record_entry(self, signal_id: int, label: str, evidence: Evidence) -> None:
        """Complete the order row the executor left ``unknown`` (or never wrote)."""
        fields = {
            "status": evidence.status,
            "broker_order_id": evidence.order_id,
            "position_id": evidence.position_id,
            "execution_price": None if evidence.price is None else str(evidence.price),
        }
        assignments = ", ".join(f"{k} = COALESCE(?, {k})" for k in fields)
        cursor = await self._store.db.execute(
            f"""UPDATE orders SET {assignments}, error_code = NULL, error_text = ?, updated_at = ?
                WHERE signal_id = ? AND purpose = 'entry' AND client_order_id = ? AND status IN ('unknown', 'failed')""",
            (*fields.values(), f"reconciled: {evidence.detail}", utcnow_iso(), signal_id, label),
        )
        if cursor.rowcount == 0 and not await self._store.orders_for(signal_id):
            await self._store.insert_order(
                signal_id, "entry", evidence.status, client_order_id=label, broker_order_id=evidence.order_id,
                position_id=evidence.position_id, execution_price=fields["execution_price"],
                error_text=f"reconciled: {evidence.detail}",
            )

    async def _late_evidence(self, signal_id: int, label: str, event: Execution) -> None:
        async with self._pass_lock:
            row = await self._store.signal(signal_id)
            if row is None or not (row["status"] == "unknown" or (row["status"] == "failed" and row["rule"] == "not_executed")):
                return
            deal = event.deal
            evidence = Evidence(
                True,
                f"the broker's late {event.kind.value} event for order {event.order_id}",
                order_id=event.order_id,
                position_id=event.position_id,
                price=deal.execution_price if deal is not None else None,
                status="filled" if event.kind is not ExecutionKind.ACCEPTED else "accepted",
            )
            for request in await requests_for(self._store, signal_id):
                if request["kind"] == "new_order" and request["state"] in (*OPEN, "not_executed"):
                    await settle(self._store, request["id"], "executed", evidence.detail, order_id=event.order_id)
            await self._record_entry(signal_id, label, evidence)
            await self._store.update_signal(signal_id, status="executed", rule=None, reason="reconciled: the broker's answer came late")
            log.info("signal_reconciled", signal_id=signal_id, label=label, outcome="executed", after="late answer")
