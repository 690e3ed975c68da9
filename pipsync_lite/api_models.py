"""The read API's models: what the handlers validate and answer, and what the OpenAPI spec shows.

Query models forbid unknown parameters (a misspelt filter must not silently return
everything). Prices, lots and money are decimal strings: exact, never floats.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

MAX_ID = 2**63 - 1  # SQLite's INTEGER
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a zone, e.g. 2024-05-01T00:00:00Z")
    text = value.upper()
    if "." in text:  # Python reads at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end():]}"
    moment = datetime.fromisoformat(text)
    try:
        moment.astimezone(UTC)  # 0001-01-01T00:00:00+01:00 has no UTC instant
    except OverflowError:
        raise ValueError("is out of range") from None
    return moment


def _whole_number(value: Any) -> Any:
    """Digits only: no sign, no space, no 5.0 nor 5_0 (which int() would take)."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,19}", value):
        raise ValueError("must be a whole number written with digits 0-9")
    return value


DateTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "example": "2024-05-01T00:00:00Z"}),
]
Decimal_ = Annotated[str, WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "example": "1.10050"})]


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Annotated[int, BeforeValidator(_whole_number)] = Field(50, ge=1, le=200, description="Items per page.")
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,19}$", description="`next_cursor` of the previous page: the items after it."
    )
    symbol: str | None = Field(None, min_length=1, max_length=64, description="Broker symbol name (any case).")


class SignalQuery(_Query):
    status: str | None = Field(
        None,
        pattern=r"^[a-z_]{1,32}$",
        description="Signal status: accepted, executed, failed, unknown, rejected, invalid, duplicate, unavailable, ...",
    )
    since: DateTime | None = Field(None, description="Only signals received at or after this time.")


class TradeQuery(_Query):
    status: Literal["open", "closed"] | None = Field(None, description="open or closed.")
    since: DateTime | None = Field(None, description="Only trades opened at or after this time.")


class PositionQuery(_Query):
    since: DateTime | None = Field(None, description="Only positions opened at or after this time.")


class SignalPath(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_id: Annotated[int, BeforeValidator(_whole_number)] = Field(
        ge=1, le=MAX_ID, description="The `signal_id` the webhook answered."
    )


# -- answers -------------------------------------------------------------------------------


class Order(BaseModel):
    """One order (or close, amend, cancel) sent for a signal, with the broker's answer."""

    model_config = ConfigDict(extra="ignore")

    id: int
    purpose: str = Field(description="entry, close, amend, cancel, ...")
    status: str = Field(description="The broker's answer: filled, accepted, rejected, unknown, failed, done.")
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    volume: int | None = Field(None, description="In the protocol's units (0.01 of a unit).")
    price: Decimal_ | None = None
    stop_loss: Decimal_ | None = None
    take_profit: Decimal_ | None = None
    client_order_id: str | None = None
    broker_order_id: int | None = None
    position_id: int | None = None
    execution_price: Decimal_ | None = None
    error_code: str | None = Field(None, description="The broker's error code when it refused.")
    error_text: str | None = None
    created_at: str


class Signal(BaseModel):
    id: int
    received_at: str
    status: str = Field(description="Where the signal is now (executed, failed, rejected, ...).")
    verdict: str = Field(description="The guard's decision: accepted, rejected, invalid, duplicate, unavailable, ...")
    action: str | None = None
    symbol: str | None = None
    lots: Decimal_ | None = None
    rule: str | None = Field(None, description="The rule that refused it.")
    field: str | None = Field(None, description="The field that was invalid.")
    reason: str | None = None
    dialect: str | None = Field(None, description="json, key_value or pineconnector.")
    idempotency_key: str | None = None
    duplicate_of: int | None = None
    source_ip: str | None = None
    config_version: str | None = None
    parsed: dict[str, Any] | None = Field(None, description="The alert's fields as parsed (secrets masked).")
    orders: list[Order] = Field(default_factory=list)


class SignalDetail(Signal):
    raw_body: str = Field(description="The body as received, every configured secret masked.")
    updated_at: str


class Trade(BaseModel):
    """A position of the trade log, with what its deals realized so far."""

    position_id: int
    signal_id: int | None = None
    symbol: str | None = None
    side: str | None = None
    volume: int | None = Field(None, description="Volume opened, in the protocol's units.")
    remaining_volume: int | None = Field(None, description="Volume still open (0 once closed).")
    lots: Decimal_ | None = Field(None, description="`volume` in lots.")
    entry_price: Decimal_ | None = None
    stop_loss: Decimal_ | None = None
    take_profit: Decimal_ | None = None
    status: str = Field(description="open or closed.")
    opened_at: str | None = None
    closed_at: str | None = None
    close_price: Decimal_ | None = None
    close_reason: str | None = Field(None, description="signal, sl, tp or broker.")
    gross_profit: Decimal_ = "0"
    commission: Decimal_ = "0"
    swap: Decimal_ = "0"
    net_profit: Decimal_ = "0"


class Position(BaseModel):
    """An open position as the broker has it now."""

    position_id: int
    symbol: str
    side: str
    volume: int
    lots: Decimal_ | None = None
    entry_price: Decimal_
    stop_loss: Decimal_ | None = None
    take_profit: Decimal_ | None = None
    trailing_stop_loss: bool = False
    opened_at: str | None = None
    signal_id: int | None = Field(None, description="The signal that opened it, when it was pipsync-lite.")
    unrealized_net: Decimal_ | None = Field(None, description="Floating P/L after costs, when the broker said.")


class SignalPage(BaseModel):
    items: list[Signal]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class TradePage(BaseModel):
    items: list[Trade]
    next_cursor: str | None


class PositionPage(BaseModel):
    items: list[Position]
    next_cursor: str | None


class AlertAnswer(BaseModel):
    """The webhook's answer to an alert that was taken (202) or was a duplicate (200)."""

    signal_id: int
    status: str = Field(description="accepted, duplicate, pending_approval, ...")
    lots: Decimal_ | None = None
    notes: list[str] | None = None


class Problem(BaseModel):
    """RFC 7807 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    field: str | None = None
    rule: str | None = None
    signal_id: int | None = None
