"""Tokens live in the database: refreshed pairs survive restarts, a changed YAML pair wins, and
the YAML pair itself is never copied into the database."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from pipsync_lite import tokens
from pipsync_lite.config import Config
from pipsync_lite.errors import ConfigError
from pipsync_lite.simulator import Simulator
from pipsync_lite.store import Store

from .conftest import daemon_config


def config_with(tmp_path: Path, access: str | None, refresh: str | None = None) -> Config:
    ctrader: dict[str, Any] = {"client_id": "id", "client_secret": "client-secret", "account_id": 1}
    if access is not None:
        ctrader["access_token"] = access
    if refresh is not None:
        ctrader["refresh_token"] = refresh
    return Config.model_validate(
        {"server": {"webhook_token": "w" * 20}, "ctrader": ctrader, "storage": {"path": str(tmp_path / "t.db")}}
    )


async def test_choice_follows_the_contract(tmp_path: Path) -> None:
    yaml_a = config_with(tmp_path, "yaml-access-a", "yaml-refresh-a")
    store = Store(yaml_a.storage.path)
    await store.open()
    try:
        assert (await tokens.choose(store, config_with(tmp_path, None))) is None  # nothing anywhere
        first = await tokens.choose(store, yaml_a)
        assert first is not None and (first.source, first.access_token) == ("config", "yaml-access-a")
        await tokens.save(store, yaml_a, "refreshed-access", "refreshed-refresh", 3600)
        chosen = await tokens.choose(store, yaml_a)  # YAML unchanged since read: the database wins
        assert chosen is not None and (chosen.source, chosen.access_token) == ("database", "refreshed-access")
        assert chosen.expires_at is not None and abs(chosen.expires_at.timestamp() - (time.time() + 3600)) < 5
        yaml_b = config_with(tmp_path, "yaml-access-b", "yaml-refresh-b")  # the user re-authorized by hand
        chosen = await tokens.choose(store, yaml_b)
        assert chosen is not None and (chosen.source, chosen.access_token) == ("config", "yaml-access-b")
        await tokens.save(store, yaml_b, "auth-access", "auth-refresh", 7200)  # `pipsync-lite auth`
        chosen = await tokens.choose(store, yaml_b)
        assert chosen is not None and chosen.access_token == "auth-access"
        assert "auth-access" not in repr(chosen)
    finally:
        await store.close()
    mode = stat.S_IMODE(os.stat(yaml_a.storage.path).st_mode)
    assert mode == 0o600, oct(mode)
    dump = yaml_a.storage.path.read_bytes()
    assert b"yaml-access-a" not in dump and b"yaml-access-b" not in dump  # only their digests


async def test_a_refreshed_pair_is_used_after_a_restart(operator_daemon: Any, sim: Simulator) -> None:
    first = await operator_daemon()
    assert first.broker is not None
    await first.broker.refresh_tokens()  # the YAML pair is dead at the broker from now on
    await first.stop()
    second = await operator_daemon()  # same YAML, same database
    assert second.broker is not None and second.broker.ready
    assert second.broker.settings.access_token == sim.credentials.access_token


async def test_no_token_anywhere_is_a_clear_error(sim: Simulator, tmp_path: Path) -> None:
    from pipsync_lite.app import Daemon

    config = daemon_config(sim, tmp_path, ctrader={"access_token": None, "refresh_token": None})
    daemon = Daemon(config)
    with pytest.raises(ConfigError) as info:
        await daemon.start()
    assert "run `pipsync-lite auth`" in info.value.errors[0]
