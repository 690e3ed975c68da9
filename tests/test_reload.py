"""Reload bookkeeping and the intake rate limiter, without a daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pipsync_lite.config import parse_config
from pipsync_lite.ratelimit import RateLimiter
from pipsync_lite.reload import changes, merged

from .test_config import MINIMAL

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_changes_list_dotted_keys_and_mask_secrets() -> None:
    old = parse_config(MINIMAL + "risk: {max_lots: 1}", environ={})
    new = parse_config(
        MINIMAL.replace("the-access-token", "another-access-token")
        + "risk: {max_lots: 2, trading_windows: [{days: mon}], symbols: {XAUUSD: {max_lots: 0.1}}}\nlogging: {level: debug}",
        environ={},
    )
    found = {c.key: c for c in changes(old, new)}
    assert set(found) == {"ctrader.access_token", "risk.max_lots", "risk.trading_windows",
                          "risk.symbols.XAUUSD.max_lots", "logging.level"}  # fmt: skip
    assert (found["ctrader.access_token"].old, found["ctrader.access_token"].new, found["ctrader.access_token"].live) == ("***", "***", False)
    assert (found["risk.max_lots"].old, found["risk.max_lots"].new, found["risk.max_lots"].live) == ("1", "2", True)
    assert found["risk.symbols.XAUUSD.max_lots"].new == "0.1" and found["logging.level"].live
    assert found["risk.trading_windows"].new == [{"days": [0], "start": "00:00", "end": "24:00"}]


def test_merged_takes_only_the_reloadable_parts() -> None:
    old = parse_config(MINIMAL + "risk: {max_lots: 1}\nlogging: {level: info, format: json}", environ={})
    new = parse_config(
        MINIMAL.replace("account_id: 7", "account_id: 8") + "risk: {max_lots: 2}\nsymbols: {map: {GOLD: XAUUSD}}\n"
        "logging: {level: error, format: console}",
        environ={},
    )
    applied = merged(old, new)
    assert applied.risk.max_lots == Decimal(2) and applied.symbols.map == {"GOLD": "XAUUSD"}
    assert (applied.logging.level, applied.logging.format) == ("error", "json")
    assert applied.ctrader.account_id == 7
    assert applied.version not in (old.version, new.version)


def test_a_reloaded_configuration_has_its_own_version_though_the_old_one_was_already_read() -> None:
    """The digest is kept once computed; the merged copy must not inherit the old one's."""
    old = parse_config(MINIMAL + "risk: {max_lots: 1}", environ={})
    new = parse_config(MINIMAL + "risk: {max_lots: 0.5}", environ={})
    old_version, new_version = old.version, new.version  # computed, and kept, before the merge
    applied = merged(old, new)
    assert applied.risk.max_lots == Decimal("0.5")
    assert applied.version == new_version != old_version  # the same content as the new file
    assert applied.version == parse_config(MINIMAL + "risk: {max_lots: 0.5}", environ={}).version
    assert old.version == old_version and old.model_copy().version == old_version


@pytest.mark.parametrize(
    ("per_minute", "burst", "offsets", "expected"),
    [
        (60, 2, [0, 0, 0], [(True, 0), (True, 0), (False, 1)]),
        (30, 1, [0, 1, 2], [(True, 0), (False, 1), (True, 0)]),
        (6, 3, [0, 0, 0, 0, 5, 10], [(True, 0), (True, 0), (True, 0), (False, 10), (False, 5), (True, 0)]),
        (120, 1, [0, 0.25, 0.5], [(True, 0), (False, 1), (True, 0)]),
    ],
)
def test_token_bucket(per_minute: int, burst: int, offsets: list[float], expected: list[tuple[bool, int]]) -> None:
    limiter = RateLimiter(per_minute, burst)
    got = [limiter.admit(T0 + timedelta(seconds=s)) for s in offsets]
    assert [(a.allowed, a.retry_after) for a in got] == expected
