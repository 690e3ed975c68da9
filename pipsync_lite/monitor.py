"""Between alerts: loss limits, the close of trading windows, approval and kill-switch expiry.

One task checks, every ``interval`` seconds and at once after every fill or close:

- the **loss limits** of ``risk`` (global): a breach engages the kill switch until the next
  trading day, records and logs its cause, emits ``kill_switch.engaged`` and, with
  ``risk.flatten_on_breach``, closes every position. A breach the operator overrode with
  ``pipsync-lite kill off`` is not engaged again the same day (the rule itself still refuses
  entries while the limit stays breached). Per-symbol loss limits refuse that symbol's
  entries but never engage the account's kill switch;
- ``flatten_at_close``: when a trading window of a symbol with open positions closes while
  the daemon runs, that symbol's positions are closed;
- waiting approvals whose time ran out expire; a loss engagement ends at the new day.

The time is the engine's clock, so tests move the day without waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog

from pipsync_lite.engine import Engine
from pipsync_lite.events import Event, EventBus
from pipsync_lite.losses import needs_equity, needs_stats
from pipsync_lite.risk import loss_breaches
from pipsync_lite.signal_model import Action, Dialect, Signal
from pipsync_lite.waits import wait_event
from pipsync_lite.windows import describe_local, next_trading_day_start, open_window

log = structlog.get_logger("pipsync_lite.monitor")

_WAKE_ON = ("trade.opened", "trade.closed", "trade.sl_hit", "trade.tp_hit")
_PROBE = Signal(Action.BUY, Dialect.JSON)  # loss limits are judged as for an entry


class RiskMonitor:
    def __init__(self, engine: Engine, events: EventBus, *, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inside: dict[str, bool] = {}  # symbol name → inside its trading windows at the last check
        self._unsubscribe: Callable[[], None] | None = events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type in _WAKE_ON:
            self._wake.set()

    def wake(self) -> None:
        """Check now (after a reload, a kill switch change, or in tests after moving the clock)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="risk-monitor")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # the monitor must outlive a bug in one check
                log.exception("risk_monitor_check_failed")
            await wait_event(self._wake, self._interval)
            self._wake.clear()

    async def check(self) -> None:
        engine = self._engine
        now = engine.clock()
        await engine.expire_approvals()
        await engine.kill_switch.expire(now)
        if not engine.broker.ready:
            return
        await self._loss_limits(now)
        await self._window_closes(now)

    async def _loss_limits(self, now: datetime) -> None:
        engine = self._engine
        limits = engine.config.risk
        if not needs_stats(limits) or engine.kill_switch.state(now) is not None:
            return
        day = await engine.losses.stats(limits, now, equity=needs_equity(limits))
        if day is None:
            return
        for breach in loss_breaches(day, limits, now, _PROBE):
            assert breach.rule is not None
            if engine.kill_switch.released_today(breach.rule, day.day):
                continue
            until = next_trading_day_start(now, limits.day_boundary, limits.zone)
            await engine.kill_switch.engage(breach.rule, breach.reason, now, until, day=day.day,
                                            flatten=limits.flatten_on_breach)  # fmt: skip
            if limits.flatten_on_breach:
                await engine.flatten(breach.rule, breach.reason)
            return

    async def _window_closes(self, now: datetime) -> None:
        engine = self._engine
        risk = engine.config.risk
        held = {p.symbol_id for p in engine.broker.positions()}
        seen: set[str] = set()
        for symbol_id in sorted(held):
            symbol = engine.broker.symbol_by_id(symbol_id)
            if symbol is None:
                continue
            limits = risk.for_symbol(symbol.name)
            if not limits.trading_windows or not limits.flatten_at_close:
                continue
            seen.add(symbol.name)
            inside = open_window(now, limits.trading_windows, limits.zone) is not None
            was_inside = self._inside.get(symbol.name)
            self._inside[symbol.name] = inside
            if was_inside and not inside:
                reason = f"trading window closed ({describe_local(now, limits.zone)}): flatten_at_close"
                log.info("trading_window_closed", symbol=symbol.name, reason=reason)
                await engine.flatten("flatten_at_close", reason, {symbol_id})
        for name in set(self._inside) - seen:
            del self._inside[name]
