"""The log line: its JSON shape, the secrets it never carries, and the level a reload sets."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import structlog

from pipsync_lite import logs

SECRET = "a-configured-secret-0123456789"
SHORT = "shorty-secret-12"  # the shortest secret decides which values are checked at all


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("info", "json", [SECRET, SHORT], stream=out)
    yield out
    structlog.reset_defaults()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_the_event_its_values_the_level_and_a_utc_timestamp(stream: io.StringIO) -> None:
    log = structlog.get_logger("pipsync_lite.test")
    structlog.contextvars.bind_contextvars(signal_id=7)
    try:
        log.info("signal_accepted", action="buy", lots=Decimal("0.01"), price=Decimal("1E+3"), filled=True,
                 expires_at=datetime(2024, 5, 1, tzinfo=UTC), none=None)  # fmt: skip
    finally:
        structlog.contextvars.unbind_contextvars("signal_id")
    line = stream.getvalue().splitlines()[0]
    event = json.loads(line)
    assert list(event) == ["action", "lots", "price", "filled", "expires_at", "none", "event", "signal_id", "level",
                           "timestamp"]  # fmt: skip
    assert event["lots"] == "0.01" and event["price"] == "1E+3" and event["filled"] is True and event["none"] is None
    assert event["expires_at"] == "datetime.datetime(2024, 5, 1, 0, 0, tzinfo=datetime.timezone.utc)"
    assert (event["event"], event["signal_id"], event["level"]) == ("signal_accepted", 7, "info")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", str(event["timestamp"]))
    stamped = datetime.fromisoformat(str(event["timestamp"]))
    assert abs((datetime.now(UTC) - stamped).total_seconds()) < 60


def test_no_secret_reaches_a_line_whatever_carries_it(stream: io.StringIO) -> None:
    log = structlog.get_logger("pipsync_lite.test")
    log.info(f"event {SECRET}", text=f"before {SECRET} after", short=SHORT, listed=["x", SHORT], number=Decimal(1))
    try:
        raise ValueError(f"refused: {SECRET}")
    except ValueError:
        log.exception("crashed")
    text = stream.getvalue()
    assert SECRET not in text and SHORT not in text
    first, crashed = lines(stream)
    assert (first["event"], first["text"], first["short"]) == ("event ***", "before *** after", "***")
    assert first["listed"] == "['x', '***']" and first["number"] == "1"
    assert crashed["level"] == "error" and "ValueError: refused: ***" in str(crashed["exception"])


def test_set_level_applies_at_once_to_loggers_already_in_use(stream: io.StringIO) -> None:
    """A reload changes logging.level at runtime: module loggers must follow it."""
    log = structlog.get_logger("pipsync_lite.test")
    log.info("before")
    logs.set_level("warning")
    log.info("hidden")
    log.warning("shown")
    logs.set_level("debug")
    log.debug("detail")
    assert [e["event"] for e in lines(stream)] == ["before", "shown", "detail"]


def test_capture_logs_still_sees_events_after_configure(stream: io.StringIO) -> None:
    log = structlog.get_logger("pipsync_lite.test")
    log.info("first")
    with structlog.testing.capture_logs() as captured:
        log.info("captured", lots=Decimal("0.5"))
    assert [(e["event"], e["lots"]) for e in captured] == [("captured", Decimal("0.5"))]
    log.info("after")
    assert [e["event"] for e in lines(stream)] == ["first", "after"]
