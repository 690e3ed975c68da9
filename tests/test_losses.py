"""The day's numbers from memory: the running totals always equal the trade log's recomputation.

A real SQLite store written through its own methods (the calls the ledger, the engine, the
intake and recovery make); the broker is a stand-in holding a balance. The oracle is
``DayTotals.load``: the SQL computation that defines the totals.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipsync_lite.ctrader.model import AccountInfo, AccountType, Position, UnrealizedPnL
from pipsync_lite.losses import DayStats, LossBook
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.store import SignalRecord, Store, utcnow_iso
from pipsync_lite.tally import DayTotals

from .conftest import eventually

D = Decimal
# New York, trading day from 17:00: 2026-11-20 17:00 EST = 22:00 UTC starts the day "2026-11-20".
LIMITS = RiskLimits(timezone="America/New_York", day_boundary=time(17, 0))
DAY_START = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
BALANCE = D(10_000)


class StandInBroker:
    """What the LossBook reads of the broker: the balance (and no position open)."""

    ready = True

    def __init__(self, balance: Decimal = BALANCE) -> None:
        self.account: AccountInfo | None = None
        self.set_balance(balance)

    def set_balance(self, balance: Decimal) -> None:
        self.account = AccountInfo(1, balance, 2, "USD", D(100), AccountType.HEDGED)

    def positions(self) -> list[Position]:
        return []

    async def unrealized_pnl(self) -> list[UnrealizedPnL]:
        return []


class Day:
    """Writes a trading day into the store the way the daemon's parts do."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.deal_ids = 0
        self.entries: list[int] = []

    async def deal(self, at: datetime, gross: str | None = None, commission: str = "-0.35", swap: str = "0",
                   deal_id: int | None = None) -> int:  # fmt: skip
        if deal_id is None:
            self.deal_ids += 1
            deal_id = self.deal_ids
        await self.store.insert_deal(
            deal_id, order_id=deal_id, position_id=deal_id, symbol="EURUSD", side="BUY", volume=100_000,
            execution_price=D("1.1"), commission=D(commission), gross_profit=None if gross is None else D(gross),
            swap=None if gross is None else D(swap), balance_after=None, closed_volume=None if gross is None else 100_000,
            executed_at=utcnow_iso(at),
        )  # fmt: skip
        return deal_id

    async def signal(self, at: datetime, status: str, action: str = "buy") -> int:
        signal_id = await self.store.insert_signal(
            SignalRecord(received_at=at, raw_body="{}", status=status, action=action, symbol="EURUSD")
        )
        if action in ("buy", "sell", "reverse"):
            self.entries.append(signal_id)
        return signal_id


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "trades.db")
    await store.open()
    yield store
    await store.close()


async def started(store: Store, broker: StandInBroker, now: datetime) -> LossBook:
    book = LossBook(store, broker)  # type: ignore[arg-type]
    await book.start(LIMITS, now)
    return book


async def assert_as_recomputed(book: LossBook, store: Store, now: datetime) -> DayStats:
    stats = await book.stats(LIMITS, now, equity=False)
    assert stats is not None
    oracle = await DayTotals.load(store.db, utcnow_iso(stats.day_start))
    assert (stats.realized, stats.trades, stats.consecutive_losses) == (
        oracle.realized, oracle.trades, oracle.consecutive_losses,
    )  # fmt: skip
    return stats


async def test_the_definitions_on_a_hand_counted_day(store: Store) -> None:
    """Realized = closes' gross + swap + every commission; the streak counts back from the latest
    close; trades = entries accepted, executed or unknown; yesterday's rows do not count."""
    day = Day(store)
    before = DAY_START - timedelta(minutes=1)
    await day.deal(before, gross="-50")  # the previous trading day
    await day.signal(before, "accepted")
    at = DAY_START + timedelta(minutes=1)
    await day.deal(at, commission="-1")  # an opening deal: its commission only
    await day.deal(at + timedelta(seconds=1), gross="30", swap="-2", commission="-1")  # +27
    await day.deal(at + timedelta(seconds=2), gross="-10", commission="-1")  # -11
    await day.deal(at + timedelta(seconds=3), gross="1", swap="-1.5", commission="0")  # -0.5: a loss
    for status in ("accepted", "executed", "unknown", "failed", "rejected", "queued", "pending_approval"):
        await day.signal(at, status)
    await day.signal(at, "accepted", action="close")
    book = await started(store, StandInBroker(), at + timedelta(hours=1))
    stats = await assert_as_recomputed(book, store, at + timedelta(hours=1))
    assert (stats.day, stats.realized, stats.consecutive_losses, stats.trades) == ("2026-11-20", D("14.5"), 2, 3)
    assert stats.start_balance == D("9985.5")


async def test_a_mixed_day_with_a_restart_and_a_rollover_matches_the_recomputation(tmp_path: Path) -> None:
    """Random deals (wins, losses, commissions, swaps, some recorded late, some seen twice) and
    entries moving through their statuses (accepted → failed, queued → accepted, failed →
    executed ...), a restart in the middle, a rollover at 17:00 New York: after every write the
    running totals equal the SQL recomputation."""
    rng = random.Random(8)
    store = Store(tmp_path / "trades.db")
    await store.open()
    day = Day(store)
    broker = StandInBroker()
    now = DAY_START + timedelta(hours=20)  # 12:00 in New York
    book = await started(store, broker, now)
    try:
        for step in range(360):
            now += timedelta(seconds=rng.randint(1, 120))
            if step == 150:  # a restart: a new book reads the day from the trade log
                await book.stop()
                await store.close()
                store = day.store = Store(tmp_path / "trades.db")
                await store.open()
                book = await started(store, broker, now)
            if step == 250:  # past 17:00 New York: a new trading day
                now = DAY_START + timedelta(days=1, minutes=1)
            await _random_write(rng, day, now)
            await assert_as_recomputed(book, store, now)
        stats = await assert_as_recomputed(book, store, now)
        assert stats.day == "2026-11-21" and stats.trades > 0 and stats.realized != 0
    finally:
        await book.stop()
        await store.close()


async def _random_write(rng: random.Random, day: Day, now: datetime) -> None:
    store = day.store
    kind = rng.choice(("open", "close", "close", "late", "again", "entry", "entry", "status", "status", "other"))
    if kind == "open":
        await day.deal(now, commission=str(-rng.randint(0, 90) / 100))
    elif kind == "close":
        gross = str(D(rng.randint(-3000, 3000)) / 100)
        await day.deal(
            now, gross=gross, swap=str(D(rng.randint(-50, 10)) / 100), commission=str(-rng.randint(0, 90) / 100)
        )
    elif kind == "late":  # a catch-up after a reconnect records a deal executed earlier
        await day.deal(now - timedelta(minutes=rng.randint(1, 90)), gross=str(rng.choice((-7, -1, 0, 4))))
    elif kind == "again" and day.deal_ids:  # a deal seen again after a reconnect
        await day.deal(now, gross="-999", deal_id=rng.randint(1, day.deal_ids))
    elif kind == "entry":
        await day.signal(now, rng.choice(("accepted", "accepted", "queued", "pending_approval", "rejected")),
                         action=rng.choice(("buy", "sell", "reverse")))  # fmt: skip
    elif kind == "status" and day.entries:
        signal_id = rng.choice(day.entries[-40:])
        status = rng.choice(("executed", "failed", "unknown", "queued", "accepted", "rejected", "expired"))
        if rng.random() < 0.5:
            await store.set_signal_status(signal_id, status, reason="test")
        else:
            await store.update_signal(signal_id, status=status)
    else:  # exits are not entries
        await day.signal(now, "accepted", action=rng.choice(("close", "close_all", "modify")))


async def test_a_failed_entry_stops_counting_and_a_late_fill_counts_it_again(store: Store) -> None:
    now = DAY_START + timedelta(hours=1)
    book = await started(store, StandInBroker(), now)
    day = Day(store)
    signal_id = await day.signal(now, "accepted")
    assert (await assert_as_recomputed(book, store, now)).trades == 1
    await store.set_signal_status(signal_id, "failed", rule="broker", reason="refused")
    assert (await assert_as_recomputed(book, store, now)).trades == 0
    await store.update_signal(
        signal_id, status="executed", rule=None, reason="reconciled: the broker's answer came late"
    )
    assert (await assert_as_recomputed(book, store, now)).trades == 1
    await book.stop()


async def test_a_deal_recorded_twice_counts_once_and_a_late_one_takes_its_place_in_the_streak(store: Store) -> None:
    now = DAY_START + timedelta(hours=1)
    book = await started(store, StandInBroker(), now)
    day = Day(store)
    first = await day.deal(now, gross="-10", commission="0")
    await day.deal(now + timedelta(seconds=2), gross="-5", commission="0")
    await day.deal(now, gross="-10", commission="0", deal_id=first)  # the ledger sees it again
    stats = await assert_as_recomputed(book, store, now)
    assert (stats.realized, stats.consecutive_losses) == (D(-15), 2)
    await day.deal(now + timedelta(seconds=1), gross="20", commission="0")  # recorded late, between the two
    stats = await assert_as_recomputed(book, store, now)
    assert (stats.realized, stats.consecutive_losses) == (D(5), 1)
    await day.deal(now - timedelta(seconds=1), gross="-3", commission="0")  # late, before the win: no streak
    stats = await assert_as_recomputed(book, store, now)
    assert (stats.realized, stats.consecutive_losses) == (D(2), 1)
    await book.stop()


async def test_stats_makes_no_database_statement_and_saves_the_peak_behind(store: Store, tmp_path: Path) -> None:
    """Every statement on the store's connection is traced: reading the day's numbers makes
    none; a new peak equity is written after the call returned, and the last one is saved by
    the stop and read back at the next start."""
    now = DAY_START + timedelta(hours=1)
    broker = StandInBroker()
    book = await started(store, broker, now)
    statements: list[str] = []
    await store.db.set_trace_callback(statements.append)
    for _ in range(20):
        stats = await book.stats(LIMITS, now, equity=False)
    assert stats is not None and statements == []

    for balance, peak in ((10_000, 10_000), (10_250, 10_250), (10_100, 10_250), (10_400, 10_400)):
        broker.set_balance(D(balance))
        stats = await book.stats(LIMITS, now)
        assert stats is not None and stats.peak == D(peak)
    await eventually(lambda: any("peak_equity" in s for s in statements))
    assert all("peak_equity" in s for s in statements)  # only the peak is ever written
    broker.set_balance(D(10_500))
    await book.stats(LIMITS, now)
    await book.stop()
    await store.db.set_trace_callback(None)

    again = await started(store, StandInBroker(D(10_000)), now)
    stats = await again.stats(LIMITS, now)
    assert stats is not None and (stats.peak_equity, stats.drawdown) == (D(10_500), D(500))
    assert (await again.stats(LIMITS, now + timedelta(days=1))).peak_equity is None  # type: ignore[union-attr]
    await again.stop()


async def test_concurrent_readers_see_the_same_day_loaded_once(
    store: Store, captured_logs: list[dict[str, Any]]
) -> None:
    """Entries and the monitor may read at once while a new day loads: one load, same numbers."""
    now = DAY_START + timedelta(hours=1)
    day = Day(store)
    for n in range(50):
        await day.deal(now + timedelta(seconds=n), gross=str(n - 25))
        await day.signal(now, "executed")
    book = LossBook(store, StandInBroker())  # type: ignore[arg-type]
    found: list[Any] = await asyncio.gather(*(book.stats(LIMITS, now, equity=False) for _ in range(5)))
    assert len({(s.realized, s.trades, s.consecutive_losses) for s in found}) == 1
    assert [e["event"] for e in captured_logs].count("trading_day_loaded") == 1
    await assert_as_recomputed(book, store, now)
    await book.stop()


async def test_what_is_written_while_a_day_loads_is_counted(store: Store) -> None:
    """The first read of a new day loads it from the trade log while deals and entries keep
    being written (deals recorded late, behind the load's cursor) and the day before is read
    (the monitor): every write counts, once."""
    now = DAY_START + timedelta(hours=1)
    book = await started(store, StandInBroker(), now)
    day = Day(store)
    tomorrow = now + timedelta(days=1)
    await day.deal(tomorrow + timedelta(seconds=10), gross="-4")
    loading = asyncio.ensure_future(book.stats(LIMITS, tomorrow, equity=False))
    writes = asyncio.gather(
        *(day.deal(tomorrow + timedelta(seconds=n), gross=str(n - 3)) for n in range(6)),
        *(day.signal(tomorrow, "accepted") for _ in range(3)),
    )
    while not (loading.done() and writes.done()):
        await book.stats(LIMITS, now, equity=False)
        await asyncio.sleep(0)
    assert (await loading).day == "2026-11-21"  # type: ignore[union-attr]
    stats = await assert_as_recomputed(book, store, tomorrow)
    assert stats.trades == 3 and stats.realized == D(-4 - 3 - 2 - 1 + 0 + 1 + 2) - 7 * D("0.35")
    await book.stop()
