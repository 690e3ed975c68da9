"""The group-commit writer: shared commits, failures that fail alone, all-or-nothing, order,
lazy writes, and durability (read back by a separate connection after close)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pipsync_lite import database
from pipsync_lite.database import Database, lazily
from pipsync_lite.store import PRAGMAS, SignalRecord, Store


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    opened = Database(tmp_path / "t.db", PRAGMAS)
    await opened.open()
    await opened.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    yield opened
    await opened.close()


def rows_on_disk(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY id")]


async def test_concurrent_writes_share_commits_and_all_are_durable(db: Database, tmp_path: Path) -> None:
    before = db.batches
    await asyncio.gather(*(db.execute("INSERT INTO t (v) VALUES (?)", (str(i),)) for i in range(200)))
    assert db.batches - before < 20  # 200 writes, a handful of fsyncs
    await db.close()
    assert rows_on_disk(tmp_path / "t.db") == [str(i) for i in range(200)]  # in the order issued


async def test_a_failing_statement_fails_alone(db: Database, tmp_path: Path) -> None:
    results = await asyncio.gather(
        db.execute("INSERT INTO t (v) VALUES ('a')"),
        db.execute("INSERT INTO t (v) VALUES (NULL)"),
        db.execute("INSERT INTO t (v) VALUES ('b')"),
        return_exceptions=True,
    )
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    await db.close()
    assert rows_on_disk(tmp_path / "t.db") == ["a", "b"]


async def test_atomic_is_all_or_nothing(db: Database, tmp_path: Path) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await db.atomic([("INSERT INTO t (v) VALUES ('x')", ()), ("INSERT INTO t (v) VALUES (NULL)", ())])
    cursors = await db.atomic([("INSERT INTO t (v) VALUES ('y')", ()), ("INSERT INTO t (v) VALUES ('z')", ())])
    assert [c.lastrowid for c in cursors] == [1, 2]
    await db.close()
    assert rows_on_disk(tmp_path / "t.db") == ["y", "z"]


async def test_reads_see_every_write_issued_before_them(db: Database) -> None:
    writes = [db.execute("INSERT INTO t (v) VALUES (?)", (str(i),)) for i in range(10)]
    async with db.execute("SELECT COUNT(*) FROM t") as cursor:
        row = await cursor.fetchone()
    assert row is not None and row[0] == 10
    await asyncio.gather(*writes)


async def test_a_lazy_write_rides_with_the_next_eager_one_while_alerts_come(db: Database) -> None:
    await db.execute("INSERT INTO t (v) VALUES ('eager')")  # alerts are coming
    before = db.batches
    with lazily():
        bookkeeping = db.execute("INSERT INTO t (v) VALUES ('lazy')")
    alert = db.execute("INSERT INTO t (v) VALUES ('next alert')")
    await asyncio.gather(bookkeeping, alert)
    assert db.batches - before == 1  # one commit, one fsync for both


async def test_a_lazy_write_goes_at_once_when_all_is_quiet(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "BUSY_WINDOW", 0.0)  # no eager write lately
    monkeypatch.setattr(database, "LAZY_WAIT", 30.0)  # were it to wait, the deadline below would fail
    with lazily():
        write = db.execute("INSERT INTO t (v) VALUES ('alone')")
    await asyncio.wait_for(write, timeout=5)


async def test_store_ids_continue_after_a_restart(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = Store(tmp_path / "s.db")
    await store.open()
    first = await store.insert_signal(SignalRecord(received_at=datetime.now(UTC), raw_body="{}", status="invalid"))
    await store.close()
    again = Store(tmp_path / "s.db")
    await again.open()
    second = await again.insert_signal(SignalRecord(received_at=datetime.now(UTC), raw_body="{}", status="invalid"))
    assert second == first + 1
    assert [r["id"] for r in await again.signals()] == [first, second]
    await again.close()
