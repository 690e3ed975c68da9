"""TLS verification of the broker, and secrets kept out of logs, answers and the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiohttp
import structlog

from pipsync_lite.simulator import Simulator
from pipsync_lite.simulator.tls import generate

from .conftest import WEBHOOK_TOKEN, StartDaemon, eventually


async def test_untrusted_server_certificate_is_refused(
    start_daemon: StartDaemon, sim: Simulator, tmp_path: Path
) -> None:
    other_ca = generate(tmp_path / "other-ca").ca_file
    daemon = await start_daemon(wait_ready=False, ctrader={"ca_file": str(other_ca)})
    assert daemon.broker is not None
    await eventually(lambda: daemon.broker.last_error, timeout=10)
    assert not daemon.broker.ready
    assert "certificate" in daemon.broker.last_error.lower()
    # the TLS handshake failed: not a single request reached the broker
    assert sim.requests_named("ProtoOAApplicationAuthReq") == []


async def test_certificate_for_another_host_is_refused(start_daemon: StartDaemon, sim: Simulator) -> None:
    # The simulator's certificate covers localhost and 127.0.0.1 only.
    daemon = await start_daemon(wait_ready=False, ctrader={"host": "127.0.0.2"})
    assert daemon.broker is not None
    await eventually(lambda: daemon.broker.last_error, timeout=10)
    assert not daemon.broker.ready
    assert sim.requests_named("ProtoOAApplicationAuthReq") == []


async def test_no_secret_in_logs_answers_or_database(
    start_daemon: StartDaemon, sim: Simulator, http: aiohttp.ClientSession, tmp_path: Path, capsys
) -> None:
    from pipsync_lite import logs

    daemon = await start_daemon()
    secrets = daemon.config.secrets()
    logs.configure("debug", "json", secrets)
    try:
        url = f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}"
        creds = sim.credentials
        bodies = [
            f'{{"action": "buy", "symbol": "EURUSD", "comment": "{creds.access_token}"}}',
            f"action=buy;symbol=EURUSD;token={WEBHOOK_TOKEN}",
            f'{{"action": "{creds.client_secret}", "symbol": "EURUSD"}}',
            f'{{"action": "buy", "symbol": "EURUSD", "lots": "{creds.refresh_token}"}}',
        ]
        answers = []
        for body in bodies:
            async with http.post(url, data=body) as response:
                answers.append(await response.text())
        async with http.get(f"{daemon.base_url}/readyz") as response:
            answers.append(await response.text())
        await eventually(lambda: sim.positions())
    finally:
        await daemon.stop()
        # Back to structlog's defaults: a logger left writing to this test's captured (and
        # then closed) stream would break every later test that logs a warning.
        structlog.reset_defaults()
    logged = capsys.readouterr()
    dump = "\n".join(sqlite3.connect(daemon.config.storage.path).iterdump())
    for secret in secrets:
        for where, text in (("logs", logged.out + logged.err), ("answers", "\n".join(answers)), ("database", dump)):
            assert secret not in text, f"a secret leaked into the {where}"
    assert "***" in dump  # the bodies were stored, masked
