"""/metrics: Prometheus text that prometheus_client's own parser reads, with counts from the
trade log, live broker state, reconnects, token lifetime and the latency histograms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from pipsync_lite.simulator import Simulator

from .conftest import eventually
from .fakes import bearer
from .test_webhook_e2e import post, settled


async def scrape(http: aiohttp.ClientSession, base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with http.get(f"{base_url}/metrics", headers=bearer()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_metrics_parse_and_count_what_happened(
    operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await operator_daemon()
    for body in (
        {"action": "buy", "symbol": "EURUSD", "id": "a-1"},
        {"action": "sell", "symbol": "USDJPY", "lots": 0.02},
    ):
        _, answer, _ = await post(http, daemon, body)
        await settled(daemon, answer["signal_id"])
    await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "id": "a-1"})  # duplicate
    await post(http, daemon, {"action": "buy", "symbol": "NOSUCH"})  # rejected
    await post(http, daemon, "nonsense", "text/plain")  # invalid
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    _, failed, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    await settled(daemon, failed["signal_id"])
    _, close, _ = await post(http, daemon, {"action": "close", "symbol": "USDJPY"})
    await settled(daemon, close["signal_id"])

    samples = await scrape(http, daemon.base_url)
    outcomes = {"accepted": 4, "duplicate": 1, "rejected": 1, "invalid": 1}
    for outcome, count in outcomes.items():
        assert value(samples, "pipsync_signals_total", outcome=outcome) == count, outcome
    assert value(samples, "pipsync_signal_executions_total", result="executed") == 3
    assert value(samples, "pipsync_signal_executions_total", result="failed") == 1
    assert value(samples, "pipsync_orders_total", purpose="entry", result="filled") == 2
    assert value(samples, "pipsync_orders_total", purpose="entry", result="rejected") == 1
    assert value(samples, "pipsync_orders_total", purpose="close", result="filled") == 1
    assert value(samples, "pipsync_broker_connected") == 1
    assert value(samples, "pipsync_open_positions") == 1
    assert value(samples, "pipsync_kill_switch_engaged") == 0
    assert value(samples, "pipsync_token_expires_in_seconds") is None  # a YAML token: lifetime unknown

    # latency: three entries were sent (two filled, one refused) and one close
    assert value(samples, "pipsync_webhook_to_order_sent_seconds_count", kind="entry") == 3
    assert value(samples, "pipsync_webhook_to_order_sent_seconds_count", kind="close") == 1
    assert value(samples, "pipsync_order_sent_to_fill_seconds_count", kind="entry", result="filled") == 2
    assert value(samples, "pipsync_webhook_to_fill_seconds_count", kind="close", result="filled") == 1
    to_sent = value(samples, "pipsync_webhook_to_order_sent_seconds_sum", kind="entry") or 0
    to_fill = value(samples, "pipsync_order_sent_to_fill_seconds_sum", kind="entry", result="filled") or 0
    end_to_end = value(samples, "pipsync_webhook_to_fill_seconds_sum", kind="entry", result="filled") or 0
    assert to_sent > 0 and 0 < to_fill < end_to_end  # end to end = receipt→sent + sent→fill
    buckets = [v for (name, labels), v in samples.items()
               if name == "pipsync_webhook_to_fill_seconds_bucket" and ("kind", "entry") in labels and ("result", "filled") in labels]
    assert max(buckets) == 2 and buckets == sorted(buckets)  # cumulative, +Inf holds all
    assert value(samples, "pipsync_webhook_answer_seconds_count") == 7

    async with http.get(f"{daemon.base_url}/metrics") as response:
        assert response.status == 401
    assert daemon.engine is not None
    await daemon.engine.kill_switch.engage("max_daily_loss", "day P/L -120.00 <= -100", datetime.now(UTC))
    assert value(await scrape(http, daemon.base_url), "pipsync_kill_switch_engaged") == 1


async def test_reconnects_and_token_lifetime(operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession) -> None:
    daemon = await operator_daemon()
    assert daemon.broker is not None
    sim.drop_connections()
    await eventually(lambda: not daemon.broker.ready, timeout=5)
    assert await daemon.broker.wait_ready(15)
    samples = await scrape(http, daemon.base_url)
    assert value(samples, "pipsync_broker_reconnects_total") == 1
    assert value(samples, "pipsync_broker_disconnects_total") == 1
    await daemon.broker.refresh_tokens()  # the lifetime becomes known, and the pair is saved
    samples = await scrape(http, daemon.base_url)
    left = value(samples, "pipsync_token_expires_in_seconds")
    assert left is not None and 2_627_000 < left <= 2_628_000
    async with daemon.store.db.execute("SELECT expires_in FROM broker_tokens") as cursor:
        assert [tuple(r) for r in await cursor.fetchall()] == [(2_628_000,)]
