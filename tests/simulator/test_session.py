"""Session: application/account authorization, tokens, refresh, logout and the gates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipsync_lite.simulator import SimCredentials, Simulator

from .conftest import Connect
from .wire import MODEL, M, WireClient


async def test_full_authorization_flow(sim: Simulator, connect: Connect) -> None:
    client = await connect(authorize=False)
    creds = sim.credentials
    assert (await client.app_auth(creds)).DESCRIPTOR.name == "ProtoOAApplicationAuthRes"
    res = await client.request(M.ProtoOAGetAccountListByAccessTokenReq(
        accessToken=creds.access_token))
    assert res.DESCRIPTOR.name == "ProtoOAGetAccountListByAccessTokenRes"
    assert res.permissionScope == MODEL.SCOPE_TRADE
    [account] = res.ctidTraderAccount
    assert account.ctidTraderAccountId == creds.account_id and not account.isLive
    assert account.traderLogin == sim.account.trader_login
    res = await client.account_auth(creds)
    assert res.DESCRIPTOR.name == "ProtoOAAccountAuthRes"
    assert res.ctidTraderAccountId == creds.account_id


async def test_wrong_client_secret_is_ch_client_auth_failure(sim: Simulator,
                                                             connect: Connect) -> None:
    client = await connect(authorize=False)
    res = await client.app_auth(replace(sim.credentials, client_secret="nope"))
    assert res.DESCRIPTOR.name == "ProtoOAErrorRes"
    assert res.errorCode == "CH_CLIENT_AUTH_FAILURE"


async def test_second_application_auth_is_already_logged_in(sim: Simulator,
                                                            client: WireClient) -> None:
    res = await client.app_auth(sim.credentials)
    assert res.errorCode == "ALREADY_LOGGED_IN"


async def test_requests_before_application_auth_are_refused(sim: Simulator,
                                                            connect: Connect) -> None:
    client = await connect(authorize=False)
    res = await client.request(M.ProtoOAGetAccountListByAccessTokenReq(
        accessToken=sim.credentials.access_token))
    assert res.errorCode == "CH_CLIENT_NOT_AUTHENTICATED"
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert res.errorCode == "CH_CLIENT_NOT_AUTHENTICATED"


async def test_account_requests_before_account_auth_are_account_not_authorized(
        sim: Simulator, connect: Connect) -> None:
    client = await connect(authorize=False)
    await client.app_auth(sim.credentials)
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert res.errorCode == "ACCOUNT_NOT_AUTHORIZED"
    assert res.ctidTraderAccountId == sim.account_id


async def test_account_auth_checks_token_and_account(sim: Simulator, connect: Connect) -> None:
    client = await connect(authorize=False)
    creds = sim.credentials
    await client.app_auth(creds)
    res = await client.account_auth(replace(creds, access_token="forged"))
    assert res.errorCode == "CH_ACCESS_TOKEN_INVALID"
    res = await client.account_auth(replace(creds, account_id=creds.account_id + 1))
    assert res.errorCode == "ACCOUNT_NOT_AUTHORIZED"
    res = await client.request(M.ProtoOAGetAccountListByAccessTokenReq(accessToken="forged"))
    assert res.errorCode == "CH_ACCESS_TOKEN_INVALID"


async def test_expired_token_is_oa_auth_token_expired_everywhere(sim: Simulator,
                                                                 client: WireClient) -> None:
    sim.expire_access_token()
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert res.errorCode == "OA_AUTH_TOKEN_EXPIRED"
    res = await client.account_auth(sim.credentials)
    assert res.errorCode == "OA_AUTH_TOKEN_EXPIRED"
    res = await client.request(M.ProtoOAGetAccountListByAccessTokenReq(
        accessToken=sim.credentials.access_token))
    assert res.errorCode == "OA_AUTH_TOKEN_EXPIRED"


async def test_refresh_rotates_tokens_and_ends_old_sessions(sim: Simulator,
                                                            connect: Connect) -> None:
    client = await connect()
    other = await connect()
    old = sim.credentials
    res = await client.request(M.ProtoOARefreshTokenReq(refreshToken=old.refresh_token))
    assert res.DESCRIPTOR.name == "ProtoOARefreshTokenRes"
    assert res.tokenType == "bearer" and res.expiresIn == 2_628_000
    assert res.accessToken != old.access_token and res.refreshToken != old.refresh_token
    assert sim.credentials.access_token == res.accessToken
    for c in (client, other):
        event = await c.wait_named("ProtoOAAccountsTokenInvalidatedEvent")
        assert list(event.ctidTraderAccountIds) == [old.account_id]
        assert "refresh" in event.reason
    # The old access token and the used refresh token are dead.
    assert (await client.account_auth(old)).errorCode == "CH_ACCESS_TOKEN_INVALID"
    again = await client.request(M.ProtoOARefreshTokenReq(refreshToken=old.refresh_token))
    assert again.errorCode == "CH_ACCESS_TOKEN_INVALID"
    # The session ended; the new token authorizes it again.
    trader = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=old.account_id))
    assert trader.errorCode == "ACCOUNT_NOT_AUTHORIZED"
    assert (await client.account_auth(sim.credentials)).DESCRIPTOR.name == "ProtoOAAccountAuthRes"
    trader = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=old.account_id))
    assert trader.DESCRIPTOR.name == "ProtoOATraderRes"


async def test_refresh_can_keep_sessions(tmp_path: Path) -> None:
    async with Simulator(seed=3, cert_dir=tmp_path, refresh_ends_sessions=False) as sim:
        client = await WireClient.connect(sim)
        await client.authorize(sim.credentials)
        await client.request(M.ProtoOARefreshTokenReq(
            refreshToken=sim.credentials.refresh_token))
        trader = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
        assert trader.DESCRIPTOR.name == "ProtoOATraderRes"
        assert not client.named("ProtoOAAccountsTokenInvalidatedEvent")
        await client.close()


async def test_invalidated_token_ends_sessions_and_is_ch_access_token_invalid(
        sim: Simulator, client: WireClient) -> None:
    creds = sim.credentials
    sim.invalidate_access_token()
    event = await client.wait_named("ProtoOAAccountsTokenInvalidatedEvent")
    assert list(event.ctidTraderAccountIds) == [creds.account_id]
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=creds.account_id))
    assert res.errorCode == "ACCOUNT_NOT_AUTHORIZED"
    assert (await client.account_auth(creds)).errorCode == "CH_ACCESS_TOKEN_INVALID"


async def test_version(client: WireClient) -> None:
    res = await client.request(M.ProtoOAVersionReq())
    assert res.DESCRIPTOR.name == "ProtoOAVersionRes" and res.version


async def test_logout_answers_then_sends_account_disconnect(sim: Simulator,
                                                            client: WireClient) -> None:
    got = await client.request_all(
        M.ProtoOAAccountLogoutReq(ctidTraderAccountId=sim.account_id),
        until=lambda ms: len(ms) >= 2)
    assert [m.DESCRIPTOR.name for m in got] == [
        "ProtoOAAccountLogoutRes", "ProtoOAAccountDisconnectEvent"]
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert res.errorCode == "ACCOUNT_NOT_AUTHORIZED"


async def test_account_disconnect_event_on_demand(sim: Simulator, client: WireClient) -> None:
    sim.send_account_disconnect()
    event = await client.wait_named("ProtoOAAccountDisconnectEvent")
    assert event.ctidTraderAccountId == sim.account_id
    res = await client.request(M.ProtoOATraderReq(ctidTraderAccountId=sim.account_id))
    assert res.errorCode == "ACCOUNT_NOT_AUTHORIZED"


async def test_client_disconnect_event_on_demand_then_close(sim: Simulator,
                                                            client: WireClient) -> None:
    sim.send_client_disconnect("maintenance")
    event = await client.wait_named("ProtoOAClientDisconnectEvent")
    assert event.reason == "maintenance"
    await client.wait_closed()


async def test_explicit_credentials_are_used(tmp_path: Path) -> None:
    creds = SimCredentials("1_id", "secret", "access", "refresh", 12345)
    async with Simulator(seed=1, cert_dir=tmp_path, credentials=creds) as sim:
        assert sim.credentials == creds and sim.account_id == 12345
        client = await WireClient.connect(sim)
        await client.authorize(creds)
        await client.close()


def test_credentials_do_not_leak_into_repr() -> None:
    creds = SimCredentials.from_seed(1)
    assert creds.client_secret not in repr(creds)
    assert creds.access_token not in repr(creds)


async def test_invalidation_can_revoke_the_refresh_token_too(sim: Simulator,
                                                             client: WireClient) -> None:
    refresh = sim.credentials.refresh_token
    sim.invalidate_access_token(refresh_too=True)
    await client.wait_named("ProtoOAAccountsTokenInvalidatedEvent")
    res = await client.request(M.ProtoOARefreshTokenReq(refreshToken=refresh))
    assert res.errorCode == "CH_ACCESS_TOKEN_INVALID"


async def test_refresh_still_works_after_plain_invalidation(sim: Simulator,
                                                            client: WireClient) -> None:
    refresh = sim.credentials.refresh_token
    sim.invalidate_access_token()
    res = await client.request(M.ProtoOARefreshTokenReq(refreshToken=refresh))
    assert res.DESCRIPTOR.name == "ProtoOARefreshTokenRes"
    assert (await client.account_auth(sim.credentials)).DESCRIPTOR.name == "ProtoOAAccountAuthRes"
