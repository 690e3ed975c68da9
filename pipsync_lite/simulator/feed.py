"""Quotes and the seeded random-walk price feed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from pipsync_lite.simulator.instruments import Instrument


@dataclass(frozen=True, slots=True)
class Quote:
    """A two-sided price in the symbol's points (1/10**digits)."""

    bid: int
    ask: int

    def bid_price(self, inst: Instrument) -> Decimal:
        return Decimal(self.bid).scaleb(-inst.digits)

    def ask_price(self, inst: Instrument) -> Decimal:
        return Decimal(self.ask).scaleb(-inst.digits)

    def mid_price(self, inst: Instrument) -> Decimal:
        return Decimal(self.bid + self.ask).scaleb(-inst.digits) / 2


@dataclass(frozen=True, slots=True)
class SpotChange:
    """Which sides of one symbol moved; ``None`` means that side is unchanged."""

    symbol_id: int
    bid: int | None  # spot units (1/100000 of the price)
    ask: int | None


class PriceFeed:
    """Current quotes of every instrument, moved by a deterministic random walk or by hand.

    One tick draws the same number of random values for every instrument whether its
    market is open or not, so closing one market never changes another's price path.
    """

    def __init__(self, instruments: tuple[Instrument, ...], seed: int) -> None:
        self._rng = random.Random(f"pipsync-sim-feed:{seed}")
        self._instruments = instruments
        self._quotes = {
            i.symbol_id: Quote(_points(i, i.start_bid), _points(i, i.start_bid) + i.spread_points)
            for i in instruments
        }

    def quote(self, symbol_id: int) -> Quote:
        return self._quotes[symbol_id]

    def set(self, inst: Instrument, bid: Decimal | None, ask: Decimal | None) -> SpotChange | None:
        """Set one or both sides exactly; prices must sit on the symbol's grid."""
        old = self._quotes[inst.symbol_id]
        for label, price in (("bid", bid), ("ask", ask)):
            if price is not None and (price <= 0 or not inst.on_grid(price)):
                raise ValueError(f"{inst.name} {label} {price} is not a positive price "
                                 f"with {inst.digits} digits")
        new = Quote(old.bid if bid is None else _points(inst, bid),
                    old.ask if ask is None else _points(inst, ask))
        if new.bid > new.ask:
            raise ValueError(f"{inst.name} bid {bid} above ask {ask}")
        return self._apply(inst, old, new)

    def tick(self, open_symbols: set[int]) -> list[SpotChange]:
        """Advance every instrument one step; only open markets actually move."""
        changes = []
        for inst in self._instruments:
            roll = self._rng.random()
            delta = self._rng.randint(-inst.volatility_points, inst.volatility_points)
            if inst.symbol_id not in open_symbols:
                continue
            old = self._quotes[inst.symbol_id]
            new = self._walk(inst, old, roll, delta)
            change = self._apply(inst, old, new)
            if change is not None:
                changes.append(change)
        return changes

    @staticmethod
    def _walk(inst: Instrument, old: Quote, roll: float, delta: int) -> Quote:
        # Live feeds often move one side only (recorded SpotEvents with just bid or just
        # ask); the spread then breathes between half and twice its nominal width.
        low = max(1, inst.spread_points // 2)
        high = inst.spread_points * 2
        if roll < 0.6:
            bid = max(1, old.bid + delta)
            return Quote(bid, bid + (old.ask - old.bid))
        if roll < 0.8:
            bid = min(max(old.bid + delta, old.ask - high), old.ask - low)
            return Quote(max(1, bid), old.ask)
        ask = min(max(old.ask + delta, old.bid + low), old.bid + high)
        return Quote(old.bid, ask)

    def _apply(self, inst: Instrument, old: Quote, new: Quote) -> SpotChange | None:
        if new == old:
            return None
        self._quotes[inst.symbol_id] = new
        scale = inst.spot_per_point
        return SpotChange(
            inst.symbol_id,
            new.bid * scale if new.bid != old.bid else None,
            new.ask * scale if new.ask != old.ask else None,
        )


def _points(inst: Instrument, price: Decimal) -> int:
    return int(price.scaleb(inst.digits))
