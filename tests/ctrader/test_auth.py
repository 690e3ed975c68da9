"""Authorization and tokens: permanent failures, refresh on expiry, persistence before use."""

from __future__ import annotations

import dataclasses
from typing import Any

from structlog.testing import capture_logs

from pipsync_lite.simulator import Simulator


async def test_a_bad_client_secret_is_permanent_and_retried_only_slowly(sim: Simulator, make_client: Any) -> None:
    with capture_logs() as logs:
        client = await make_client(client_secret="wrong-secret", auth_failure_backoff=300.0)
        await sim.wait_for(lambda: [e for e in logs if e["event"] == "broker_disconnected"], timeout=10)
    assert "CH_CLIENT_AUTH_FAILURE" in (client.last_error or "")
    assert not client.ready
    failed = [e for e in logs if e["event"] == "broker_auth_failed"]
    assert failed and failed[0]["code"] == "CH_CLIENT_AUTH_FAILURE"
    scheduled = [e for e in logs if e["event"] == "broker_disconnected"]
    assert scheduled and scheduled[0]["reconnect_in"] == 300.0
    assert len(sim.requests_named("ProtoOAApplicationAuthReq")) == 1


async def test_an_account_outside_the_tokens_list_is_an_auth_error(sim: Simulator, make_client: Any) -> None:
    client = await make_client(account_id=sim.account_id + 1, auth_failure_backoff=300.0)
    await sim.wait_for(lambda: client.last_error, timeout=10)
    assert "not among the token's accounts" in (client.last_error or "")
    assert not sim.requests_named("ProtoOAAccountAuthReq")


async def test_an_expired_token_is_refreshed_and_persisted_before_account_auth(
    sim: Simulator, make_client: Any
) -> None:
    old = sim.credentials
    sim.expire_access_token()
    saved: list[tuple[str, str, int, int]] = []

    async def on_tokens(access: str, refresh: str, expires_in: int) -> None:
        saved.append((access, refresh, expires_in, len(sim.requests)))

    client = await make_client(on_tokens=on_tokens)
    new = await sim.wait_for(
        lambda: sim.credentials if sim.credentials.access_token != old.access_token else None, timeout=10
    )
    auth = await sim.wait_for_request(
        "ProtoOAAccountAuthReq", lambda r: r.message.accessToken == new.access_token, timeout=10
    )
    assert saved and saved[0][:2] == (new.access_token, new.refresh_token)
    assert saved[0][2] > 0
    # the callback ran (and was awaited) before the new token was presented
    assert sim.requests.index(auth) >= saved[0][3]
    assert client.token_expires_at is not None


async def test_no_secret_is_ever_logged(sim: Simulator, make_client: Any) -> None:
    secrets = {sim.credentials.client_secret, sim.credentials.access_token, sim.credentials.refresh_token}
    sim.expire_access_token()  # forces a refresh: new tokens must stay out of the logs too
    with capture_logs() as logs:
        client = await make_client(on_tokens=_ignore)
        await sim.wait_for(lambda: sim.requests_named("ProtoOARefreshTokenReq"), timeout=10)
        await sim.wait_for(lambda: len(sim.requests_named("ProtoOAAccountAuthReq")) >= 1, timeout=10)
        secrets |= {sim.credentials.access_token, sim.credentials.refresh_token}
        text = repr(logs) + repr(client.settings) + repr(dataclasses.asdict(client.settings).keys())
    for secret in secrets:
        assert secret not in text


async def _ignore(access: str, refresh: str, expires_in: int) -> None:
    return None
