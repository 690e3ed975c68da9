"""What the daemon finds at start after a crash, state by state (the rows a crash leaves are
written here directly; the crash test produces them with real SIGKILLs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipsync_lite.app import Daemon
from pipsync_lite.ctrader.client import ClientSettings, CTraderClient
from pipsync_lite.ctrader.model import OrderRequest, Side
from pipsync_lite.engine import utcnow
from pipsync_lite.simulator import Simulator
from pipsync_lite.store import utcnow_iso

from .conftest import daemon_config, eventually
from .test_faults_e2e import final, orders_per_label

BODY = '{"action": "buy", "symbol": "EURUSD", "lots": 0.01, "sl_pips": 20}'


@contextmanager
def database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(tmp_path / "trades.db")
    try:
        yield db
        db.commit()
    finally:
        db.close()


def crashed_signal(db: sqlite3.Connection, age_seconds: float = 1, body: str = BODY, action: str = "buy") -> int:
    received = utcnow_iso(utcnow() - timedelta(seconds=age_seconds))
    cursor = db.execute(
        "INSERT INTO signals (received_at, raw_body, action, symbol, status, updated_at) VALUES (?, ?, ?, 'EURUSD', 'accepted', ?)",
        (received, body, action, received),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def journaled(db: sqlite3.Connection, signal_id: int, kind: str, state: str, steps: int = 1, **fields: Any) -> None:
    columns = {"signal_id": signal_id, "kind": kind, "state": state, "steps": steps, "sent_at": utcnow_iso(), **fields}
    db.execute(f"INSERT INTO broker_requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", tuple(columns.values()))


async def first_run(sim: Simulator, tmp_path: Path) -> str:
    """Create the database (and its instance id) as a daemon that ran before would have."""
    daemon = Daemon(daemon_config(sim, tmp_path))
    await daemon.start()
    await daemon.stop()
    return daemon.store.instance_id


async def restart(sim: Simulator, tmp_path: Path) -> Daemon:
    daemon = Daemon(daemon_config(sim, tmp_path))
    await daemon.start()
    await eventually(lambda: daemon.intake is not None and daemon.intake.is_open, timeout=10)
    return daemon


async def place_elsewhere(sim: Simulator, label: str) -> None:
    """The order the crashed daemon sent: it reached the broker, its answer was lost."""
    creds = sim.credentials
    client = CTraderClient(ClientSettings(
        host="localhost", port=sim.port, ca_file=sim.ca_file, client_id=creds.client_id,
        client_secret=creds.client_secret, access_token=creds.access_token,
        refresh_token=creds.refresh_token, account_id=creds.account_id,
    ))
    await client.start()
    try:
        assert await client.wait_ready(10)
        symbol = client.symbol("EURUSD")
        assert symbol is not None
        await client.place_order(OrderRequest(symbol.symbol_id, Side.BUY, 100_000, label=label, client_order_id=label))
    finally:
        await client.stop()


async def test_after_a_crash_each_open_signal_gets_its_due(sim: Simulator, tmp_path: Path) -> None:
    instance = await first_run(sim, tmp_path)
    with database(tmp_path) as db:
        never_sent = crashed_signal(db)  # 202 answered, then killed before the order
        too_old = crashed_signal(db, age_seconds=60)
        reached = crashed_signal(db)  # sent, filled, answer lost with the process
        journaled(db, reached, "new_order", "sent", client_order_id=f"psl-{instance}-{reached}")
        lost_on_the_way = crashed_signal(db)  # written down, killed before it left the socket
        journaled(db, lost_on_the_way, "new_order", "sent", client_order_id=f"psl-{instance}-{lost_on_the_way}")
        refused = crashed_signal(db)
        journaled(db, refused, "new_order", "refused", detail="NOT_ENOUGH_MONEY: no")
        halfway = crashed_signal(db, body='{"action": "reverse", "symbol": "EURUSD"}', action="reverse")
        journaled(db, halfway, "close", "done", steps=2, position_id=1)
    await place_elsewhere(sim, f"psl-{instance}-{reached}")
    daemon = await restart(sim, tmp_path)
    try:
        assert (await final(daemon, never_sent, ("executed",)))["status"] == "executed"
        assert (await final(daemon, lost_on_the_way, ("executed",)))["status"] == "executed"
        old = await final(daemon, too_old, ("rejected",))
        assert old["rule"] == "max_queue_age"
        found = await final(daemon, reached, ("executed",))
        assert "reconciled" in found["reason"]
        [order] = await daemon.store.orders_for(reached)
        assert order["status"] == "filled" and order["position_id"] is not None
        assert (await final(daemon, refused, ("failed",)))["rule"] == "broker"
        cut = await final(daemon, halfway, ("failed",))
        assert cut["rule"] == "interrupted" and "1 more were never sent" in cut["reason"]
        sent = orders_per_label(sim)
        label = f"psl-{instance}-"
        assert sent[label + str(reached)] == 1  # found, not sent again
        assert sent[label + str(never_sent)] == sent[label + str(lost_on_the_way)] == 1
        assert label + str(too_old) not in sent and label + str(refused) not in sent
        assert len(sim.positions()) == 3
    finally:
        await daemon.stop()


async def test_an_interrupted_close_all_finishes_on_what_was_open_at_its_alert(sim: Simulator, tmp_path: Path) -> None:
    """Killed after the first of three closes: the two left are closed at start; a position a
    later alert opened meanwhile is not touched."""
    instance = await first_run(sim, tmp_path)
    with database(tmp_path) as db:
        earlier = [crashed_signal(db, age_seconds=5) for _ in range(2)]
        close = crashed_signal(db, body='{"action": "close", "symbol": "EURUSD"}', action="close")
        later = crashed_signal(db)
        for signal_id in (*earlier, later):
            db.execute("UPDATE signals SET status = 'executed' WHERE id = ?", (signal_id,))
        journaled(db, close, "close", "done", steps=3, position_id=1)
    for signal_id in (*earlier, later):
        await place_elsewhere(sim, f"psl-{instance}-{signal_id}")
    daemon = await restart(sim, tmp_path)
    try:
        row = await final(daemon, close, ("executed",))
        assert row["status"] == "executed"
        assert [p.label for p in sim.positions()] == [f"psl-{instance}-{later}"]
    finally:
        await daemon.stop()
