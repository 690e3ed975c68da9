"""Unit conversions between our values (Decimal prices and lots) and the Open API's wire units.

Every conversion the broker client needs lives here, and only here, so that the rules are
tested once at their edges:

- **volume** is an ``int`` in 0.01 of a unit; ``volume = lots × lotSize`` (EURUSD: lotSize
  10,000,000, so 1 lot = 10,000,000 and 0.01 lot = 100,000). A volume that is not an integer,
  not a multiple of ``stepVolume`` or outside ``[minVolume, maxVolume]`` is refused with a
  ``ValueError`` naming the numbers: never rounded silently.
- **spot prices** (SpotEvent bid/ask) are integers in 1/100000 of a price unit.
- **order and position prices** are doubles on the wire; we hold ``Decimal`` rounded to the
  symbol's ``digits`` and convert at the edge.
- **relative SL/TP** distances are integers in 1/100000 of a price unit.
- **money** is an integer scaled by ``moneyDigits`` (balance 851120773 with 2 digits = 8511207.73).

Nothing here performs float arithmetic on prices: a double from the wire is first turned into
its shortest decimal representation (``repr``), then quantized.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

from pipsync_lite.ctrader.model import SymbolInfo

#: Spot prices and relative distances are counted in 1/100000 of a price unit.
SPOT_SCALE = 100_000


def _decimal(value: Decimal | int | str, what: str) -> Decimal:
    if isinstance(value, float):  # a float here is a programming error: money must be exact
        raise TypeError(f"{what} must be Decimal, int or str, not float ({value!r})")
    try:
        result = Decimal(value)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise ValueError(f"{what} {value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    return result


# --- volume -------------------------------------------------------------------------------


def lots_to_volume(lots: Decimal | int | str, symbol: SymbolInfo) -> int:
    """Protocol volume for ``lots`` of ``symbol``, checked against its min/max/step.

    Raises ``ValueError`` (with the numbers) when the volume is not whole, off-step, below the
    minimum or above the maximum.
    """
    amount = _decimal(lots, "lots")
    if amount <= 0:
        raise ValueError(f"lots must be > 0, got {amount}")
    exact = amount * symbol.lot_size
    if exact != exact.to_integral_value():
        raise ValueError(
            f"{amount} lots × lotSize {symbol.lot_size} = volume {exact}, "
            f"which is not a whole number of volume units"
        )
    volume = int(exact)
    check_volume(volume, symbol)
    return volume


def check_volume(volume: int, symbol: SymbolInfo) -> None:
    """Raise ``ValueError`` unless ``volume`` is within min/max and a multiple of the step."""
    if volume < symbol.min_volume:
        raise ValueError(
            f"volume {volume} ({volume_to_lots(volume, symbol)} lots) is below the minimum "
            f"{symbol.min_volume} ({volume_to_lots(symbol.min_volume, symbol)} lots) for {symbol.name}"
        )
    if volume > symbol.max_volume:
        raise ValueError(
            f"volume {volume} ({volume_to_lots(volume, symbol)} lots) is above the maximum "
            f"{symbol.max_volume} ({volume_to_lots(symbol.max_volume, symbol)} lots) for {symbol.name}"
        )
    if symbol.step_volume > 0 and volume % symbol.step_volume != 0:
        raise ValueError(
            f"volume {volume} ({volume_to_lots(volume, symbol)} lots) is not a multiple of the "
            f"step {symbol.step_volume} ({volume_to_lots(symbol.step_volume, symbol)} lots) "
            f"for {symbol.name}"
        )


def volume_to_lots(volume: int, symbol: SymbolInfo) -> Decimal:
    """Lots for a protocol volume (exact; trailing zeros removed)."""
    if symbol.lot_size <= 0:
        raise ValueError(f"{symbol.name} has no lot size ({symbol.lot_size})")
    return _normalize(Decimal(volume) / Decimal(symbol.lot_size))


def _normalize(value: Decimal) -> Decimal:
    # normalize() turns 100 into 1E+2; keep integers readable
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


# --- prices -------------------------------------------------------------------------------


def spot_to_price(spot: int) -> Decimal:
    """A SpotEvent integer (1/100000) as a price: 111986 → 1.11986."""
    return Decimal(spot).scaleb(-5)


def price_to_spot(price: Decimal | int | str) -> int:
    """A price as a spot integer (1/100000); refuses prices finer than 0.00001."""
    value = _decimal(price, "price")
    scaled = value * SPOT_SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"price {value} is finer than 1/{SPOT_SCALE}")
    return int(scaled)


def round_price(price: Decimal | int | str, digits: int) -> Decimal:
    """``price`` rounded (half-even) to ``digits`` decimal places."""
    value = _decimal(price, "price")
    return value.quantize(_quantum(digits), rounding=ROUND_HALF_EVEN)


_QUANTA = {digits: Decimal(1).scaleb(-digits) for digits in range(11)}


def _quantum(digits: int) -> Decimal:
    return _QUANTA.get(digits) or Decimal(1).scaleb(-digits)


def price_to_wire(price: Decimal | int | str, digits: int) -> float:
    """A price for a double field of a request, rounded to the symbol's ``digits`` first.

    The server may refuse prices finer than ``digits``; the double is the nearest one to the
    rounded decimal, whose ``repr`` reads back as that decimal.
    """
    return float(round_price(price, digits))


def price_from_wire(value: float, digits: int) -> Decimal:
    """A double price from the wire as a Decimal with ``digits`` places (1.1 → 1.10000)."""
    exact = Decimal(repr(float(value)))  # on every price of every event: round_price's checks inlined
    if not exact.is_finite():
        raise ValueError(f"price {value!r} is not a finite number")
    return exact.quantize(_quantum(digits), rounding=ROUND_HALF_EVEN)


def pips_to_distance(pips: Decimal | int | str, symbol: SymbolInfo) -> Decimal:
    """A distance in pips as a price distance (EURUSD, pipPosition 4: 15 pips → 0.0015)."""
    return _decimal(pips, "pips") * symbol.pip


def distance_to_pips(distance: Decimal | int | str, symbol: SymbolInfo) -> Decimal:
    """A price distance in pips (EURUSD: 0.00155 → 15.5)."""
    return _normalize(_decimal(distance, "distance") / symbol.pip)


def distance_to_points(distance: Decimal | int | str, symbol: SymbolInfo) -> int:
    """A price distance in points, the symbol's smallest price step (``slippageInPoints``).

    EURUSD (5 digits): 0.00015 → 15. Refuses distances finer than a point.
    """
    points = _decimal(distance, "distance").scaleb(symbol.digits)
    if points != points.to_integral_value():
        raise ValueError(f"{distance} is finer than a point ({Decimal(1).scaleb(-symbol.digits)}) of {symbol.name}")
    return abs(int(points))


def relative_distance(price_a: Decimal | int | str, price_b: Decimal | int | str) -> int:
    """The absolute distance between two prices in 1/100000 units (for relativeStopLoss etc.).

    Refuses distances finer than 1/100000 instead of rounding them.
    """
    distance = abs(_decimal(price_a, "price") - _decimal(price_b, "price"))
    return price_to_spot(distance)


def relative_from_pips(pips: Decimal | int | str, symbol: SymbolInfo) -> int:
    """A distance in pips as a relative distance in 1/100000 units (EURUSD: 15 pips → 150)."""
    return price_to_spot(pips_to_distance(pips, symbol))


def relative_to_distance(relative: int) -> Decimal:
    """A relative distance (1/100000 units) as a price distance."""
    return spot_to_price(relative)


# --- money --------------------------------------------------------------------------------


def money(value: int, money_digits: int) -> Decimal:
    """An integer money amount scaled by ``moneyDigits`` as a Decimal: (851120773, 2) → 8511207.73."""
    return Decimal(value).scaleb(-money_digits)


def leverage(leverage_in_cents: int) -> Decimal:
    """``leverageInCents`` as a ratio: 10000 → 100 (1:100)."""
    return _normalize(Decimal(leverage_in_cents) / 100)


def floor_volume(lots: Decimal | int | str, symbol: SymbolInfo) -> int:
    """The largest volume at or below ``lots`` that is a multiple of the symbol's step.

    The one place a size is rounded (down, never up): sizing by risk computes a size, it
    does not take one from the user. The result may be below ``minVolume`` (even 0);
    callers check it with :func:`check_volume`.
    """
    amount = _decimal(lots, "lots")
    if amount <= 0:
        return 0
    volume = int((amount * symbol.lot_size).to_integral_value(rounding=ROUND_FLOOR))
    step = symbol.step_volume if symbol.step_volume > 0 else 1
    return volume - volume % step
