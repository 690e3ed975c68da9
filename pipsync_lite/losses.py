"""The trading day in numbers: P/L, trades, losing streak and peak equity, for the loss limits.

``DayStats`` is a plain value the guard's loss rules read; ``LossBook`` assembles it from the
trade log (deals recorded by the ledger, signals recorded by the engine) and the broker
(balance, floating P/L of open positions). Definitions, all in the account currency:

- **realized**: the gross P/L and swap of the deals that closed volume during the trading day,
  plus the commission of every deal of the day;
- **unrealized**: the open positions' net floating P/L as the broker reports it (counted as 0,
  with a warning, when the broker does not answer within 1.5 s);
- **day's starting balance**: the balance now minus the realized P/L of the day;
- **trades**: entries accepted during the day (``buy``/``sell``/``reverse`` signals that
  passed the guard), whatever became of them at the broker, failures excepted;
- **consecutive losses**: closing deals of the day with a negative result, counted back from
  the latest until the first that was not a loss;
- **peak equity**: the highest equity (balance + unrealized) seen during the day, starting
  from the day's starting balance; kept in the database so a restart does not forget it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog

from pipsync_lite.ctrader.model import Broker
from pipsync_lite.errors import BrokerError
from pipsync_lite.risk_config import RiskLimits
from pipsync_lite.store import Store, utcnow_iso
from pipsync_lite.windows import trading_day_label, trading_day_start

log = structlog.get_logger("pipsync_lite.losses")

ZERO = Decimal(0)
UNREALIZED_TIMEOUT = 1.5  # seconds
_ENTRY_ACTIONS = ("buy", "sell", "reverse")
_COUNTED = ("accepted", "executed", "unknown")


@dataclass(frozen=True, slots=True)
class DayStats:
    day: str  # the trading day's date in risk.timezone
    day_start: datetime  # UTC
    currency: str
    balance: Decimal
    realized: Decimal = ZERO
    unrealized: Decimal = ZERO
    trades: int = 0
    consecutive_losses: int = 0
    peak_equity: Decimal | None = None

    @property
    def start_balance(self) -> Decimal:
        return self.balance - self.realized

    @property
    def equity(self) -> Decimal:
        return self.balance + self.unrealized

    @property
    def pnl(self) -> Decimal:
        """Realized plus unrealized P/L of the day (negative = a loss)."""
        return self.realized + self.unrealized

    @property
    def peak(self) -> Decimal:
        return max(self.peak_equity or self.start_balance, self.start_balance, self.equity)

    @property
    def drawdown(self) -> Decimal:
        return self.peak - self.equity


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):,}".replace(",", "")


def needs_stats(limits: RiskLimits) -> bool:
    return any(
        v is not None
        for v in (limits.max_daily_loss, limits.max_drawdown, limits.max_trades_per_day, limits.max_consecutive_losses)
    )


def needs_equity(limits: RiskLimits) -> bool:
    return limits.max_daily_loss is not None or limits.max_drawdown is not None


class LossBook:
    """Builds ``DayStats`` from the trade log and the broker; remembers the day's peak equity."""

    def __init__(self, store: Store, broker: Broker) -> None:
        self._store = store
        self._broker = broker
        self._peak: tuple[str, Decimal] | None = None

    async def stats(self, limits: RiskLimits, now: datetime, *, equity: bool = True) -> DayStats | None:
        """The day so far; None when the balance is unknown (broker not loaded yet)."""
        account = self._broker.account
        if account is None:
            return None
        zone = limits.zone
        start = trading_day_start(now, limits.day_boundary, zone)
        day = trading_day_label(now, limits.day_boundary, zone)
        since = utcnow_iso(start)
        realized, losses = await self._closed(since)
        unrealized = await self._unrealized() if equity else ZERO
        stats = DayStats(
            day=day,
            day_start=start,
            currency=account.deposit_asset,
            balance=account.balance,
            realized=realized,
            unrealized=unrealized,
            trades=await self._trades(since),
            consecutive_losses=losses,
            peak_equity=await self._peak_of(day),
        )
        if equity:
            await self._remember_peak(day, stats.peak)
        return stats

    async def _closed(self, since: str) -> tuple[Decimal, int]:
        async with self._store.db.execute(
            "SELECT gross_profit, swap, commission FROM deals WHERE executed_at >= ? ORDER BY executed_at, deal_id",
            (since,),
        ) as cursor:
            rows = await cursor.fetchall()
        realized, streak = ZERO, 0
        for gross, swap, commission in rows:
            result = _dec(commission)
            if gross is not None:  # a deal that closed volume
                result += _dec(gross) + _dec(swap)
                streak = streak + 1 if result < 0 else 0
            realized += result
        return realized, streak

    async def _trades(self, since: str) -> int:
        marks = ", ".join("?" for _ in _ENTRY_ACTIONS)
        statuses = ", ".join("?" for _ in _COUNTED)
        async with self._store.db.execute(
            f"SELECT COUNT(*) FROM signals WHERE received_at >= ? AND action IN ({marks}) AND status IN ({statuses})",
            (since, *_ENTRY_ACTIONS, *_COUNTED),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _unrealized(self) -> Decimal:
        if not self._broker.positions():
            return ZERO
        try:
            # Bounded: an entry waits for this inside the webhook's 3 seconds.
            pnl = await asyncio.wait_for(self._broker.unrealized_pnl(), UNREALIZED_TIMEOUT)
        except (BrokerError, TimeoutError) as err:
            log.warning("unrealized_pnl_unavailable", error=str(err) or type(err).__name__)
            return ZERO
        return sum((p.net for p in pnl), ZERO)

    async def _peak_of(self, day: str) -> Decimal | None:
        if self._peak is None:
            async with self._store.db.execute("SELECT value FROM meta WHERE key = 'peak_equity'") as cursor:
                row = await cursor.fetchone()
            if row:
                stored: dict[str, Any] = json.loads(row[0])
                self._peak = (str(stored["day"]), Decimal(stored["amount"]))
        if self._peak is not None and self._peak[0] == day:
            return self._peak[1]
        return None

    async def _remember_peak(self, day: str, peak: Decimal) -> None:
        if self._peak is not None and self._peak == (day, peak):
            return
        self._peak = (day, peak)
        await self._store.db.execute(
            "INSERT INTO meta (key, value) VALUES ('peak_equity', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps({"day": day, "amount": str(peak)}),),
        )


def _dec(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value))
