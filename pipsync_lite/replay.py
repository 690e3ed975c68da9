"""What-if: the stored signals judged again under another risk configuration.

``pipsync-lite replay --config NEW.yaml [--since DATE]`` reads the trade log named by
``NEW.yaml`` (``storage.path``) and prints, per signal, the verdict and size it got and the
ones ``NEW.yaml``'s ``risk`` and ``symbols`` would give. Each entry is judged against the
account *as it was when the signal arrived* (quote, balance, positions, the day's numbers:
stored with every decision), so the knock-on effects of trades the new limits would have
refused are not simulated. Exits are judged again by ``allowed_symbols`` only (nothing else
may block an exit). Nothing is sent, nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import aiosqlite

from pipsync_lite.config import Config
from pipsync_lite.ctrader.model import AccountSnapshot
from pipsync_lite.decision import context_from_json, judge_entry
from pipsync_lite.errors import SignalError
from pipsync_lite.risk import Proposal, evaluate, fmt_lots
from pipsync_lite.signals import parse_signal
from pipsync_lite.store import PAST_THE_GUARD, utcnow_iso

_NOT_JUDGED = {"duplicate": "a duplicate", "rate_limited": "rate limited", "received": "never decided"}


@dataclass(frozen=True, slots=True)
class Verdicts:
    signal_id: int
    received_at: str
    action: str
    symbol: str
    old: str
    new: str
    changed: bool
    replayed: bool


def parse_since(text: str) -> datetime:
    """``2026-11-20`` or ``2026-11-20T08:00`` (UTC unless an offset is given)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def replay(config: Config, since: datetime | None, out: TextIO) -> int:
    """Print the comparison; returns the number of signals whose verdict or size changed."""
    rows = await _stored_signals(config.storage.path, since)
    results = [judge_row(row, config) for row in rows if row.get("dialect") != "internal"]
    _print(results, config, out)
    return sum(1 for r in results if r.changed)


async def _stored_signals(path: Path, since: datetime | None) -> list[dict[str, Any]]:
    """The signals, read-only: replay may run beside the daemon and never writes."""
    async with aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
        db.row_factory = aiosqlite.Row
        query, args = "SELECT * FROM signals", ()
        if since is not None:
            query, args = query + " WHERE received_at >= ?", (utcnow_iso(since),)
        async with db.execute(query + " ORDER BY id", args) as cursor:
            return [dict(r) for r in await cursor.fetchall()]


def judge_row(row: dict[str, Any], config: Config) -> Verdicts:
    """One stored signal: its old verdict and the one ``config`` gives it."""
    old_passed = row["status"] in PAST_THE_GUARD
    old = _old(row)
    base: dict[str, Any] = {
        "signal_id": row["id"], "received_at": row["received_at"][:19].replace("T", " "),
        "action": row.get("action") or "-", "symbol": row.get("symbol") or "-", "old": old,
    }  # fmt: skip
    if row["status"] in _NOT_JUDGED:
        return Verdicts(**base, new=f"not judged ({_NOT_JUDGED[row['status']]})", changed=False, replayed=False)
    received = datetime.fromisoformat(row["received_at"])
    try:
        signal = parse_signal((row.get("raw_body") or "").encode(), received)
    except SignalError as err:
        return Verdicts(**base, new=f"invalid {err.field}", changed=old_passed, replayed=True)
    if not signal.action.is_entry:
        limits = config.risk.for_symbol(row.get("symbol"))
        proposal = Proposal(signal, row.get("symbol"), None, has_stop_loss=False)
        verdict = evaluate(proposal, AccountSnapshot(None), limits, received)
        if not verdict.allowed:
            return Verdicts(**base, new=f"rejected {verdict.rule}: {verdict.reason}", changed=old_passed, replayed=True)
        return Verdicts(**base, new=old, changed=False, replayed=True)
    if not row.get("context"):
        return Verdicts(**base, new="not replayable (the decision stored no context)", changed=False, replayed=False)
    market, view = context_from_json(json.loads(row["context"]))
    limits = config.risk.for_symbol(market.symbol.name)
    judged = judge_entry(signal, market, view, limits, received)
    if judged.passed:
        new = f"{judged.status} {fmt_lots(judged.lots) if judged.lots is not None else ''}".rstrip()
        old_lots = Decimal(row["lots"]) if row.get("lots") else None
        changed = not old_passed or old_lots != judged.lots
    elif judged.status == "invalid":
        new, changed = f"invalid {judged.field}: {judged.reason}", old_passed
    else:
        new = f"rejected {judged.rule}: {judged.reason}"
        changed = old_passed or row.get("rule") != judged.rule
    return Verdicts(**base, new=new, changed=changed, replayed=True)


def _old(row: dict[str, Any]) -> str:
    status = row["status"]
    if status in PAST_THE_GUARD:
        lots = fmt_lots(Decimal(row["lots"])) if row.get("lots") else ""
        return f"{status} {lots}".rstrip()
    if row.get("rule"):
        return f"{status} {row['rule']}"  # its reason is in the trade log
    if row.get("field"):
        return f"{status} {row['field']}"
    return status


def _print(results: list[Verdicts], config: Config, out: TextIO) -> None:
    out.write(f"replaying {len(results)} signal(s) under config version {config.version}\n")
    out.write(f"{'':1} {'id':>6}  {'received (UTC)':19}  {'action':<11} {'symbol':<10} {'old':<32} new\n")
    for r in results:
        mark = "*" if r.changed else " "
        out.write(f"{mark} {r.signal_id:>6}  {r.received_at:19}  {r.action:<11} {r.symbol:<10} {_cut(r.old, 32):<32} {r.new}\n")
    replayed = [r for r in results if r.replayed]
    changed = sum(1 for r in results if r.changed)
    out.write(
        f"{len(replayed)} judged again: {changed} changed (*), {len(replayed) - changed} unchanged; "
        f"{len(results) - len(replayed)} not judged\n"
    )


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
