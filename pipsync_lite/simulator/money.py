"""Money rules: P/L, commission and margin in the deposit currency, exact to the cent.

Conversions use the live mid price of the pair linking two assets (EURGBP P/L is in GBP
and converts through GBPUSD; USDJPY P/L is in JPY and divides by USDJPY). Brokers differ
in which side they use; the mid keeps the simulator's arithmetic easy to check by hand.
"""

from __future__ import annotations

from decimal import Decimal

from pipsync_lite.simulator.account import to_cents
from pipsync_lite.simulator.book import BUY
from pipsync_lite.simulator.feed import PriceFeed
from pipsync_lite.simulator.instruments import Catalogue, Instrument

#: Protocol volume is in 0.01 of a unit.
VOLUME_PER_UNIT = 100


class Pricing:
    def __init__(self, catalogue: Catalogue, feed: PriceFeed, deposit_asset: str) -> None:
        self._catalogue = catalogue
        self._feed = feed
        self.deposit_asset = deposit_asset

    def bid_ask(self, inst: Instrument) -> tuple[Decimal, Decimal]:
        quote = self._feed.quote(inst.symbol_id)
        return quote.bid_price(inst), quote.ask_price(inst)

    def opening_price(self, inst: Instrument, side: int) -> Decimal:
        """Where a market order fills: the ask for a buy, the bid for a sell."""
        bid, ask = self.bid_ask(inst)
        return ask if side == BUY else bid

    def closing_price(self, inst: Instrument, side: int) -> Decimal:
        """Where a position of ``side`` closes: the bid for a long, the ask for a short."""
        bid, ask = self.bid_ask(inst)
        return bid if side == BUY else ask

    def rate(self, asset: str) -> Decimal:
        """The value of one unit of ``asset`` in the deposit currency."""
        if asset == self.deposit_asset:
            return Decimal(1)
        direct = self._catalogue.pair(asset, self.deposit_asset)
        if direct is not None:
            return self._feed.quote(direct.symbol_id).mid_price(direct)
        inverse = self._catalogue.pair(self.deposit_asset, asset)
        if inverse is not None:
            return 1 / self._feed.quote(inverse.symbol_id).mid_price(inverse)
        raise LookupError(f"no symbol converts {asset} to {self.deposit_asset}")

    def gross_cents(self, inst: Instrument, side: int, entry: Decimal, close: Decimal,
                    volume: int) -> tuple[int, Decimal]:
        """Gross P/L of closing ``volume`` in cents, and the quote->deposit rate used."""
        move = close - entry if side == BUY else entry - close
        rate = self.rate(inst.quote)
        return to_cents(move * volume / VOLUME_PER_UNIT * rate), rate

    def commission_cents(self, inst: Instrument, volume: int) -> int:
        """Commission for one side of ``volume`` in cents, as a positive amount."""
        usd = inst.commission_per_lot * volume / inst.lot_size
        return to_cents(usd * self.rate("USD"))

    def margin_cents(self, inst: Instrument, volume: int, leverage: int) -> int:
        notional = Decimal(volume) / VOLUME_PER_UNIT * self.rate(inst.base)
        return to_cents(notional / leverage)
