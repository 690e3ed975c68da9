"""The trading day in numbers: P/L, trades, losing streak and peak equity, for the loss limits.

``DayStats`` is a plain value the guard's loss rules read; ``LossBook`` assembles it from the
trade log (deals recorded by the ledger, signals recorded by the engine) and the broker
(balance, floating P/L of open positions), from memory: it runs on every entry, under the
engine's decision lock. The trade log's part is loaded once per trading day and then kept
current from the log's changes (:mod:`tally`); the floating P/L is measured in the background
(:mod:`floating`); the peak equity is saved behind the decision. Definitions, all in the
account currency:

- **realized**: the gross P/L and swap of the deals that closed volume during the trading day,
  plus the commission of every deal of the day;
- **unrealized**: the open positions' net floating P/L as the broker reports it, measured at
  most 2 s before (counted as 0, with a warning, when the broker does not answer within 1.5 s);
- **day's starting balance**: the balance now minus the realized P/L of the day;
- **trades**: entries accepted during the day (``buy``/``sell``/``reverse`` signals that
  passed the guard), whatever became of them at the broker, failures excepted;
- **consecutive losses**: closing deals of the day with a negative result, counted back from
  the latest until the first that was not a loss;
- **peak equity**: the highest equity (balance + unrealized) seen during the day, starting
  from the day's starting balance; kept in the database so a restart does not forget it.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from pipsync_lite.ctrader.model import Broker
from pipsync_lite.database import lazily
from pipsync_lite.events import Event, EventBus
from pipsync_lite.floating import FloatingPnL
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.store import Store, utcnow_iso
from pipsync_lite.tally import DayTotals, DealRow, EntryRow, TradeLogFeed
from pipsync_lite.windows import next_trading_day_start, trading_day_start

log = structlog.get_logger("pipsync_lite.losses")

ZERO = Decimal(0)
#: Trading days whose totals are kept (the current one; the one before, for a per-symbol
#: ``day_boundary`` or a reload that moved it).
KEPT_DAYS = 3
_POSITION_EVENTS = ("trade.opened", "trade.closed", "trade.sl_hit", "trade.tp_hit")


@dataclass(frozen=True, slots=True)
class DayStats:
    day: str  # the trading day's date in risk.timezone
    day_start: datetime  # UTC
    currency: str
    balance: Decimal
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    trades: int = 0
    consecutive_losses: int = 0
    peak_equity: Decimal | None = None

    @property
    def start_balance(self) -> Decimal:
        return self.balance - self.realized

    @property
    def equity(self) -> Decimal:
        return self.balance + self.unrealized

    @property
    def pnl(self) -> Decimal:
        """Realized plus unrealized P/L of the day (negative = a loss)."""
        return self.realized + self.unrealized

    @property
    def peak(self) -> Decimal:
        return max(self.peak_equity or self.start_balance, self.start_balance, self.equity)

    @property
    def drawdown(self) -> Decimal:
        return self.peak - self.equity


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}".replace(",", "")


def needs_stats(limits: RiskLimits) -> bool:
    return any(
        v is not None
        for v in (limits.max_daily_loss, limits.max_drawdown, limits.max_trades_per_day, limits.max_consecutive_losses)
    )


def needs_equity(limits: RiskLimits) -> bool:
    return limits.max_daily_loss is not None or limits.max_drawdown is not None


@dataclass(frozen=True, slots=True)
class TradingDay:
    label: str  # its start's local date
    start: datetime  # UTC
    end: datetime  # the next one's start, UTC
    since: str  # ``start`` as the trade log writes times

    @classmethod
    def of(cls, now: datetime, boundary: time, zone: ZoneInfo) -> TradingDay:
        start = trading_day_start(now, boundary, zone)
        label = start.astimezone(zone).date().isoformat()
        return cls(label, start, next_trading_day_start(now, boundary, zone), utcnow_iso(start))


class LossBook:
    """Builds ``DayStats`` from memory; follows the trade log; remembers the day's peak equity."""

    def __init__(self, store: Store, broker: Broker, events: EventBus | None = None) -> None:
        self._store = store
        self._broker = broker
        self.floating = FloatingPnL(broker)
        self._feed = TradeLogFeed()
        self._days: collections.OrderedDict[str, DayTotals] = collections.OrderedDict()  # by ``since``
        self._loading = asyncio.Lock()
        self._taken_while_loading: list[DealRow | EntryRow] | None = None
        self._calendar: dict[tuple[time, str], TradingDay] = {}
        self._peak: tuple[str, Decimal] | None = None
        self._peak_saved: tuple[str, Decimal] | None = None
        self._saving: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        if events is not None:
            self._unsubscribe = events.subscribe(self._on_event)

    async def start(self, limits: RiskLimits, now: datetime) -> None:
        """Load the trading day and the peak equity; measure the floating P/L from now on."""
        await self._totals(self._day(limits, now).since)
        self.floating.start()

    async def stop(self) -> None:
        """Stop measuring; the last peak equity is saved before this returns."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.floating.stop()
        if self._saving is not None:
            await self._saving
        await self._save_peaks()

    async def stats(self, limits: RiskLimits, now: datetime, *, equity: bool = True) -> DayStats | None:
        """The day so far; None when the balance is unknown (broker not loaded yet)."""
        if self._broker.account is None:
            return None
        day = self._day(limits, now)
        unrealized = await self.floating.net() if equity else ZERO
        totals = await self._totals(day.since)  # no wait once the day is loaded: one instant
        account = self._broker.account
        if account is None:
            return None
        peak = self._peak
        stats = DayStats(
            day=day.label,
            day_start=day.start,
            currency=account.deposit_asset,
            balance=account.balance,
            realized=totals.realized,
            unrealized=unrealized,
            trades=totals.trades,
            consecutive_losses=totals.consecutive_losses,
            peak_equity=peak[1] if peak is not None and peak[0] == day.label else None,
        )
        if equity:
            self._remember_peak(day.label, stats.peak)
        return stats

    def entry_accepted(self, signal_id: int, received_at: str, *, counts: bool = True) -> None:
        """An entry passed the guard: it counts from this moment, before its row is written
        (the next decision must see it); ``counts=False`` takes it back (the row was not)."""
        self._feed.report(EntryRow(signal_id, received_at, counts))

    def _day(self, limits: RiskLimits, now: datetime) -> TradingDay:
        key = (limits.day_boundary, limits.timezone)
        day = self._calendar.get(key)
        if day is None or not day.start <= now < day.end:
            day = self._calendar[key] = TradingDay.of(now, limits.day_boundary, limits.zone)
        return day

    async def _totals(self, since: str) -> DayTotals:
        """The day's totals, up to date; loaded from the trade log the first time the day is read."""
        db = self._store.db
        if not self._feed.installed_on(db) or since not in self._days:
            async with self._loading:
                if not self._feed.installed_on(db):
                    # Follow the changes before reading anything: none falls in between.
                    await self._feed.install(db)
                    self._days.clear()
                    self._peak = self._peak_saved = await self._stored_peak()
                if since not in self._days:
                    await self._load(since)
        self._catch_up()
        self._days.move_to_end(since)
        return self._days[since]

    async def _load(self, since: str) -> None:
        self._taken_while_loading = []
        try:
            totals = await DayTotals.load(self._store.db, since)
        finally:
            taken, self._taken_while_loading = self._taken_while_loading, None
        for change in taken:  # some the SELECTs saw already: applying them again changes nothing
            totals.apply(change)
        self._days[since] = totals
        while len(self._days) > KEPT_DAYS:
            self._days.popitem(last=False)
        log.info("trading_day_loaded", since=since, realized=str(totals.realized), trades=totals.trades,
                 consecutive_losses=totals.consecutive_losses)  # fmt: skip

    def _catch_up(self) -> None:
        """Apply the trade log's changes to every day kept (and keep them for a day loading)."""
        changes = self._feed.take()
        if self._taken_while_loading is not None:
            self._taken_while_loading.extend(changes)
        for change in changes:
            for totals in self._days.values():
                totals.apply(change)

    def _on_event(self, event: Event) -> None:
        if event.type in _POSITION_EVENTS:
            self.floating.positions_changed()

    async def _stored_peak(self) -> tuple[str, Decimal] | None:
        async with self._store.db.execute("SELECT value FROM meta WHERE key = 'peak_equity'") as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        stored: dict[str, Any] = json.loads(row[0])
        return str(stored["day"]), Decimal(stored["amount"])

    def _remember_peak(self, day: str, peak: Decimal) -> None:
        if self._peak == (day, peak):
            return
        self._peak = (day, peak)
        if self._saving is None or self._saving.done():
            self._saving = asyncio.create_task(self._save_peaks(), name="peak-equity")

    async def _save_peaks(self) -> None:
        """Write the peak until the stored one is the latest: one writer, so in order."""
        with lazily():
            await self._save_peaks_now()

    async def _save_peaks_now(self) -> None:
        while self._peak is not None and self._peak != self._peak_saved:
            day, amount = peak = self._peak
            try:
                await self._store.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('peak_equity', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps({"day": day, "amount": str(amount)}),),
                )
            except Exception:  # the next change (or the stop) tries again
                log.exception("peak_equity_not_saved", day=day, amount=str(amount))
                return
            self._peak_saved = peak
