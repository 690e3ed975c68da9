"""The operator's commands end to end, each run as `python -m pipsync_lite ...` with a YAML file:
auth (argument, prompt, caught redirect) against a local fake token endpoint, accounts and
symbols against the simulator, send/signals/trades/positions against a running daemon."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pipsync_lite.app import Daemon
from pipsync_lite.config import load_config
from pipsync_lite.simulator import Simulator

from .conftest import WEBHOOK_TOKEN, eventually
from .fakes import API_TOKEN, Endpoint, Received

ROOT = Path(__file__).resolve().parent.parent


async def cli(*args: str, stdin: bytes | None = None, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipsync_lite", *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(path: Path, sim: Simulator, *, tokens: bool = True, port: int = 1, **ctrader: Any) -> Path:
    creds = sim.credentials
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "webhook_token": WEBHOOK_TOKEN, "api_token": API_TOKEN},
        "ctrader": {
            "host": "localhost", "port": sim.port, "ca_file": str(sim.ca_file), "client_id": creds.client_id,
            "client_secret": creds.client_secret, "account_id": creds.account_id, "request_timeout_seconds": 3,
            **ctrader,
        },
        "storage": {"path": str(path.parent / "trades.db")},
    }
    if tokens:
        data["ctrader"] |= {"access_token": creds.access_token, "refresh_token": creds.refresh_token}
    path.write_text(yaml.safe_dump(data))
    return path


def token_endpoint(sim: Simulator) -> Any:
    def answer(request: Received) -> dict[str, Any]:
        if request.query.get("code") != "good-code":
            return {"errorCode": "ACCESS_DENIED", "description": "the code is wrong or expired"}
        creds = sim.credentials
        return {"accessToken": creds.access_token, "tokenType": "bearer", "expiresIn": 2_628_000,
                "refreshToken": creds.refresh_token, "errorCode": None, "description": None}

    return answer


async def test_auth_then_accounts_and_symbols_from_a_config_without_tokens(
    sim: Simulator, endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.answer = token_endpoint(sim)
    config = write_config(
        tmp_path / "config.yaml", sim, tokens=False,
        oauth={"token_url": endpoint.url + "/apps/token", "redirect_uri": "http://localhost:8765/callback"},
    )
    code, _, err = await cli("accounts", "-c", str(config))
    assert code == 2 and "run `pipsync-lite auth`" in err

    code, out, err = await cli("auth", "-c", str(config), "bad-code")
    assert code == 1 and "ACCESS_DENIED: the code is wrong or expired" in err
    code, out, err = await cli("auth", "-c", str(config), "good-code")
    assert code == 0, err
    creds = sim.credentials
    assert f"client_id={creds.client_id}" in out and "redirect_uri=http%3A%2F%2Flocalhost%3A8765%2Fcallback" in out
    assert "scope=trading" in out and "Tokens stored in" in out and "pipsync-lite accounts" in out
    assert creds.access_token not in out + err and creds.client_secret not in out + err
    exchange = endpoint.requests[-1]
    assert exchange.method == "GET" and exchange.path == "/apps/token"
    assert exchange.query == {"grant_type": "authorization_code", "code": "good-code", "redirect_uri": "http://localhost:8765/callback",
                              "client_id": creds.client_id, "client_secret": creds.client_secret}
    rows = sqlite3.connect(tmp_path / "trades.db").execute("SELECT expires_in FROM broker_tokens").fetchall()
    assert rows == [(2_628_000,)]

    code, out, err = await cli("accounts", "-c", str(config))
    assert code == 0, err
    assert ["*", str(creds.account_id), "demo"] in [line.split()[:3] for line in out.splitlines()] and "ACCOUNT ID" in out
    code, out, _ = await cli("accounts", "-c", str(config), "--json")
    assert json.loads(out)["accounts"][0]["account_id"] == creds.account_id and json.loads(out)["can_trade"] is True

    code, out, err = await cli("symbols", "-c", str(config))
    assert code == 0, err
    [eurusd] = [line.split() for line in out.splitlines() if line.startswith("EURUSD ")]
    assert eurusd[:7] == ["EURUSD", "100000", "0.01", "0.01", "1000", "5", "0.0001"], eurusd
    code, out, _ = await cli("symbols", "-c", str(config), "jpy", "--json")
    listed = json.loads(out)
    assert listed and all("JPY" in s["name"] or "jpy" in s["description"].lower() for s in listed)
    usdjpy = next(s for s in listed if s["name"] == "USDJPY")
    assert (usdjpy["digits"], usdjpy["pip_position"], usdjpy["min_lots"]) == (3, 2, "0.01")

    # the daemon now starts from the stored tokens alone
    daemon = Daemon(load_config(config))
    await daemon.start()
    try:
        assert daemon.broker is not None and await daemon.broker.wait_ready(10)
    finally:
        await daemon.stop()


async def test_auth_takes_a_pasted_url_or_catches_the_redirect(sim: Simulator, endpoint: Endpoint, tmp_path: Path) -> None:
    endpoint.answer = token_endpoint(sim)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redirect = f"http://127.0.0.1:{port}/callback"
    config = write_config(tmp_path / "config.yaml", sim, tokens=False,
                          oauth={"token_url": endpoint.url + "/apps/token", "redirect_uri": redirect})
    code, out, err = await cli("auth", "-c", str(config), stdin=f"{redirect}?code=good-code&state=x\n".encode())
    assert code == 0 and "Paste that address" in out, err
    assert endpoint.requests[-1].query["code"] == "good-code"

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pipsync_lite", "auth", "-c", str(config), "--listen", "--timeout", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    lines: list[str] = []
    while not any("Waiting for the browser" in line for line in lines):
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line, "auth --listen ended early"
        lines.append(line.decode())

    async def browser_redirected() -> str | None:  # the port opens right after that line
        try:
            async with aiohttp.ClientSession() as browser, browser.get(f"{redirect}?code=good-code") as response:
                return await response.text()
        except aiohttp.ClientConnectionError:
            return None

    page = await eventually(browser_redirected, timeout=10)
    assert "received the authorization" in page
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert len([r for r in endpoint.requests if r.query.get("code") == "good-code"]) == 2
    rows = sqlite3.connect(tmp_path / "trades.db").execute("SELECT COUNT(*) FROM broker_tokens").fetchone()
    assert rows == (1,)  # one pair per account: the second authorization replaced the first


async def test_send_then_read_signals_trades_and_positions(
    operator_daemon: Any, sim: Simulator, tmp_path: Path
) -> None:
    daemon = await operator_daemon()
    config = str(write_config(tmp_path / "config.yaml", sim, port=daemon.port))

    code, out, err = await cli("send", "-c", config, '{"action": "buy", "symbol": "EURUSD", "lots": 0.1, "sl_pips": 20}')
    assert code == 0, err
    assert out.startswith("202 accepted: signal 1, 0.1 lots") and "signal 1: executed (verdict accepted)" in out
    assert "entry buy EURUSD: filled @ 1.10010" in out
    code, out, _ = await cli("send", "-c", config, "action=buy;symbol=NOSUCH")
    assert code == 1 and out.startswith("422 unknown_symbol: signal 2") and "rejected" in out
    code, out, _ = await cli("send", "-c", config, "-", "--json", stdin=b"1,sell,USDJPY,risk=0.2")
    assert code == 0
    sold = json.loads(out[out.index("{"):])
    assert sold["status"] == "executed" and sold["dialect"] == "pineconnector" and sold["orders"][0]["volume"] == 2_000_000

    code, out, _ = await cli("signals", "-c", config)
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["ID", "RECEIVED", "(UTC)"] and [r.split()[0] for r in rows] == ["3", "2", "1"]
    assert "entry filled @ 1.10010" in rows[2] and "unknown_symbol" in rows[1]
    code, out, _ = await cli("signals", "-c", config, "2")
    assert "signal 2: rejected (verdict rejected) — unknown_symbol" in out and "body: action=buy;symbol=NOSUCH" in out
    code, out, _ = await cli("signals", "-c", config, "--status", "rejected", "--json")
    assert [s["id"] for s in json.loads(out)["items"]] == [2]
    code, out, _ = await cli("signals", "-c", config, "--limit", "1", "--since", "1h")
    assert "more: add --cursor 3" in out

    code, out, _ = await cli("positions", "-c", config)
    assert code == 0 and "EURUSD" in out and "USDJPY" in out
    code, out, _ = await cli("positions", "-c", config, "--symbol", "usdjpy", "--json")
    [position] = json.loads(out)["items"]
    assert (position["symbol"], position["lots"], position["signal_id"]) == ("USDJPY", "0.2", 3)

    code, out, _ = await cli("send", "-c", config, '{"action": "close", "symbol": "EURUSD"}')
    assert code == 0 and "close sell EURUSD: filled" in out
    async def closed() -> str | None:
        _, text, _ = await cli("trades", "-c", config, "--status", "closed")
        return text if "EURUSD" in text else None

    out = await eventually(closed, timeout=15)
    assert "closed" in out and "signal" in out and "NET P/L" in out
    code, out, _ = await cli("trades", "-c", config, "--json", "--since", "today")
    assert {t["symbol"] for t in json.loads(out)["items"]} == {"EURUSD", "USDJPY"}


async def test_commands_explain_a_missing_daemon_and_a_missing_token(sim: Simulator, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = str(write_config(tmp_path / "config.yaml", sim, port=port))
    code, _, err = await cli("signals", "-c", config)
    assert code == 2 and "no daemon answers" in err and "pipsync-lite run" in err
    code, _, err = await cli("signals", "-c", config, "--since", "yesterday-ish")
    assert code == 2 and "--since" in err
    bare = str(write_config(tmp_path / "bare.yaml", sim, tokens=False))
    code, _, err = await cli("run", "-c", bare, timeout=30)
    assert code == 2 and "run `pipsync-lite auth`" in err
