"""Alert bodies → Signal: one shared conversion and validation step behind the three dialects.

The dialects (:mod:`pipsync_lite.dialects`) only rename keys into our field names; every
value is converted and every rule checked here, once. Rules where the contract is silent:

- ``""`` (an unfilled placeholder) and JSON ``null`` mean "absent" for every field; a
  placeholder left unexpanded (``{{close}}``) is an error naming the field.
- ``0`` means "none" for ``price`` (market), ``sl``, ``tp``, ``sl_pips``, ``tp_pips``,
  ``sl_pct`` and ``tp_pct``; every other number must be > 0 (``offset_pips`` >= 0).
- ``time`` as a number: below 100,000,000,000 it is epoch seconds, at or above it epoch
  milliseconds (1e11 s is the year 5138; 1e11 ms is March 1973). Times without an offset
  are UTC. ``expiry`` as a number is seconds from now; 1,000,000,000 or more is refused as a
  probable epoch timestamp.
- TradingView strategy alerts report the position *after* the order: ``market_position: flat``
  (with or without buy/sell, or ``action: flat``) closes the symbol, all of it (a ``lots`` or
  ``percent`` it carries is ignored with a note); a sell that leaves
  ``long`` is a partial exit of the long (``close_long`` with ``lots``), a buy that leaves
  ``short`` one of the short. The Signal carries the resolved action.
- Each action takes its own fields; others are errors, except that closes ignore (with a
  note) the entry fields a shared TradingView template carries, so an exit never fails on them.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from pipsync_lite.ctrader.model import OrderType, Side
from pipsync_lite.dialects import FIELD_NAMES, RawAlert, read_alert, show
from pipsync_lite.errors import SignalError
from pipsync_lite.signal_model import Action, MarketPosition, Signal

__all__ = ["build_signal", "parse_signal"]

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")
# Plain decimals only: Decimal() alone would also take "NaN", "Infinity", "1_000" and "١".
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.ASCII)
_MAX_MAGNITUDE = 18  # no price, size or order id is 1e19 or 1e-19
_MS_THRESHOLD = Decimal("1e11")
_MAX_EPOCH_SECONDS = Decimal(253402300799)  # 9999-12-31T23:59:59Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXPIRY_LOOKS_LIKE_EPOCH = 1_000_000_000
_MAX_ORDER_ID = 2**63 - 1

_ACTIONS: dict[str, Action] = {a.value.replace("_", ""): a for a in Action} | {"flat": Action.CLOSE}
_ACTION_NAMES = [a.value for a in Action]  # as an error lists them
_POSITIONS: dict[str, MarketPosition] = {p.value: p for p in MarketPosition}
_ORDER_TYPES: dict[str, OrderType] = {t.value.replace("_", ""): t for t in OrderType} | {
    "stopmarket": OrderType.STOP,  # CrossTrade's STOPMARKET
}
_ORDER_TYPE_NAMES = [t.value for t in OrderType]
_TIFS: dict[str, str] = {word: word for word in ("gtc", "gtd", "ioc", "fok", "day")}
_SIDES: dict[str, Side] = {s.value: s for s in Side}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")

_COMMON = {"action", "symbol", "market_position", "time", "id", "comment"}
_STOPS = ("sl", "tp", "sl_pips", "tp_pips", "sl_pct", "tp_pct")
_ENTRY = {
    "lots", "risk", "order_type", "price", "limit_price", "stop_price", "signal_price", *_STOPS,
    "trailing", "max_slippage_pips", "expiry", "tif", "flatten_first",
}  # fmt: skip
_CLOSES = (Action.CLOSE, Action.CLOSE_LONG, Action.CLOSE_SHORT, Action.CLOSE_ALL)
_IGNORED_BY_CLOSES = _ENTRY - {"lots"}  # lots on a close is a partial close, never ignored
_SCOPE: dict[Action, set[str]] = {
    Action.BUY: _ENTRY,
    Action.SELL: _ENTRY,
    Action.REVERSE: {"lots", "risk", "signal_price", *_STOPS, "trailing", "max_slippage_pips"},
    Action.CLOSE: {"lots", "percent"},
    Action.CLOSE_LONG: {"lots", "percent"},
    Action.CLOSE_SHORT: {"lots", "percent"},
    Action.CLOSE_ALL: {"percent", "cancel_orders"},
    Action.CANCEL: {"order_id", "side"},
    Action.CANCEL_ALL: set(),
    Action.MODIFY: {*_STOPS, "trailing", "price", "limit_price", "stop_price", "order_id"},
    Action.BREAKEVEN: {"offset_pips"},
}


def parse_signal(body: bytes, now: datetime) -> Signal:
    """Parse one alert body (JSON, key=value or PineConnector) into a validated Signal.

    Pure: ``now`` (UTC) resolves relative expiries and refuses past ones. Raises only
    :class:`SignalError`, whose ``field`` uses our contract's field names.
    """
    return build_signal(read_alert(body), now)


def build_signal(raw: RawAlert, now: datetime) -> Signal:
    """Convert and validate a dialect's fields: the one place every rule lives."""
    fields = _Fields(raw, now if now.tzinfo else now.replace(tzinfo=UTC))
    position = fields.choice("market_position", _POSITIONS)
    action = _resolve_action(fields, position)
    notes = [*raw.notes, *_check_scope(fields, raw, action)]
    if position is MarketPosition.FLAT:
        notes += _drop_sizes(fields)
    symbol = fields.text("symbol", 64)
    if symbol is None and _needs_symbol(action, fields):
        raise fields.error("symbol", f"is required for action {action} (or give ticker/instrument)")
    lots, percent = fields.positive("lots"), fields.bounded("percent", Decimal(100), True)
    if lots is not None and percent is not None:
        raise fields.error("percent", "give lots or percent, not both")
    order_type, price, limit_price, signal_price = _entry(fields, action)
    stops = _stops(fields)
    if action in (Action.BUY, Action.SELL):
        reference = signal_price if price is None else price
        _check_sides(fields, action, reference, stops["sl"], stops["tp"])
    tif, expiry = _time_in_force(fields)
    trailing = fields.boolean("trailing")
    if action is Action.MODIFY and price is None and trailing is None and not any(stops.values()):
        raise fields.error("action", "modify needs a new sl, tp (in any form), price or trailing")
    return Signal(
        action=action,
        dialect=raw.dialect,
        symbol=symbol,
        lots=lots,
        percent=percent,
        risk=fields.bounded("risk", Decimal(100), True),
        order_type=order_type,
        price=price,
        limit_price=limit_price,
        signal_price=signal_price,
        **stops,
        trailing=trailing,
        offset_pips=fields.non_negative("offset_pips"),
        max_slippage_pips=fields.positive("max_slippage_pips"),
        expiry=expiry,
        tif=tif,
        time=fields.instant("time"),
        id=fields.text("id", 256),
        market_position=position,
        comment=fields.text("comment", 512),
        flatten_first=fields.boolean("flatten_first"),
        order_id=_order_id(fields),
        cancel_orders=fields.boolean("cancel_orders") or False,
        side=fields.choice("side", _SIDES),
        notes=tuple(notes),
    )


# --- actions and their fields ------------------------------------------------------------------


def _resolve_action(fields: _Fields, position: MarketPosition | None) -> Action:
    """The action, with TradingView's ``market_position`` (the position after the order) applied."""
    action = fields.choice("action", _ACTIONS, shown=_ACTION_NAMES)
    if action is None:
        if position is MarketPosition.FLAT:
            return Action.CLOSE
        alone = " (market_position alone does not say what to do)" if position else ""
        raise fields.error("action", f"is required{alone}")
    if action not in (Action.BUY, Action.SELL) or position is None:
        return action
    if position is MarketPosition.FLAT:
        return Action.CLOSE
    if action is Action.SELL and position is MarketPosition.LONG:
        return _partial_exit(fields, Action.CLOSE_LONG, "sell", "long")
    if action is Action.BUY and position is MarketPosition.SHORT:
        return _partial_exit(fields, Action.CLOSE_SHORT, "buy", "short")
    return action


def _partial_exit(fields: _Fields, action: Action, verb: str, held: str) -> Action:
    # Closing the whole position here would undo a strategy that only scaled out.
    if not (fields.present("lots") or fields.present("percent")):
        raise fields.error(
            "lots",
            f"a {verb} that leaves market_position {held} is a partial exit of the {held} "
            f"position: give lots (e.g. {{{{strategy.order.contracts}}}}) or send {action}",
        )
    return action


def _check_scope(fields: _Fields, raw: RawAlert, action: Action) -> list[str]:
    """Refuse fields the action does not use; closes drop (and note) a template's entry fields."""
    allowed = _COMMON | _SCOPE[action]
    extra = [name for name in raw.fields if name not in allowed and fields.present(name)]
    extra.sort(key=lambda name: FIELD_NAMES.index(name) if name in FIELD_NAMES else -1)
    notes = []
    if action in _CLOSES:
        dropped = [name for name in extra if name in _IGNORED_BY_CLOSES]
        for name in dropped:
            fields.drop(name)
        extra = [name for name in extra if name not in dropped]
        if dropped:
            notes.append(f"ignored for {action}: {', '.join(dropped)}")
    if extra:
        takes = ", ".join(n for n in FIELD_NAMES if n in _SCOPE[action]) or "no other fields"
        raise fields.error(extra[0], f"is not used by action {action} (it takes {takes})")
    return notes


def _drop_sizes(fields: _Fields) -> list[str]:
    """A strategy that is flat wants the symbol closed, whatever size its last order had
    (``{{strategy.market_position_size}}`` is then 0)."""
    dropped = [name for name in ("lots", "percent") if fields.present(name)]
    for name in dropped:
        fields.drop(name)
    if not dropped:
        return []
    return [f"ignored at market_position flat: {', '.join(dropped)} (every position of the symbol is closed)"]


def _needs_symbol(action: Action, fields: _Fields) -> bool:
    if action in (Action.CLOSE_ALL, Action.CANCEL_ALL):
        return False
    return not (action in (Action.CANCEL, Action.MODIFY) and fields.present("order_id"))


def _order_id(fields: _Fields) -> int | None:
    order_id = fields.integer("order_id")
    if order_id is not None and not 0 < order_id <= _MAX_ORDER_ID:
        raise fields.error("order_id", f"must be a positive order id, got {order_id}", order_id)
    return order_id


# --- entry price, order type, stops, time in force ----------------------------------------------


_Price = tuple[str, Decimal | None]
_MARKETS = (None, OrderType.MARKET, OrderType.MARKET_RANGE)


def _entry(
    fields: _Fields, action: Action
) -> tuple[OrderType | None, Decimal | None, Decimal | None, Decimal | None]:
    """(order_type, price, limit_price, signal_price), with CrossTrade's limit/stop_price mapped.

    CrossTrade names the entry by order type: LIMIT's is limit_price, STOPMARKET's stop_price,
    STOPLIMIT's trigger stop_price (our price) and its limit limit_price. Without an
    order_type, limit_price and/or stop_price choose limit, stop or stop_limit.
    """
    order_type = fields.choice("order_type", _ORDER_TYPES, shown=_ORDER_TYPE_NAMES)
    price, signal = fields.level("price"), fields.positive("signal_price")
    limit = ("limit_price", fields.positive("limit_price"))
    stop = ("stop_price", fields.positive("stop_price"))
    if action is Action.MODIFY:
        return None, _one_of(fields, ("price", price), limit, stop), None, None
    if order_type is None and (limit[1] or stop[1]):
        order_type = _inferred_type(limit[1] is not None, stop[1] is not None)
    if order_type in _MARKETS:
        _refuse(fields, f"{order_type or 'market'} orders", limit, stop)
    if order_type in (OrderType.MARKET, OrderType.MARKET_RANGE) and price is not None:
        # Contract: with an explicit market order_type, price is the price the strategy saw.
        if signal is not None and signal != price:
            raise fields.error("price", "is read as signal_price for market orders; give one")
        signal, price = price, None
    elif order_type is OrderType.LIMIT:
        _refuse(fields, "limit orders", stop)
        price = _one_of(fields, ("price", price), limit)
    elif order_type is OrderType.STOP:
        _refuse(fields, "stop orders", limit)
        price = _one_of(fields, ("price", price), stop)
    elif order_type is OrderType.STOP_LIMIT:
        price = _one_of(fields, ("price", price), stop)
    if order_type is not None and order_type.is_pending and price is None:
        other = "limit_price" if order_type is OrderType.LIMIT else "stop_price"
        raise fields.error("price", f"is required for a {order_type} order (or give {other})")
    _check_slippage(fields, order_type, price, limit[1], signal)
    return order_type, price, limit[1] if order_type is OrderType.STOP_LIMIT else None, signal


def _inferred_type(limit: bool, stop: bool) -> OrderType:
    if limit and stop:
        return OrderType.STOP_LIMIT
    return OrderType.LIMIT if limit else OrderType.STOP


def _refuse(fields: _Fields, what: str, *prices: _Price) -> None:
    for name, value in prices:
        if value is not None:
            raise fields.error(name, f"is not used by {what}", value)


def _one_of(fields: _Fields, *given: _Price) -> Decimal | None:
    present = [(name, value) for name, value in given if value is not None]
    if len(present) > 1:
        names = ", ".join(name for name, _ in given)
        raise fields.error(present[1][0], f"give only one of {names}", present[1][1])
    return present[0][1] if present else None


def _check_slippage(
    fields: _Fields,
    order_type: OrderType | None,
    price: Decimal | None,
    limit: Decimal | None,
    signal: Decimal | None,
) -> None:
    slippage = fields.positive("max_slippage_pips")
    market = order_type in (OrderType.MARKET, OrderType.MARKET_RANGE) or (
        order_type is None and price is None
    )
    if order_type is OrderType.STOP_LIMIT and limit is None and slippage is None:
        raise fields.error(
            "limit_price", "is required for a stop_limit order (or max_slippage_pips)"
        )
    if order_type is OrderType.MARKET_RANGE and slippage is None:
        raise fields.error("max_slippage_pips", "is required for a market_range order")
    if slippage is None or order_type is OrderType.STOP_LIMIT:
        return
    if not market:
        raise fields.error("max_slippage_pips", "applies to market and stop_limit orders only")
    if signal is None:
        raise fields.error(
            "max_slippage_pips", "needs signal_price, the price the slippage is measured from"
        )


def _stops(fields: _Fields) -> dict[str, Decimal | None]:
    stops = {name: fields.level(name) for name in ("sl", "tp", "sl_pips", "tp_pips")}
    for name in ("sl_pct", "tp_pct"):
        stops[name] = fields.bounded(name, Decimal(100), False, zero_is_none=True)
    for kind in ("sl", "tp"):
        forms = (kind, f"{kind}_pips", f"{kind}_pct")
        given = [name for name in forms if stops[name] is not None]
        if len(given) > 1:
            raise fields.error(
                given[1], f"give only one of {', '.join(forms)} (got {' and '.join(given)})"
            )
    return stops


def _check_sides(
    fields: _Fields, action: Action, entry: Decimal | None, sl: Decimal | None, tp: Decimal | None
) -> None:
    """SL and TP on the losing and winning side of the entry, when the alert alone shows it."""
    below, above = ("sl", "tp") if action is Action.BUY else ("tp", "sl")
    low, high = (sl, tp) if action is Action.BUY else (tp, sl)
    if entry is not None:
        if low is not None and low >= entry:
            reason = f"must be below the entry {entry} for a {action}, got {low}"
            raise fields.error(below, reason, low)
        if high is not None and high <= entry:
            reason = f"must be above the entry {entry} for a {action}, got {high}"
            raise fields.error(above, reason, high)
    if low is not None and high is not None and low >= high:
        raise fields.error("sl", f"{sl} is on the wrong side of tp {tp} for a {action}", sl)


def _time_in_force(fields: _Fields) -> tuple[str | None, datetime | None]:
    tif, expiry = fields.choice("tif", _TIFS), fields.expiry("expiry")
    if tif == "gtd" and expiry is None:
        raise fields.error("tif", "gtd needs an expiry")
    if expiry is not None and tif not in (None, "gtd"):
        raise fields.error("expiry", f"only applies with tif gtd, got tif {tif}")
    if expiry is not None and not _is_pending(fields):
        raise fields.error("expiry", "applies to pending orders only (give a price or order_type)")
    return tif, expiry


def _is_pending(fields: _Fields) -> bool:
    order_type = fields.choice("order_type", _ORDER_TYPES)
    if order_type is not None:
        return order_type.is_pending
    return any(fields.level(n) for n in ("price", "limit_price", "stop_price"))


# --- value conversion ---------------------------------------------------------------------------


class _Fields:
    """Typed, validated reads of a RawAlert's values; errors name our field and its spelling."""

    def __init__(self, raw: RawAlert, now: datetime) -> None:
        self._values = dict(raw.fields)
        self._written = raw.written
        self.now = now

    def error(self, name: str, reason: str, value: object = None) -> SignalError:
        written = self._written.get(name)
        if written and written.lower() not in ("command", name):
            reason = f"{reason} (given as '{written}')"
        return SignalError(name, reason, value)

    def drop(self, name: str) -> None:
        del self._values[name]

    def present(self, name: str) -> bool:
        value = self._values.get(name)
        return value is not None and not (isinstance(value, str) and not value.strip())

    def value(self, name: str) -> object:
        """The value as written, ``None`` when absent, null or blank."""
        value = self._values.get(name)  # most fields are absent: one lookup decides
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if "{{" in value and (placeholder := _PLACEHOLDER.search(value)):
                raise self.error(
                    name,
                    f"holds the TradingView placeholder {placeholder.group()} unexpanded "
                    "(check its spelling in the alert message)",
                    value,
                )
        return value

    def decimal(self, name: str) -> Decimal | None:
        value = self.value(name)
        if value is None:
            return None
        if isinstance(value, str) and _NUMBER.fullmatch(value):
            value = Decimal(value)
        if not isinstance(value, Decimal):
            raise self.error(name, f"must be a number, got {_describe(value)}", value)
        if value and abs(value.adjusted()) > _MAX_MAGNITUDE:
            raise self.error(name, f"is out of range, got {value}", value)
        return value

    def positive(self, name: str) -> Decimal | None:
        number = self.decimal(name)
        if number is not None and number <= 0:
            raise self.error(name, f"must be > 0, got {number}", number)
        return number

    def non_negative(self, name: str) -> Decimal | None:
        number = self.decimal(name)
        if number is not None and number < 0:
            raise self.error(name, f"must be >= 0, got {number}", number)
        return number

    def level(self, name: str) -> Decimal | None:
        """A price or distance where 0 means none (PipSync: price 0 = market, sl/tp 0 = none)."""
        number = self.decimal(name)
        if number is not None and number < 0:
            raise self.error(name, f"must be > 0 (or 0 for none), got {number}", number)
        return number or None

    def bounded(
        self, name: str, upper: Decimal, inclusive: bool, zero_is_none: bool = False
    ) -> Decimal | None:
        number = self.level(name) if zero_is_none else self.positive(name)
        if number is not None and (number > upper or (number == upper and not inclusive)):
            bound = f"<= {upper}" if inclusive else f"< {upper}"
            raise self.error(name, f"must be > 0 and {bound}, got {number}", number)
        return number

    def integer(self, name: str) -> int | None:
        number = self.decimal(name)
        if number is not None and number != number.to_integral_value():
            raise self.error(name, f"must be a whole number, got {number}", number)
        return None if number is None else int(number)

    def boolean(self, name: str) -> bool | None:
        value = self.value(name)
        if value is None or isinstance(value, bool):
            return value
        word = value.lower() if isinstance(value, str) else str(value)
        if isinstance(value, Decimal) and value in (0, 1):
            word = str(int(value))
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        reason = f"must be true or false (or yes/no, 1/0), got {_describe(value)}"
        raise self.error(name, reason, value)

    def text(self, name: str, max_length: int) -> str | None:
        value = self.value(name)
        if isinstance(value, Decimal):
            value = str(value)  # a JSON number used as an id, comment or symbol
        if value is not None and not isinstance(value, str):
            raise self.error(name, f"must be text, got {_describe(value)}", value)
        if value is not None and len(value) > max_length:
            raise self.error(name, f"is longer than {max_length} characters", value)
        return value

    def choice(self, name: str, options: dict[str, T], shown: list[str] | None = None) -> T | None:
        """One of ``options`` (case, ``_``, ``-`` and spaces ignored); suggests the closest."""
        value = self.text(name, 64)
        if value is None:
            return None
        word = re.sub(r"[\s_-]", "", value.lower())
        if word in options:
            return options[word]
        names = shown or list(options)
        close = difflib.get_close_matches(value.lower(), names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise self.error(
            name, f"unknown {name} {show(value)}; expected one of {', '.join(names)}{hint}", value
        )

    def instant(self, name: str) -> datetime | None:
        """ISO-8601 (UTC when no offset), or epoch seconds (< 1e11) or milliseconds (>= 1e11)."""
        value = self.value(name)
        if isinstance(value, str) and not _NUMBER.fullmatch(value):
            return self._iso(name, value)
        if value is not None and not isinstance(value, (str, Decimal)):
            reason = f"must be an ISO-8601 time or epoch number, got {_describe(value)}"
            raise self.error(name, reason, value)
        seconds = self.decimal(name)
        if seconds is None:
            return None
        if seconds < 0:
            raise self.error(name, f"must be >= 0 epoch seconds, got {seconds}", seconds)
        if seconds >= _MS_THRESHOLD:
            seconds /= 1000
        if seconds > _MAX_EPOCH_SECONDS:
            raise self.error(name, f"is out of range, got {value}", value)
        micros = int((seconds * 1_000_000).to_integral_value())
        return _EPOCH + timedelta(microseconds=micros)

    def expiry(self, name: str) -> datetime | None:
        """An ISO-8601 time, or whole seconds from ``now``; either must lie in the future."""
        value = self.value(name)
        if isinstance(value, str) and not _NUMBER.fullmatch(value):
            at = self._iso(name, value)
        else:
            seconds = self.integer(name)
            if seconds is None:
                return None
            if seconds <= 0:
                reason = f"must be in the future: > 0 seconds, got {seconds}"
                raise self.error(name, reason, seconds)
            if seconds >= _EXPIRY_LOOKS_LIKE_EPOCH:
                raise self.error(
                    name,
                    f"{seconds} looks like an epoch timestamp, but a number is seconds from now; "
                    "write an absolute expiry as ISO-8601",
                    seconds,
                )
            at = self.now + timedelta(seconds=seconds)
        if at <= self.now:
            raise self.error(
                name, f"must be in the future, got {at.isoformat()} (now {self.now.isoformat()})"
            )
        return at

    def _iso(self, name: str, value: str) -> datetime:
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.error(
                name,
                f"must be an ISO-8601 time like 2024-05-01T12:00:00Z or epoch "
                f"seconds/milliseconds, got {show(value)}",
                value,
            ) from None


def _describe(value: object) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return show(value)
    return str(value) if isinstance(value, Decimal) else type(value).__name__
