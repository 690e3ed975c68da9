"""The simulator, and the wire tap in front of it: the broker end of every benchmark.

``python -m tests.benchmarks.broker '<spec>'`` runs a ``Simulator``: a netted account with a
large balance (every buy adds to ONE position, so neither the simulator's margin check nor the
daemon's snapshot grows with the alerts), EURUSD quoted; ``paced: false`` lifts its 50
requests/s limit.

``python -m tests.benchmarks.broker '<spec with "tap">'`` runs the tap instead: a TLS server
that clients connect to as if it were the broker; it forwards every byte both ways to the
simulator and notes when each request frame was READ (``time.monotonic()``, one clock for all
processes). The simulator decodes and executes each order in pure-Python protobuf (about 1 ms):
past ~1,000 orders/s it falls behind, and an arrival time taken there would measure its backlog,
not the subject. The tap only splits frames, so it keeps up with any subject here.

Both print ``READY {json}``, then read commands on stdin; the tap answers ``arrivals`` with one
JSON line: the requests read since the last call, ``[key, payload type, monotonic]``, where key
is ``d<instance>-<signal_id>`` for the daemon's orders (from their label), ``f<n>`` for the floor's (its
clientMsgId), else ``""``.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import re
import signal
import ssl
import struct
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

UNPACED = 1_000_000
_LABEL = re.compile(r"^psl-([0-9a-f]+)-(\d+)$")


async def simulator(spec: dict[str, Any]) -> None:
    from pipsync_lite import logs
    from pipsync_lite.simulator import Simulator

    logs.configure("warning", "json", ())
    sim = Simulator(
        seed=11,
        cert_dir=Path(tempfile.mkdtemp(prefix="sim-tls-", dir=spec["workdir"])),
        tick_interval=None,
        account_type="netted",
        balance=Decimal(1000000000000),
        idle_timeout=3600.0,
        requests_per_second=50 if spec.get("paced", True) else UNPACED,
    )
    await sim.start()
    sim.set_price("EURUSD", bid=Decimal("1.10000"), ask=Decimal("1.10010"))
    creds = sim.credentials
    _say({
        "port": sim.port,
        "ca_file": str(sim.ca_file),
        "client_id": creds.client_id,
        "client_secret": creds.client_secret,
        "access_token": creds.access_token,
        "refresh_token": creds.refresh_token,
        "account_id": creds.account_id,
        "symbol_id": sim.instrument("EURUSD").symbol_id,
    }, prefix="READY ")
    async for line in _lines():
        if line == "arrivals":  # the simulator keeps no record: memory stays flat
            sim.requests.clear()
            _say([])
    await sim.stop()


# -- the tap --------------------------------------------------------------------------------

_HEADER = struct.Struct(">I")


class Tap:
    """Frames read from every client, with the time each was read; the bytes go on unchanged."""

    def __init__(self, upstream_port: int, upstream_ca: str) -> None:
        self._upstream_port = upstream_port
        self._upstream_tls = ssl.create_default_context(cafile=upstream_ca)
        self.frames: list[tuple[float, bytes]] = []

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            "127.0.0.1", self._upstream_port, ssl=self._upstream_tls, server_hostname="localhost")
        back = asyncio.create_task(_pump(up_reader, writer))
        try:
            while True:
                head = await reader.readexactly(4)
                body = await reader.readexactly(_HEADER.unpack(head)[0])
                self.frames.append((time.monotonic(), body))
                up_writer.write(head + body)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            back.cancel()
            for w in (writer, up_writer):
                w.close()

    def arrivals(self) -> list[list[Any]]:
        from pipsync_lite import protos

        taken, self.frames = self.frames, []
        found = []
        for when, body in taken:
            envelope, message = protos.decode(body)
            key = ""
            if message is not None and message.DESCRIPTOR.name == "ProtoOANewOrderReq":
                match = _LABEL.match(message.label)
                cmid = envelope.clientMsgId
                key = f"d{match.group(1)}-{match.group(2)}" if match else cmid if cmid.startswith("f") else ""
            found.append([key, envelope.payloadType, when])
        return found


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 16):
            writer.write(chunk)
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def tap(spec: dict[str, Any]) -> None:
    from pipsync_lite.simulator import tls

    upstream = spec["tap"]
    files = tls.generate(Path(spec["workdir"]) / "tap-tls")
    front = Tap(upstream["port"], upstream["ca_file"])
    server = await asyncio.start_server(front.accept, "127.0.0.1", 0, ssl=tls.server_context(files))
    _say({**upstream, "port": server.sockets[0].getsockname()[1], "ca_file": str(files.ca_file)}, prefix="READY ")
    async for line in _lines():
        if line == "arrivals":
            _say(front.arrivals())
    server.close()


async def _lines() -> Any:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            return
        yield line


def die_with_parent() -> None:
    """End this child with the benchmark process, however that ends (Linux: PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # elsewhere: the end of stdin still stops the child


def _say(value: Any, prefix: str = "") -> None:
    sys.stdout.write(prefix + json.dumps(value) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    die_with_parent()
    given = json.loads(sys.argv[1])
    asyncio.run(tap(given) if "tap" in given else simulator(given))
