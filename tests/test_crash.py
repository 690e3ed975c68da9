"""Crash test: a stream of alerts while the daemon is SIGKILLed at random moments, many rounds.

The simulator runs in this process (so its recorded requests can be inspected); the daemon is
a real ``pipsync-lite run`` subprocess against it. Each round starts the daemon, streams
alerts at it (entries with stops, closes, malformed ones), and kills it with SIGKILL at a
random moment between its start-up and well into the stream: during imports, the broker
handshake, the recovery of the previous round's leftovers, decisions, sends and fills.
Between rounds the market sometimes moves through the stops while no daemon is watching.

After every kill: every alert answered 202 is in the database, and no label has been sent
to the simulator twice. At the end the daemon runs once more until everything is settled and
stops on SIGTERM; then the trade log must match the simulator's positions and deals, and
every signal must have a final status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sqlite3
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from pipsync_lite.simulator import Simulator, TlsFiles

ROUNDS = int(os.environ.get("PIPSYNC_CRASH_ROUNDS", "50"))
TOKEN = "crash-test-webhook-token-0123"
ROOT = Path(__file__).resolve().parent.parent
FINAL = ("executed", "failed", "rejected", "invalid", "duplicate", "unavailable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, sim: Simulator, port: int, database: Path) -> None:
    creds = sim.credentials
    path.write_text(json.dumps({  # JSON is YAML
        "server": {"host": "127.0.0.1", "port": port, "webhook_token": TOKEN},
        "ctrader": {
            "host": "localhost", "port": sim.port, "ca_file": str(sim.ca_file),
            "client_id": creds.client_id, "client_secret": creds.client_secret,
            "access_token": creds.access_token, "refresh_token": creds.refresh_token,
            "account_id": creds.account_id, "request_timeout_seconds": 2,
            "on_disconnected": "queue", "max_queue_age_seconds": 30,
        },
        "storage": {"path": str(database)},
        "logging": {"level": "info", "format": "json"},
    }))


class Stream:
    """Posts alerts until stopped; remembers every one answered 202."""

    def __init__(self, url: str, rng: random.Random) -> None:
        self.url = url
        self.rng = rng
        self.acknowledged: dict[int, str] = {}  # signal_id -> idempotency key
        self.sent = 0
        self._n = 0

    def body(self, round_no: int) -> dict[str, Any]:
        self._n += 1
        key = f"r{round_no}-{self._n}"
        roll = self.rng.random()
        if roll < 0.08:
            return {"action": "close", "symbol": self.rng.choice(["EURUSD", "GBPUSD"]), "id": key}
        if roll < 0.11:  # a two-step plan: close, then the opposite entry
            return {"action": "reverse", "symbol": "GBPUSD", "lots": "0.01", "sl_pips": 30, "id": key}
        if roll < 0.15:
            return {"action": "buy", "symbol": "EURUSD", "lots": "-1", "id": key}  # 400
        side = self.rng.choice(["buy", "sell"])
        return {"action": side, "symbol": self.rng.choice(["EURUSD", "GBPUSD"]), "lots": "0.01",
                "sl_pips": 30, "tp_pips": self.rng.choice([None, 40]), "id": key}

    async def run(self, http: aiohttp.ClientSession, round_no: int) -> None:
        while True:
            body = {k: v for k, v in self.body(round_no).items() if v is not None}
            self.sent += 1
            try:
                async with http.post(self.url, json=body, timeout=aiohttp.ClientTimeout(total=5)) as response:
                    answer = await response.json(content_type=None)
                    if response.status == 202:
                        self.acknowledged[int(answer["signal_id"])] = body["id"]
            except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError):
                pass  # not up yet, or killed mid-request: not acknowledged
            # pacing between alerts (and between attempts while the daemon is down)
            await asyncio.sleep(self.rng.uniform(0.005, 0.05))


def database_rows(database: Path, query: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    db = sqlite3.connect(database, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return db.execute(query, args).fetchall()
    finally:
        db.close()


def sent_per_label(sim: Simulator) -> Counter[str]:
    return Counter(r.message.clientOrderId for r in sim.requests_named("ProtoOANewOrderReq"))


async def spawn(config: Path, log: Any) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipsync_lite", "run", "-c", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=log, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(tls_files: TlsFiles, tmp_path: Path) -> None:
    sim = Simulator(seed=21, tls_files=tls_files, tick_interval=None, balance=Decimal(1_000_000))
    await sim.start()
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    port, database, config = free_port(), tmp_path / "trades.db", tmp_path / "config.yaml"
    write_config(config, sim, port, database)
    rng = random.Random(20260302)
    stream = Stream(f"http://127.0.0.1:{port}/webhook/{TOKEN}", rng)
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        with open(tmp_path / "daemon.log", "ab") as log:
            async with aiohttp.ClientSession() as http:
                for round_no in range(ROUNDS):
                    proc = await spawn(config, log)
                    # the random moment: anywhere from the imports to well into the stream
                    killer = loop.call_later(rng.uniform(0.2, 3.2), proc.kill)
                    poster = asyncio.create_task(stream.run(http, round_no))
                    try:
                        code = await asyncio.wait_for(proc.wait(), 30)
                    finally:
                        killer.cancel()
                        poster.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await poster
                    assert code == -9, f"round {round_no}: the daemon exited by itself ({code}); see daemon.log"
                    check_after_kill(database, sim, stream, round_no)
                    if rng.random() < 0.3:  # the market moves while nobody watches
                        move = Decimal(rng.choice([-60, 60, 0])) / 10000
                        sim.set_price("EURUSD", bid=Decimal("1.10000") + move, ask=Decimal("1.10010") + move)
                crash_seconds = time.monotonic() - started
                await settle_and_stop(config, log, database, http, port)
        check_final(database, sim, stream)
        summary = summarize(database, stream, sim, crash_seconds, tmp_path / "daemon.log")
        print(json.dumps(summary))  # shown with -s: what the rounds covered
    finally:
        await sim.stop()


def check_after_kill(database: Path, sim: Simulator, stream: Stream, round_no: int) -> None:
    if stream.acknowledged:
        keys = {int(r["id"]): r["idempotency_key"] for r in database_rows(database, "SELECT id, idempotency_key FROM signals")}
        lost = {sid: key for sid, key in stream.acknowledged.items() if keys.get(sid) != key}
        assert not lost, f"round {round_no}: acknowledged but not in the database: {lost}"
    doubled = {label: n for label, n in sent_per_label(sim).items() if n > 1}
    assert not doubled, f"round {round_no}: sent twice: {doubled}"


async def settle_and_stop(config: Path, log: Any, database: Path, http: aiohttp.ClientSession, port: int) -> None:
    """Run the daemon until every signal is final, then stop it with SIGTERM (clean exit)."""
    proc = await spawn(config, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            open_rows = database_rows(
                database, "SELECT COUNT(*) FROM signals WHERE status IN ('accepted', 'queued', 'unknown')"
            ) if database.exists() else [(1,)]
            ready = await _intake_open(http, port)
            if ready and open_rows[0][0] == 0:
                break
            assert time.monotonic() < deadline, "signals not settled within 60 s"
            await asyncio.sleep(0.1)
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _intake_open(http: aiohttp.ClientSession, port: int) -> bool:
    try:
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            return (await response.json()).get("intake") == "open"
    except (aiohttp.ClientError, json.JSONDecodeError):
        return False


def check_final(database: Path, sim: Simulator, stream: Stream) -> None:
    signals = {int(r["id"]): dict(r) for r in database_rows(database, "SELECT * FROM signals")}
    for signal_id in stream.acknowledged:
        assert signals[signal_id]["status"] in FINAL, signals[signal_id]
    assert all(s["status"] in FINAL for s in signals.values())
    sent = sent_per_label(sim)
    assert max(sent.values(), default=0) <= 1
    # the trade log matches the broker
    deals = {int(r["deal_id"]) for r in database_rows(database, "SELECT deal_id FROM deals")}
    assert deals == {d.deal_id for d in sim.deals()}
    logged = {int(r["position_id"]): int(r["volume"]) for r in database_rows(database, "SELECT * FROM positions WHERE status = 'open'")}
    assert logged == {p.position_id: p.volume for p in sim.positions()}
    instance = database_rows(database, "SELECT value FROM meta WHERE key = 'instance_id'")[0][0]
    for position in sim.positions():  # every position at the broker belongs to an executed signal
        signal_id = int(position.label.rsplit("-", 1)[1])
        assert position.label.startswith(f"psl-{instance}-") and signals[signal_id]["status"] == "executed"
    filled_labels = {sim.order(d.order_id).client_order_id for d in sim.deals() if d.gross_profit is None}
    for label in filled_labels:  # every opening fill belongs to an executed signal
        assert signals[int(label.rsplit("-", 1)[1])]["status"] == "executed", label
    for signal_id, row in signals.items():  # and every executed entry has its fill
        if row["status"] == "executed" and row["action"] in ("buy", "sell"):
            assert f"psl-{instance}-{signal_id}" in filled_labels, row


RECOVERY_EVENTS = ("recovery_pass_done", "signal_never_sent", "signal_dequeued", "signal_reconciled", "signal_expired", "signal_interrupted",
                   "deal_recovered", "position_closed_while_away", "position_found_at_broker", "daemon_started")


def summarize(database: Path, stream: Stream, sim: Simulator, seconds: float, log: Path) -> dict[str, Any]:
    statuses = Counter(r["status"] for r in database_rows(database, "SELECT status FROM signals"))
    reasons = Counter(
        ("reconciled" if "reconciled" in (r["reason"] or "") else r["rule"] or "")
        for r in database_rows(database, "SELECT rule, reason FROM signals WHERE status IN ('executed', 'failed', 'rejected')")
    )
    journal = Counter(r["state"] for r in database_rows(database, "SELECT state FROM broker_requests"))
    events: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                event = json.loads(line).get("event")
                if event in RECOVERY_EVENTS:
                    events[event] += 1
    return {
        "rounds": ROUNDS,
        "seconds": round(seconds, 1),
        "alerts_sent": stream.sent,
        "acknowledged": len(stream.acknowledged),
        "statuses": dict(statuses),
        "outcomes": dict(reasons),
        "journal": dict(journal),
        "log_events": dict(events),
        "orders_at_broker": sum(sent_per_label(sim).values()),
        "deals": len(sim.deals()),
        "open_positions": len(sim.positions()),
    }
