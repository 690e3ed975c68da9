"""How big an entry is: fixed lots, or the size that loses a given amount at the stop loss.

Precedence (contract): the alert's ``lots`` > the alert's ``risk`` (percent of balance) >
``risk.risk_percent`` / ``risk.risk_money`` > ``risk.default_lots``. Sizing by risk:

    lots = money at risk / (stop distance in pips × value of one pip of one lot)

where a pip of one lot is worth ``pip × units per lot`` in the symbol's quote currency,
converted into the account currency with the live mid price of the pair linking the two
(EURGBP on a USD account: through GBPUSD; USDJPY: through USDJPY itself, inverted). The size
is rounded DOWN to the volume step, so the money at risk is never exceeded; a size below
the symbol's minimum is refused rather than rounded up. Sizing by risk without any stop
loss is refused. ``max_lots`` with ``on_excess: clamp`` cuts any size down to it (with a
note); with ``reject`` the guard's ``max_lots`` rule refuses it.

Pure: balances, quotes and rates are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from pipsync_lite.ctrader import units
from pipsync_lite.ctrader.model import OrderType, Quote, SymbolInfo
from pipsync_lite.plans import EntryPlan
from pipsync_lite.risk import fmt_lots as _lots
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.signal_model import Action, Signal


@dataclass(frozen=True, slots=True)
class Sizing:
    """The size of one entry, or why there is none (``rule`` and ``reason``)."""

    lots: Decimal | None
    source: str  # lots | risk | risk_percent | risk_money | default_lots
    notes: tuple[str, ...] = ()
    rule: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.rule is None


@dataclass(frozen=True, slots=True)
class Conversion:
    """The symbol whose price converts one currency into another (``inverse``: divide by it)."""

    symbol: SymbolInfo
    inverse: bool


def find_conversion(from_asset: str, to_asset: str, symbols: Iterable[SymbolInfo]) -> Conversion | None:
    """The broker symbol quoting ``from_asset`` in ``to_asset`` (or the reverse)."""
    inverse: Conversion | None = None
    for symbol in symbols:
        if symbol.base_asset == from_asset and symbol.quote_asset == to_asset:
            return Conversion(symbol, inverse=False)
        if symbol.base_asset == to_asset and symbol.quote_asset == from_asset and inverse is None:
            inverse = Conversion(symbol, inverse=True)
    return inverse


def conversion_rate(conversion: Conversion, quote: Quote | None) -> Decimal | None:
    """One unit of the symbol's quote currency in the account currency, from the mid price."""
    if quote is None or quote.bid is None or quote.ask is None:
        return None
    mid = (quote.bid + quote.ask) / 2
    if mid <= 0:
        return None
    return 1 / mid if conversion.inverse else mid


def pip_value(symbol: SymbolInfo, rate: Decimal) -> Decimal:
    """The value of one pip of one lot in the account currency (EURUSD on USD: 10)."""
    units_per_lot = Decimal(symbol.lot_size) / 100  # volume is counted in 0.01 of a unit
    return symbol.pip * units_per_lot * rate


def stop_distance_pips(plan: EntryPlan) -> Decimal | None:
    """How far the plan's stop loss is from its entry, in pips (None: no stop)."""
    request, symbol = plan.request, plan.symbol
    if request.order_type is OrderType.MARKET or request.order_type is OrderType.MARKET_RANGE:
        if request.relative_stop_loss is None:
            return None
        return units.distance_to_pips(units.relative_to_distance(request.relative_stop_loss), symbol)
    entry = request.stop_price if request.order_type is OrderType.STOP_LIMIT else request.limit_price or request.stop_price
    if request.stop_loss is None or entry is None:
        return None
    return units.distance_to_pips(abs(entry - request.stop_loss), symbol)


def smallest_lots(symbol: SymbolInfo) -> Decimal:
    """The smallest size the symbol takes: used to plan before the real size is known."""
    return units.volume_to_lots(max(symbol.min_volume, symbol.step_volume, 1), symbol)


def size_entry(
    signal: Signal,
    symbol: SymbolInfo,
    limits: RiskLimits,
    *,
    balance: Decimal | None,
    currency: str,
    sl_pips: Decimal | None,
    rate: Decimal | None,
) -> Sizing:
    """The entry's size per the precedence above, clamped to ``max_lots`` if configured so.

    A ``reverse`` without ``lots`` or ``risk`` reopens the volume it closes: ``lots`` None
    (source ``closed_volume``), clamped by :func:`clamp` once the plan knows that volume.
    """
    if signal.lots is not None:
        return clamp(Sizing(signal.lots, "lots"), symbol, limits)
    if signal.risk is not None:
        sized = _by_risk(symbol, "risk", signal.risk, None, balance, currency, sl_pips, rate)
    elif signal.action is Action.REVERSE:
        return Sizing(None, "closed_volume")
    elif limits.risk_percent is not None:
        sized = _by_risk(symbol, "risk_percent", limits.risk_percent, None, balance, currency, sl_pips, rate)
    elif limits.risk_money is not None:
        sized = _by_risk(symbol, "risk_money", None, limits.risk_money, balance, currency, sl_pips, rate)
    else:
        sized = Sizing(limits.default_lots, "default_lots")
    return clamp(sized, symbol, limits) if sized.ok else sized


def _by_risk(
    symbol: SymbolInfo,
    source: str,
    percent: Decimal | None,
    amount: Decimal | None,
    balance: Decimal | None,
    currency: str,
    sl_pips: Decimal | None,
    rate: Decimal | None,
) -> Sizing:
    def refuse(reason: str) -> Sizing:
        return Sizing(None, source, rule="risk_sizing", reason=reason)

    if sl_pips is None or sl_pips <= 0:
        return refuse(
            f"sizing by {source} needs a stop loss: give sl, sl_pips or sl_pct, or set risk.default_sl_pips"
        )
    if percent is not None:
        if balance is None:
            return refuse("sizing by risk needs the account balance, which the broker has not sent yet")
        amount = balance * percent / 100
        basis = f"{_num(percent)}% of balance {_money(balance)} {currency}"
    else:
        assert amount is not None
        basis = f"risk_money {_money(amount)} {currency}"
    if rate is None:
        return refuse(f"no live quote converts {symbol.quote_asset or 'the quote currency'} into {currency}")
    per_pip = pip_value(symbol, rate)
    if per_pip <= 0:
        return refuse(f"{symbol.name} has no pip value")
    exact = amount / (sl_pips * per_pip)
    volume = units.floor_volume(exact, symbol)
    detail = f"{_money(amount)} {currency} at {_num(sl_pips)} pips × {_money(per_pip)} {currency} per pip per lot"
    if volume < max(symbol.min_volume, 1):
        minimum = units.volume_to_lots(symbol.min_volume, symbol)
        return refuse(f"{basis}: {detail} = {_num(exact, 4)} lots, below the minimum {_num(minimum)} lots of {symbol.name}")
    lots = units.volume_to_lots(volume, symbol)
    return Sizing(lots, source, notes=(f"lots {_lots(lots)} sized by {basis}: {detail}",))


def clamp(sized: Sizing, symbol: SymbolInfo, limits: RiskLimits) -> Sizing:
    """``sized`` cut down to ``max_lots`` (rounded down to the step) under ``on_excess: clamp``."""
    if limits.max_lots is None or sized.lots is None or sized.lots <= limits.max_lots or limits.on_excess != "clamp":
        return sized
    volume = units.floor_volume(limits.max_lots, symbol)
    if volume < max(symbol.min_volume, 1):
        return Sizing(
            None, sized.source, rule="max_lots",
            reason=f"lots {_lots(sized.lots)} > max_lots {_lots(limits.max_lots)}, which is below the minimum size of {symbol.name}",
        )
    clamped = units.volume_to_lots(volume, symbol)
    note = f"lots {_lots(sized.lots)} clamped to max_lots {_lots(clamped)}"
    return Sizing(clamped, sized.source, notes=(*sized.notes, note))


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _num(value: Decimal, places: int | None = None) -> str:
    if places is not None:
        value = value.quantize(Decimal(1).scaleb(-places))
    text = f"{value.normalize():f}"
    return text
