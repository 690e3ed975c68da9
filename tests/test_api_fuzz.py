"""Schemathesis against the live OpenAPI document: generated requests (valid and invalid) to
every operation, on a daemon trading the simulator, must find no failure of any check."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from .fakes import API_TOKEN
from .test_webhook_e2e import post, settled

#: Checks left out, and why: the API has no resources to create and delete, and one token.
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXCLUDED = ("use_after_free", "ensure_resource_availability", "object_level_authorization")


async def test_schemathesis_finds_no_failure(operator_daemon: Any, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    daemon = await operator_daemon()
    _, answer, _ = await post(http, daemon, {"action": "buy", "symbol": "EURUSD", "lots": 0.1})
    await settled(daemon, answer["signal_id"])  # something real to list
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG),
        "run", f"{daemon.base_url}/api/v1/openapi.json",
        "--url", daemon.base_url,
        "-H", f"Authorization: Bearer {API_TOKEN}",
        "--checks", "all", "--exclude-checks", ",".join(EXCLUDED),
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "100", "--seed", "7", "--workers", "1",
        "--request-timeout", "10",
        "--report", "junit", "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its cache directory lands there, not in the checkout
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "No issues found" in text or " passed" in text, text[-3000:]
    assert time.monotonic() - started < 240
