"""TLS verification of the broker, and secrets kept out of logs, answers and the database."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiohttp
import structlog

from pipsync_lite.access import sign
from pipsync_lite.app import Daemon
from pipsync_lite.simulator import Simulator
from pipsync_lite.simulator.tls import generate

from .conftest import WEBHOOK_TOKEN, StartDaemon, daemon_config, eventually


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
    sim: Simulator, http: aiohttp.ClientSession, tmp_path: Path, capsys
) -> None:
    """Every configured secret (webhook and API tokens, inbound HMAC secret, client secret, both
    broker tokens) and the refreshed broker tokens stay out of logs, answers and the database,
    even when alerts, headers and signatures carry them."""
    from pipsync_lite import logs

    hmac_secret = "inbound-hmac-secret-for-the-scan"
    api_token = "api-token-for-the-secret-scan"
    config = daemon_config(sim, tmp_path, server={"inbound_hmac_secret": hmac_secret, "api_token": api_token})
    secrets = config.secrets()
    assert {hmac_secret, api_token, WEBHOOK_TOKEN} <= set(secrets) and len(secrets) == 6
    logs.configure("debug", "json", secrets)
    daemon = Daemon(config)
    answers = []
    try:
        await daemon.start()
        assert daemon.broker is not None and await daemon.broker.wait_ready(10)
        await eventually(lambda: daemon.intake is not None and daemon.intake.is_open)
        url = f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}"
        creds = sim.credentials
        bodies = [
            f'{{"action": "buy", "symbol": "EURUSD", "comment": "{creds.access_token}"}}',
            f"action=buy;symbol=EURUSD;token={WEBHOOK_TOKEN}",
            f'{{"action": "{creds.client_secret}", "symbol": "EURUSD"}}',
            f'{{"action": "buy", "symbol": "EURUSD", "lots": "{creds.refresh_token}"}}',
            f'{{"action": "buy", "symbol": "EURUSD", "comment": "{hmac_secret} {api_token}"}}',
            f'{{"action": "{api_token}", "symbol": "{hmac_secret}"}}',
        ]
        for body in bodies:
            signature = sign(hmac_secret, body.encode(), int(time.time()))
            async with http.post(url, data=body, headers={"X-Signature": signature}) as response:
                answers.append(await response.text())
        for headers in ({"X-Signature": f"t={int(time.time())},v1={hmac_secret}"}, {"X-Signature": hmac_secret}, {}):
            async with http.post(url, data=bodies[0], headers=headers) as response:
                answers.append(await response.text())
        for auth in (f"Bearer {api_token}", f"Bearer {hmac_secret}", api_token):
            async with http.get(f"{daemon.base_url}/v1/signals", headers={"Authorization": auth}) as response:
                answers.append(await response.text())
        async with http.post(f"{daemon.base_url}/webhook/{api_token}", data=bodies[0]) as response:
            answers.append(await response.text())
        async with http.get(f"{daemon.base_url}/readyz") as response:
            answers.append(await response.text())
        await eventually(lambda: sim.positions())
        await daemon.broker.refresh_tokens()  # the new pair goes to the database
        await eventually(lambda: daemon.intake.is_open)
        refreshed = [sim.credentials.access_token, sim.credentials.refresh_token]
    finally:
        await daemon.stop()
        # Back to structlog's defaults: a logger left writing to this test's captured (and
        # then closed) stream would break every later test that logs a warning.
        structlog.reset_defaults()
    logged = capsys.readouterr()
    dump = "\n".join(sqlite3.connect(config.storage.path).iterdump())
    for secret in [*secrets, *refreshed]:
        for where, text in (("logs", logged.out + logged.err), ("answers", "\n".join(answers)), ("database", dump)):
            assert secret not in text, f"a secret leaked into the {where}"
    assert "***" in dump  # the bodies were stored, masked
    assert "broker_tokens" in dump and "broker_tokens_saved" in logged.out + logged.err
