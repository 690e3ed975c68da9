"""The trading day's running totals (realized P/L, losing streak, entries), kept from the trade log.

``DayTotals.load`` computes them from the database (the definitions are in :mod:`losses`); it
runs once per trading day. From then on they follow the trade log's changes, which
``TradeLogFeed`` reports: TEMP triggers on the store's connection hand every deal inserted and
every entry signal that starts or stops counting to a queue, whoever writes it (the ledger and
its catch-up, the engine, the intake, recovery). No writer can be forgotten, and a deal the
ledger sees twice is reported once (``INSERT OR IGNORE`` fires no trigger for the ignored row).
The triggers run in the store's writer thread and only append the row's values; the event loop applies
them, in the order SQLite wrote them, when it next reads the totals. Applying a change twice
changes nothing (deals are counted by id, a signal counts or not by its latest status), so a
change made while a day loads can simply be applied again on top of what the load read.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from typing import Any, NamedTuple

from pipsync_lite.database import Database

ZERO = Decimal(0)
#: Entries (``trades``): these actions, in these statuses (failures, refusals and waits excepted).
ENTRY_ACTIONS = ("buy", "sell", "reverse")
COUNTED = ("accepted", "executed", "unknown")


class DealRow(NamedTuple):
    """A deal as stored (values as SQLite holds them: TEXT amounts, None on an opening deal)."""

    deal_id: int
    executed_at: str | None
    gross_profit: Any
    swap: Any
    commission: Any


class EntryRow(NamedTuple):
    """An entry signal's row after a write: does it count as one of the day's trades?"""

    signal_id: int
    received_at: str
    counted: bool


class DayTotals:
    """The totals of the deals and entry signals stamped at or after ``since`` (UTC ISO)."""

    def __init__(self, since: str) -> None:
        self.since = since
        self.realized = ZERO
        self._deals: set[int] = set()
        self._entries: set[int] = set()
        # The losing streak: in the order of (executed_at, deal_id), the losing closes after the
        # latest close that was not a loss. A deal recorded late (catch-up after a reconnect)
        # is placed by its key, not by when it arrived.
        self._last_win: tuple[str, int] | None = None
        self._losses_after: list[tuple[str, int]] = []

    @property
    def trades(self) -> int:
        return len(self._entries)

    @property
    def consecutive_losses(self) -> int:
        return len(self._losses_after)

    @classmethod
    async def load(cls, db: Database, since: str) -> DayTotals:
        """The totals computed from the trade log: the definition, and the tests' oracle."""
        totals = cls(since)
        async with db.execute(
            "SELECT deal_id, executed_at, gross_profit, swap, commission FROM deals WHERE executed_at >= ?"
            " ORDER BY executed_at, deal_id",
            (since,),
        ) as cursor:
            for row in await cursor.fetchall():
                totals.add_deal(DealRow(*row))
        async with db.execute(
            f"SELECT id, received_at FROM signals WHERE received_at >= ? AND action IN ({_sql(ENTRY_ACTIONS)})"
            f" AND status IN ({_sql(COUNTED)})",
            (since,),
        ) as cursor:
            for signal_id, received_at in await cursor.fetchall():
                totals.set_entry(EntryRow(signal_id, received_at, True))
        return totals

    def apply(self, change: DealRow | EntryRow) -> None:
        if isinstance(change, DealRow):
            self.add_deal(change)
        else:
            self.set_entry(change)

    def add_deal(self, deal: DealRow) -> None:
        """A deal recorded: its commission, and for a close its gross P/L and swap, are realized."""
        if deal.executed_at is None or deal.executed_at < self.since or deal.deal_id in self._deals:
            return
        self._deals.add(deal.deal_id)
        result = _dec(deal.commission)
        if deal.gross_profit is not None:  # a deal that closed volume
            result += _dec(deal.gross_profit) + _dec(deal.swap)
            self._closed((deal.executed_at, deal.deal_id), loss=result < 0)
        self.realized += result

    def set_entry(self, entry: EntryRow) -> None:
        if entry.counted and entry.received_at >= self.since:
            self._entries.add(entry.signal_id)
        else:
            self._entries.discard(entry.signal_id)

    def _closed(self, key: tuple[str, int], *, loss: bool) -> None:
        if self._last_win is not None and key < self._last_win:
            return  # before the latest non-losing close: the streak after it is the same
        if loss:
            self._losses_after.append(key)
        else:
            self._last_win = key
            self._losses_after = [k for k in self._losses_after if k > key]


class TradeLogFeed:
    """The changes to deals and entry signals, as the store's connection makes them."""

    def __init__(self) -> None:
        self._changes: collections.deque[DealRow | EntryRow] = collections.deque()
        self._db: Database | None = None

    def installed_on(self, db: Database) -> bool:
        return self._db is db

    async def install(self, db: Database) -> None:
        """Report the changes made through ``db`` from now on (TEMP: nothing is stored)."""
        await db.create_function("psl_tally_deal", 5, self._deal)
        await db.create_function("psl_tally_entry", 3, self._entry)
        entry, counted = _sql(ENTRY_ACTIONS), _sql(COUNTED)
        for trigger in (
            """psl_tally_deal AFTER INSERT ON main.deals BEGIN
                SELECT psl_tally_deal(NEW.deal_id, NEW.executed_at, NEW.gross_profit, NEW.swap, NEW.commission);
            END""",
            # An entry counts from the moment a row says so; only a change of that is reported.
            f"""psl_tally_entry_new AFTER INSERT ON main.signals
            WHEN NEW.action IN ({entry}) AND NEW.status IN ({counted}) BEGIN
                SELECT psl_tally_entry(NEW.id, NEW.received_at, 1);
            END""",
            f"""psl_tally_entry_status AFTER UPDATE OF status ON main.signals
            WHEN NEW.action IN ({entry}) AND (OLD.status IN ({counted})) IS NOT (NEW.status IN ({counted})) BEGIN
                SELECT psl_tally_entry(NEW.id, NEW.received_at, NEW.status IN ({counted}));
            END""",
        ):
            await db.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS {trigger}")
        self._db = db

    def report(self, change: DealRow | EntryRow) -> None:
        """A change known before its write runs (the engine's accepted entry): reported now too."""
        self._changes.append(change)

    def take(self) -> list[DealRow | EntryRow]:
        """The changes reported since the last call, oldest first."""
        taken = []
        while self._changes:
            taken.append(self._changes.popleft())
        return taken

    # The two functions below run inside the writer's statement, in the writer thread: an
    # exception there would fail that write (a signal, a deal), so they only append.

    def _deal(self, deal_id: int, executed_at: str | None, gross: Any, swap: Any, commission: Any) -> None:
        self._changes.append(DealRow(deal_id, executed_at, gross, swap, commission))

    def _entry(self, signal_id: int, received_at: str, counted: int) -> None:
        self._changes.append(EntryRow(signal_id, received_at, bool(counted)))


def _sql(values: tuple[str, ...]) -> str:
    """A constant tuple as an SQL list of literals (the trigger cannot take parameters)."""
    return ", ".join(f"'{v}'" for v in values)


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))
