"""systemd integration: READY/WATCHDOG/STOPPING notifications from a real `pipsync-lite run`."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import yaml

from pipsync_lite.simulator import Simulator

from .conftest import WEBHOOK_TOKEN, daemon_config, eventually


async def test_run_notifies_ready_pings_the_watchdog_and_says_stopping(sim: Simulator, tmp_path: Path) -> None:
    config = daemon_config(sim, tmp_path).model_dump(mode="json")
    for key in ("client_secret", "access_token", "refresh_token"):
        config["ctrader"][key] = getattr(sim.credentials, key)
    config["server"]["webhook_token"] = WEBHOOK_TOKEN
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    notify_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "200000"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipsync_lite", "run", "-c", str(path),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    messages: list[str] = []

    def received() -> list[str]:
        while True:
            try:
                messages.append(receiver.recv(256).decode())
            except BlockingIOError:
                return messages

    try:
        await eventually(lambda: "READY=1" in received(), timeout=20)
        await eventually(lambda: received().count("WATCHDOG=1") >= 3, timeout=10)
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        await eventually(lambda: "STOPPING=1" in received(), timeout=5)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        receiver.close()
    assert messages.index("READY=1") < messages.index("STOPPING=1")
