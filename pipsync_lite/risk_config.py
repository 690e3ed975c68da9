"""The ``risk:`` section: every limit of the guard, validated, with per-symbol overrides.

``risk.symbols.<BROKER NAME>`` may set any of the keys below for one symbol; the symbol's
effective limits are the global ones with the override's keys replaced, and they are checked
as a whole when the YAML is read (``default_lots`` within ``max_lots``, ``min_sl_pips`` within
``max_sl_pips``), so an override can never produce a combination that rejects every entry.
Loss limits take money in the account currency (``500``) or a percentage (``"2%"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-4]):([0-5][0-9])$")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class LossLimit:
    """A loss threshold: ``amount`` of the account currency, or ``amount`` percent."""

    amount: Decimal
    percent: bool = False

    def of(self, base: Decimal) -> Decimal:
        """The threshold in money, given the base a percentage is taken of."""
        return base * self.amount / 100 if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount}%" if self.percent else str(self.amount)


def _loss_limit(value: Any) -> Any:
    if value is None or isinstance(value, LossLimit):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise ValueError("must be an amount (500) or a percentage ('2%')")
    text = str(value).strip()
    percent = text.endswith("%")
    try:
        amount = Decimal(text.removesuffix("%").strip())
    except InvalidOperation:
        raise ValueError("must be an amount (500) or a percentage ('2%')") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError("must be > 0")
    if percent and amount > 100:
        raise ValueError("a percentage must be <= 100%")
    return LossLimit(amount, percent)


Loss = Annotated[LossLimit, BeforeValidator(_loss_limit), PlainSerializer(str, return_type=str)]


def _clock(value: Any) -> Any:
    """``"08:30"`` → time(8, 30); ``"24:00"`` → time.max (the end of the day)."""
    if isinstance(value, time):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 08:30 as the sexagesimal number 510.
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = _CLOCK.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be a time of day HH:MM (24-hour clock)")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24:
        if minutes:
            raise ValueError("must be at most 24:00")
        return time.max
    return time(hours, minutes)


def clock_text(value: time) -> str:
    return "24:00" if value == time.max else value.strftime("%H:%M")


Clock = Annotated[time, BeforeValidator(_clock), PlainSerializer(clock_text, return_type=str)]


def _days(value: Any) -> Any:
    """``[mon, tue]``, ``"mon-fri"`` or ``[mon-thu, sat]`` → weekday numbers (Monday = 0)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of days such as [mon, tue] or a range such as mon-fri")
    days: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            days.append(item)
            continue
        first, _, last = str(item).strip().lower().partition("-")
        names = [first[:3], last[:3]] if last else [first[:3]]
        unknown = [n for n in names if n not in DAYS]
        if unknown:
            raise ValueError(f"unknown day {item!r}; use {', '.join(DAYS)}")
        start, end = DAYS.index(names[0]), DAYS.index(names[-1])
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
        days.extend(span)
    return tuple(sorted(set(days)))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TradingWindow(_Model):
    """Days and hours when entries are allowed. A window whose end is before its start runs
    past midnight into the next day (``22:00``–``06:00``)."""

    days: Annotated[tuple[Annotated[int, Field(ge=0, le=6)], ...], BeforeValidator(_days)] = (0, 1, 2, 3, 4)
    start: Clock = time(0, 0)
    end: Clock = time.max

    @model_validator(mode="after")
    def _not_empty(self) -> TradingWindow:
        if self.start == self.end:
            raise ValueError(f"start {clock_text(self.start)} equals end: the window would be empty")
        if not self.days:
            raise ValueError("days is empty: the window would never open")
        return self

    def describe(self) -> str:
        return f"{_describe_days(self.days)} {clock_text(self.start)}-{clock_text(self.end)}"


def _describe_days(days: tuple[int, ...]) -> str:
    if len(days) > 2 and days == tuple(range(days[0], days[-1] + 1)):
        return f"{DAYS[days[0]]}-{DAYS[days[-1]]}"
    return ",".join(DAYS[d] for d in days)


class RiskLimits(_Model):
    """Every limit of the guard. ``None`` means "no limit"."""

    # sizing
    default_lots: Decimal = Field(Decimal("0.01"), gt=0)
    risk_percent: Decimal | None = Field(None, gt=0, le=100)
    risk_money: Decimal | None = Field(None, gt=0)
    max_lots: Decimal | None = Field(None, gt=0)
    on_excess: Literal["reject", "clamp"] = "reject"
    # exposure
    max_open_positions: int | None = Field(None, ge=0)
    max_positions_per_symbol: int | None = Field(None, ge=0)
    max_positions_per_direction: int | None = Field(None, ge=0)
    max_pending_orders: int | None = Field(None, ge=0)
    allow_hedging: bool = True
    flatten_first: bool = False
    allowed_symbols: tuple[str, ...] = ()
    # stops
    require_sl: bool = False
    default_sl_pips: Decimal | None = Field(None, gt=0)
    default_tp_pips: Decimal | None = Field(None, gt=0)
    min_sl_pips: Decimal | None = Field(None, gt=0)
    max_sl_pips: Decimal | None = Field(None, gt=0)
    # time
    trading_windows: tuple[TradingWindow, ...] = ()
    flatten_at_close: bool = False
    timezone: str = "UTC"
    day_boundary: Clock = time(0, 0)
    # losses
    max_daily_loss: Loss | None = None
    max_trades_per_day: int | None = Field(None, ge=0)
    max_consecutive_losses: int | None = Field(None, gt=0)
    max_drawdown: Loss | None = None
    flatten_on_breach: bool = False
    # freshness and price
    max_signal_age_seconds: Decimal | None = Field(None, gt=0)
    require_time: bool = False
    max_deviation_pips: Decimal | None = Field(None, gt=0)
    max_spread_pips: Decimal | None = Field(None, gt=0)
    # duplicates, approval, kill switch
    dedupe_window_seconds: Decimal = Field(Decimal(60), ge=0)
    manual_approval: bool = False
    approval_timeout_seconds: Decimal = Field(Decimal(300), gt=0)
    kill_switch: bool = False

    _lower_enums = field_validator("on_excess", mode="before")(_lower)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone (use an IANA name such as Europe/London or America/New_York)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def risk_sized(self) -> bool:
        return self.risk_percent is not None or self.risk_money is not None


#: Keys that replace each other in an override: a symbol that sets ``risk_money`` drops the
#: global ``risk_percent`` (and the reverse) instead of ending up with both.
_EXCLUSIVE = (("risk_percent", "risk_money"),)


def _check_limits(limits: RiskLimits) -> None:
    """Cross-field checks on a complete set of limits (raises ValueError)."""
    if limits.max_lots is not None and limits.default_lots > limits.max_lots and limits.on_excess == "reject":
        raise ValueError(
            f"default_lots {limits.default_lots} > max_lots {limits.max_lots}: "
            "every default-sized entry would be rejected"
        )
    if limits.risk_percent is not None and limits.risk_money is not None:
        raise ValueError("give risk_percent or risk_money, not both")
    if limits.min_sl_pips is not None and limits.max_sl_pips is not None and limits.min_sl_pips > limits.max_sl_pips:
        raise ValueError(f"min_sl_pips {limits.min_sl_pips} > max_sl_pips {limits.max_sl_pips}: every entry would be rejected")
    if limits.default_sl_pips is not None:
        if limits.min_sl_pips is not None and limits.default_sl_pips < limits.min_sl_pips:
            raise ValueError(f"default_sl_pips {limits.default_sl_pips} < min_sl_pips {limits.min_sl_pips}")
        if limits.max_sl_pips is not None and limits.default_sl_pips > limits.max_sl_pips:
            raise ValueError(f"default_sl_pips {limits.default_sl_pips} > max_sl_pips {limits.max_sl_pips}")


class RiskConfig(RiskLimits):
    """The global limits, plus ``symbols``: per-symbol overrides keyed by broker name."""

    symbols: dict[str, RiskLimits] = Field(default_factory=dict)
    _effective: dict[str, RiskLimits] = PrivateAttr(default_factory=dict)

    @field_validator("symbols")
    @classmethod
    def _symbol_limits(cls, value: dict[str, RiskLimits], info: ValidationInfo) -> dict[str, RiskLimits]:
        # Broker names are matched case-insensitively, like the alert's symbol.
        symbols = {str(k).strip().upper(): v for k, v in value.items()}
        if any(not name for name in symbols):
            raise ValueError("symbol names must be non-empty")
        if set(RiskLimits.model_fields) <= set(info.data):  # the global limits are valid
            base = RiskLimits.model_validate({k: info.data[k] for k in RiskLimits.model_fields})
            try:
                _check_limits(base)
            except ValueError:
                return symbols  # reported once, for risk itself
            for name, override in symbols.items():
                _merge(base, override, name)
        return symbols

    @model_validator(mode="after")
    def _effective_limits(self) -> RiskConfig:
        _check_limits(self)
        base = self.global_limits()
        for name, override in self.symbols.items():
            self._effective[name] = _merge(base, override, name)
        return self

    def global_limits(self) -> RiskLimits:
        return RiskLimits.model_validate(self.model_dump(exclude={"symbols"}))

    def for_symbol(self, name: str | None) -> RiskLimits:
        """The limits in force for an alert on ``name`` (a broker symbol name)."""
        if name is not None:
            found = self._effective.get(name.strip().upper())
            if found is not None:
                return found
        return self

    def overridden(self, name: str) -> bool:
        return name.strip().upper() in self._effective


def _merge(base: RiskLimits, override: RiskLimits, name: str) -> RiskLimits:
    """``base`` with the keys ``override`` sets replaced, checked as a whole."""
    update = {key: _dumped(override, key) for key in override.model_fields_set}
    for group in _EXCLUSIVE:
        if set(group) & set(update):
            update.update({k: update.get(k) for k in group})
    try:
        merged = RiskLimits.model_validate({**base.model_dump(), **update})
        _check_limits(merged)
    except (ValidationError, ValueError) as exc:
        raise ValueError(f"{name}: {_first_error(exc)}") from None
    return merged


def _dumped(model: RiskLimits, key: str) -> Any:
    if getattr(model, key) is None:
        return None
    return model.model_dump(include={key})[key]


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}".lstrip(": ")
    return str(exc)
