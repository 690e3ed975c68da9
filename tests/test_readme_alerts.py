"""Every copy-paste alert in the README's alert sections is a valid alert, and every dialect is shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipsync_lite.signals import parse_signal

README = Path(__file__).resolve().parent.parent / "README.md"
# Sample values for the TradingView placeholders the examples use.
PLACEHOLDERS = {
    "{{ticker}}": "EURUSD", "{{close}}": "1.1", "{{timenow}}": "2026-11-20T12:00:00Z",
    "{{strategy.order.action}}": "sell", "{{strategy.order.contracts}}": "2",
    "{{strategy.market_position}}": "short", "{{strategy.order.id}}": "Short",
    "{{strategy.market_position_size}}": "1",
}  # fmt: skip


def _examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Alert formats") : text.index("## What the webhook answers")]
    blocks = re.findall(r"```(?:json)?\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_shows_alerts_of_every_dialect() -> None:
    dialects = {parse_signal(_fill(line).encode(), datetime(2026, 11, 20, tzinfo=UTC)).dialect for line in _examples()}
    assert {d.value for d in dialects} == {"json", "key_value", "pineconnector"}


@pytest.mark.parametrize("alert", _examples())
def test_readme_alert_parses(alert: str) -> None:
    parse_signal(_fill(alert).encode(), datetime(2026, 11, 20, tzinfo=UTC))


def _fill(alert: str) -> str:
    for placeholder, value in PLACEHOLDERS.items():
        alert = alert.replace(placeholder, value)
    return alert
