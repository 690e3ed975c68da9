"""The normalized signal: what every alert dialect (JSON, key=value, PineConnector) parses into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pipsync_lite.ctrader.model import OrderType, Side, TimeInForce


class Action(StrEnum):
    BUY = "buy"
    SELL = "sell"
    CLOSE = "close"
    CLOSE_LONG = "close_long"
    CLOSE_SHORT = "close_short"
    CLOSE_ALL = "close_all"
    REVERSE = "reverse"
    CANCEL = "cancel"
    CANCEL_ALL = "cancel_all"
    MODIFY = "modify"
    BREAKEVEN = "breakeven"

    @property
    def is_entry(self) -> bool:
        """Entries are what risk limits and the kill switch stop; exits always pass."""
        return self in _ENTRY_ACTIONS


_ENTRY_ACTIONS = (Action.BUY, Action.SELL, Action.REVERSE)  # read per guard rule: not rebuilt per call


class Dialect(StrEnum):
    JSON = "json"
    KEY_VALUE = "key_value"
    PINECONNECTOR = "pineconnector"


class MarketPosition(StrEnum):
    LONG = "long"
    SHORT = "short"
    FLAT = "flat"


@dataclass(frozen=True, slots=True)
class Signal:
    """One parsed alert. ``None`` means "the alert did not say"; defaults come from config.

    Prices and sizes are exact ``Decimal``s as written in the alert. ``symbol`` is the name
    as the alert wrote it (exchange prefix and the YAML map are applied later, where the
    broker's symbol list is known).
    """

    action: Action
    dialect: Dialect
    symbol: str | None = None
    lots: Decimal | None = None
    percent: Decimal | None = None  # close: percent of each position of the symbol
    risk: Decimal | None = None  # percent of balance at risk for this alert
    order_type: OrderType | None = None  # None: inferred from price (absent/0 = market)
    price: Decimal | None = None  # entry price of a pending order (stop trigger for stop_limit)
    limit_price: Decimal | None = None  # stop_limit: the limit after the trigger
    signal_price: Decimal | None = None  # the price the strategy saw
    sl: Decimal | None = None
    tp: Decimal | None = None
    sl_pips: Decimal | None = None
    tp_pips: Decimal | None = None
    sl_pct: Decimal | None = None
    tp_pct: Decimal | None = None
    trailing: bool | None = None  # None: not said (modify keeps the current flag)
    offset_pips: Decimal | None = None  # breakeven
    max_slippage_pips: Decimal | None = None
    expiry: datetime | None = None  # absolute, UTC (integer seconds resolved at parse time)
    tif: str | None = None  # gtc | gtd | ioc | fok | day
    time: datetime | None = None  # when the alert fired (UTC)
    id: str | None = None  # idempotency key
    market_position: MarketPosition | None = None
    comment: str | None = None
    flatten_first: bool | None = None
    order_id: int | None = None  # cancel / modify one pending order
    cancel_orders: bool = False  # FLATTEN: also cancel the pending orders in scope
    side: Side | None = None  # cancel: only pending orders of this side (cancellong/cancelshort)
    notes: tuple[str, ...] = ()  # what the parser accepted but ignored, for the reply's notes

    @property
    def time_in_force(self) -> TimeInForce | None:
        if self.tif is None or self.tif == "day":
            return None if self.tif is None else TimeInForce.GTD
        return TimeInForce(self.tif)
