"""Read-only queries over the trade log: pages of signals and trades, and the day's numbers.

Everything newest first with keyset pagination (``before``: the last id of the previous page),
so a page never shifts when new rows arrive. Times in the log are ISO-8601 UTC strings of one
fixed form, so comparing them as text compares the instants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pipsync_lite.store import Store, utcnow_iso

#: Statuses of signals that passed the guard (the order went, or is going, to the broker).
ACCEPTED_STATUSES = ("accepted", "executed", "failed", "unknown")


@dataclass(frozen=True, slots=True)
class Filters:
    limit: int
    before: int | None = None
    symbol: str | None = None
    status: str | None = None
    since: datetime | None = None


def iso(moment: datetime) -> str:
    """``moment`` in the trade log's own form (UTC, milliseconds)."""
    return utcnow_iso(moment.astimezone(UTC))


def verdict(status: str) -> str:
    """The guard's decision, whatever happened at the broker afterwards."""
    return "accepted" if status in ACCEPTED_STATUSES else status


def _where(clauses: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    parts, args = [], []
    for clause, value in clauses:
        if value is not None:
            parts.append(clause)
            args.append(value)
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


async def _all(store: Store, query: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
    async with store.reader.execute(query, tuple(args)) as cursor:
        return [dict(r) for r in await cursor.fetchall()]


# -- signals --------------------------------------------------------------------------------


async def signals(store: Store, f: Filters) -> list[dict[str, Any]]:
    """A page of signals (``limit`` + 1 rows are read to know whether another page follows)."""
    where, args = _where(
        [
            ("id < ?", f.before),
            ("symbol = ? COLLATE NOCASE", f.symbol),
            ("status = ?", f.status),
            ("received_at >= ?", None if f.since is None else iso(f.since)),
        ]
    )
    return await _all(
        store,
        f"""SELECT id, received_at, source_ip, dialect, parsed, action, symbol, idempotency_key, status,
                   rule, field, reason, lots, duplicate_of, config_version, updated_at
            FROM signals{where} ORDER BY id DESC LIMIT ?""",
        [*args, f.limit + 1],
    )


async def signal(store: Store, signal_id: int) -> dict[str, Any] | None:
    return await store.signal(signal_id)


async def orders_of(store: Store, signal_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = sorted(set(signal_ids))
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for row in await _all(store, f"SELECT * FROM orders WHERE signal_id IN ({marks}) ORDER BY id", chunk):
            found[row["signal_id"]].append(row)
    return found


# -- trades (positions of the log, with what their deals realized) -------------------------------


async def trades(store: Store, f: Filters) -> list[dict[str, Any]]:
    where, args = _where(
        [
            ("position_id < ?", f.before),
            ("symbol = ? COLLATE NOCASE", f.symbol),
            ("status = ?", f.status),
            ("opened_at >= ?", None if f.since is None else iso(f.since)),
        ]
    )
    rows = await _all(store, f"SELECT * FROM positions{where} ORDER BY position_id DESC LIMIT ?", [*args, f.limit + 1])
    money = await _deal_money([r["position_id"] for r in rows], store)
    for row in rows:
        row["remaining_volume"] = row["volume"]
        row.update(money.get(row["position_id"], {}))
    return rows


async def _deal_money(position_ids: list[int], store: Store) -> dict[int, dict[str, Any]]:
    """Gross P/L, commission and swap of each position, summed exactly over its deals, and
    the volume its opening deals filled."""
    totals: dict[int, dict[str, Any]] = {}
    opened: dict[int, int] = {}
    for start in range(0, len(position_ids), 500):
        chunk = position_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for deal in await _all(
            store,
            f"""SELECT position_id, gross_profit, commission, swap, volume, closed_volume
                FROM deals WHERE position_id IN ({marks})""",
            chunk,
        ):
            if deal["closed_volume"] is None and deal["volume"] is not None:
                opened[deal["position_id"]] = opened.get(deal["position_id"], 0) + int(deal["volume"])
            sums = totals.setdefault(
                deal["position_id"],
                {"gross_profit": Decimal(0), "commission": Decimal(0), "swap": Decimal(0)},
            )
            for key in ("gross_profit", "commission", "swap"):
                sums[key] += _decimal(deal[key])
    for position_id, sums in totals.items():
        sums["net_profit"] = sums["gross_profit"] + sums["commission"] + sums["swap"]
        if position_id in opened:
            sums["volume"] = opened[position_id]
    return totals


async def realized_since(store: Store, since: datetime) -> Decimal:
    """Net money realized by deals executed since ``since`` (P/L, commissions and swap)."""
    total = Decimal(0)
    for deal in await _all(
        store, "SELECT gross_profit, commission, swap FROM deals WHERE executed_at >= ?", [iso(since)]
    ):
        total += _decimal(deal["gross_profit"]) + _decimal(deal["commission"]) + _decimal(deal["swap"])
    return total


# -- counts for metrics -------------------------------------------------------------------


async def signal_counts(store: Store) -> dict[str, int]:
    rows = await _all(store, "SELECT status, COUNT(*) AS n FROM signals GROUP BY status")
    return {str(r["status"]): int(r["n"]) for r in rows}


async def order_counts(store: Store) -> dict[tuple[str, str], int]:
    rows = await _all(store, "SELECT purpose, status, COUNT(*) AS n FROM orders GROUP BY purpose, status")
    return {(str(r["purpose"]), str(r["status"])): int(r["n"]) for r in rows}


def _decimal(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
