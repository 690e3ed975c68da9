"""The three alert dialects (JSON, key=value, PineConnector): bytes → our field names."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

from pipsync_lite.errors import SignalError
from pipsync_lite.signal_model import Dialect

# The alert fields of the user contract (docs/contract.md), in the order errors are reported.
FIELD_NAMES: tuple[str, ...] = (
    "action", "symbol", "market_position", "lots", "percent", "risk", "order_type", "price",
    "limit_price", "stop_price", "signal_price", "sl", "tp", "sl_pips", "tp_pips", "sl_pct",
    "tp_pct", "trailing", "offset_pips", "max_slippage_pips", "expiry", "tif", "time", "id",
    "comment", "flatten_first", "order_id",
)  # fmt: skip

# Other bridges' names for our fields (PipSync, CrossTrade, TradingView habits).
ALIASES: dict[str, str] = {
    "ticker": "symbol",
    "instrument": "symbol",
    "qty": "lots",
    "quantity": "lots",
    "contracts": "lots",
}

_OUR_NAMES: dict[str, str] = {name: name for name in FIELD_NAMES} | ALIASES

# Words users reach for that difflib would not connect to ours: only used for suggestions.
_SYNONYMS: dict[str, str] = {
    "stoploss": "sl", "stop_loss": "sl", "stop": "sl", "takeprofit": "tp", "take_profit": "tp",
    "target": "tp", "volume": "lots", "size": "lots", "lot": "lots", "side": "action",
    "type": "order_type", "ordertype": "order_type", "pair": "symbol", "timeinforce": "tif",
    "time_in_force": "tif", "trailing_stop": "trailing", "expiration": "expiry",
    "position": "market_position", "slippage": "max_slippage_pips",
}  # fmt: skip

# CrossTrade keys that name things outside a single cTrader account: accepted, never used.
_KV_IGNORED: dict[str, str] = {
    "account": "names a NinjaTrader account; pipsync-lite trades its one cTrader account",
    "key": "is CrossTrade's secret; pipsync-lite authenticates by the webhook URL token",
}

# CrossTrade command → our action; PLACE and FLATPLACE take the side from `action`.
_CROSSTRADE_COMMANDS: dict[str, str | None] = {
    "PLACE": None, "FLATPLACE": None, "CLOSEPOSITION": "close", "REVERSE": "reverse",
    "REVERSEPOSITION": "reverse", "FLATTEN": "close_all", "FLATTENEVERYTHING": "close_all",
    "CANCEL": "cancel", "CANCELORDERS": "cancel", "CANCELALLORDERS": "cancel_all",
    "CHANGE": "modify",
}  # fmt: skip

# PineConnector command → (action, order_type, side filter). Its docs list long/bull/bullish
# and short/bear/bearish as spellings of buy and sell.
_PC_COMMANDS: dict[str, tuple[str, str | None, str | None]] = {
    "buy": ("buy", None, None), "long": ("buy", None, None), "bull": ("buy", None, None),
    "bullish": ("buy", None, None), "sell": ("sell", None, None), "short": ("sell", None, None),
    "bear": ("sell", None, None), "bearish": ("sell", None, None),
    "buylimit": ("buy", "limit", None), "buystop": ("buy", "stop", None),
    "selllimit": ("sell", "limit", None), "sellstop": ("sell", "stop", None),
    "closelong": ("close_long", None, None), "closeshort": ("close_short", None, None),
    "closeall": ("close", None, None), "closelongshort": ("close", None, None),
    "cancellong": ("cancel", None, "buy"), "cancelshort": ("cancel", None, "sell"),
    "cancelall": ("cancel", None, None),
}  # fmt: skip

# PineConnector's meaning of its keys (its default EA settings): risk= is lots, sl=/tp= are pips.
_PC_KEYS: dict[str, str] = {
    "risk": "lots", "sl": "sl_pips", "tp": "tp_pips", "price": "price", "comment": "comment",
}  # fmt: skip
_PC_ENTRY_ONLY = ("lots", "sl_pips", "tp_pips", "price")
# PineConnector features we do not mirror, with where their equivalent lives here.
_PC_UNSUPPORTED: dict[str, str] = {
    "spread": "set risk.max_spread_pips in the YAML instead",
    "accfilter": "account filters are not supported",
    "betrigger": "send a breakeven alert instead",
    "beoffset": "send a breakeven alert with offset_pips instead",
    "trailtrig": "use a JSON alert with trailing: true instead",
    "traildist": "use a JSON alert with trailing: true instead",
    "trailstep": "use a JSON alert with trailing: true instead",
}

# `ID,command,...`: an ID-like first token directly followed by a comma. The first token
# cannot hold `=` or `;`, so key=value bodies whose values contain commas never match.
_PINECONNECTOR_START = re.compile(r"[A-Za-z0-9_.-]+[ \t]*,")
_KV_SEPARATORS = re.compile(r"[;\r\n]")
_WHOLE_PLACEHOLDER = re.compile(r"\{\{[^{}]{1,100}\}\}")


@dataclass(slots=True)
class RawAlert:
    """An alert in our field names, values still as written (str, Decimal, bool or None)."""

    dialect: Dialect
    fields: dict[str, object] = field(default_factory=dict)
    written: dict[str, str] = field(default_factory=dict)  # our name → the key the user wrote
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, value: object, written: str) -> None:
        """Store one field; a second spelling of the same field is an error, not a silent win."""
        if name in self.fields:
            first = self.written.get(name, name)
            raise SignalError(name, f"given twice (as '{first}' and '{written}')", value)
        self.fields[name] = value
        if written != name:
            self.written[name] = written


def read_alert(body: bytes) -> RawAlert:
    """Decode ``body`` and parse it in the dialect its content shows (never its Content-Type).

    Detection, on the stripped text: ``{`` or ``[`` first → JSON; else a first line that starts
    with an ID-like token (letters, digits, ``_.-``) followed by a comma → PineConnector; else
    key=value pairs.
    """
    try:
        text = body.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise SignalError("body", f"is not UTF-8 text (byte {exc.start})") from None
    if not text:
        raise SignalError("body", "is empty")
    if _WHOLE_PLACEHOLDER.fullmatch(text):
        # e.g. {{strategy.order.alert_message}} from a strategy that set no alert_message
        raise SignalError("body", f"is the TradingView placeholder {text} unexpanded")
    if text[0] in "{[":
        return _parse_json(text)
    if _PINECONNECTOR_START.match(text):
        return _parse_pineconnector(text)
    return _parse_key_value(text)


def known_name(key: str, accepted: dict[str, str]) -> str:
    """Our field name for ``key``, or a SignalError that suggests the closest known names."""
    if key in accepted:
        return accepted[key]
    if not key:
        raise SignalError("body", "has a field with an empty name")
    suggestions = difflib.get_close_matches(key, list(accepted), n=3, cutoff=0.6)
    hint = _SYNONYMS.get(key)
    if hint and hint in accepted.values():
        suggestions = [hint, *(s for s in suggestions if s != hint)]
    if suggestions:
        reason = f"unknown field {show(key)}; did you mean {' or '.join(suggestions)}?"
    else:
        reason = f"unknown field {show(key)}; known fields: {', '.join(sorted(accepted))}"
    raise SignalError(key if len(key) <= 40 else key[:40] + "…", reason, key)


def show(text: str, limit: int = 60) -> str:
    """Quote user text for an error reason, cut short so a huge body never floods a reply."""
    return repr(text if len(text) <= limit else text[:limit] + "…")


# --- JSON (PipSync's contract and ours) -------------------------------------------------------


class _Pairs(list[tuple[str, object]]):
    """A JSON object kept as its pairs, so a repeated key is seen instead of last-one-wins."""


def _parse_json(text: str) -> RawAlert:
    try:
        data = _JSON.decode(text)
    except (ValueError, RecursionError, ArithmeticError) as exc:
        raise SignalError("body", f"is not valid JSON: {_json_reason(exc)}") from None
    if not isinstance(data, _Pairs):
        kind = "an array" if isinstance(data, list) else "not an object"
        raise SignalError("body", f"must be a JSON object, got {kind}")
    alert = RawAlert(Dialect.JSON)
    for key, value in data:
        written = key.strip()
        name = known_name(written.lower(), _OUR_NAMES)
        if isinstance(value, list):  # _Pairs is a list too: nested objects and arrays
            raise SignalError(name, "must be a string, number or boolean, not a list or object")
        alert.put(name, value, written)
    return alert


def _reject_constant(word: str) -> object:
    raise ValueError(f"{word} is not a number")


# Built once (json.loads with arguments builds a decoder per call).
_JSON = json.JSONDecoder(
    parse_float=Decimal,  # exact: "1.10523" never passes through a float
    parse_int=Decimal,
    parse_constant=_reject_constant,
    object_pairs_hook=_Pairs,
)


def _json_reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, ArithmeticError):
        return "a number is out of range"
    return str(exc)


# --- key=value (CrossTrade's style) -----------------------------------------------------------


def _parse_key_value(text: str) -> RawAlert:
    """``key=value`` pairs separated by ``;`` or new lines; ``&`` is not a separator."""
    alert = RawAlert(Dialect.KEY_VALUE)
    command: str | None = None
    for piece in _KV_SEPARATORS.split(text):
        piece = piece.strip()
        if not piece:
            continue
        written, sep, value = piece.partition("=")
        written, value = written.strip(), _unquote(value.strip())
        key = written.lower()
        if not sep or not key:
            raise SignalError(
                "body", f"expected key=value pairs separated by ';' or new lines, got {show(piece)}"
            )
        if key == "command":
            if command is not None:
                raise SignalError("command", "given twice", value)
            command = value
        elif key in _KV_IGNORED:
            # The value is never echoed: `key` is a secret.
            alert.notes.append(f"ignored '{key}': it {_KV_IGNORED[key]}")
        else:
            alert.put(known_name(key, _OUR_NAMES | {"command": "command"}), value, written)
    if command is not None:
        _apply_crosstrade_command(alert, command)
    return alert


def _apply_crosstrade_command(alert: RawAlert, command: str) -> None:
    word = re.sub(r"[\s_-]", "", command).upper()
    if word not in _CROSSTRADE_COMMANDS:
        close = difflib.get_close_matches(word, list(_CROSSTRADE_COMMANDS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SignalError(
            "command",
            f"unknown command {show(command)}; expected one of "
            f"{', '.join(_CROSSTRADE_COMMANDS)}{hint}",
            command,
        )
    action = _CROSSTRADE_COMMANDS[word]
    if action is None:
        _place(alert, word)
        return
    if "action" in alert.fields:
        raise SignalError(
            "action", f"is only used with command=PLACE or FLATPLACE, not command={word}"
        )
    alert.put("action", action, "command")
    symbol_given = "symbol" in alert.fields
    if word == "FLATTEN" and not symbol_given:
        # Without an instrument this would silently become FLATTENEVERYTHING.
        raise SignalError("symbol", "is required for command=FLATTEN (give instrument)")
    if word in ("FLATTENEVERYTHING", "CANCELALLORDERS") and symbol_given:
        raise SignalError(
            "symbol", f"command={word} acts on the whole account; remove the instrument"
        )
    if word in ("FLATTEN", "FLATTENEVERYTHING"):
        alert.put("cancel_orders", True, "command")


def _place(alert: RawAlert, word: str) -> None:
    side = alert.fields.get("action")
    normalized = side.strip().lower() if isinstance(side, str) else ""
    if normalized not in ("buy", "sell"):
        got = f", got {show(side)}" if normalized else ""
        raise SignalError("action", f"command={word} needs action=BUY or action=SELL{got}", side)
    alert.fields["action"] = normalized
    if word == "FLATPLACE":
        alert.put("flatten_first", True, "command")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].strip()
    return value


# --- PineConnector ----------------------------------------------------------------------------


def _parse_pineconnector(text: str) -> RawAlert:
    """``ID,command,SYMBOL[,key=value...]``: one command per alert, the license ID ignored."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        raise SignalError("body", "a PineConnector alert holds one command on one line")
    tokens = [token.strip() for token in _split_commas(lines[0])]
    if len(tokens) > 1 and tokens[0].lower() in _PC_COMMANDS:
        if tokens[1].lower() not in _PC_COMMANDS:
            raise SignalError(
                "body",
                f"PineConnector alerts start with the license ID (ID,command,SYMBOL,...); "
                f"got the command {show(tokens[0])} first",
            )
    command = tokens[1]
    if command.lower() not in _PC_COMMANDS:
        raise SignalError(
            "action",
            f"unknown PineConnector command {show(command)} (read as ID,command,SYMBOL,...); "
            "expected one of "
            f"{', '.join(_PC_COMMANDS)}",
            command,
        )
    action, order_type, side = _PC_COMMANDS[command.lower()]
    alert = RawAlert(Dialect.PINECONNECTOR)
    alert.put("action", action, "command")
    if order_type:
        alert.put("order_type", order_type, "command")
    if side:
        alert.put("side", side, "command")
    symbol = _unquote(tokens[2]) if len(tokens) > 2 else ""
    if not symbol or "=" in symbol:
        raise SignalError("symbol", f"the third item must be the symbol (ID,{command},SYMBOL,...)")
    alert.put("symbol", symbol, "symbol")
    for token in tokens[3:]:
        if token:
            _pineconnector_pair(alert, token, command.lower(), order_type)
    return alert


def _pineconnector_pair(alert: RawAlert, token: str, command: str, order_type: str | None) -> None:
    key, sep, value = token.partition("=")
    key, value = key.strip().lower(), _unquote(value.strip())
    if not sep:
        raise SignalError("body", f"expected key=value after the symbol, got {show(token)}")
    if key in _PC_UNSUPPORTED:
        raise SignalError(key, f"PineConnector's {key}= is not supported: {_PC_UNSUPPORTED[key]}")
    name = known_name(key, _PC_KEYS)
    entry = alert.fields["action"] in ("buy", "sell")
    if name in _PC_ENTRY_ONLY and not entry:
        # PineConnector's close and cancel commands act on whole positions; keeping
        # risk= here would turn a full exit into a partial one.
        alert.notes.append(f"ignored '{key}=' on {command}: it only applies to entries")
        return
    if name == "price" and order_type is None:
        raise SignalError(
            "price", f"price= is for buylimit, buystop, selllimit and sellstop, not {command}"
        )
    alert.put(name, value, f"{key}=")


def _split_commas(line: str) -> list[str]:
    """Split on commas outside double quotes (PineConnector writes comment="a, b")."""
    parts, current, quoted = [], [], False
    for char in line:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise SignalError("body", "has an unclosed double quote")
    parts.append("".join(current))
    return parts
