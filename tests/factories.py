"""Small builders for value objects shared by the pure tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pipsync_lite.ctrader.model import Position, Side, SymbolInfo
from pipsync_lite.signal_model import Action, Dialect, Signal

EURUSD = SymbolInfo(
    symbol_id=1, name="EURUSD", digits=5, pip_position=4, lot_size=10_000_000,
    min_volume=100_000, max_volume=10_000_000_000, step_volume=100_000,
    base_asset="EUR", quote_asset="USD",
)
USDJPY = SymbolInfo(
    symbol_id=3, name="USDJPY", digits=3, pip_position=2, lot_size=10_000_000,
    min_volume=100_000, max_volume=10_000_000_000, step_volume=100_000,
    base_asset="USD", quote_asset="JPY",
)


def signal(action: str = "buy", **fields: Any) -> Signal:
    fields.setdefault("symbol", "EURUSD")
    for key, value in list(fields.items()):
        if isinstance(value, (int, float, str)) and key in {
            "lots", "price", "sl", "tp", "sl_pips", "tp_pips", "sl_pct", "tp_pct", "signal_price"
        }:
            fields[key] = Decimal(str(value))
    return Signal(action=Action(action), dialect=Dialect.JSON, **fields)


def position(position_id: int, side: str = "buy", volume: int = 1_000_000, symbol_id: int = 1) -> Position:
    return Position(position_id=position_id, symbol_id=symbol_id, side=Side(side), volume=volume,
                    entry_price=Decimal("1.10000"))
