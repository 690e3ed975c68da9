"""Hostile input: the parsers and the webhook never crash, never answer 5xx, store every body.

Hypothesis generates bytes, JSON with the contract's field names and odd values, key=value
and PineConnector text; atheris (coverage-guided) runs a bounded session over raw bytes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipsync_lite.app import Daemon
from pipsync_lite.errors import SignalError
from pipsync_lite.signals import parse_signal

from .conftest import WEBHOOK_TOKEN

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FIELDS = (
    "action", "symbol", "ticker", "instrument", "lots", "qty", "percent", "risk", "price", "order_type",
    "signal_price", "sl", "tp", "sl_pips", "tp_pips", "sl_pct", "tp_pct", "trailing", "expiry", "tif",
    "time", "id", "market_position", "comment", "offset_pips", "order_id", "command", "side",
)
WORDS = ("buy", "sell", "close", "close_all", "reverse", "modify", "cancel", "EURUSD", "FX:EURUSD", "gtd", "long",
         "{{close}}", "{{ticker}}", "1e308", "-0", "NaN", "0x10", "١٢", "2026-03-02T11:59:00Z", "")

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.sampled_from(WORDS),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
json_alerts = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=12), values, max_size=8).map(
    lambda d: json.dumps(d, allow_nan=True).encode()
)
pairs = st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=10), st.sampled_from(WORDS) | st.text(max_size=12)), max_size=8)
key_value = st.tuples(pairs, st.sampled_from([";", "\n", "; ", "&"])).map(
    lambda t: t[1].join(f"{k}={v}" for k, v in t[0]).encode("utf-8", "surrogatepass")
)
pine = st.lists(st.sampled_from(WORDS) | st.text(max_size=10), min_size=1, max_size=6).map(
    lambda parts: ",".join(["123", *parts]).encode("utf-8", "surrogatepass")
)
bodies = st.one_of(st.binary(max_size=600), json_alerts, key_value, pine)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_parser_raises_only_signal_errors(body: bytes) -> None:
    try:
        signal = parse_signal(body, NOW)
    except SignalError as err:
        assert err.field and err.reason
    else:
        assert signal.action is not None


async def test_webhook_answers_every_body_without_5xx_and_stores_it(daemon: Daemon) -> None:
    """Each malformed body: 400 with ``field`` and ``signal_id``, stored as ``invalid``."""
    url = f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}"
    database = daemon.config.storage.path
    statuses: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "image/png"]))
    def one(body: bytes, content_type: str) -> None:
        request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read()
        statuses.append(status)
        assert status < 500, text
        answer = json.loads(text)
        assert answer["signal_id"] >= 1
        if status == 400:
            assert answer["field"]
            with sqlite3.connect(database) as db:
                row = db.execute("SELECT status, field, raw_body FROM signals WHERE id = ?", (answer["signal_id"],)).fetchone()
            assert row[0] == "invalid" and row[1] == answer["field"]
            assert row[2] == body.decode("utf-8", errors="replace")

    await asyncio.to_thread(one)
    assert 400 in statuses
    assert await daemon.store.count("signals") >= len(statuses)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_atheris_session_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(  # noqa: PLW1510 (the exit code is asserted)
        [sys.executable, str(ROOT / "tests" / "fuzz" / "fuzz_alerts.py"), str(corpus), "-runs=60000", "-seed=7",
         "-max_total_time=60", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 60000 runs" in result.stderr
