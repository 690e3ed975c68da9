"""TLS: the server's certificate chain AND host name are verified; anything else is refused."""

from __future__ import annotations

from pathlib import Path

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from pipsync_lite.simulator import Simulator
from pipsync_lite.simulator import tls as sim_tls



async def refused(make_client: Any, sim: Simulator, **overrides: object) -> str:
    """Run a client that must never get past TLS; return its last error."""
    client = await make_client(sim, **overrides)
    await sim.wait_for(lambda: client.last_error, timeout=10, what="a connection error")
    assert not client.ready
    assert not sim.requests_named("ProtoOAApplicationAuthReq"), "credentials went to an unverified server"
    return client.last_error or ""


async def test_a_certificate_from_another_ca_is_refused(sim: Simulator, make_client: Any, tmp_path: Path) -> None:
    other = sim_tls.generate(tmp_path / "other-ca")
    error = await refused(make_client, sim, ca_file=other.ca_file)
    assert "certificate verify failed" in error


async def test_the_system_store_does_not_trust_the_simulator(sim: Simulator, make_client: Any) -> None:
    error = await refused(make_client, sim, ca_file=None)
    assert "certificate verify failed" in error


@pytest_asyncio.fixture
async def sim_on_other_address(tmp_path: Path) -> AsyncIterator[Simulator]:
    """The simulator on 127.0.0.2: its certificate names only localhost, 127.0.0.1 and ::1."""
    simulator = Simulator(seed=1, host="127.0.0.2", port=0, cert_dir=tmp_path / "sim2", tick_interval=None)
    try:
        await simulator.start()
    except OSError as exc:
        pytest.skip(f"cannot listen on 127.0.0.2 here: {exc}")
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_a_host_the_certificate_does_not_name_is_refused(
    sim_on_other_address: Simulator, make_client: Any
) -> None:
    """A certificate from the trusted CA, but for other names: refused (hostname check)."""
    error = await refused(make_client, sim_on_other_address, host="127.0.0.2")
    assert "mismatch" in error.lower() or "VerificationError" in error


async def test_the_certificate_matches_by_host_name_too(sim: Simulator, make_client: Any) -> None:
    await make_client(host="localhost")
    await sim.wait_for_request("ProtoOAApplicationAuthReq", timeout=10)


async def test_an_unreadable_ca_file_is_reported(sim: Simulator, make_client: Any, tmp_path: Path) -> None:
    client = await make_client(ca_file=tmp_path / "missing.pem")
    await sim.wait_for(lambda: client.last_error, timeout=10)
    assert "cannot read ca_file" in (client.last_error or "")
