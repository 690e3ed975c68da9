"""Outbound events: signed webhooks, retries with backoff, restarts, Telegram, and an order path
that no notification endpoint can slow down."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.config import NotifyTarget
from pipsync_lite.events import EVENT_TYPES
from pipsync_lite.notify import signature_header
from pipsync_lite.outbox import Outbox

from .conftest import eventually
from .fakes import Endpoint
from .test_webhook_e2e import post, settled

SECRET = "notify-secret-0123456789abcdef"
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_verifier() -> Callable[[str, bytes, str], bool]:
    """The README's verification snippet, executed as a receiver would copy it: the
    independent implementation the daemon's signatures are checked against."""
    section = README.read_text(encoding="utf-8").split("### Verifying the signature", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


def hook(ep: Endpoint, path: str = "/hook", events: list[str] | None = None) -> dict[str, Any]:
    return {"url": ep.url + path, "secret": SECRET, "events": events or ["*"]}


def of_type(ep: Endpoint, event_type: str) -> list[Any]:
    return [r for r in ep.requests if r.headers.get("X-PipSync-Event-Type") == event_type]


async def outbox_rows(daemon: Daemon, event_type: str) -> list[dict[str, Any]]:
    return await Outbox(daemon.store).rows(event_type)


async def test_deliveries_are_signed_and_verify_with_the_readme_snippet(
    operator_daemon: Any, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    daemon = await operator_daemon(notify=[hook(endpoint, events=["signal.*", "trade.opened"])])
    status, answer, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20})
    assert status == 202
    await eventually(lambda: of_type(endpoint, "trade.opened"), timeout=10)
    await post(http, daemon, {"action": "buy", "symbol": "NOSUCH"})  # rejected: signal.rejected
    await eventually(lambda: of_type(endpoint, "signal.rejected"))

    verify = readme_verifier()
    for request in endpoint.requests:
        header = request.headers["X-PipSync-Signature"]
        assert verify(SECRET, request.body, header), header
        assert not verify("another-secret-0123456789", request.body, header)
        assert not verify(SECRET, request.body[:-1] + b" }", header)
        payload = request.json()
        assert payload["id"] == request.headers["X-PipSync-Event-Id"] and payload["id"].startswith("evt_")
        assert payload["type"] == request.headers["X-PipSync-Event-Type"]
        assert payload["time"].endswith("Z")
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-PipSync-Delivery-Attempt"] == "1"
    # the filter held: no broker.* events reached this target
    assert {r.headers["X-PipSync-Event-Type"] for r in endpoint.requests} == {
        "signal.received", "signal.rejected", "trade.opened"
    }
    [opened] = of_type(endpoint, "trade.opened")
    data = opened.json()["data"]
    assert data["signal_id"] == answer["signal_id"] and data["symbol"] == "EURUSD" and data["volume"] == 1_000_000
    # an old signature is a replay, even when the HMAC is right
    stale = signature_header(SECRET, int(time.time()) - 3600, opened.body)
    assert not verify(SECRET, opened.body, stale)

    [row] = await outbox_rows(daemon, "trade.opened")
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["event_id"] == opened.json()["id"]
    attempts = await Outbox(daemon.store).attempts(row["id"])
    assert [(a["attempt"], a["status_code"], a["error"]) for a in attempts] == [(1, 200, None)]


async def test_failures_are_retried_with_backoff_then_given_up_after_five_attempts(
    operator_daemon: Any, endpoint_factory: Any, http: aiohttp.ClientSession
) -> None:
    broken = await endpoint_factory(status=503)
    flaky = await endpoint_factory(statuses=[500, 502])
    daemon = await operator_daemon(
        notify_backoff=0.05, notify=[hook(broken, events=["trade.opened"]), hook(flaky, events=["trade.opened"])]
    )
    status, _, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert status == 202

    async def finished() -> list[dict[str, Any]] | None:
        rows = await outbox_rows(daemon, "trade.opened")
        return rows if len(rows) == 2 and all(r["status"] != "pending" for r in rows) else None

    rows = {r["target"]: r for r in await eventually(finished, timeout=15)}
    assert rows[broken.url + "/hook"]["status"] == "failed" and rows[broken.url + "/hook"]["attempts"] == 5
    assert rows[flaky.url + "/hook"]["status"] == "delivered" and rows[flaky.url + "/hook"]["attempts"] == 3

    assert len(broken.requests) == 5
    assert len({r.headers["X-PipSync-Event-Id"] for r in broken.requests}) == 1  # the same event each time
    assert [r.headers["X-PipSync-Delivery-Attempt"] for r in broken.requests] == ["1", "2", "3", "4", "5"]
    gaps = [b.at - a.at for a, b in pairwise(broken.requests)]
    for n, gap in enumerate(gaps):
        assert gap >= 0.05 * 2**n * 0.9, f"retry {n + 2} came after {gap:.3f} s"
    assert gaps[-1] > gaps[0]  # exponential, not constant
    history = await Outbox(daemon.store).attempts(rows[broken.url + "/hook"]["id"])
    assert [(a["status_code"], a["error"]) for a in history] == [(503, "HTTP 503")] * 5
    assert rows[broken.url + "/hook"]["last_error"] == "HTTP 503"


async def test_pending_deliveries_survive_a_restart(
    operator_daemon: Any, endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    endpoint.status = 500
    target = [hook(endpoint, events=["trade.opened"])]
    first = await operator_daemon(notify_backoff=0.3, notify=target)
    await post(http, first, {"action": "buy", "symbol": "EURUSD"})

    async def tried_once() -> list[dict[str, Any]] | None:
        rows = await outbox_rows(first, "trade.opened")
        return rows if rows and rows[0]["attempts"] >= 1 else None

    await eventually(tried_once, timeout=10)
    await first.stop()
    [before] = _rows_from_file(first)
    assert before["status"] == "pending" and 1 <= before["attempts"] < 5

    endpoint.status = 200
    second = await operator_daemon(notify_backoff=0.3, notify=target)

    async def delivered() -> dict[str, Any] | None:
        [row] = await outbox_rows(second, "trade.opened")
        return row if row["status"] == "delivered" else None

    row = await eventually(delivered, timeout=10)
    assert row["event_id"] == before["event_id"] and row["attempts"] == before["attempts"] + 1
    ids = {r.headers["X-PipSync-Event-Id"] for r in of_type(endpoint, "trade.opened")}
    assert ids == {before["event_id"]}  # the receiver sees one event, retried


async def test_rows_of_a_target_removed_from_the_config_are_dropped(
    operator_daemon: Any, endpoint_factory: Any, http: aiohttp.ClientSession
) -> None:
    old = await endpoint_factory(status=500)
    first = await operator_daemon(notify_backoff=5.0, notify=[hook(old, events=["trade.opened"])])
    await post(http, first, {"action": "buy", "symbol": "EURUSD"})
    await eventually(lambda: old.requests, timeout=10)
    await first.stop()
    new = await endpoint_factory()
    second = await operator_daemon(notify=[hook(new, events=["trade.closed"])])

    async def dropped() -> bool:
        rows = await outbox_rows(second, "trade.opened")
        return bool(rows) and rows[0]["status"] == "dropped"

    await eventually(dropped, timeout=10)
    assert len(old.requests) == 1 and new.requests == []


async def test_a_hanging_or_failing_endpoint_never_slows_an_order(
    operator_daemon: Any, endpoint_factory: Any, http: aiohttp.ClientSession
) -> None:
    """Four targets: three never answer, one always fails; orders still go at full speed."""
    hanging = await endpoint_factory(hang=True)
    failing = await endpoint_factory(status=500)
    targets = [hook(hanging, f"/h{i}") for i in range(3)] + [hook(failing)]
    daemon = await operator_daemon(notify_backoff=0.01, notify=targets)
    for _ in range(5):
        started = time.monotonic()
        status, answer, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.01})
        answered = time.monotonic() - started
        assert status == 202 and answered < 0.5, f"webhook answered in {answered:.3f} s"
        row = await settled(daemon, answer["signal_id"])
        executed = time.monotonic() - started
        assert row["status"] == "executed" and executed < 1.5, f"order executed after {executed:.3f} s"
    # meanwhile deliveries were stuck at the hanging endpoint and failing at the other
    assert hanging.hanging >= 3 and len(failing.requests) >= 5
    assert daemon.broker is not None and len(daemon.broker.positions()) == 5


async def test_telegram_gets_a_readable_message_and_its_token_stays_secret(
    operator_daemon: Any, endpoint_factory: Any, http: aiohttp.ClientSession
) -> None:
    bot_token = "123456:telegram-bot-token-secret"
    answers = iter([
        ({"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    ])

    def answer(_: Any) -> dict[str, Any]:
        return next(answers, {"ok": True, "result": {"message_id": 7}})

    telegram = await endpoint_factory(statuses=[429], answer=answer)
    daemon = await operator_daemon(notify=[{
        "telegram": {"bot_token": bot_token, "chat_id": -1001234, "api_url": telegram.url},
        "events": ["trade.*"],
    }])
    await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl": 1.09, "tp": 1.12})
    await eventually(lambda: len(telegram.requests) >= 2, timeout=10)  # 429, then sent
    first, second = telegram.requests[:2]
    assert second.at - first.at >= 0.95  # Telegram's retry_after was honoured
    assert second.path == f"/bot{bot_token}/sendMessage"
    message = second.json()
    assert message["chat_id"] == "-1001234"
    assert message["text"].startswith("🟢 Opened BUY 0.1 lots EURUSD @ 1.10010 (position ")

    await post(http, daemon, {"action": "close", "symbol": "EURUSD"})
    await eventually(lambda: len(telegram.requests) >= 3, timeout=10)
    closed = telegram.requests[2].json()["text"]
    assert closed.startswith("⚪ Closed: 0.1 lots EURUSD @ ") and "P/L" in closed

    async def delivered() -> bool:
        rows = await Outbox(daemon.store).rows()
        return len(rows) == 2 and all(r["status"] == "delivered" for r in rows)

    await eventually(delivered, timeout=5)
    rows = await Outbox(daemon.store).rows()
    assert {r["target"] for r in rows} == {"telegram:-1001234"}
    await daemon.stop()
    dump = "\n".join(sqlite3.connect(daemon.config.storage.path).iterdump())
    assert bot_token not in dump and "telegram: Too Many Requests" in dump


def _rows_from_file(daemon: Daemon) -> list[dict[str, Any]]:
    connection = sqlite3.connect(daemon.config.storage.path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in connection.execute("SELECT * FROM outbox WHERE event_type = 'trade.opened'")]
    finally:
        connection.close()


async def test_every_contract_event_type_is_deliverable_and_targets_can_be_swapped(
    operator_daemon: Any, endpoint_factory: Any
) -> None:
    """kill_switch.engaged and token.expiring have no emitter yet: the plumbing carries them."""
    first = await endpoint_factory()
    second = await endpoint_factory()
    daemon = await operator_daemon(notify=[hook(first)])
    for event_type in EVENT_TYPES:
        daemon.events.emit(event_type, note="plumbing")

    def plumbed(ep: Endpoint) -> set[str]:
        return {r.json()["type"] for r in ep.requests if r.json()["data"].get("note") == "plumbing"}

    await eventually(lambda: plumbed(first) == set(EVENT_TYPES), timeout=10)
    assert daemon.notifier is not None
    daemon.notifier.set_targets([NotifyTarget.model_validate(hook(second, events=["kill_switch.*"]))])  # a reload
    daemon.events.emit("kill_switch.engaged", note="plumbing", reason="max_daily_loss")
    daemon.events.emit("trade.opened", note="plumbing")
    await eventually(lambda: plumbed(second) == {"kill_switch.engaged"}, timeout=10)
    await daemon.notifier.flush()
    plumbing = [r for r in first.requests if r.json()["data"].get("note") == "plumbing"]
    assert len(plumbing) == len(EVENT_TYPES)  # nothing after the swap reached the old target
