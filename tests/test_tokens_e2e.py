"""The token pair: persisted before use, wins over the YAML after a restart unless the YAML
changed, refreshed when stale, its time left shown, ``token.expiring`` when under a day."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from pipsync_lite.app import Daemon
from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
from pipsync_lite.simulator import Simulator

from .conftest import daemon_config, eventually
from .test_outage_e2e import Clock, opened


async def run(sim: Simulator, tmp_path: Path, clock: Clock | None = None, tokens: dict[str, str] | None = None) -> Daemon:
    config = daemon_config(sim, tmp_path, ctrader=tokens or {})
    daemon = Daemon(config, clock=clock or Clock())
    await daemon.start()
    assert daemon.broker is not None
    await daemon.broker.wait_ready(10)
    return daemon


async def refresh_now(daemon: Daemon) -> None:
    assert daemon.broker is not None
    await daemon.broker.refresh_tokens()
    await eventually(lambda: opened(daemon))


def stored(tmp_path: Path) -> dict[str, Any]:
    with sqlite3.connect(tmp_path / "trades.db") as db:
        db.row_factory = sqlite3.Row
        return dict(db.execute("SELECT * FROM broker_tokens").fetchone())


async def test_refreshed_pair_is_stored_and_wins_over_the_dead_yaml_pair_after_a_restart(
    sim: Simulator, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    yaml_pair = {"access_token": sim.credentials.access_token, "refresh_token": sim.credentials.refresh_token}
    daemon = await run(sim, tmp_path, tokens=yaml_pair)
    await refresh_now(daemon)
    await daemon.stop()
    row = stored(tmp_path)
    assert row["expires_in"] == 2_628_000
    # the refresh killed the YAML pair; the stored one is encrypted
    assert sim.credentials.access_token not in str(row) and yaml_pair["access_token"] not in str(row)
    again = await run(sim, tmp_path, tokens=yaml_pair)  # same YAML: the database's pair is used
    try:
        assert again.broker is not None and again.broker.ready
        assert again.tokens is not None and again.tokens.current is not None
        assert again.tokens.current.source == "database"
        async with http.get(f"{again.base_url}/readyz") as response:
            left = (await response.json())["token_expires_in_seconds"]
        assert 2_627_000 < left <= 2_628_000
    finally:
        await again.stop()


async def test_a_changed_yaml_pair_wins_over_the_stored_one(sim: Simulator, tmp_path: Path) -> None:
    """The user authorized again and put the new pair in the YAML."""
    daemon = await run(sim, tmp_path)
    await refresh_now(daemon)  # the database now holds pair B
    await daemon.stop()
    creds = sim.credentials  # the user authorizes again elsewhere: pair C, and B is dead
    other = CTraderClient(ClientSettings(
        host="localhost", port=sim.port, ca_file=sim.ca_file, client_id=creds.client_id,
        client_secret=creds.client_secret, access_token=creds.access_token,
        refresh_token=creds.refresh_token, account_id=creds.account_id,
    ))
    await other.start()
    await other.wait_ready(10)
    await other.refresh_tokens()
    await other.stop()
    pair_c = {"access_token": sim.credentials.access_token, "refresh_token": sim.credentials.refresh_token}
    again = await run(sim, tmp_path, tokens=pair_c)
    try:
        assert again.broker is not None and again.broker.ready, again.broker.last_error
        assert again.tokens is not None and again.tokens.current is not None
        assert again.tokens.current.source == "config"
    finally:
        await again.stop()


async def test_a_pair_older_than_25_days_with_unknown_expiry_is_refreshed_at_start(sim: Simulator, tmp_path: Path) -> None:
    first = await run(sim, tmp_path)  # records the YAML pair, obtained now, expiry unknown
    await first.stop()
    clock = Clock()
    clock.offset = timedelta(days=26)
    daemon = await run(sim, tmp_path, clock=clock)
    try:
        await eventually(lambda: sim.requests_named("ProtoOARefreshTokenReq"))
        await eventually(lambda: daemon.tokens is not None and daemon.tokens.expires_in_seconds() is not None)
        await eventually(lambda: opened(daemon))
        assert stored(tmp_path)["expires_in"] == 2_628_000
    finally:
        await daemon.stop()


async def test_token_expiring_is_emitted_and_logged_when_under_a_day_is_left(
    sim: Simulator, tmp_path: Path, captured_logs: list[dict[str, Any]]
) -> None:
    yaml_pair = {"access_token": sim.credentials.access_token, "refresh_token": sim.credentials.refresh_token}
    daemon = await run(sim, tmp_path, tokens=yaml_pair)
    await refresh_now(daemon)
    await daemon.stop()
    clock = Clock()
    clock.offset = timedelta(seconds=2_628_000 - 3600)  # an hour left on our clock
    later = Daemon(daemon_config(sim, tmp_path, ctrader=yaml_pair), clock=clock)
    seen: list[tuple[str, dict[str, Any]]] = []
    later.events.subscribe(lambda e: seen.append((e.type, e.data)))
    await later.start()
    try:
        await eventually(lambda: [d for t, d in seen if t == "token.expiring"])
        [data] = [d for t, d in seen if t == "token.expiring"]
        assert 3500 < data["expires_in_seconds"] <= 3600
        loaded = [e for e in captured_logs if e["event"] == "broker_token_loaded"]
        assert loaded[-1]["source"] == "database" and loaded[-1]["expires_in_seconds"] <= 3600
        assert any(e["event"] == "broker_token_expiring" for e in captured_logs)
    finally:
        await later.stop()
