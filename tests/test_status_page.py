"""The status page: behind the API token (bearer header or the login form's cookie), with the
broker, kill switch, P/L, positions and the last signals, refreshing by itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import aiohttp

from pipsync_lite.simulator import Simulator
from pipsync_lite.status_page import COOKIE, session_value

from .fakes import API_TOKEN, bearer
from .test_webhook_e2e import post, settled


async def test_login_sets_a_cookie_that_opens_the_page_and_nothing_else(
    operator_daemon: Any, sim: Simulator
) -> None:
    daemon = await operator_daemon()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.get(daemon.base_url + "/", allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/login"
        async with browser.get(daemon.base_url + "/login") as response:
            assert response.status == 200 and 'name="token"' in await response.text()
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        async with browser.post(daemon.base_url + "/login", data={"token": "not-the-token"}, allow_redirects=False) as response:
            assert response.status == 401 and "not the API token" in await response.text()
            assert COOKIE not in response.cookies
        async with browser.post(daemon.base_url + "/login", data={"token": API_TOKEN}, allow_redirects=False) as response:
            assert response.status == 303 and response.headers["Location"] == "/"
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=604800" in cookie
            assert API_TOKEN not in cookie
        async with browser.get(daemon.base_url + "/") as response:
            page = await response.text()
            assert response.status == 200 and "Broker" in page and "connected" in page
        async with browser.get(daemon.base_url + "/status/panel") as response:
            assert response.status == 200 and "Last 50 signals" in await response.text()
        async with browser.get(daemon.base_url + "/v1/signals") as response:
            assert response.status == 401  # the cookie is for the page only
        async with browser.post(daemon.base_url + "/logout", allow_redirects=False) as response:
            assert response.status == 303
        async with browser.get(daemon.base_url + "/status/panel") as response:
            assert response.status == 401 and response.content_type == "application/problem+json"

    async with aiohttp.ClientSession() as client:
        async with client.get(daemon.base_url + "/", headers=bearer()) as response:
            assert response.status == 200  # the bearer header works too
        forged = session_value("some-other-token-value", 4_102_444_800)
        async with client.get(daemon.base_url + "/", cookies={COOKIE: forged}, allow_redirects=False) as response:
            assert response.status == 303
        expired = session_value(API_TOKEN, 1_000_000_000)
        async with client.get(daemon.base_url + "/", cookies={COOKIE: expired}, allow_redirects=False) as response:
            assert response.status == 303


async def test_page_shows_state_positions_and_signals(
    operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession
) -> None:
    daemon = await operator_daemon(risk={"kill_switch": False})
    _, opened, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.5, "sl_pips": 30})
    await settled(daemon, opened["signal_id"])
    sim.faults.reject_next_order("NOT_ENOUGH_MONEY")
    _, refused, _ = await post(http, daemon, {"action": "sell", "symbol": "EURUSD", "comment": "<script>alert(1)</script>"})
    await settled(daemon, refused["signal_id"])
    async with http.get(daemon.base_url + "/", headers=bearer()) as response:
        page = await response.text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page  # escaped
    assert "NOT_ENOUGH_MONEY" in page and "entry filled @ 1.10010" in page
    assert re.search(r"<td>EURUSD</td><td>buy</td><td class=\"num\">0.5</td>", page)
    assert "Kill switch" in page and ">off<" in page
    assert f"realized on {datetime.now(UTC).date().isoformat()}" in page  # risk.timezone UTC, boundary 00:00

    assert daemon.engine is not None
    await daemon.engine.kill_switch.engage("cli", "holiday", datetime.now(UTC))  # pipsync-lite kill on
    async with http.get(daemon.base_url + "/status/panel", headers=bearer()) as response:
        panel = await response.text()
    assert ">ON<" in panel and "kill switch engaged by the operator" in panel


async def test_without_an_api_token_the_page_is_disabled(start_daemon: Any, http: aiohttp.ClientSession) -> None:
    daemon = await start_daemon()
    for path in ("/", "/login", "/status/panel"):
        async with http.get(daemon.base_url + path) as response:
            assert response.status == 404 and response.content_type == "application/problem+json"
