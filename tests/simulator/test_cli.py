"""The standalone command: one JSON line on stdout, a usable server, a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from pipsync_lite.simulator import SimCredentials, Simulator

from .wire import M, WireClient


class _Target:
    """Just enough of a Simulator for WireClient.connect."""

    def __init__(self, info: dict[str, object]) -> None:
        self.host = str(info["host"])
        self.port = int(info["port"])  # type: ignore[call-overload]
        self.ca_file = Path(str(info["ca_file"]))


async def test_cli_prints_one_json_line_serves_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipsync_lite.simulator", "--port", "0", "--seed", "3",
        "--cert-dir", str(tmp_path), "--account-type", "netted", "--tick-interval", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        info = json.loads(line)
        assert set(info) == {"host", "port", "ca_file", "client_id", "client_secret",
                             "access_token", "refresh_token", "account_id"}
        assert Path(info["ca_file"]).parent == tmp_path
        expected = SimCredentials.from_seed(3)
        assert info["client_id"] == expected.client_id
        assert info["account_id"] == expected.account_id
        creds = SimCredentials(info["client_id"], info["client_secret"], info["access_token"],
                               info["refresh_token"], info["account_id"])
        client = await WireClient.connect(_Target(info))  # type: ignore[arg-type]
        await client.authorize(creds)
        trader = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=creds.account_id))
        assert trader.trader.accountType == 1  # NETTED
        await client.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        rest = await proc.stdout.read()
        assert rest == b""  # exactly one line on stdout; logs went to stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_forever_stops_on_the_event(tmp_path: Path) -> None:
    import io
    out = io.StringIO()
    stop = asyncio.Event()
    sim = Simulator(seed=1, port=0, cert_dir=tmp_path)
    from pipsync_lite.simulator.cli import serve_forever
    task = asyncio.create_task(serve_forever(sim, out=out, stop=stop))
    await sim.wait_for(lambda: out.getvalue().endswith("\n"))
    assert json.loads(out.getvalue())["port"] == sim.port
    stop.set()
    await asyncio.wait_for(task, 5)
