"""SIGTERM: intake stops (503), the order in flight finishes, the session closes, the DB is flushed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp

from pipsync_lite.simulator import Simulator, TlsFiles

from .test_crash import TOKEN, free_port, spawn, write_config


async def test_sigterm_lets_the_order_in_flight_finish_and_refuses_new_alerts(tls_files: TlsFiles, tmp_path: Path) -> None:
    sim = Simulator(seed=3, tls_files=tls_files, tick_interval=None)
    await sim.start()
    port, database, config = free_port(), tmp_path / "trades.db", tmp_path / "config.yaml"
    write_config(config, sim, port, database)
    url = f"http://127.0.0.1:{port}/webhook/{TOKEN}"
    alert = {"action": "buy", "symbol": "EURUSD", "lots": "0.01", "sl_pips": 20}
    try:
        with open(tmp_path / "daemon.log", "ab") as log:
            proc = await spawn(config, log)
            async with aiohttp.ClientSession() as http:
                await sim.wait_for(lambda: sim.requests_named("ProtoOASubscribeSpotsReq") or sim.requests_named("ProtoOAReconcileReq"), timeout=20)
                signal_id = await _accepted(http, url, alert)
                await sim.wait_for_request("ProtoOANewOrderReq")
                sim.faults.delay("ProtoOANewOrderReq", 1.5, times=1)  # the next order is slow on the wire
                slow_id = await _accepted(http, url, alert)
                await sim.wait_for_request("ProtoOANewOrderReq", lambda r: r.message.clientOrderId.endswith(f"-{slow_id}"))
                proc.terminate()
                refused, late = await _status_during_shutdown(http, url, alert)
                assert refused == 503
                assert await asyncio.wait_for(proc.wait(), 20) == 0
        await sim.wait_for(lambda: sim.connection_ids == [], timeout=5)  # the session was closed
        db = sqlite3.connect(database)
        statuses = dict(db.execute("SELECT id, status FROM signals").fetchall())
        db.close()
        assert statuses[signal_id] == statuses[slow_id] == "executed"  # the slow order was let finish
        # an alert that was inside the engine as the stop began waits in the queue for the next start
        assert {statuses[i] for i in late} <= {"executed", "queued"}
        assert len(sim.positions()) == 2 + sum(statuses[i] == "executed" for i in late)
        wal = database.with_name(database.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0  # checkpointed: everything is in the file
    finally:
        await sim.stop()


def _unique(alert: dict[str, str | int]) -> dict[str, str | int]:
    """Identical bodies within the dedupe window are duplicates: give each its own id."""
    _unique.count += 1  # type: ignore[attr-defined]
    return {**alert, "id": f"shutdown-{_unique.count}"}  # type: ignore[attr-defined]


_unique.count = 0  # type: ignore[attr-defined]


async def _accepted(http: aiohttp.ClientSession, url: str, alert: dict[str, str | int]) -> int:
    async with http.post(url, json=_unique(alert)) as response:
        assert response.status == 202, await response.text()
        return int((await response.json())["signal_id"])


async def _status_during_shutdown(http: aiohttp.ClientSession, url: str, alert: dict[str, str | int]) -> tuple[int, list[int]]:
    """The first answer other than 202 after SIGTERM (the signal handler needs a moment to
    run), and the alerts accepted until then."""
    accepted = []
    for _ in range(100):
        async with http.post(url, json=_unique(alert)) as response:
            if response.status != 202:
                return response.status, accepted
            accepted.append(int((await response.json())["signal_id"]))
    raise AssertionError("alerts were still accepted after SIGTERM")
