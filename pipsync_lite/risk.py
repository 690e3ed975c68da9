"""The guard: pure rules that judge a proposed action and return a verdict.

Rules never raise, never read the clock and never do I/O: everything they look at (the
proposal, the account snapshot, the limits, the time) is passed in. A rejection names the
rule and carries the numbers (``lots 5.00 > max_lots 2.00``). Exits (close, cancel, modify)
are never blocked by exposure limits or the kill switch: a guard must not trap a position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pipsync_lite.config import RiskConfig
from pipsync_lite.ctrader.model import AccountSnapshot
from pipsync_lite.signal_model import Action, Signal


@dataclass(frozen=True, slots=True)
class Proposal:
    """What the engine intends to do for one signal, before anything is sent."""

    signal: Signal
    symbol: str | None  # broker name, resolved
    lots: Decimal | None  # entries: the size that would be sent
    has_stop_loss: bool
    pending_entries: int = 0  # entries accepted but not yet filled (count as positions)

    @property
    def is_entry(self) -> bool:
        return self.signal.action.is_entry


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    rule: str | None = None
    reason: str = ""

    @staticmethod
    def allow() -> Verdict:
        return Verdict(True)

    @staticmethod
    def reject(rule: str, reason: str) -> Verdict:
        return Verdict(False, rule, reason)


Rule = Callable[[Proposal, AccountSnapshot, RiskConfig, datetime], Verdict | None]


def _lots(value: Decimal) -> str:
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value.normalize()}"


def kill_switch(p: Proposal, snap: AccountSnapshot, cfg: RiskConfig, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.kill_switch:
        return Verdict.reject("kill_switch", "kill switch is on: entries are refused, exits still work")
    return None


def allowed_symbols(
    p: Proposal, snap: AccountSnapshot, cfg: RiskConfig, now: datetime
) -> Verdict | None:
    # Applies to every action on a symbol: the list is the robot's scope, not only its entries.
    if not cfg.allowed_symbols or p.symbol is None:
        return None
    allowed = {s.upper() for s in cfg.allowed_symbols}
    if p.symbol.upper() in allowed or (p.signal.symbol or "").upper() in allowed:
        return None
    return Verdict.reject(
        "allowed_symbols",
        f"symbol {p.symbol} is not in allowed_symbols [{', '.join(cfg.allowed_symbols)}]",
    )


def max_lots(p: Proposal, snap: AccountSnapshot, cfg: RiskConfig, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.max_lots is not None and p.lots is not None and p.lots > cfg.max_lots:
        return Verdict.reject("max_lots", f"lots {_lots(p.lots)} > max_lots {_lots(cfg.max_lots)}")
    return None


def max_open_positions(
    p: Proposal, snap: AccountSnapshot, cfg: RiskConfig, now: datetime
) -> Verdict | None:
    if not p.is_entry or cfg.max_open_positions is None:
        return None
    open_now = len(snap.positions) + p.pending_entries
    if open_now >= cfg.max_open_positions:
        detail = f"{len(snap.positions)} open"
        if p.pending_entries:
            detail += f" + {p.pending_entries} being opened"
        return Verdict.reject(
            "max_open_positions",
            f"positions {detail} >= max_open_positions {cfg.max_open_positions}",
        )
    return None


def require_sl(p: Proposal, snap: AccountSnapshot, cfg: RiskConfig, now: datetime) -> Verdict | None:
    if p.is_entry and cfg.require_sl and not p.has_stop_loss:
        return Verdict.reject("require_sl", "require_sl: the alert has no stop loss (sl, sl_pips or sl_pct)")
    return None


#: Evaluated in order; the first rejection wins.
RULES: tuple[Rule, ...] = (kill_switch, allowed_symbols, max_lots, max_open_positions, require_sl)


def evaluate(
    proposal: Proposal,
    snapshot: AccountSnapshot,
    config: RiskConfig,
    now: datetime,
    rules: tuple[Rule, ...] = RULES,
) -> Verdict:
    for rule in rules:
        verdict = rule(proposal, snapshot, config, now)
        if verdict is not None and not verdict.allowed:
            return verdict
    return Verdict.allow()


def entry_lots(signal: Signal, config: RiskConfig) -> Decimal:
    """The size of an entry: the alert's ``lots``, else ``default_lots``."""
    if signal.lots is not None:
        return signal.lots
    return config.default_lots


def is_exit(action: Action) -> bool:
    return not action.is_entry
