"""What an entry's decision reads of the market: the symbol's live quote, the balance, and the
rate that converts the symbol's quote currency into the account's (through a conversion pair).

Both quotes are usually live already: then nothing waits and no task is made. The first alert
on a symbol subscribes to it and waits for its first spot (and its conversion pair's, at once).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from pipsync_lite.ctrader.model import Broker, Quote, SymbolInfo
from pipsync_lite.decision import Market
from pipsync_lite.sizing import Conversion, conversion_rate, find_conversion


class _Wait:
    """A value that is not known without waiting for the broker."""


_WAIT = _Wait()


class MarketReader:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def market(self, symbol: SymbolInfo) -> Market:
        """The symbol's quote, the balance and the conversion rate, as the decision reads them."""
        account = self._broker.account
        currency = account.deposit_asset if account is not None else ""
        quote = self._live_quote(symbol)
        rate = self._rate_now(symbol, currency)
        if quote is None or rate is _WAIT:
            # Both first quotes at once: a cold symbol and its conversion pair cost one wait, not two.
            quote, rate = await asyncio.gather(self.quote(symbol), self._rate(symbol, currency))
        assert not isinstance(rate, _Wait)
        return Market(symbol, quote, account.balance if account else None, currency, rate)

    async def _rate(self, symbol: SymbolInfo, currency: str) -> Decimal | None:
        """One unit of ``symbol``'s quote currency in the account currency (live mid price)."""
        conversion = self._conversion(symbol, currency)
        if not isinstance(conversion, Conversion):
            return conversion
        return conversion_rate(conversion, await self.quote(conversion.symbol))

    def _rate_now(self, symbol: SymbolInfo, currency: str) -> Decimal | None | _Wait:
        """:meth:`_rate` if it needs no wait (its conversion pair is quoted already), else ``_WAIT``."""
        conversion = self._conversion(symbol, currency)
        if not isinstance(conversion, Conversion):
            return conversion
        quote = self._live_quote(conversion.symbol)
        return _WAIT if quote is None else conversion_rate(conversion, quote)

    def _conversion(self, symbol: SymbolInfo, currency: str) -> Conversion | Decimal | None:
        """The pair whose price converts ``symbol``'s quote currency, or the rate when none is needed."""
        if not currency or not symbol.quote_asset:
            return None
        if symbol.quote_asset == currency:
            return Decimal(1)
        everything = (self._broker.symbol(n) for n in self._broker.symbol_names())
        return find_conversion(symbol.quote_asset, currency, (s for s in everything if s is not None))

    def _live_quote(self, symbol: SymbolInfo) -> Quote | None:
        """The symbol's quote if it has both sides already (no wait), else None."""
        quote = self._broker.quote(symbol.symbol_id)
        if quote is not None and quote.bid is not None and quote.ask is not None:
            return quote
        return None

    async def quote(self, symbol: SymbolInfo, timeout: float = 2.0) -> Quote | None:
        """The live quote; the first alert on a symbol subscribes to it and waits for its first spot."""
        quote = self._live_quote(symbol)
        if quote is not None:
            return quote
        await self._broker.subscribe_quotes({symbol.symbol_id})
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            quote = self._broker.quote(symbol.symbol_id)
            if quote is not None and quote.bid is not None and quote.ask is not None:
                return quote
            await asyncio.sleep(0.005)
        return quote
