"""``python -m tests.benchmarks.losses [--quick]``: CPU per ``LossBook.stats()`` call as the trading day fills.

The day's numbers are read on every entry, under the engine's decision lock. This measures one
call (process CPU, all threads: the event loop and aiosqlite's worker) with 0, 2,000 and 10,000
deals already in the day (half of them closes, one accepted entry signal per opening deal), on
a real SQLite file; the broker is a stand-in with a balance and no open position, so no
unrealized P/L request is made and only the trade log's part is measured. Also: the day's
load (once per trading day, at start or at the rollover) and what following the trade log
adds to each deal written.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog

from pipsync_lite.ctrader.model import AccountInfo, AccountType, Position, UnrealizedPnL
from pipsync_lite.events import EventBus
from pipsync_lite.losses import LossBook
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.store import SignalRecord, Store
from tests.benchmarks.__main__ import fmt, table

DAY_SIZES = (0, 2_000, 10_000)
QUICK_SIZES = (0, 200)  # --quick: does it still run?
CALLS = 200


class StandInBroker:
    """A balance and no open position: what ``stats()`` reads from the broker."""

    account = AccountInfo(1, Decimal(10_000), 2, "USD", Decimal(100), AccountType.HEDGED)

    def positions(self) -> list[Position]:
        return []

    async def unrealized_pnl(self) -> list[UnrealizedPnL]:
        return []


async def fill_day(store: Store, deals: int, now: datetime) -> None:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    await store.db.execute("BEGIN")  # one commit: filling is not what is measured
    for n in range(deals):
        at = start + timedelta(seconds=n)
        closing = n % 2 == 1
        if not closing:
            record = SignalRecord(received_at=at, raw_body="{}", status="executed", action="buy", symbol="EURUSD")
            await store.insert_signal(record)
        await store.insert_deal(
            n + 1, order_id=n + 1, position_id=n // 2 + 1, symbol="EURUSD", side="BUY", volume=1000,
            execution_price=Decimal("1.1"), commission=Decimal("-0.03"),
            gross_profit=Decimal(n % 7 - 3) if closing else None, swap=Decimal(0) if closing else None,
            balance_after=None, closed_volume=1000 if closing else None, executed_at=at.isoformat(timespec="milliseconds"),
        )  # fmt: skip
    await store.db.execute("COMMIT")


def make_book(store: Store) -> Any:
    """The LossBook, whatever its constructor takes (the measurement runs on old and new code)."""
    wanted = inspect.signature(LossBook).parameters
    kwargs: dict[str, Any] = {"events": EventBus()} if "events" in wanted else {}
    return LossBook(store, StandInBroker(), **kwargs)  # type: ignore[arg-type]


async def measure(deals: int, workdir: Path) -> tuple[float, float, float]:
    """CPU ms: per call without equity, per call with equity, the first call (the day's load)."""
    store = Store(workdir / f"day-{deals}.db")
    await store.open()
    now = datetime.now(UTC).replace(hour=23, minute=0)
    limits = RiskLimits()
    try:
        await fill_day(store, deals, now)
        book = make_book(store)
        t0 = time.process_time()
        await (book.start(limits, now) if hasattr(book, "start") else book.stats(limits, now, equity=False))
        first = (time.process_time() - t0) * 1e3
        found = []
        for equity in (False, True):
            await book.stats(limits, now, equity=equity)  # warm
            calls = CALLS if deals < 5_000 else CALLS // 4
            t0 = time.process_time()
            for _ in range(calls):
                await book.stats(limits, now, equity=equity)
            found.append((time.process_time() - t0) / calls * 1e3)
        if hasattr(book, "stop"):
            await book.stop()
        return found[0], found[1], first
    finally:
        await store.close()


async def write_cost(workdir: Path, follow: bool, deals: int) -> float:
    """CPU µs per deal inserted (in one transaction: the fsync is not what is compared)."""
    store = Store(workdir / f"writes-{follow}.db")
    await store.open()
    try:
        if follow:
            book = make_book(store)
            await book.start(RiskLimits(), datetime.now(UTC))
        t0 = time.process_time()
        await fill_day(store, deals, datetime.now(UTC).replace(hour=23))
        cost = (time.process_time() - t0) / deals * 1e6
        if follow:
            await book.stop()
        return cost
    finally:
        await store.close()


async def main(sizes: tuple[int, ...]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows = []
    with tempfile.TemporaryDirectory(prefix="pipsync-losses-") as tmp:
        for deals in sizes:
            plain, equity, first = await measure(deals, Path(tmp))
            rows.append([f"{deals:,}", fmt(plain, 3), fmt(equity, 3), fmt(first, 1)])
        print(table(["deals in the day", "CPU ms/call, equity=False", "CPU ms/call, equity=True",
                     "first call or start (the day's load), CPU ms"], rows))  # fmt: skip
        if hasattr(LossBook, "start"):
            count = max(sizes)
            bare, followed = await write_cost(Path(tmp), False, count), await write_cost(Path(tmp), True, count)
            print(f"\nWriting a deal (and every other one an entry signal): {fmt(bare, 1)} µs CPU, "
                  f"{fmt(followed, 1)} µs with the trade log followed (triggers)")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(QUICK_SIZES if "--quick" in sys.argv[1:] else DAY_SIZES))
