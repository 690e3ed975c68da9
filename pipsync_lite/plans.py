"""What the engine decided to send for one signal: the plan types the executor carries out.

A plan is computed before anything is sent (pure planning in :mod:`planner`, :mod:`exits`
and :mod:`amends`), stored with the signal's decision, then executed step by step:

- ``EntryPlan``: one new order; ``closes_first`` are closed (and their fills awaited)
  before it is sent: ``reverse``, ``flatten_first`` and a netted account's flip.
- ``ClosePlan``: pending orders to cancel, then position volumes to close.
- ``AmendPlan``: new SL/TP/trailing for positions, new price/SL/TP for pending orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import OrderRequest, PendingOrder, Position, SymbolInfo


class PlanRejected(Exception):
    """The signal is well formed but cannot be carried out here (HTTP 422)."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"{rule}: {reason}")


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``volume`` (protocol units) of one position."""

    symbol: SymbolInfo
    position: Position
    volume: int

    @property
    def lots(self) -> Decimal:
        return units.volume_to_lots(self.volume, self.symbol)


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel one pending order."""

    symbol: SymbolInfo
    order: PendingOrder


@dataclass(frozen=True, slots=True)
class EntryPlan:
    symbol: SymbolInfo
    request: OrderRequest
    lots: Decimal
    target_stop_loss: Decimal | None = None  # market orders: absolute levels to enforce
    target_take_profit: Decimal | None = None
    notes: tuple[str, ...] = ()
    closes_first: tuple[Close, ...] = ()  # closed, fills awaited, before the entry is sent


@dataclass(frozen=True, slots=True)
class ClosePlan:
    closes: tuple[Close, ...]
    cancels: tuple[Cancel, ...] = ()  # sent before the closes: nothing fills in between
    notes: tuple[str, ...] = ()

    @property
    def lots(self) -> Decimal | None:
        """The lots this plan closes (None when it only cancels)."""
        return sum((c.lots for c in self.closes), Decimal(0)) if self.closes else None


@dataclass(frozen=True, slots=True)
class PositionAmend:
    """The complete protection a position gets: cTrader drops any level an amend omits."""

    symbol: SymbolInfo
    position: Position
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing: bool


@dataclass(frozen=True, slots=True)
class OrderAmend:
    """A pending order's complete new prices and protection (a level given as None is removed)."""

    symbol: SymbolInfo
    order: PendingOrder
    limit_price: Decimal | None
    stop_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    trailing: bool


@dataclass(frozen=True, slots=True)
class AmendPlan:
    positions: tuple[PositionAmend, ...] = ()
    orders: tuple[OrderAmend, ...] = ()
    notes: tuple[str, ...] = ()
    lots: Decimal | None = None


Plan = EntryPlan | ClosePlan | AmendPlan
