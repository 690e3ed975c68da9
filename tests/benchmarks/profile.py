"""``python -m tests.benchmarks --profile DIR``: where the alert-to-order path spends its time.

1. The daemon (unpaced) under sequential alerts, sampled by py-spy from outside (1 kHz, every
   thread): CPU per alert by thread, by library (the leaf-most frame that names one), and the
   inclusive cost of the path's own functions, in µs per alert.
2. The same under pyinstrument (``DIR/pyinstrument.txt`` / ``.html``), for reading by eye.
3. Unit costs of the steps on the path, timed in this process on real objects (an in-process
   daemon against an in-process simulator), in µs per call; then the event-loop thread's CPU
   per accepted alert (``engine.receive`` alone, the whole webhook, a refused request).
4. uvloop: the daemon on uvloop beside one on asyncio, interleaved, and whether it trades.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.benchmarks.__main__ import fmt, table
from tests.benchmarks.harness import (
    UNPACED,
    Broker,
    Spread,
    Subject,
    buy,
    closed_loop,
    settled,
    wait_for_orders,
)
from tests.benchmarks.suite import Settings

RATE = 1000  # py-spy samples per second
#: Library of a frame, by the file it runs in; the leaf-most frame that matches names the sample.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("structlog/", "logging (structlog, JSON render, write)"),
    ("protobuf/", "protobuf (pure Python)"),
    ("pipsync_lite/protos.py", "protobuf (pure Python)"),
    ("aiosqlite/", "aiosqlite (main-thread side)"),
    ("OpenSSL/", "TLS and socket I/O"),
    ("twisted/protocols/tls.py", "TLS and socket I/O"),
    ("untilConcludes", "TLS and socket I/O"),
    ("twisted/", "Twisted reactor and framing"),
    ("aiohttp/", "aiohttp (HTTP parse, response)"),
    ("multidict", "aiohttp (HTTP parse, response)"),
    ("yarl/", "aiohttp (HTTP parse, response)"),
    ("json/", "json"),
    ("pydantic", "pydantic (Config.version dump)"),
    ("dataclasses.py", "dataclasses.replace"),
    ("decimal", "decimal"),
    ("selectors.py", "epoll wait (idle)"),
    ("pipsync_lite/", "pipsync_lite (own code)"),
    ("asyncio/", "asyncio (tasks, futures, loop)"),
)
#: The path's own functions, inclusive cost each.
STEPS = (
    "webhook (pipsync_lite/web.py)",
    "Engine.receive (pipsync_lite/engine.py)",
    "parse_signal (pipsync_lite/signals.py)",
    "Engine._decide (pipsync_lite/engine.py)",
    "Engine._duplicate_of (pipsync_lite/engine.py)",
    "MarketReader.market (pipsync_lite/market.py)",
    "Engine._view (pipsync_lite/engine.py)",
    "LossBook.stats (pipsync_lite/losses.py)",
    "LossBook._totals (pipsync_lite/losses.py)",
    "FloatingPnL.net (pipsync_lite/floating.py)",
    "judge_entry (pipsync_lite/decision.py)",
    "Config.version (pipsync_lite/config.py)",
    "Engine._redacted_fields (pipsync_lite/engine.py)",
    "Store.insert_signal (pipsync_lite/store.py)",
    "EventBus.emit (pipsync_lite/events.py)",
    "answer (pipsync_lite/web.py)",
    "Engine._execute (pipsync_lite/engine.py)",
    "CTraderClient.place_order (pipsync_lite/ctrader/client.py)",
    "new_order_request (pipsync_lite/ctrader/translate.py)",
    "encode (pipsync_lite/protos.py)",
    "Connection.request (pipsync_lite/ctrader/connection.py)",
    "FileDescriptor.doWrite (twisted/internet/abstract.py)",
    "Connection.frame_received (pipsync_lite/ctrader/connection.py)",
    "decode (pipsync_lite/protos.py)",
    "Session._on_message (pipsync_lite/ctrader/session.py)",
    "CTraderClient._await_order (pipsync_lite/ctrader/client.py)",
    "Store.insert_order (pipsync_lite/store.py)",
    "Store.set_signal_status (pipsync_lite/store.py)",
    "Ledger._record (pipsync_lite/ledger.py)",
    "_make_filtering_bound_logger.<locals>.make_method.<locals>.meth (structlog/_native.py)",
    "AsyncioSelectorReactor._readOrWrite (twisted/internet/asyncioreactor.py)",
    "RequestHandler.start (aiohttp/web_protocol.py)",
)
_LINE = re.compile(r":\d+\)$")


@dataclasses.dataclass
class Sampled:
    alerts: int
    seconds: float
    threads: dict[str, int]  # samples by thread
    libraries: collections.Counter[str]
    steps: collections.Counter[str]
    self_top: list[tuple[str, int]]


def aggregate(raw: Path, alerts: int, seconds: float) -> Sampled:
    threads: collections.Counter[str] = collections.Counter()
    libraries: collections.Counter[str] = collections.Counter()
    steps: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        head, *frames = stack.split(";")
        main = "MainThread" in head
        thread = "main thread (event loop)" if main else "other threads (aiosqlite's worker)"
        threads[thread] += n
        frames = [_LINE.sub(")", f) for f in frames]
        if not main:
            leaf = frames[-1] if frames else ""
            own[f"[worker] {leaf}"] += n
            continue
        for frame in reversed(frames):
            library = next((name for pattern, name in LIBRARIES if pattern in frame), None)
            if library:
                libraries[library] += n
                break
        else:
            libraries["other"] += n
        for step in set(frames) & set(STEPS):
            steps[step] += n
        own[frames[-1] if frames else "?"] += n
    return Sampled(alerts, seconds, dict(threads), libraries, steps, own.most_common(25))


def per_alert_us(samples: int, alerts: int) -> float:
    return samples / RATE / max(1, alerts) * 1e6


async def py_spy(subject: Subject, workdir: Path, alerts: int) -> Sampled:
    """Sample the subject (only the thread holding the GIL: Python on CPU) over ``alerts``
    sequential alerts; py-spy writes its samples when interrupted."""
    raw = workdir / "pyspy-raw.txt"
    spy = await asyncio.create_subprocess_exec(
        _py_spy(), "record", "--pid", str(subject.process.pid), "--rate", str(RATE),
        "--format", "raw", "--threads", "--gil", "--nonblocking", "--duration", "3600", "-o", str(raw),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1.0)  # py-spy attached; idle samples are not recorded
    load = await closed_loop(subject, total=alerts, concurrency=1)
    spy.send_signal(signal.SIGINT)
    await spy.wait()
    return aggregate(raw, len(load.samples), load.ended - load.started)


def _py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"  # the venv's, when its bin is not on PATH
    return str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread: the loop's (the process's own id) and the rest."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {"main": 0.0, "others": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        found["main" if task.name == str(pid) else "others"] += cpu
    return found


async def sequential_costs(subject: Subject, broker: Broker, alerts: int) -> tuple[dict[str, float], Spread]:
    before = thread_cpu(subject.process.pid)
    load = await closed_loop(subject, total=alerts, concurrency=1)
    after = thread_cpu(subject.process.pid)
    arrived = await wait_for_orders(broker, subject, load, 10)
    wire = [arrived[k] - s.sent for s in load.samples if (k := s.signal_key(subject.key_prefix)) in arrived]
    return {k: (after[k] - before[k]) * 1e3 / alerts for k in before}, Spread.of(wire)


# -- unit costs, in process -----------------------------------------------------------------


def per_call(fn: Callable[[], Any], n: int = 2000) -> float:
    """Best of 5 runs, µs per call."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


async def per_await(fn: Callable[[], Awaitable[Any]], n: int = 300) -> float:
    """Median of 3 runs, µs per awaited call."""
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            await fn()
        runs.append((time.perf_counter() - t0) / n)
    return sorted(runs)[1] * 1e6


async def unit_costs(workdir: Path) -> list[tuple[str, float, str]]:
    import structlog

    from pipsync_lite import logs, protos
    from pipsync_lite.app import Daemon
    from pipsync_lite.cli import demo_config
    from pipsync_lite.ctrader import translate
    from pipsync_lite.ctrader.bridge import install_reactor
    from pipsync_lite.decision import Market, context_json, judge_entry
    from pipsync_lite.dialects import read_alert
    from pipsync_lite.engine import Outcome, utcnow
    from pipsync_lite.planner import plan_buy_sell, plan_entry
    from pipsync_lite.risk import AccountView, Proposal, evaluate
    from pipsync_lite.signals import parse_signal
    from pipsync_lite.simulator import Simulator
    from pipsync_lite.sizing import size_entry
    from pipsync_lite.store import SignalRecord
    from pipsync_lite.symbols import resolve
    from pipsync_lite.web import answer
    from tests.simulator.wire import WireClient, new_order, trade

    install_reactor(asyncio.get_running_loop())
    log_file = open(workdir / "unit.log", "a", encoding="utf-8")  # noqa: SIM115
    sim = Simulator(seed=3, cert_dir=workdir / "unit-tls", tick_interval=None, account_type="netted",
                    balance=Decimal(1000000000))
    await sim.start()
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    config = demo_config(sim, workdir, 0)
    logs.configure("info", "json", config.secrets(), stream=log_file)
    daemon = Daemon(config)
    await daemon.start()
    try:
        assert daemon.broker is not None and daemon.engine is not None
        await daemon.broker.wait_ready(15)
        broker, engine = daemon.broker, daemon.engine
        body = buy(0)
        now = utcnow()
        signal = parse_signal(body, now)
        symbol = broker.symbol("EURUSD")
        assert symbol is not None
        await broker.subscribe_quotes({symbol.symbol_id})
        await sim.wait_for(lambda: broker.quote(symbol.symbol_id) is not None)
        quote = broker.quote(symbol.symbol_id)
        plan = plan_entry(signal, symbol, quote, Decimal("0.01"), label="")
        request = dataclasses.replace(plan.request, label="psl-abcdef-123456", client_order_id="psl-abcdef-123456")
        message = translate.new_order_request(request, config.ctrader.account_id, symbol)
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        fills = [m for m in await trade(client, new_order(sim, "EURUSD", "BUY", 100_000))
                 if m.DESCRIPTOR.name == "ProtoOAExecutionEvent"]
        filled = protos.encode(fills[-1], "c123")
        await client.close()
        record = SignalRecord(received_at=now, raw_body=body.decode(), status="received", config_version="x")
        parsed = engine._redacted_fields(signal)
        log = structlog.get_logger("pipsync_lite.engine")
        limits = config.risk.for_symbol(symbol.name)
        proposal = Proposal(signal, symbol.name, Decimal("0.01"), has_stop_loss=False, info=symbol, quote=quote)
        view = AccountView(broker.snapshot())
        market = Market(symbol, quote, Decimal(1000000), "USD", Decimal(1))
        context = context_json(market, view)
        redactor = engine._redactor
        costs = [
            ("Config.version (recorded with every decision)", per_call(lambda: config.version, 500), "engine.receive"),
            ("sha256 of the body (dedupe key)", per_call(lambda: hashlib.sha256(body.strip()).hexdigest()),
             "engine.receive"),
            ("Redactor.body (secrets masked in the stored body)", per_call(lambda: redactor.body(body)), "engine.receive"),
            ("read_alert (JSON dialect → RawAlert)", per_call(lambda: read_alert(body)), "parse_signal"),
            ("parse_signal (JSON body → Signal)", per_call(lambda: parse_signal(body, now)), "engine.receive"),
            ("_describe + redaction of the parsed fields", per_call(lambda: engine._redacted_fields(signal)),
             "engine.receive"),
            ("_with_signal (the record with the parsed signal)", per_call(lambda: engine._with_signal(record, signal)),
             "engine.receive"),
            ("json.dumps of the parsed fields", per_call(lambda: json.dumps(parsed, default=str)), "store.insert_signal"),
            ("dataclasses.replace(SignalRecord)",
             per_call(lambda: dataclasses.replace(record, status="accepted", symbol="EURUSD")), "engine.receive"),
            ("symbols.resolve + risk.for_symbol", per_call(
                lambda: config.risk.for_symbol(resolve("EURUSD", config.symbols.map, broker.symbol,
                                                       broker.symbol_names).name)), "engine._decide"),
            ("broker.snapshot()", per_call(broker.snapshot), "engine._view, 1–2 per alert"),
            ("risk.evaluate, all 19 rules (entry, allowed)", per_call(lambda: evaluate(proposal, view, limits, now)),
             "judge_entry (in two halves)"),
            ("size_entry (alert lots)", per_call(lambda: size_entry(signal, symbol, limits, balance=Decimal(1000000),
                                                                  currency="USD", sl_pips=None, rate=Decimal(1))),
             "judge_entry"),
            ("plan_entry (market, no SL/TP)", per_call(lambda: plan_entry(signal, symbol, quote, Decimal("0.01"), "")),
             "judge_entry (probe)"),
            ("plan_buy_sell (market, netted, one position held)", per_call(
                lambda: plan_buy_sell(signal, symbol, quote, Decimal("0.01"), view.snapshot.positions, netted=True,
                                      flatten_first=False)), "judge_entry"),
            ("judge_entry (defaults, size, plan, guard)", per_call(lambda: judge_entry(signal, market, view, limits, now)),
             "engine._entry"),
            ("context_json (what the decision saw)", per_call(lambda: context_json(market, view)), "engine._entry"),
            ("json.dumps of that context", per_call(lambda: json.dumps(context, default=str)), "store.insert_signal"),
            ("one structlog info line (production JSON chain, to a file)",
             per_call(lambda: log.info("signal_accepted", signal_id=1, action="buy", symbol="EURUSD",
                                       lots=Decimal("0.01")), 1000), "6–8 lines per alert"),
            ("EventBus.emit (no subscribers)", per_call(lambda: daemon.events.emit("signal.received", signal_id=1,
                                                                                   status="accepted")),
             "engine.receive, 1–2 per alert"),
            ("translate.new_order_request (protobuf message build)",
             per_call(lambda: translate.new_order_request(request, 1, symbol)), "client.place_order"),
            ("protos.encode of the NewOrderReq (protobuf serialize ×2)", per_call(lambda: protos.encode(message, "m1")),
             "connection.request"),
            ("protos.decode of an ORDER_FILLED execution event", per_call(lambda: protos.decode(filled)),
             "connection.frame_received, 2 events per order"),
            ("translate.execution of that event", per_call(
                lambda: translate.execution(protos.decode(filled)[1], lambda _: 5)) - per_call(
                lambda: protos.decode(filled)), "session._on_message"),
            ("web.answer (Outcome → the 202 response)",
             per_call(lambda: answer(Outcome("accepted", 1, lots=Decimal("0.01")))), "webhook"),
        ]
        costs += await _decision_path(daemon, sim)
        store = daemon.store
        costs += [
            ("Store.insert_signal: aiosqlite, WAL, synchronous=FULL (fsync), awaited",
             await per_await(lambda: store.insert_signal(dataclasses.replace(record, parsed=parsed))),
             "1 per alert, under the decision lock"),
            ("aiosqlite round trip of SELECT 1 (thread hop, no disk)",
             await per_await(lambda: store.db.execute("SELECT 1")), "each awaited statement"),
        ]
        costs += await _sqlite_variants(workdir, record)
        return costs
    finally:
        await daemon.stop()
        await sim.stop()
        log_file.close()


async def _decision_path(daemon: Any, sim: Any, n: int = 300) -> list[tuple[str, float, str]]:
    """CPU of the event-loop thread per accepted alert (median), each alert executed before the
    next so that nothing else runs meanwhile: ``engine.receive`` alone, and the whole webhook
    over keep-alive HTTP in this process (the lean client's side included)."""
    from tests.benchmarks.harness import HttpConnection, post_request

    engine = daemon.engine
    path = f"/webhook/{daemon.config.server.webhook_token.get_secret_value()}"
    conn = await HttpConnection.open(daemon.port)

    async def receive() -> None:
        outcome = await engine.receive(buy(0), "127.0.0.1")
        assert outcome.kind == "accepted", outcome

    async def post() -> None:
        sample = await conn.send(post_request(daemon.port, path, buy(0)))
        assert sample.status == 202, sample.body

    async def wrong_token() -> None:
        sample = await conn.send(post_request(daemon.port, "/webhook/" + "x" * 24, buy(0)))
        assert sample.status == 404, sample.body

    async def cpu(fn: Callable[[], Awaitable[None]]) -> float:
        spent = []
        for i in range(30 + n):
            t0 = time.thread_time()
            await fn()
            if i >= 30:  # warm-up: first quote, caches, the day's first deals
                spent.append(time.thread_time() - t0)
            await engine.drain(10)
        return sorted(spent)[len(spent) // 2] * 1e6

    try:
        return [
            ("TOTAL engine.receive, accepted alert: loop-thread CPU per alert", await cpu(receive),
             "decide + store (main-thread side of SQLite)"),
            ("TOTAL POST /webhook, accepted alert: loop-thread CPU per alert", await cpu(post),
             "HTTP (both ends) + webhook + receive"),
            ("POST /webhook with a wrong token (404): loop-thread CPU per request", await cpu(wrong_token),
             "HTTP (both ends) + middlewares"),
        ]
    finally:
        conn.close()


async def _sqlite_variants(workdir: Path, record: Any) -> list[tuple[str, float, str]]:
    import aiosqlite

    found = []
    for sync in ("FULL", "NORMAL"):
        db = await aiosqlite.connect(workdir / f"unit-{sync}.db", isolation_level=None)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute(f"PRAGMA synchronous={sync}")
        await db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        cost = await per_await(lambda db=db: db.execute("INSERT INTO t (body) VALUES (?)", (record.raw_body,)))
        found.append((f"bare aiosqlite insert, WAL, synchronous={sync}", cost,
                      "fsync per commit" if sync == "FULL" else "no fsync: NOT durable, for scale only"))
        await db.close()
    direct = sqlite3.connect(workdir / "unit-direct.db", isolation_level=None)
    direct.execute("PRAGMA journal_mode=WAL")
    direct.execute("PRAGMA synchronous=FULL")
    direct.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
    found.append(("sqlite3 insert on the calling thread, WAL, FULL", per_call(
        lambda: direct.execute("INSERT INTO t (body) VALUES (?)", (record.raw_body,)), 300), "the fsync itself"))
    direct.execute("BEGIN")
    t0 = time.perf_counter()
    for _ in range(100):
        direct.execute("INSERT INTO t (body) VALUES (?)", (record.raw_body,))
    direct.execute("COMMIT")
    found.append(("…100 inserts in ONE transaction (group commit), per insert", (time.perf_counter() - t0) / 100 * 1e6,
                  "what batching the commits of concurrent alerts would cost"))
    direct.close()
    return found


# -- uvloop ---------------------------------------------------------------------------------


async def uvloop_check(workroot: Path, alerts: int) -> list[list[str]]:
    brokers = {loop: await Broker.start(workroot, paced=False) for loop in ("asyncio", "uvloop")}
    subjects = {
        loop: await Subject.start(f"daemon on {loop}", {"kind": "daemon", "sim": brokers[loop].spec, "loop": loop,
                                                        "requests_per_second": UNPACED}, workroot)
        for loop in ("asyncio", "uvloop")
    }
    rows = []
    try:
        for s in subjects.values():
            await closed_loop(s, total=20, concurrency=1)
        results: dict[str, list[tuple[dict[str, float], Spread]]] = {k: [] for k in subjects}
        for _ in range(3):
            for loop, s in subjects.items():
                results[loop].append(await sequential_costs(s, brokers[loop], alerts))
        for loop, s in subjects.items():
            await settled(s, 10)
            executed = s.db_query("SELECT COUNT(*) FROM signals WHERE status='executed'")[0][0]
            total = s.db_query("SELECT COUNT(*) FROM signals")[0][0]
            p50 = sorted(r[1].p50 for r in results[loop])[1]
            p99 = sorted(r[1].p99 for r in results[loop])[1]
            cpu = sorted(r[0]["main"] + r[0]["others"] for r in results[loop])[1]
            rows.append([loop, f"{executed}/{total} executed", fmt(p50, 2), fmt(p99, 2), fmt(cpu, 2)])
    finally:
        for s in subjects.values():
            await s.stop()
        for b in brokers.values():
            await b.stop()
    return rows


# -- the report -----------------------------------------------------------------------------


async def main(out: Path, settings: Settings) -> int:
    out.mkdir(parents=True, exist_ok=True)
    workroot = Path(tempfile.mkdtemp(prefix="pipsync-profile-"))
    alerts = 100 if settings.quick else 500
    broker = await Broker.start(workroot, paced=False)
    lines = [f"## Profile of the alert → order path (sequential alerts, unpaced), {time.strftime('%Y-%m-%d')}"]
    try:
        daemon = await Subject.start("daemon", {"kind": "daemon", "sim": broker.spec, "loop": settings.loop,
                                                "requests_per_second": UNPACED}, workroot)
        await closed_loop(daemon, total=50, concurrency=1)
        await settled(daemon, 10)
        sampled = await py_spy(daemon, out, alerts)
        lines += _sampled_tables(sampled, deals_before=50)
        cpu, wire = await sequential_costs(daemon, broker, alerts)
        lines += ["", f"Then {alerts} more (the day's deals {50 + alerts:,} → {50 + 2 * alerts:,}), CPU per alert "
                      f"from /proc: event-loop thread {fmt(cpu['main'], 2)} ms, other threads {fmt(cpu['others'], 2)} "
                      f"ms (aiosqlite's worker: statements, fsync); order on the wire p50 {fmt(wire.p50, 2)} ms"]
        await daemon.command("profile_start", "PROFILING")
        await closed_loop(daemon, total=alerts, concurrency=1)
        await daemon.command(f"profile_stop {out / 'pyinstrument'}", "PROFILED")
        await daemon.stop()
        lines += ["", f"pyinstrument: {out / 'pyinstrument.txt'} and .html"]
        costs = await unit_costs(workroot)
        lines += ["", "### Unit costs (in process, µs per call)", "",
                  table(["step", "µs", "where"], [[name, fmt(us, 1), where] for name, us, where in costs])]
        rows = await uvloop_check(workroot, 100 if settings.quick else 500)
        lines += ["", "### uvloop vs asyncio (daemon process, sequential, median of 3 interleaved runs)", "",
                  table(["loop", "signals", "wire p50 ms", "wire p99 ms", "CPU ms/alert"], rows)]
    finally:
        await broker.stop()
        shutil.rmtree(workroot, ignore_errors=True)
    report = "\n".join(lines) + "\n"
    (out / "profile.md").write_text(report)
    print(report)
    return 0


def _sampled_tables(s: Sampled, deals_before: int) -> list[str]:
    threads = [[k, fmt(per_alert_us(v, s.alerts), 0)] for k, v in sorted(s.threads.items())]
    libraries = [[k, fmt(per_alert_us(v, s.alerts), 0)] for k, v in s.libraries.most_common()]
    steps = [[k, fmt(per_alert_us(s.steps[k], s.alerts), 0)] for k in STEPS]
    top = [[k, fmt(per_alert_us(v, s.alerts), 0)] for k, v in s.self_top]
    return [
        "", f"### py-spy: {s.alerts} sequential alerts in {s.seconds:.1f} s, the day's deals {deals_before:,} → "
            f"{deals_before + s.alerts:,} (samples of the thread holding the GIL, µs per alert)", "",
        table(["thread", "µs/alert"], threads), "",
        "Event-loop thread, by library (leaf-most frame):", "", table(["library", "µs/alert"], libraries), "",
        "Event-loop thread, the path's steps (inclusive):", "", table(["function", "µs/alert"], steps), "",
        "Self time, top 25:", "", table(["function", "µs/alert"], top),
    ]

