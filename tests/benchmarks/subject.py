"""The server under measurement, run as a child process: the daemon, the floor, or hello-world.

``python -m tests.benchmarks.subject '<spec as JSON>'`` starts one of them, prints
``READY {json}`` on stdout once it takes requests, then obeys one command per stdin line:

- ``profile_start`` / ``profile_stop <path>``: pyinstrument around a load phase (writes
  ``<path>.txt`` and ``<path>.html`` and answers ``PROFILED``);
- ``quit`` (or end of input): stop cleanly and exit.

Each subject answers ``POST /webhook/{token}`` on 127.0.0.1:

- ``daemon``: the real ``pipsync_lite.app.Daemon``, logging JSON at info to a file as in production;
- ``floor``: the least any durable bridge must do: read the body, one SQLite insert with the
  daemon's pragmas (WAL, synchronous=FULL) through aiosqlite, then write a pre-encoded
  ``ProtoOANewOrderReq`` frame on an already authorized TLS socket to the simulator, then 202;
- ``hello``: a bare aiohttp handler answering ``ok``.

Running them in their own process keeps the load generator and the simulator (in the parent)
off the subject's core and out of its RSS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import ssl
import struct
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN_BYTES = 18
VOLUME_001_LOT = 100_000  # 0.01 lot of a 100,000-unit contract, in cents of units


async def main(spec: dict[str, Any]) -> None:
    started = time.monotonic()
    kind = spec["kind"]
    token = secrets.token_urlsafe(TOKEN_BYTES)
    running = await {"daemon": _daemon, "floor": _floor, "hello": _hello}[kind](spec, token)
    ready = running.ready
    ready["path"] = f"/webhook/{token}"
    ready["in_process_start_s"] = time.monotonic() - started
    _say("READY " + json.dumps(ready))
    await _commands()
    await running.stop()
    _say("STOPPED")


@dataclasses.dataclass
class _Running:
    ready: dict[str, Any]
    stop: Any  # async () -> None


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _commands() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    profiler: Any = None
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            return
        command, _, argument = line.partition(" ")
        if command == "profile_start":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            _say("PROFILING")
        elif command == "profile_stop" and profiler is not None:
            profiler.stop()
            Path(argument + ".txt").write_text(profiler.output_text(unicode=True, color=False, show_all=False))
            Path(argument + ".html").write_text(profiler.output_html())
            profiler = None
            _say("PROFILED")


# -- the daemon -----------------------------------------------------------------------------


async def _daemon(spec: dict[str, Any], token: str) -> _Running:
    from pipsync_lite import app, logs
    from pipsync_lite.config import Config
    from pipsync_lite.ctrader.bridge import install_reactor

    install_reactor(asyncio.get_running_loop())
    sim = spec["sim"]
    workdir = Path(spec["workdir"])
    config = Config.model_validate(
        {
            "server": {"host": "127.0.0.1", "port": 0, "webhook_token": token},
            "ctrader": {
                "host": "localhost",
                "port": sim["port"],
                "ca_file": sim["ca_file"],
                "client_id": sim["client_id"],
                "client_secret": sim["client_secret"],
                "access_token": sim["access_token"],
                "refresh_token": sim["refresh_token"],
                "account_id": sim["account_id"],
            },
            "storage": {"path": str(workdir / "trades.db")},
            "risk": {"kill_switch": bool(spec.get("kill_switch"))},
            "logging": {"level": "info", "format": "json"},
        }
    )
    log_file = open(workdir / "daemon.log", "a", encoding="utf-8")  # noqa: SIM115 (closed at stop)
    logs.configure(config.logging.level, config.logging.format, config.secrets(), stream=log_file)
    unpaced = None
    if spec.get("requests_per_second"):
        # The broker's 50/s is not configurable (it is the API's limit); the unpaced runs raise
        # it here, in the benchmark only, to show the software path apart from the broker limit.
        rate = int(spec["requests_per_second"])

        def unpaced(settings: Any) -> Any:
            return dataclasses.replace(settings, requests_per_second=rate)

    daemon = app.Daemon(config, broker_settings=unpaced)
    t0 = time.monotonic()
    await daemon.start()
    assert daemon.broker is not None
    if not await daemon.broker.wait_ready(30):
        raise SystemExit(f"broker not ready: {daemon.broker.last_error}")
    ready = {"port": daemon.port, "db": str(config.storage.path), "instance": daemon.store.instance_id,
             "start_to_ready_s": time.monotonic() - t0}

    async def stop() -> None:
        await daemon.stop(drain_timeout=float(spec.get("drain_timeout", 2.0)))
        log_file.close()

    return _Running(ready, stop)


# -- the floor ------------------------------------------------------------------------------


async def _floor(spec: dict[str, Any], token: str) -> _Running:
    import aiosqlite

    from pipsync_lite import protos

    sim = spec["sim"]
    db_path = Path(spec["workdir"]) / "floor.db"
    db = await aiosqlite.connect(db_path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL"):
        await db.execute(f"PRAGMA {pragma}")
    await db.execute(
        "CREATE TABLE IF NOT EXISTS signals (id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, "
        "raw_body TEXT NOT NULL, status TEXT NOT NULL)"
    )
    link = await _OrderLink.open(sim)
    order = protos.messages.ProtoOANewOrderReq(
        ctidTraderAccountId=sim["account_id"], symbolId=sim["symbol_id"], orderType=1, tradeSide=1,
        volume=VOLUME_001_LOT,
    )
    # The envelope without its clientMsgId (field 3); each request appends its own id, so the
    # simulator's arrival can be matched to the HTTP request.
    envelope = protos.ProtoMessage(payloadType=protos.payload_type_of(order), payload=order.SerializeToString())
    prefix = envelope.SerializeToString()

    async def webhook(request: web.Request) -> web.Response:
        if request.match_info["token"] != token:
            raise web.HTTPNotFound()
        body = await request.read()
        cursor = await db.execute(
            "INSERT INTO signals (received_at, raw_body, status) VALUES (?, ?, 'accepted')",
            (datetime.now(UTC).isoformat(), body.decode()),
        )
        signal_id = cursor.lastrowid
        cmid = b"f%d" % signal_id
        frame = prefix + b"\x1a" + bytes((len(cmid),)) + cmid
        link.write(struct.pack(">I", len(frame)) + frame)
        return web.Response(status=202, body=b'{"signal_id": %d, "status": "accepted"}' % signal_id,
                            content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhook/{token}", webhook)
    runner = await _serve(app)

    async def stop() -> None:
        await runner.cleanup()
        await link.close()
        await db.close()

    return _Running({"port": runner.addresses[0][1], "db": str(db_path)}, stop)


class _OrderLink:
    """A TLS connection to the simulator, application and account authorized; answers drained."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._drain: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, sim: dict[str, Any]) -> _OrderLink:
        from pipsync_lite import protos

        M = protos.messages
        context = ssl.create_default_context(cafile=sim["ca_file"])
        reader, writer = await asyncio.open_connection("127.0.0.1", sim["port"], ssl=context,
                                                       server_hostname="localhost")
        link = cls(reader, writer)
        await link._call(M.ProtoOAApplicationAuthReq(clientId=sim["client_id"], clientSecret=sim["client_secret"]),
                         "ProtoOAApplicationAuthRes")
        await link._call(M.ProtoOAAccountAuthReq(ctidTraderAccountId=sim["account_id"],
                                                 accessToken=sim["access_token"]), "ProtoOAAccountAuthRes")
        link._drain = asyncio.create_task(link._discard())
        link._heartbeat = asyncio.create_task(link._beat())
        return link

    async def _call(self, message: Any, answer: str) -> None:
        from pipsync_lite import protos

        body = protos.encode(message, "setup")
        self._writer.write(struct.pack(">I", len(body)) + body)
        while True:
            (length,) = struct.unpack(">I", await self._reader.readexactly(4))
            _, reply = protos.decode(await self._reader.readexactly(length))
            if reply is not None and reply.DESCRIPTOR.name == answer:
                return
            if reply is not None and "Error" in reply.DESCRIPTOR.name:
                raise SystemExit(f"simulator refused the floor: {reply}")

    async def _discard(self) -> None:
        # What comes back (acceptances, fills) is read and dropped: the floor only sends.
        while await self._reader.read(1 << 16):
            pass

    async def _beat(self) -> None:
        from pipsync_lite import protos

        body = protos.encode(protos.common.ProtoHeartbeatEvent())
        while True:
            await asyncio.sleep(5)
            self.write(struct.pack(">I", len(body)) + body)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def close(self) -> None:
        for task in (self._drain, self._heartbeat):
            if task is not None:
                task.cancel()
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (TimeoutError, OSError, ssl.SSLError):
            pass


# -- hello world ----------------------------------------------------------------------------


async def _hello(spec: dict[str, Any], token: str) -> _Running:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhook/{token}", hello)
    runner = await _serve(app)
    return _Running({"port": runner.addresses[0][1]}, runner.cleanup)


async def _serve(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def run(argv: list[str]) -> None:
    from tests.benchmarks.broker import die_with_parent

    die_with_parent()
    spec = json.loads(argv[0])
    code = 0
    try:
        if spec.get("loop") == "uvloop":
            import uvloop

            uvloop.run(main(spec))
        else:
            asyncio.run(main(spec))
    except BaseException:  # noqa: BLE001 (the benchmark went away mid-run: say why, still exit)
        traceback.print_exc()
        code = 1
    finally:
        # An exit that skips the interpreter's teardown: after a failure the store may still be
        # open, and its aiosqlite thread (not a daemon thread) would keep the process alive.
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    run(sys.argv[1:])
