"""The open positions' floating P/L for the loss limits: asked of the broker in the background.

Each measurement is an Open API request (``GetPositionUnrealizedPnLReq``, counted against the 50
requests/s), so an entry should not make one while it holds the decision lock. While someone
reads the value (the risk monitor every second, entries under ``max_daily_loss`` or
``max_drawdown``) and positions are open, it is measured again every ``REFRESH_EVERY`` seconds,
and as soon as that spacing allows after a position opens or closes. A reader uses the last
measurement when it is at most ``MAX_AGE`` seconds old (from when its request was sent) and
otherwise waits for a new one, bounded by ``TIMEOUT`` (then it counts 0, with a warning, as an
unanswered request always did). The value is summed over the positions open now: a position
closed since the measurement stops counting at once (its result is realized), one opened since
counts from the next measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from decimal import Decimal

import structlog

from pipsync_lite.ctrader.model import Broker
from pipsync_lite.errors import BrokerError

log = structlog.get_logger("pipsync_lite.floating")

ZERO = Decimal(0)
MAX_AGE = 2.0  # seconds: an older measurement is not used
REFRESH_EVERY = 1.0  # seconds between two background requests, at least
TIMEOUT = 1.5  # seconds a reader waits for the broker's answer (inside the webhook's 3 seconds)
INTEREST = 5.0  # seconds: measured in the background this long after the last read


class FloatingPnL:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._net: dict[int, Decimal] = {}  # position id → net floating P/L, as last measured
        self._measured_at = -math.inf  # loop time the last answered request was sent
        self._sent_at = -math.inf  # loop time the last request was sent
        self._read_at = -math.inf
        self._request: asyncio.Task[bool] | None = None  # the request in flight, shared
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="floating-pnl")

    async def stop(self) -> None:
        for task in (self._task, self._request):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._request = None

    def positions_changed(self) -> None:
        """A position opened or closed: measure again as soon as the spacing allows."""
        self._wake.set()

    async def net(self) -> Decimal:
        """The open positions' net floating P/L, from a measurement at most ``MAX_AGE`` old."""
        positions = self._broker.positions()
        if not positions:
            return ZERO
        now = _now()
        self._read_at = now
        self._wake.set()
        if now - self._measured_at > MAX_AGE and not await self._measure():
            return ZERO
        return sum((self._net.get(p.position_id, ZERO) for p in positions), ZERO)

    async def _measure(self) -> bool:
        """Wait for a measurement (the one in flight, or a new one); False if none came."""
        if self._request is None or self._request.done():
            self._request = asyncio.create_task(self._ask(), name="floating-pnl-request")
        return await asyncio.shield(self._request)

    async def _ask(self) -> bool:
        sent = self._sent_at = _now()
        try:
            pnl = await asyncio.wait_for(self._broker.unrealized_pnl(), TIMEOUT)
        except (BrokerError, TimeoutError) as err:
            log.warning("unrealized_pnl_unavailable", error=str(err) or type(err).__name__)
            return False
        self._net = {p.position_id: p.net for p in pnl}
        self._measured_at = sent
        return True

    def _wanted(self) -> bool:
        return _now() - self._read_at <= INTEREST and self._broker.ready and bool(self._broker.positions())

    async def _run(self) -> None:
        while True:
            if not self._wanted():
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._sent_at + REFRESH_EVERY - _now()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await self._measure()
            except Exception:  # the loop must outlive one bad answer
                log.exception("unrealized_pnl_refresh_failed")
                await asyncio.sleep(REFRESH_EVERY)


def _now() -> float:
    return asyncio.get_running_loop().time()
