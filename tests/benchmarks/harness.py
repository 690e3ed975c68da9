"""The measuring side: the simulator and the subject in child processes, a lean HTTP client.

Every time is ``time.monotonic()``, one clock for all processes: read here when a request is
written and when its answer has been read, and by the simulator's process when it decoded the
``ProtoOANewOrderReq``. The client speaks HTTP/1.1 on keep-alive connections straight from an
``asyncio.Protocol``, so that its own cost (tens of µs) stays small next to what is measured,
and it shares its loop with nothing else.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
UNPACED = 1_000_000  # requests/s for the daemon's pacer when the broker limit is lifted
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_TICKS = os.sysconf("SC_CLK_TCK")


# -- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (need not be sorted); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Spread:
    """Latencies in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values_s: Sequence[float]) -> Spread:
        ms = [v * 1000 for v in values_s]
        return cls(len(ms), percentile(ms, 50), percentile(ms, 99), max(ms) if ms else float("nan"))


# -- child processes ------------------------------------------------------------------------


class Child:
    """A child process speaking the benchmark's line protocol (``READY {json}``, then commands)."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, ready: dict[str, Any],
                 spawn_to_ready_s: float, workdir: Path) -> None:
        self.name = name
        self.process = process
        self.ready = ready
        self.spawn_to_ready_s = spawn_to_ready_s
        self.workdir = workdir

    @classmethod
    async def _spawn(cls, module: str, name: str, spec: dict[str, Any], workroot: Path) -> Any:
        workdir = Path(tempfile.mkdtemp(prefix=f"{name.split()[0]}-", dir=workroot))
        spec = {**spec, "workdir": str(workdir)}
        t0 = time.monotonic()
        with open(workdir / "stderr.txt", "wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"tests.benchmarks.{module}", json.dumps(spec),
                cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
                limit=1 << 28,
            )
        assert process.stdout is not None
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            if not line:
                err = (workdir / "stderr.txt").read_text()[-3000:]
                raise RuntimeError(f"{name} did not start:\n{err}")
            if line.startswith("READY "):
                return cls(name, process, json.loads(line[6:]), time.monotonic() - t0, workdir)

    async def command(self, line: str, expect: str = "", timeout: float = 60) -> str:
        """Send ``line``; return the first answer line starting with ``expect``."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        while True:
            answer = (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode()
            if not answer:
                raise RuntimeError(f"{self.name} exited during {line!r}")
            if answer.startswith(expect):
                return answer

    def cpu_s(self) -> float:
        """User + system CPU seconds the child used so far (all its threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


class Broker:
    """The simulator and the tap in front of it (``broker.py``), in two child processes."""

    def __init__(self, sim: Child, tap: Child) -> None:
        self.sim = sim
        self.tap = tap
        #: every request read by the tap, in order: (key, payload type, monotonic time)
        self.log: list[tuple[str, int, float]] = []
        #: NewOrderReq arrivals by key (``d<signal_id>``, ``f<n>``)
        self.orders: dict[str, float] = {}

    @classmethod
    async def start(cls, workroot: Path, *, paced: bool) -> Broker:
        sim = await Child._spawn("broker", "simulator", {"paced": paced}, workroot)
        tap = await Child._spawn("broker", "tap", {"tap": sim.ready}, workroot)
        return cls(sim, tap)

    @property
    def spec(self) -> dict[str, Any]:
        """What a client connects with: the tap's port and CA, the simulator's credentials."""
        return self.tap.ready

    async def collect(self) -> dict[str, float]:
        """Fetch new arrivals; returns every NewOrderReq arrival so far, by key."""
        for key, payload_type, when in json.loads(await self.tap.command("arrivals", "[")):
            self.log.append((key, payload_type, when))
            if key:
                self.orders.setdefault(key, when)
        await self.sim.command("arrivals", "[")
        return self.orders

    async def stop(self) -> None:
        for child in (self.tap, self.sim):
            await child.stop()


class Subject(Child):
    """The daemon, the floor or hello-world (``subject.py``), and the broker it trades with."""

    broker: Broker | None = None
    paced: bool = False

    @classmethod
    async def start(cls, name: str, spec: dict[str, Any], workroot: Path) -> Subject:
        subject: Subject = await cls._spawn("subject", name, spec, workroot)
        return subject

    @property
    def is_daemon(self) -> bool:
        return "instance" in self.ready

    @property
    def key_prefix(self) -> str:
        """How the tap names this subject's orders: ``d<db instance>-<signal_id>`` or ``f<row>``."""
        return f"d{self.ready['instance']}-" if self.is_daemon else "f"

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def path(self) -> str:
        return str(self.ready["path"])

    def db_query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read the subject's database (WAL lets a second reader in while it writes)."""
        connection = sqlite3.connect(f"file:{self.ready['db']}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, tuple(args)).fetchall()
        finally:
            connection.close()


# -- the HTTP client ------------------------------------------------------------------------


@dataclass(slots=True)
class Sample:
    sent: float
    answered: float = 0.0
    status: int = 0  # 0: no answer (the exception is in ``error``)
    body: bytes = b""
    error: str = ""

    @property
    def signal_id(self) -> int | None:
        """The id a 202 answer gave the alert."""
        return int(json.loads(self.body)["signal_id"]) if self.status == 202 else None

    def signal_key(self, prefix: str) -> str | None:
        signal_id = self.signal_id
        return None if signal_id is None else f"{prefix}{signal_id}"


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self._transport: asyncio.Transport | None = None

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(cls, "127.0.0.1", port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None:
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        match = _CONTENT_LENGTH.search(self._buffer, 0, end + 2)
        length = int(match.group(1)) if match else 0
        if len(self._buffer) < end + 4 + length:
            return
        status = int(self._buffer[9:12])
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        waiter, self._waiter = self._waiter, None
        if not waiter.done():
            waiter.set_result((status, body, time.monotonic()))

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def send(self, request: bytes) -> Sample:
        if self._transport is None:
            raise ConnectionError("closed")
        self._waiter = asyncio.get_running_loop().create_future()
        sample = Sample(time.monotonic())
        self._transport.write(request)
        sample.status, sample.body, sample.answered = await self._waiter
        return sample

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def post_request(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


Bodies = Callable[[int], bytes]


# Every body differs, as a TradingView alert carrying {{timenow}} does: the daemon answers the
# same body again within risk.dedupe_window_seconds as a duplicate (200) and sends nothing.
_bodies = itertools.count()


def buy(i: int) -> bytes:
    return b'{"action": "buy", "symbol": "EURUSD", "lots": 0.01, "comment": "bench %d"}' % next(_bodies)


def unknown_symbol(i: int) -> bytes:
    return b'{"action": "buy", "symbol": "XAUEUR7", "lots": 0.01, "comment": "bench %d"}' % next(_bodies)


# -- load shapes ----------------------------------------------------------------------------


@dataclass
class Load:
    """Samples of one run, in the order the requests were numbered."""

    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def errors(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 0]

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for s in self.samples:
            counts[s.status] = counts.get(s.status, 0) + 1
        return counts


async def _connections(port: int, n: int) -> list[HttpConnection]:
    return list(await asyncio.gather(*(HttpConnection.open(port) for _ in range(n))))


async def closed_loop(
    subject: Subject, *, total: int | None, concurrency: int, body: Bodies = buy, seconds: float | None = None
) -> Load:
    """``concurrency`` clients, each sending its next alert as soon as the last was answered,
    until ``total`` alerts were sent or ``seconds`` have passed."""
    conns = await _connections(subject.port, concurrency)
    load = Load()
    numbers = itertools.count()
    deadline = None if seconds is None else time.monotonic() + seconds
    port, path = subject.port, subject.path

    async def client(conn: HttpConnection) -> None:
        while True:
            i = next(numbers)
            if (total is not None and i >= total) or (deadline is not None and time.monotonic() >= deadline):
                return
            request = post_request(port, path, body(i))
            try:
                load.samples.append(await conn.send(request))
            except ConnectionError as exc:
                load.samples.append(Sample(time.monotonic(), error=str(exc)))
                return

    load.started = time.monotonic()
    await asyncio.gather(*(client(c) for c in conns))
    load.ended = time.monotonic()
    for c in conns:
        c.close()
    load.samples.sort(key=lambda s: s.sent)
    return load


async def open_loop(subject: Subject, *, total: int, rate: float, body: Bodies = buy) -> Load:
    """Alerts sent on a fixed schedule (``rate`` per second) whatever the answers do."""
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for conn in await _connections(subject.port, 8):
        pool.put_nowait(conn)
    load = Load()
    loop = asyncio.get_running_loop()

    async def one(i: int) -> None:
        conn = await pool.get()
        try:
            load.samples.append(await conn.send(post_request(subject.port, subject.path, body(i))))
        except ConnectionError as exc:
            load.samples.append(Sample(time.monotonic(), error=str(exc)))
        pool.put_nowait(conn)

    load.started = time.monotonic()
    start = loop.time()
    tasks = []
    for i in range(total):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    load.ended = time.monotonic()
    while not pool.empty():
        pool.get_nowait().close()
    load.samples.sort(key=lambda s: s.sent)
    return load


async def wait_for_orders(broker: Broker, subject: Subject, load: Load, timeout: float) -> dict[str, float]:
    """Arrival time of each accepted alert's order, waiting until all arrived, the daemon
    settled every signal (sent, or failed unsent), or ``timeout``."""
    keys = {k for k in (s.signal_key(subject.key_prefix) for s in load.samples) if k}
    deadline = time.monotonic() + timeout
    while True:
        arrived = await broker.collect()
        if keys <= arrived.keys() or time.monotonic() > deadline:
            break
        if subject.is_daemon and not subject.db_query("SELECT 1 FROM signals WHERE status='accepted' LIMIT 1"):
            arrived = await broker.collect()
            break
        await asyncio.sleep(0.05)
    return {k: arrived[k] for k in keys if k in arrived}


async def settled(subject: Subject, timeout: float) -> bool:
    """Wait until the daemon finished executing every accepted signal; False on timeout."""
    deadline = time.monotonic() + timeout
    while subject.db_query("SELECT 1 FROM signals WHERE status='accepted' LIMIT 1"):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
