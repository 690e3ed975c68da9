"""The five benchmarks of issue 8, each measuring its own baseline in the same run.

1. alert → order on the wire, next to the floor; 2. alert → HTTP answer (same runs);
3. sustained ingest next to hello-world; 4. a burst of orders against the broker's 50/s;
5. footprint. Each returns table rows; ``__main__`` prints them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import (
    UNPACED,
    Broker,
    Load,
    Spread,
    Subject,
    buy,
    closed_loop,
    open_loop,
    settled,
    unknown_symbol,
    wait_for_orders,
)

HEARTBEAT = 51  # ProtoHeartbeatEvent's payload type: not counted by the server's limit
ISOLATED_RATE = 40  # alerts/s: under the broker's limit, 25 ms apart
PACED_WINDOW = 1.05  # the client's sliding window for 50 frames (protocol.Pacer's margin)


@dataclass
class Settings:
    alerts: int = 1000
    loads: tuple[int, ...] = (1, 10, 50, 200)
    isolated_alerts: int = 400  # open loop at ISOLATED_RATE
    ingest_seconds: float = 5.0
    ingest_clients: int = 32
    ingest_rounds: int = 2
    burst: int = 500
    footprint_accepted: int = 10_000  # traded alerts (each costs more than the last: see footprint)
    footprint_signals: int = 100_000  # stored signals in all (the rest: unknown symbol, 422)
    starts: int = 3
    fresh_daemons: bool = True  # a new daemon per load in 1 and 2 (see _fresh_daemons)
    loop: str = "asyncio"
    quick: bool = False

    @classmethod
    def quick_settings(cls, loop: str = "asyncio") -> Settings:
        return cls(alerts=30, isolated_alerts=10, ingest_seconds=0.3, ingest_rounds=1, burst=60,
                   footprint_accepted=50, footprint_signals=100, starts=1, fresh_daemons=False, loop=loop,
                   quick=True)


@dataclass
class Rig:
    """The subjects, each with its own simulator (its own account: the simulator sends every
    session of an account every execution, so a shared account would make idle subjects work)."""

    settings: Settings
    workroot: Path
    subjects: dict[str, Subject] = field(default_factory=dict)

    async def subject(self, name: str, kind: str, *, paced: bool = False, **spec: Any) -> Subject:
        if name not in self.subjects:
            self.subjects[name] = await self.start_subject(name, kind, paced=paced, **spec)
        return self.subjects[name]

    async def start_subject(self, name: str, kind: str, *, paced: bool = False, **spec: Any) -> Subject:
        full = {"kind": kind, "loop": self.settings.loop, **spec}
        broker = None
        if kind != "hello":
            broker = await Broker.start(self.workroot, paced=paced)
            full["sim"] = broker.spec
        if kind == "daemon" and not paced:
            full["requests_per_second"] = UNPACED
        subject = await Subject.start(name, full, self.workroot)
        subject.broker, subject.paced = broker, paced
        return subject

    async def retire(self, subject: Subject) -> None:
        await subject.stop()
        if subject.broker is not None:
            await subject.broker.stop()
        self.subjects = {k: v for k, v in self.subjects.items() if v is not subject}

    async def stop(self) -> None:
        await asyncio.gather(*(self.retire(s) for s in list(self.subjects.values())))


# -- 1 and 2: latency -----------------------------------------------------------------------


@dataclass
class LatencyRow:
    load: str
    subject: str
    sent: int
    answered_2xx: int
    on_wire: int
    wire: Spread
    answer: Spread
    cpu_ms_per_alert: float
    outcome: str  # how the daemon's signals ended (paced runs: some never left the pacer)


async def _measure(rig: Rig, subject: Subject, load_name: str, run: Any, settle: float) -> LatencyRow:
    broker = subject.broker
    assert broker is not None
    if subject.paced and not rig.settings.quick:
        await asyncio.sleep(1.1)  # the pacer's window empty: earlier runs' orders do not count
    cpu0 = subject.cpu_s()
    load: Load = await run(subject)
    cpu = subject.cpu_s() - cpu0
    arrived = await wait_for_orders(broker, subject, load, settle)
    wire, answer = [], []
    for s in load.samples:
        if s.status:
            answer.append(s.answered - s.sent)
        key = s.signal_key(subject.key_prefix)
        if key in arrived:
            wire.append(arrived[key] - s.sent)
    outcome = ""
    if subject.is_daemon:
        await settled(subject, settle)
        ids = [i for i in (s.signal_id for s in load.samples) if i is not None]
        outcome = _outcomes(subject, ids)
    ok = sum(1 for s in load.samples if 200 <= s.status < 300)
    return LatencyRow(load_name, subject.name, len(load.samples), ok, len(wire), Spread.of(wire), Spread.of(answer),
                      cpu * 1000 / max(1, len(load.samples)), outcome)


def _outcomes(subject: Subject, ids: list[int]) -> str:
    if not ids:
        return ""
    rows = subject.db_query(
        "SELECT status, COALESCE(reason, ''), COUNT(*) FROM signals WHERE id BETWEEN ? AND ? GROUP BY 1, 2",
        (min(ids), max(ids)),
    )
    parts = []
    for status, reason, count in sorted(rows, key=lambda r: -r[2]):
        short = "rate limit: never sent" if "not sent in time" in reason else reason[:40]
        parts.append(f"{count} {status}" + (f" ({short})" if short else ""))
    return ", ".join(parts)


def load_name(concurrency: int) -> str:
    return "sequential" if concurrency == 1 else f"{concurrency} concurrent"


async def _fresh_daemons(rig: Rig) -> tuple[Subject, Subject]:
    """An unpaced and a paced daemon with empty databases, warmed up (quotes subscribed).

    Fresh for every load: the guard's day statistics read every deal of the trading day on each
    entry, so a daemon's cost per alert grows with the alerts it already traded today (see 5);
    every row then starts from the same empty day."""
    fast, paced = await asyncio.gather(
        rig.start_subject("daemon, unpaced", "daemon"),
        rig.start_subject("daemon, paced 50/s", "daemon", paced=True),
    )
    for subject in (fast, paced):
        await closed_loop(subject, total=20, concurrency=1)
    await settled(paced, 30)
    return fast, paced


async def latency(rig: Rig) -> list[LatencyRow]:
    s = rig.settings
    floor = await rig.subject("floor", "floor")
    await closed_loop(floor, total=20, concurrency=1)
    rows: list[LatencyRow] = []
    fast, paced = await _fresh_daemons(rig)
    for i, concurrency in enumerate(s.loads):
        name = load_name(concurrency)

        async def run(subject: Subject, c: int = concurrency) -> Load:
            return await closed_loop(subject, total=s.alerts, concurrency=c)

        if i and s.fresh_daemons:
            await asyncio.gather(rig.retire(fast), rig.retire(paced))
            fast, paced = await _fresh_daemons(rig)
        pair = [floor, fast] if i % 2 == 0 else [fast, floor]  # alternate who goes first
        measured = {}
        for subject in pair:
            measured[subject.name] = await _measure(rig, subject, name, run, 10)
        rows += [measured[floor.name], measured[fast.name]]
        rows.append(await _measure(rig, paced, name, run, 40))

    # Alerts one at a time with room between them, as a trading bot mostly sees them: each
    # finds the process idle (no trailing writes of the previous one; cold wake-ups instead).
    async def spaced(subject: Subject) -> Load:
        return await open_loop(subject, total=s.isolated_alerts, rate=ISOLATED_RATE)

    name = f"isolated ({ISOLATED_RATE}/s)"
    if s.fresh_daemons:
        await asyncio.gather(rig.retire(fast), rig.retire(paced))
        fast, paced = await _fresh_daemons(rig)
    rows.append(await _measure(rig, floor, name, spaced, 10))
    rows.append(await _measure(rig, fast, name, spaced, 10))
    rows.append(await _measure(rig, paced, name, spaced, 40))
    await asyncio.gather(rig.retire(fast), rig.retire(paced))
    return rows


# -- 3: sustained ingest --------------------------------------------------------------------


@dataclass
class IngestRow:
    subject: str
    expected: int
    answers: int
    seconds: float
    unexpected: dict[int, int]
    exceptions: int
    cpu_ms_per_answer: float

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0


async def ingest(rig: Rig) -> list[IngestRow]:
    s = rig.settings
    await asyncio.gather(rig.subject("hello", "hello"), rig.subject("daemon, kill switch", "daemon", kill_switch=True))
    cases = [
        ("hello world (bare aiohttp)", await rig.subject("hello", "hello"), buy, 200),
        ("floor (insert + frame)", await rig.subject("floor", "floor"), buy, 202),
        ("daemon, broker path saturated (paced 50/s)", await rig.subject("daemon, paced 50/s", "daemon", paced=True),
         buy, 202),
        ("daemon, guard rejects (kill switch)", await rig.subject("daemon, kill switch", "daemon", kill_switch=True),
         buy, 422),
        ("daemon, unknown symbol", await rig.subject("daemon, kill switch", "daemon", kill_switch=True),
         unknown_symbol, 422),
    ]
    totals = {name: IngestRow(name, status, 0, 0.0, {}, 0, 0.0) for name, _, _, status in cases}
    cpu: dict[str, float] = {name: 0.0 for name, *_ in cases}
    for _ in range(s.ingest_rounds):  # rounds interleave the subjects: background load hits all alike
        for name, subject, body, status in cases:
            cpu0 = subject.cpu_s()
            load = await closed_loop(subject, total=None, concurrency=s.ingest_clients, body=body,
                                     seconds=s.ingest_seconds)
            cpu[name] += subject.cpu_s() - cpu0
            row = totals[name]
            row.seconds += load.ended - load.started
            for code, count in load.statuses().items():
                if code == status:
                    row.answers += count
                elif code == 0:
                    row.exceptions += count
                else:
                    row.unexpected[code] = row.unexpected.get(code, 0) + count
    for name, row in totals.items():
        row.cpu_ms_per_answer = cpu[name] * 1000 / max(1, row.answers)
    return list(totals.values())


# -- 4: broker pacing -----------------------------------------------------------------------


@dataclass
class PacingResult:
    orders: int
    accepted: int
    on_wire: int
    rate_limit_errors: int
    windows: list[int]
    first_to_last_s: float
    burst_to_last_s: float
    max_in_any_second: int
    outcome: str

    @property
    def ideal_s(self) -> float:
        return self.orders / 50

    @property
    def pacer_bound_s(self) -> float:
        """First to last order when every window of PACED_WINDOW (1.05 s) carries exactly 50."""
        return (-(-self.orders // 50) - 1) * PACED_WINDOW


async def pacing(rig: Rig) -> PacingResult:
    n = rig.settings.burst
    daemon = await rig.subject("daemon, paced 50/s", "daemon", paced=True)
    broker = daemon.broker
    assert broker is not None
    await closed_loop(daemon, total=5, concurrency=1)  # quotes subscribed
    await settled(daemon, 60)
    await asyncio.sleep(1.1)  # nothing of earlier runs still queued or in the pacer's window
    start_log = len(broker.log)
    load = await closed_loop(daemon, total=n, concurrency=50)
    arrived = await wait_for_orders(broker, daemon, load, 60)
    times = sorted(arrived.values())
    ids = [i for i in (s.signal_id for s in load.samples) if i is not None]
    errors = daemon.db_query(
        "SELECT COUNT(*) FROM orders WHERE signal_id BETWEEN ? AND ? AND error_code = 'REQUEST_FREQUENCY_EXCEEDED'",
        (min(ids), max(ids)),
    )[0][0] if ids else 0
    windows = []
    if times:
        t = times[0]
        while t + 1.0 <= times[-1]:
            windows.append(sum(1 for x in times if t <= x < t + 1.0))
            t += 1.0
    requests = sorted(w for _, ptype, w in broker.log[start_log:] if ptype != HEARTBEAT)
    busiest, j = 0, 0
    for i, w in enumerate(requests):
        while requests[j] <= w - 1.0:
            j += 1
        busiest = max(busiest, i - j + 1)
    return PacingResult(
        orders=n,
        accepted=len(ids),
        on_wire=len(times),
        rate_limit_errors=errors,
        windows=windows,
        first_to_last_s=times[-1] - times[0] if times else float("nan"),
        burst_to_last_s=times[-1] - load.started if times else float("nan"),
        max_in_any_second=busiest,
        outcome=_outcomes(daemon, ids),
    )


# -- 5: footprint ---------------------------------------------------------------------------


@dataclass
class Phase:
    """A stretch of the footprint run: alerts of one kind, and what they cost."""

    kind: str  # "accepted" (traded) or "stored" (unknown symbol: stored, answered 422)
    signals_before: int
    signals_after: int
    cpu_ms_per_alert: float
    alerts_per_s: float
    rss_kib: int  # after it, the trade log caught up
    ledger_behind: int = 0  # fills not yet logged when the signals had settled
    ledger_catch_up_s: float = 0.0


@dataclass
class Footprint:
    spawn_to_ready_s: list[float]
    start_to_ready_s: list[float]
    rss_idle_kib: int
    phases: list[Phase]
    bytes_per_10k_accepted: float
    bytes_per_10k_stored: float
    bytes_per_10k_guard_rejected: float
    guard_rejected_signals: int


async def footprint(rig: Rig) -> Footprint:
    """Start-to-ready, then one daemon through ``footprint_accepted`` traded alerts in five
    steps (CPU per alert as the day's deals accumulate), then unknown-symbol alerts (parsed,
    stored durably, answered 422) up to ``footprint_signals`` stored signals."""
    s = rig.settings
    guard_per_10k, guard_count = float("nan"), 0
    rejected = rig.subjects.get("daemon, kill switch")
    if rejected is not None:  # ingest stored its guard-rejected signals
        guard_count = rejected.db_query("SELECT COUNT(*) FROM signals")[0][0]
        guard_per_10k = _logical_size(rejected) / max(1, guard_count) * 10_000
    await rig.stop()  # nothing else running from here on
    spawn, start = [], []
    subject: Subject | None = None
    for i in range(s.starts):
        subject = await rig.start_subject(f"daemon start {i}", "daemon")
        spawn.append(subject.spawn_to_ready_s)
        start.append(float(subject.ready["start_to_ready_s"]))
        if i < s.starts - 1:
            await rig.retire(subject)
    assert subject is not None
    rig.subjects[subject.name] = subject
    await asyncio.sleep(1.0)
    idle = subject.rss_kib()
    phases: list[Phase] = []
    step = max(1, s.footprint_accepted // 5)
    for _ in range(5):
        phases.append(await _phase(subject, "accepted", step, buy))
    accepted_size, accepted = _logical_size(subject), phases[-1].signals_after
    rest = max(0, s.footprint_signals - accepted)
    for _ in range(5 if rest else 0):
        phases.append(await _phase(subject, "stored", rest // 5, unknown_symbol))
    stored = phases[-1].signals_after - accepted
    stored_per_10k = (_logical_size(subject) - accepted_size) / max(1, stored) * 10_000 if stored else float("nan")
    await rig.retire(subject)
    return Footprint(spawn, start, idle, phases, accepted_size / max(1, accepted) * 10_000, stored_per_10k,
                     guard_per_10k, guard_count)


async def _phase(subject: Subject, kind: str, alerts: int, body: Any) -> Phase:
    before = subject.db_query("SELECT COUNT(*) FROM signals")[0][0]
    cpu0 = subject.cpu_s()
    load = await closed_loop(subject, total=alerts, concurrency=10, body=body)
    cpu = subject.cpu_s() - cpu0
    await settled(subject, 120)
    behind, catch_up = await _ledger_catch_up(subject) if kind == "accepted" else (0, 0.0)
    after = subject.db_query("SELECT COUNT(*) FROM signals")[0][0]
    return Phase(kind, before, after, cpu * 1000 / max(1, alerts), alerts / max(1e-9, load.ended - load.started),
                 subject.rss_kib(), behind, catch_up)


def _logical_size(subject: Subject) -> int:
    """The database's size as its readers see it (WAL frames included, nothing checkpointed)."""
    page_count = subject.db_query("PRAGMA page_count")[0][0]
    page_size = subject.db_query("PRAGMA page_size")[0][0]
    return int(page_count) * int(page_size)


async def _ledger_catch_up(subject: Subject, timeout: float = 300) -> tuple[int, float]:
    """Fills the trade log had not yet written when the signals settled, and the seconds it
    took to write them (every executed signal is one deal on the netted account)."""
    def lag() -> int:
        return int(subject.db_query("SELECT (SELECT COUNT(*) FROM signals WHERE status = 'executed') "
                                    "- (SELECT COUNT(*) FROM deals)")[0][0])

    behind, t0 = lag(), time.monotonic()
    while lag() > 0 and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.1)
    return behind, time.monotonic() - t0


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (of {len(values)})"


