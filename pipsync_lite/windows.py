"""Trading time: windows (days and hours in a named time zone) and the trading day.

Pure functions of an instant and the configuration: nothing here reads the clock. A window
whose end is before its start runs past midnight and belongs to the day it starts on
(``fri 22:00-06:00`` is open from Friday 22:00 to Saturday 06:00). The trading day starts at
``risk.day_boundary`` in ``risk.timezone``; daily limits count from there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipsync_lite.risk_config import DAYS, TradingWindow

_DAY = timedelta(days=1)


def local_time(now: datetime, zone: ZoneInfo) -> datetime:
    return now.astimezone(zone)


def in_window(window: TradingWindow, local: datetime) -> bool:
    """Whether ``local`` (already in the window's time zone) falls inside ``window``."""
    weekday, clock = local.weekday(), local.time().replace(tzinfo=None)
    if window.start < window.end:
        return weekday in window.days and window.start <= clock < window.end
    # Past midnight: the evening part on a listed day, the morning part on the day after.
    return (weekday in window.days and clock >= window.start) or (
        (weekday - 1) % 7 in window.days and clock < window.end
    )


def open_window(now: datetime, windows: tuple[TradingWindow, ...], zone: ZoneInfo) -> TradingWindow | None:
    """The window ``now`` falls in; None when outside every window. No windows = always open."""
    if not windows:
        return TradingWindow(days=tuple(range(7)), start=time(0, 0), end=time.max)
    local = local_time(now, zone)
    for window in windows:
        if in_window(window, local):
            return window
    return None


def describe_local(now: datetime, zone: ZoneInfo) -> str:
    """``Sat 10:15 Europe/London``: how a rejection names the moment."""
    local = local_time(now, zone)
    return f"{DAYS[local.weekday()].capitalize()} {local:%H:%M} {zone.key}"


def trading_day_start(now: datetime, boundary: time, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the trading day ``now`` belongs to."""
    local = local_time(now, zone)
    start = _at(local, boundary)
    if local < start:
        start = _at(local - _DAY, boundary)
    return start.astimezone(UTC)


def next_trading_day_start(now: datetime, boundary: time, zone: ZoneInfo) -> datetime:
    """The start (UTC) of the trading day after the one ``now`` belongs to."""
    start = trading_day_start(now, boundary, zone).astimezone(zone)
    following = _on(start.date() + _DAY, boundary, zone)
    if following <= start:  # the boundary falls in a skipped DST hour: take the next day's
        following = _on(start.date() + 2 * _DAY, boundary, zone)
    return following.astimezone(UTC)


def trading_day_label(now: datetime, boundary: time, zone: ZoneInfo) -> str:
    """The trading day as a date (its start's local date): a key for per-day state."""
    return trading_day_start(now, boundary, zone).astimezone(zone).date().isoformat()


def _at(local: datetime, clock: time) -> datetime:
    """``local``'s date at wall-clock ``clock`` in the same zone (24:00 reads as 23:59:59)."""
    return datetime.combine(local.date(), clock.replace(tzinfo=None)).replace(tzinfo=local.tzinfo)


def _on(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock.replace(tzinfo=None)).replace(tzinfo=zone)
