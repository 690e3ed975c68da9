"""As a user runs it: `pipsync-lite simulator` and `pipsync-lite run` as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def _wait_http(url: str, timeout: float = 20.0) -> tuple[int, str]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            last = err
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready: {last}")


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_run_and_simulator_as_subprocesses(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim = subprocess.Popen(
        [sys.executable, "-m", "pipsync_lite", "simulator", "--port", "0", "--seed", "3", "--cert-dir", str(tmp_path / "certs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        line = sim.stdout.readline()
        info = json.loads(line)
        assert set(info) >= {"host", "port", "ca_file", "client_id", "client_secret", "access_token", "refresh_token", "account_id"}
        port = _free_port()
        config = tmp_path / "config.yaml"
        config.write_text(
            f"server: {{host: 127.0.0.1, port: {port}, webhook_token: '${{HOOK}}'}}\n"
            "ctrader:\n"
            f"  host: {info['host']}\n  port: {info['port']}\n  ca_file: {info['ca_file']}\n"
            "  client_id: ${CID}\n  client_secret: ${CSECRET}\n  access_token: ${ATOKEN}\n  refresh_token: ${RTOKEN}\n"
            f"  account_id: {info['account_id']}\n"
            "storage: {path: trades.db}\nlogging: {format: json}\n"
        )
        run_env = {**env, "HOOK": "smoke-test-webhook-token", "CID": info["client_id"], "CSECRET": info["client_secret"],
                   "ATOKEN": info["access_token"], "RTOKEN": info["refresh_token"]}
        check = subprocess.run([sys.executable, "-m", "pipsync_lite", "check-config", "-c", str(config)],
                               env=run_env, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pipsync_lite", "run", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=run_env,
        )
        try:
            status, body = _wait_http(f"http://127.0.0.1:{port}/readyz")
            assert status == 200 and json.loads(body)["broker"] == "ready"
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhook/smoke-test-webhook-token",
                data=b'{"action": "buy", "symbol": "FX:EURUSD", "lots": 0.01, "sl_pips": 15}',
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.loads(response.read())
            assert response.status == 202 and answer["status"] == "accepted"
        finally:
            assert _stop(daemon) == 0
        out, err = daemon.communicate()
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        names = [e["event"] for e in events]
        assert "signal_accepted" in names and "daemon_stopped" in names
        assert any(e["event"] == "order_filled" and e.get("signal_id") == answer["signal_id"] for e in events)
        for secret in (info["client_secret"], info["access_token"], info["refresh_token"], "smoke-test-webhook-token"):
            assert secret not in err + out
    finally:
        assert _stop(sim) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
