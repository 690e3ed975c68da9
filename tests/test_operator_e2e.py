"""The operator's side, end to end: approve/reject, kill on|off, live reload, replay (the real CLI)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
import yaml

from pipsync_lite import cli
from pipsync_lite.app import Daemon
from pipsync_lite.config import load_config
from pipsync_lite.simulator import Simulator

from .conftest import WEBHOOK_TOKEN, eventually
from .test_guard_e2e import FakeClock
from .test_webhook_e2e import post, settled

API_TOKEN = "an-api-token-for-the-cli"


def printed(text: str) -> list[str]:
    """What the CLI printed, without the daemon's log lines (same process, same stdout)."""
    return [line for line in text.splitlines() if not re.match(r"^\d{4}-\d\d-\d\d \d\d:", line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config_data(sim: Simulator, tmp_path: Path, port: int, **sections: dict[str, Any]) -> dict[str, Any]:
    creds = sim.credentials
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "webhook_token": WEBHOOK_TOKEN, "api_token": API_TOKEN},
        "ctrader": {
            "host": "localhost", "port": sim.port, "ca_file": str(sim.ca_file), "client_id": creds.client_id,
            "client_secret": creds.client_secret, "access_token": creds.access_token,
            "refresh_token": creds.refresh_token, "account_id": creds.account_id, "request_timeout_seconds": 3,
        },
        "storage": {"path": str(tmp_path / "trades.db")},
        "logging": {"level": "info"},
    }  # fmt: skip
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


class Setup:
    """One YAML file on disk, a daemon started from it, and the CLI pointed at it."""

    def __init__(self, sim: Simulator, tmp_path: Path) -> None:
        self.sim, self.tmp_path = sim, tmp_path
        self.port = _free_port()
        self.path = tmp_path / "config.yaml"
        self.daemons: list[Daemon] = []

    def write(self, path: Path | None = None, **sections: dict[str, Any]) -> Path:
        path = path or self.path
        path.write_text(yaml.safe_dump(config_data(self.sim, self.tmp_path, self.port, **sections)))
        return path

    async def start(self, clock: FakeClock | None = None, reload_poll: float = 0.1, **sections: dict[str, Any]) -> Daemon:
        if sections or not self.path.exists():
            self.write(**sections)
        options: dict[str, Any] = {"config_path": self.path, "reload_poll": reload_poll, "monitor_interval": 0.05}
        if clock is not None:
            options["clock"] = clock
        daemon = Daemon(load_config(self.path), **options)
        self.daemons.append(daemon)
        await daemon.start()
        assert daemon.broker is not None
        await daemon.broker.wait_ready(10)
        return daemon

    async def cli(self, *args: str) -> int:
        """The real command line, in a thread (it blocks on HTTP to this loop's daemon)."""
        argv = [*args, "-c", str(self.path)] if args[0] != "replay" else list(args)
        return await asyncio.to_thread(cli.main, argv)


@pytest.fixture
async def setup(sim: Simulator, tmp_path: Path) -> AsyncIterator[Setup]:
    s = Setup(sim, tmp_path)
    yield s
    for daemon in reversed(s.daemons):
        await daemon.stop(drain_timeout=5)


# -- manual approval --------------------------------------------------------------------------


async def test_approval_waits_and_approve_sends_it_within_a_second(
    setup: Setup, sim: Simulator, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await setup.start(risk={"manual_approval": True})
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.02})
    assert (status, body) == (202, {"signal_id": body["signal_id"], "status": "pending_approval"})
    assert sim.requests_named("ProtoOANewOrderReq") == []
    assert (await daemon.store.signal(body["signal_id"]))["status"] == "pending_approval"

    started = asyncio.get_running_loop().time()
    assert await setup.cli("approve", str(body["signal_id"])) == 0
    await eventually(lambda: sim.positions(), timeout=1)
    assert asyncio.get_running_loop().time() - started < 1.0
    assert printed(capsys.readouterr().out) == [f"signal {body['signal_id']}: accepted (0.02 lots)"]
    row = await settled(daemon, body["signal_id"])
    assert row["status"] == "executed" and row["lots"] == "0.02"
    assert await setup.cli("approve", str(body["signal_id"])) == 1
    assert "is executed, not waiting for approval" in capsys.readouterr().err


async def test_reject_expiry_and_the_guard_judging_again_at_approval(
    setup: Setup, sim: Simulator, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    daemon = await setup.start(clock, risk={"symbols": {"EURUSD": {"manual_approval": True, "approval_timeout_seconds": 30}}})
    ids = []
    for n in range(3):
        _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "id": f"a{n}"})
        assert body["status"] == "pending_approval"
        ids.append(body["signal_id"])
    _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "GBPUSD"})
    assert body["status"] == "accepted"  # approval is configured for EURUSD only

    assert await setup.cli("reject", str(ids[0])) == 0
    row = await daemon.store.signal(ids[0])
    assert (row["status"], row["rule"], row["reason"]) == ("rejected", "manual_approval", "rejected by the operator")

    assert await setup.cli("kill", "on") == 0
    assert await setup.cli("approve", str(ids[1])) == 1
    assert "[kill_switch]" in capsys.readouterr().err
    assert (await daemon.store.signal(ids[1]))["status"] == "rejected"
    assert await setup.cli("kill", "off") == 0

    clock.advance(seconds=30)
    daemon.monitor.wake()
    await eventually(lambda: _status(daemon, ids[2], "expired"))
    row = await daemon.store.signal(ids[2])
    assert (row["rule"], row["reason"]) == ("approval_timeout_seconds", "not approved within approval_timeout_seconds 30")
    assert await setup.cli("approve", str(ids[2])) == 1
    assert [p.symbol for p in sim.positions()] == ["GBPUSD"]


async def _status(daemon: Daemon, signal_id: int, status: str) -> bool:
    row = await daemon.store.signal(signal_id)
    return row is not None and row["status"] == status


# -- the runtime kill switch ------------------------------------------------------------------


async def test_kill_on_survives_a_restart_and_only_the_cli_turns_it_off(
    setup: Setup, sim: Simulator, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await setup.start()
    events: list[str] = []
    daemon.events.subscribe(lambda e: events.append(e.data.get("cause")) if e.type == "kill_switch.engaged" else None)
    assert await setup.cli("kill", "on", "--reason", "news at 14:30") == 0
    assert events == ["cli"]
    assert printed(capsys.readouterr().out) == ["kill switch: on (by cli: news at 14:30)"]
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD"})
    assert (status, body["rule"]) == (422, "kill_switch")

    await daemon.stop()
    daemon = await setup.start()
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "kill_switch": False, "comment": "x"})
    assert status in (400, 422)  # an alert cannot turn it off
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "comment": "y"})
    assert (status, body["rule"]) == (422, "kill_switch")
    assert await setup.cli("kill", "status") == 0 and "kill switch: on" in capsys.readouterr().out
    assert await setup.cli("kill", "off") == 0
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "comment": "z"})
    assert status == 202
    history = await daemon.engine.kill_switch.history()
    assert [(h["state"], h["cause"]) for h in history] == [("off", "cli"), ("on", "cli")]


async def test_yaml_kill_switch_holds_it_on(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    await setup.start(risk={"kill_switch": True})
    assert await setup.cli("kill", "off") == 1
    assert "the YAML sets risk.kill_switch: true" in capsys.readouterr().err


async def test_cli_without_a_daemon_exits_2(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    setup.write()
    assert await setup.cli("kill", "on") == 2
    assert "no daemon answers at" in capsys.readouterr().err


# -- live configuration -----------------------------------------------------------------------


async def test_saved_file_is_applied_within_2_s_and_decisions_record_the_version(
    setup: Setup, http: aiohttp.ClientSession, captured_logs: list[dict[str, Any]]
) -> None:
    daemon = await setup.start(risk={"max_lots": 1})
    old_version = daemon.config.version
    setup.write(risk={"max_lots": 0.5})
    await eventually(lambda: daemon.config.risk.max_lots == 0.5, timeout=2)
    status, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.6})
    assert (status, body["detail"]) == (422, "lots 0.60 > max_lots 0.50")
    row = await daemon.store.signal(body["signal_id"])
    assert row["config_version"] == daemon.config.version != old_version
    changed = [e for e in captured_logs if e["event"] == "config_key_changed"]
    assert [(e["key"], e["old"], e["new"]) for e in changed] == [("risk.max_lots", "1", "0.5")]


async def test_invalid_file_keeps_the_old_configuration_and_logs_key_paths(
    setup: Setup, http: aiohttp.ClientSession, captured_logs: list[dict[str, Any]]
) -> None:
    daemon = await setup.start(risk={"max_lots": 1})
    version = daemon.config.version
    setup.write(risk={"max_lots": -1, "timezone": "Nowhere/Land"})
    failed = await eventually(lambda: [e for e in captured_logs if e["event"] == "config_reload_failed"], timeout=2)
    assert failed[0]["errors"][0] == "risk.max_lots: must be > 0, got -1"
    assert failed[0]["errors"][1].startswith("risk.timezone: unknown time zone")
    assert daemon.config.version == version and daemon.config.risk.max_lots == 1


async def test_changes_elsewhere_need_a_restart_and_secrets_are_masked(
    setup: Setup, captured_logs: list[dict[str, Any]]
) -> None:
    daemon = await setup.start(reload_poll=60)
    data = config_data(setup.sim, setup.tmp_path, setup.port, logging={"level": "warning"})
    data["server"]["webhook_token"] = "a-brand-new-webhook-token-0123"
    data["ctrader"]["request_timeout_seconds"] = 5
    setup.path.write_text(yaml.safe_dump(data))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)  # as `pipsync-lite run` does
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        await eventually(lambda: daemon.config.logging.level == "warning", timeout=2)
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
    restart = {e["key"]: e for e in captured_logs if e["event"] == "config_change_needs_restart"}
    assert set(restart) == {"server.webhook_token", "ctrader.request_timeout_seconds"}
    assert (restart["server.webhook_token"]["old"], restart["server.webhook_token"]["new"]) == ("***", "***")
    assert daemon.config.server.webhook_token.get_secret_value() == WEBHOOK_TOKEN  # not applied
    assert "a-brand-new-webhook-token-0123" not in str(captured_logs)
    structlog.reset_defaults()  # the reload set the process-wide level to warning


# -- what-if ----------------------------------------------------------------------------------


async def test_replay_prints_old_and_new_verdicts_and_sizes(
    setup: Setup, sim: Simulator, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = await setup.start(risk={"max_lots": 2})
    ids = []
    for n, lots in enumerate(("0.5", "1.5", "3")):
        _, body, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": lots, "sl_pips": 20, "id": f"w{n}"})
        ids.append(body["signal_id"])
    await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": "oops"})
    await eventually(lambda: len(sim.positions()) == 2)
    new = setup.write(setup.tmp_path / "new.yaml", risk={"max_lots": 1, "on_excess": "clamp", "risk_percent": 1})
    capsys.readouterr()
    assert await setup.cli("replay", "--config", str(new)) == 0
    out = printed(capsys.readouterr().out)
    lines = {int(line[1:].split()[0]): line for line in out if line[1:].split()[:1] and line[1:].split()[0].isdigit()}
    assert lines[ids[0]].startswith(" ") and lines[ids[0]].endswith("executed 0.50                    accepted 0.50")
    assert lines[ids[1]].startswith("*") and lines[ids[1]].endswith("executed 1.50                    accepted 1.00")
    assert lines[ids[2]].startswith("*") and "rejected max_lots                accepted 1.00" in lines[ids[2]]
    assert lines[ids[2]].endswith("accepted 1.00")
    assert out[-1] == "4 judged again: 2 changed (*), 2 unchanged; 0 not judged"
    assert await setup.cli("replay", "--config", str(new), "--since", "2999-01-01") == 0
    assert printed(capsys.readouterr().out)[-1] == "0 judged again: 0 changed (*), 0 unchanged; 0 not judged"
