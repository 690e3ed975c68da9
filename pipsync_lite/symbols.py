"""Alert symbol names → the broker's symbol: exchange prefix, the YAML map, closest names."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pipsync_lite.ctrader.model import SymbolInfo


@dataclass(frozen=True, slots=True)
class UnknownSymbol:
    """The alert names a symbol the broker does not have; ``reason`` lists the closest."""

    name: str
    reason: str


def strip_exchange(name: str) -> str:
    """``FX:EURUSD`` / ``OANDA:EURUSD`` → ``EURUSD`` (TradingView's ``{{exchange}}:{{ticker}}``)."""
    return name.rsplit(":", 1)[-1].strip()


def resolve(
    alert_name: str,
    mapping: Mapping[str, str],
    lookup: Callable[[str], SymbolInfo | None],
    all_names: Callable[[], Iterable[str]],
) -> SymbolInfo | UnknownSymbol:
    """Resolve an alert's symbol. ``mapping`` keys are upper case (config normalizes them)."""
    bare = strip_exchange(alert_name)
    broker_name = mapping.get(bare.upper(), bare)
    info = lookup(broker_name) or lookup(broker_name.upper())
    if info is not None:
        return info
    names = list(all_names())
    by_upper = {n.upper(): n for n in names}
    close = difflib.get_close_matches(broker_name.upper(), list(by_upper), n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(by_upper[c] for c in close)}" if close else ""
    mapped = f" (mapped from {bare})" if broker_name != bare else ""
    return UnknownSymbol(broker_name, f"unknown symbol {broker_name}{mapped} at the broker{hint}")
