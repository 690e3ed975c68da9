"""``python -m tests.benchmarks [--quick] [--loop uvloop] [--only 1,3] [--profile DIR]``: the table.

Run from the repository root. Prints Markdown tables (paste-able into the README); every
benchmark measures its baseline in the same run, so read the ratios first on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.benchmarks import suite
from tests.benchmarks.suite import (
    Footprint,
    IngestRow,
    LatencyRow,
    PacingResult,
    Rig,
    Settings,
)

NOTES = """\
Notes. Times are from the request written by the client to (1) the NewOrderReq frame read at the
broker end (a TLS tap in front of the simulator, in its own process) and (2) the HTTP answer
read; keep-alive connections, one alert per request; `N concurrent` = N clients each sending
its next alert when the last was answered ({alerts:,} alerts in all); `isolated` = alerts sent 25 ms
apart whatever the answers do (open loop), as a bot mostly sends them. The floor is a bare aiohttp
handler doing one durable SQLite insert (WAL, synchronous=FULL) then writing a pre-encoded order
frame on an authorized TLS socket. `daemon, unpaced` lifts the broker's 50 requests/s (client pacer
and simulator) to show the software path; `daemon, paced 50/s` is production: past 50 alerts/s
orders queue at the pacer (latency grows ~20 ms per queued order); how each run's signals ended
(executed, failed, unknown) is listed under table 1. CPU ms/alert is the subject process's user+system time per
alert, all threads: the least noisy number here."""


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def yes(ok: bool) -> str:
    return "met" if ok else "NOT met"


def latency_tables(rows: list[LatencyRow]) -> str:
    floors = {r.load: r for r in rows if r.subject == "floor"}
    wire, answer, outcomes = [], [], []
    for r in rows:
        floor = floors.get(r.load)
        ratio = r.wire.p50 / floor.wire.p50 if floor and r.subject != "floor" and floor.wire.n else float("nan")
        target = ""
        if r.subject != "floor" and r.wire.n:
            target = (f"p50 ≤ 1.5× floor: {yes(ratio <= 1.5) if floor else '-'}; "
                      f"p99 < 10 ms: {yes(r.wire.p99 < 10)}")
        wire.append([r.load, r.subject, r.sent, r.answered_2xx, r.on_wire, fmt(r.wire.p50), fmt(r.wire.p99),
                     fmt(r.wire.max), fmt(ratio, 2) if r.subject != "floor" else "1", fmt(r.cpu_ms_per_alert, 2),
                     target])
        a_target = f"p99 < 20 ms: {yes(r.answer.p99 < 20)}" if r.load == "200 concurrent" else ""
        answer.append([r.load, r.subject, r.answered_2xx, fmt(r.answer.p50), fmt(r.answer.p99), fmt(r.answer.max),
                       a_target])
        if r.outcome:
            outcomes.append(f"- {r.load}, {r.subject}: {r.outcome}")
    return "\n".join([
        "### 1. Alert → order on the wire (ms)",
        "",
        table(["load", "subject", "alerts", "2xx", "on wire", "p50", "p99", "max", "p50 ÷ floor", "CPU ms/alert",
               "targets"], wire),
        "",
        "How the daemon's signals ended:",
        *outcomes,
        "",
        "### 2. Alert → HTTP answer (ms)",
        "",
        table(["load", "subject", "2xx", "p50", "p99", "max", "target"], answer),
    ])


def ingest_table(rows: list[IngestRow], settings: Settings) -> str:
    hello = rows[0].rate or float("nan")
    out = []
    for r in rows:
        ratio = r.rate / hello
        errors = sum(r.unexpected.values()) + r.exceptions
        target = "" if r is rows[0] else f"≥ 0.5× hello: {yes(ratio >= 0.5)}; zero errors: {yes(errors == 0)}"
        unexpected = ", ".join(f"{n}×{code}" for code, n in sorted(r.unexpected.items())) or "0"
        out.append([r.subject, r.expected, r.answers, fmt(r.rate, 0), fmt(ratio, 2), fmt(r.cpu_ms_per_answer, 2),
                    unexpected, r.exceptions, target])
    return "\n".join([
        f"### 3. Sustained ingest ({settings.ingest_clients} clients, {settings.ingest_rounds} × "
        f"{settings.ingest_seconds:g} s per subject, interleaved)",
        "",
        table(["subject", "expected", "answers", "answers/s", "× hello", "CPU ms/answer", "unexpected", "exceptions",
               "target"], out),
    ])


def pacing_table(p: PacingResult) -> str:
    windows = p.windows
    w = (f"{min(windows)} / {fmt(sum(windows) / len(windows))} / {max(windows)} over {len(windows)} full windows"
         if windows else "- (under one second)")
    idle_free = bool(windows) and min(windows) >= 0.95 * 50 / suite.PACED_WINDOW
    rows = [
        ["orders in the burst (50 clients)", f"{p.orders} ({p.accepted} accepted)"],
        ["orders on the wire", p.on_wire],
        ["REQUEST_FREQUENCY_EXCEEDED answers", f"{p.rate_limit_errors} (target 0: {yes(p.rate_limit_errors == 0)})"],
        ["most requests in any 1 s at the server", f"{p.max_in_any_second} (limit 50)"],
        ["orders per 1 s window from the first: min / mean / max", f"{w} (no idling: {yes(idle_free)})"],
        ["first → last order on the wire", f"{fmt(p.first_to_last_s, 2)} s (pacer bound "
                                            f"{fmt(p.pacer_bound_s, 2)} s = windows of 50 per {suite.PACED_WINDOW} s)"],
        ["first alert sent → last order on the wire", f"{fmt(p.burst_to_last_s, 2)} s (ideal {fmt(p.ideal_s, 1)} s "
                                                       f"= {p.orders} / 50)"],
        ["how the signals ended", p.outcome],
    ]
    return "\n".join(["### 4. Broker pacing: a burst against the 50 requests/s limit", "",
                      table(["measure", "value"], rows)])


def footprint_table(f: Footprint) -> str:
    def mb(per_10k: float) -> str:
        return "-" if math.isnan(per_10k) else f"{per_10k / 1e6:.2f} MB"

    rows = [
        ["process start → ready (interpreter, imports, broker session)", suite.summary(f.spawn_to_ready_s)],
        ["Daemon.start() → broker ready", suite.summary(f.start_to_ready_s)],
        ["RSS idle (ready, no alert yet)", f"{f.rss_idle_kib / 1024:.1f} MiB"],
        ["database per 10k traded signals (signal, order, deal rows; logical size)", mb(f.bytes_per_10k_accepted)],
        ["database per 10k unknown-symbol signals (signal row)", mb(f.bytes_per_10k_stored)],
        [f"database per 10k guard-rejected signals (kill switch; {f.guard_rejected_signals:,} from 3)",
         mb(f.bytes_per_10k_guard_rejected)],
    ]
    phases = [
        [p.kind, f"{p.signals_before:,} → {p.signals_after:,}", fmt(p.alerts_per_s, 0), fmt(p.cpu_ms_per_alert, 2),
         f"{p.rss_kib / 1024:.1f}", f"{p.ledger_behind:,} ({p.ledger_catch_up_s:.1f} s)" if p.kind == "accepted" else "-"]
        for p in f.phases
    ]
    return "\n".join([
        "### 5. Footprint (daemon process)", "", table(["measure", "value"], rows), "",
        "One daemon, 10 clients: traded alerts first, then unknown-symbol alerts (parsed, stored, 422) up to "
        "the total. RSS is read once the trade log has caught up; 'trade log behind' = fills not yet "
        "written when the signals had settled (seconds to catch up).", "",
        table(["alerts", "signals stored", "alerts/s", "CPU ms/alert", "RSS MiB", "trade log behind"], phases),
    ])


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


async def run(settings: Settings, only: set[int]) -> str:
    workroot = Path(tempfile.mkdtemp(prefix="pipsync-bench-"))
    started = datetime.now(UTC)
    load_before = load_average()
    rig = Rig(settings, workroot)
    parts: dict[int, str] = {}
    try:  # pacing before ingest: ingest leaves the paced daemon a backlog of thousands of orders
        if only & {1, 2}:
            parts[1] = latency_tables(await suite.latency(rig))
        if 4 in only:
            parts[4] = pacing_table(await suite.pacing(rig))
        if 3 in only:
            parts[3] = ingest_table(await suite.ingest(rig), settings)
        if 5 in only:
            parts[5] = footprint_table(await suite.footprint(rig))
    finally:
        await rig.stop()
        shutil.rmtree(workroot, ignore_errors=True)
    head = (
        f"## pipsync-lite benchmarks{' (--quick: tiny counts, smoke only)' if settings.quick else ''}\n\n"
        f"{started:%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · loop: {settings.loop} · "
        f"{os.cpu_count()} cores · load average {load_before} at start, {load_average()} at the end · "
        f"{settings.alerts:,} alerts per load"
    )
    notes = NOTES.format(alerts=settings.alerts) if only & {1, 2} else ""
    return "\n\n".join([head, *(parts[k] for k in sorted(parts)), notes]).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: checks the suite runs (~15 s)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio", help="the subjects' event loop")
    parser.add_argument("--only", default="1,2,3,4,5", help="benchmarks to run, e.g. 1,2 (default: all)")
    parser.add_argument("--alerts", type=int, help="alerts per load in 1 and 2 (default 1000)")
    parser.add_argument("--signals", type=int, help="signals sent for the footprint (default 100000)")
    parser.add_argument("--profile", metavar="DIR", help="profile the alert path instead (see profile.py)")
    args = parser.parse_args(argv)
    settings = Settings.quick_settings(args.loop) if args.quick else Settings(loop=args.loop)
    if args.alerts:
        settings.alerts = args.alerts
    if args.signals:
        settings.footprint_signals = args.signals
    if args.profile:
        from tests.benchmarks import profile

        return asyncio.run(profile.main(Path(args.profile), settings))
    only = {int(x) for x in args.only.split(",") if x.strip()}
    sys.stdout.write(asyncio.run(run(settings, only)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
