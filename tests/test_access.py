"""Who may call the webhook: IP allowlist (CIDR, TradingView preset) behind trusted proxies,
signed requests with a replay window, header limits and slow-client timeouts."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from pipsync_lite.access import Access, sign
from pipsync_lite.config import Config, parse_config
from pipsync_lite.errors import ConfigError

from .conftest import WEBHOOK_TOKEN, StartDaemon
from .test_faults_e2e import final

SECRET = "inbound-hmac-secret-0123456789"
BODY = b'{"action": "buy", "symbol": "EURUSD", "lots": 0.01}'
TRADINGVIEW = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]


def config_with(**server: object) -> Config:
    text = json.dumps({
        "server": {"webhook_token": "a-long-random-webhook-token", **server},
        "ctrader": {"client_id": "x", "client_secret": "s", "access_token": "a", "account_id": 7},
    })
    return parse_config(text)


# -- unit: addresses ----------------------------------------------------------------------------


def test_tradingview_preset_expands_to_its_published_addresses() -> None:
    config = config_with(allowed_ips=["TradingView", "10.0.0.0/8", "2001:db8::1"])
    assert config.server.allowed_ips == (*(f"{ip}/32" for ip in TRADINGVIEW), "10.0.0.0/8", "2001:db8::1/128")


def test_an_unknown_entry_names_the_presets() -> None:
    with pytest.raises(ConfigError) as info:
        config_with(allowed_ips=["tradingveiw"])
    assert "server.allowed_ips" in info.value.errors[0] and "tradingview" in info.value.errors[0]


def test_allowlist_matches_cidr_ranges_and_mapped_ipv6() -> None:
    access = Access(["10.1.0.0/16", "52.89.214.238/32"])
    assert access.ip_allowed("10.1.200.3").ok
    assert access.ip_allowed("::ffff:52.89.214.238").ok
    assert not access.ip_allowed("10.2.0.1").ok and access.ip_allowed("10.2.0.1").status == 403
    assert not access.ip_allowed(None).ok and not access.ip_allowed("garbage").ok
    assert Access().ip_allowed("203.0.113.9").ok  # empty list: everyone


def test_forwarded_for_is_read_only_as_far_as_the_trusted_proxies() -> None:
    assert Access(trust_proxy=0).client_ip("127.0.0.1", ["1.2.3.4"]) == "127.0.0.1"
    one = Access(trust_proxy=1)
    # the client forged the first entry; the proxy appended the real address
    assert one.client_ip("127.0.0.1", ["6.6.6.6, 52.89.214.238"]) == "52.89.214.238"
    assert one.client_ip("127.0.0.1", ["6.6.6.6", "52.89.214.238"]) == "52.89.214.238"  # repeated headers
    assert one.client_ip("127.0.0.1", []) == "127.0.0.1"
    two = Access(trust_proxy=2)
    assert two.client_ip("127.0.0.1", ["6.6.6.6, 52.89.214.238, 10.0.0.2"]) == "52.89.214.238"
    assert two.client_ip("127.0.0.1", ["52.89.214.238"]) == "52.89.214.238"
    assert one.client_ip("127.0.0.1", ["not-an-ip"]) is None


# -- unit: signatures ---------------------------------------------------------------------------


def test_signature_checks_body_time_and_replay() -> None:
    now = 1_700_000_000
    access = Access(hmac_secret=SECRET, tolerance_seconds=300, clock=lambda: now)
    good = sign(SECRET, BODY, now - 10)
    assert access.signature_valid(good, BODY).ok
    assert "replay" in access.signature_valid(good, BODY).reason
    assert "does not match" in access.signature_valid(sign(SECRET, BODY + b" ", now), BODY).reason
    assert "more than 300 s" in access.signature_valid(sign(SECRET, BODY, now - 301), BODY).reason
    assert "not signed" in access.signature_valid(None, BODY).reason
    assert access.signature_valid(f"t={now},v1={'0' * 64},v1={sign(SECRET, BODY, now).split('v1=')[1]}", BODY).ok
    for garbage in ("t=abc,v1=zz", "v1=" + "a" * 64, f"t={now}", "t=١٢٣,v1=" + "é" * 64, ",,,="):
        verdict = access.signature_valid(garbage, BODY)
        assert not verdict.ok and verdict.status == 401
    assert Access().signature_valid(None, BODY).ok  # no secret: not required


# -- end to end ---------------------------------------------------------------------------------


async def test_address_outside_the_allowlist_gets_403_and_nothing_is_stored(
    start_daemon: StartDaemon, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(server={"allowed_ips": ["tradingview"]})
    async with http.post(f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}", data=BODY) as response:
        assert response.status == 403
        assert response.content_type == "application/problem+json"
    assert await daemon.store.count("signals") == 0
    async with http.get(f"{daemon.base_url}/readyz") as response:  # only the webhook is guarded
        assert response.status == 200


async def test_tradingview_behind_a_proxy_is_let_in_and_its_address_recorded(
    start_daemon: StartDaemon, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(server={"allowed_ips": ["tradingview"], "trust_proxy": 1})
    headers = {"X-Forwarded-For": "52.89.214.238"}
    async with http.post(f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}", data=BODY, headers=headers) as response:
        assert response.status == 202
        signal_id = (await response.json())["signal_id"]
    assert (await daemon.store.signal(signal_id))["source_ip"] == "52.89.214.238"
    forged = {"X-Forwarded-For": "52.89.214.238, 198.51.100.7"}  # the proxy saw 198.51.100.7
    async with http.post(f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}", data=BODY, headers=forged) as response:
        assert response.status == 403


async def test_signed_requests_are_required_when_a_secret_is_set(
    start_daemon: StartDaemon, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon(server={"inbound_hmac_secret": SECRET})
    url = f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}"
    async with http.post(url, data=BODY) as response:
        assert response.status == 401 and "not signed" in (await response.json())["detail"]
    signature = sign(SECRET, BODY, int(time.time()))
    async with http.post(url, data=BODY, headers={"X-Signature": signature}) as response:
        assert response.status == 202
        signal_id = (await response.json())["signal_id"]
    async with http.post(url, data=BODY, headers={"X-Signature": signature}) as response:
        assert response.status == 401 and "replay" in (await response.json())["detail"]
    assert await daemon.store.count("signals") == 1
    assert (await final(daemon, signal_id))["status"] == "executed"


async def test_oversized_headers_are_refused_before_any_handler(
    start_daemon: StartDaemon, http: aiohttp.ClientSession
) -> None:
    daemon = await start_daemon()
    url = f"{daemon.base_url}/webhook/{WEBHOOK_TOKEN}"
    async with http.post(url, data=BODY, headers={"X-Big": "a" * 9000}) as response:
        assert 400 <= response.status < 500
    many = {f"X-H{i}": "1" for i in range(80)}
    async with http.post(url, data=BODY, headers=many) as response:
        assert 400 <= response.status < 500
    assert await daemon.store.count("signals") == 0


async def _raw(port: int, *chunks: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for chunk in chunks:
        writer.write(chunk)
    await writer.drain()
    return reader, writer


async def test_a_client_dripping_its_headers_is_cut_off(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(server={"client_timeout_seconds": 0.5})
    reader, writer = await _raw(daemon.port, f"POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
    started = time.monotonic()
    try:
        for _ in range(40):  # one header every 0.1 s, never finishing
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            closed = await _closed(reader, 0.1)
            if closed:
                break
        assert closed and time.monotonic() - started < 2.0
    finally:
        writer.close()


async def test_a_client_stalling_its_body_gets_408(start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(server={"client_timeout_seconds": 0.5})
    head = f"POST /webhook/{WEBHOOK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode()
    reader, writer = await _raw(daemon.port, head, b'{"action": ')
    try:
        status_line = await asyncio.wait_for(reader.readline(), 3)
        assert b" 408 " in status_line
    finally:
        writer.close()


async def _closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), timeout)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b"" or data.startswith(b"HTTP/1.1 4")
