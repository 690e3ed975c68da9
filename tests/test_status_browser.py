"""The status page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
selenium): log in through the form, read the panel, watch it refresh by itself, screenshot."""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipsync_lite.simulator import Simulator

from .fakes import API_TOKEN
from .test_webhook_e2e import post, settled

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


class Browser:
    """Synchronous selenium, run in a worker thread: the daemon serves on the test's loop."""

    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM  # type: ignore[assignment]
        for flag in (
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--window-size=1400,1000", f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)

    def log_in(self, base_url: str, token: str) -> str:
        from selenium.webdriver.common.by import By

        self.driver.get(base_url + "/")
        assert self.driver.current_url.endswith("/login"), self.driver.current_url
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        self.wait_for(lambda d: d.find_elements(By.ID, "panel"))
        return self.driver.current_url

    def text(self, selector: str) -> str:
        from selenium.webdriver.common.by import By

        return str(self.driver.find_element(By.CSS_SELECTOR, selector).text)

    def wait_for(self, condition: Any, timeout: float = 15) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)

    def close(self) -> None:
        self.driver.quit()


async def test_status_page_in_chromium(
    operator_daemon: Any, sim: Simulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    if CHROMIUM is None or CHROMEDRIVER is None:
        missing = "Chromium is not installed: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("PIPSYNC_REQUIRE_CHROMIUM"):
            pytest.fail(missing)
        pytest.skip(missing)
    daemon = await operator_daemon()
    _, opened, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.3, "sl_pips": 25, "tp_pips": 50})
    await settled(daemon, opened["signal_id"])
    _, short, _ = await post(http, daemon, {"action": "sell", "symbol": "USDJPY", "lots": 0.1})
    await settled(daemon, short["signal_id"])
    _, refused, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 50})  # no margin
    await settled(daemon, refused["signal_id"])  # the broker's refusal is on record before the page is read
    await post(http, daemon, "action=buy;symbol=EURUSD;lots=lots", "text/plain")  # invalid
    sim.faults.reject_next_order("MARKET_CLOSED")
    _, failed, _ = await post(http, daemon, {"action": "buy", "symbol": "GBPUSD", "lots": 0.05})
    await settled(daemon, failed["signal_id"])

    browser = await asyncio.to_thread(Browser, tmp_path / "chromium-profile")
    try:
        url = await asyncio.to_thread(browser.log_in, daemon.base_url, API_TOKEN)
        assert url == daemon.base_url + "/"
        cards = await asyncio.to_thread(browser.text, ".cards")
        assert "CONNECTED" in cards.upper() and "KILL SWITCH" in cards.upper() and "TODAY'S P/L" in cards.upper()
        positions = await asyncio.to_thread(browser.text, "main table")
        assert "EURUSD" in positions and "USDJPY" in positions and "0.3" in positions
        signals = await asyncio.to_thread(browser.text, "main table:last-of-type")
        assert "unknown_symbol" not in signals
        assert "MARKET_CLOSED" in signals and "NOT_ENOUGH_MONEY" in signals and "entry filled @ 1.10010" in signals and "invalid" in signals

        # a new alert appears without reloading: the page refreshes its panel by itself
        await post(http, daemon, {"action": "buy", "symbol": "NOSUCH"})

        def refreshed(driver: Any) -> bool:
            return "unknown_symbol" in driver.find_element("id", "panel").text

        await asyncio.to_thread(browser.wait_for, refreshed)
        shot = tmp_path / "status-page.png"
        await asyncio.to_thread(browser.driver.save_screenshot, str(shot))
    finally:
        await asyncio.to_thread(browser.close)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1400, 1000) or width >= 1200, (width, height)
    assert len(png) > 20_000  # a rendered page, not a blank image
    keep = os.environ.get("PIPSYNC_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
