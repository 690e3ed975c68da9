"""SQLite with group commit: one connection on its own thread, one fsync per batch of writes.

Every statement the daemon writes must be durable before the code that issued it goes on
(``synchronous=FULL``): a signal's row before the webhook answers, a request's journal row
before the request is sent. Committing each statement on its own costs one fsync each, and
the statements of concurrent alerts queue behind each other's fsyncs. Here the writer thread
takes everything queued while it was busy and runs it as ONE transaction with ONE commit:
under load many alerts share an fsync, alone an alert pays exactly one.

The guarantees are those of committing each statement on its own:

- a statement's future resolves only after the COMMIT that made it durable;
- statements run in the order they were issued (one thread, one FIFO queue);
- a statement that fails fails alone: each runs under a SAVEPOINT, so the others of its batch
  still commit (a failed COMMIT fails every statement of the batch);
- :meth:`Database.atomic` runs several statements all-or-nothing.

Writes nothing waits for (a request's settled state, the signal's final status, the peak
equity) are issued under :func:`lazily`: while alerts are coming (an eager write
in the last ``BUSY_WINDOW``), a batch of only such writes waits up to ``LAZY_WAIT`` for another
write to ride along with, so an alert's bookkeeping shares the next alert's fsync instead of
keeping the disk busy when that alert's row must be written; when all is quiet they go at once. Should
the process die in that window, they are what recovery rebuilds from the journal and the broker.

The surface is the part of aiosqlite's the project uses: ``execute()`` is awaitable and an
async context manager, and gives a cursor whose rows (``sqlite3.Row``) were fetched in the
thread. Reads go through the same queue, so they see every write issued before them.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

Params = Sequence[Any] | dict[str, Any]
Statement = tuple[str, Params]

#: How long a batch of only lazy writes waits for company (seconds).
LAZY_WAIT = 0.005
#: Lazy writes wait only this soon after an eager one (alerts are coming in).
BUSY_WINDOW = 0.05
_LAZY: ContextVar[bool] = ContextVar("pipsync_lazy_writes", default=False)


@contextmanager
def lazily() -> Iterator[None]:
    """Writes issued inside (in this task) may wait ``LAZY_WAIT`` to share a commit."""
    token = _LAZY.set(True)
    try:
        yield
    finally:
        _LAZY.reset(token)


class Cursor:
    """The rows and counters of one executed statement (already fetched)."""

    __slots__ = ("_rows", "description", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.description = cursor.description
        self._rows: list[sqlite3.Row] = cursor.fetchall() if cursor.description else []
        self.lastrowid = cursor.lastrowid
        self.rowcount = cursor.rowcount

    async def fetchone(self) -> sqlite3.Row | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[sqlite3.Row]:
        rows, self._rows = self._rows, []
        return rows

    def __aiter__(self) -> Cursor:
        return self

    async def __anext__(self) -> sqlite3.Row:
        if not self._rows:
            raise StopAsyncIteration
        return self._rows.pop(0)

    async def close(self) -> None:
        self._rows = []


class _Pending:
    """What ``execute`` returns: await it, or ``async with`` it, for the cursor."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Cursor]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, Cursor]:
        return self._future.__await__()

    async def __aenter__(self) -> Cursor:
        return await self._future

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(slots=True)
class _Op:
    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    alone: bool = False  # a script: runs outside any batch transaction
    several: bool = False  # atomic(): its statements need a transaction even when alone
    lazy: bool = False  # may wait LAZY_WAIT for company (see lazily())
    outcome: tuple[bool, Any] = field(default=(False, None))


_STOP = object()
_BOOKKEEPING = frozenset({"BEGIN IMMEDIATE", "SAVEPOINT op", "RELEASE op", "ROLLBACK TO op", "COMMIT", "ROLLBACK"})


class Database:
    """One SQLite connection, one thread, group commit (see the module doc)."""

    def __init__(self, path: Path, pragmas: Iterable[str] = ()) -> None:
        self.path = path
        self._pragmas = tuple(pragmas)
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_eager = 0.0  # monotonic time of the last write that would not wait
        self.batches = 0  # commits made (for benchmarks and tests)
        self.statements = 0

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._work, args=(ready,), name="sqlite-writer", daemon=True)
        self._thread.start()
        await ready

    def execute(self, sql: str, params: Params = ()) -> _Pending:
        return _Pending(self._submit(lambda conn: Cursor(conn.execute(sql, params))))

    async def atomic(self, statements: Sequence[Statement]) -> list[Cursor]:
        """Run ``statements`` all-or-nothing; their cursors once they are durable."""

        def run(conn: sqlite3.Connection) -> list[Cursor]:
            return [Cursor(conn.execute(sql, params)) for sql, params in statements]

        return await self._submit(run, several=True)  # type: ignore[no-any-return]

    async def create_function(self, name: str, narg: int, func: Callable[..., Any]) -> None:
        """An SQL function on this connection; it runs in the writer thread."""
        await self._submit(lambda conn: conn.create_function(name, narg, func), alone=True)

    async def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Each statement run from now on, passed to ``callback`` in the writer thread (tests);
        the batches' own BEGIN/SAVEPOINT/RELEASE/COMMIT are left out."""

        def trace(sql: str) -> None:
            if sql not in _BOOKKEEPING and callback is not None:
                callback(sql)

        await self._submit(lambda conn: conn.set_trace_callback(None if callback is None else trace), alone=True)

    async def script(self, sql: str) -> None:
        """Run a script (its own BEGIN/COMMIT, e.g. a migration) outside any batch."""
        await self._submit(lambda conn: conn.executescript(sql), alone=True)

    async def close(self) -> None:
        if self._thread is None:
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.put((_STOP, done))
        self._thread = None
        await done

    def _submit(
        self, run: Callable[[sqlite3.Connection], Any], *, alone: bool = False, several: bool = False
    ) -> asyncio.Future[Any]:
        if self._thread is None:
            raise RuntimeError("the database is not open")
        future = asyncio.get_running_loop().create_future()
        lazy = _LAZY.get()
        if not lazy:
            self._last_eager = time.monotonic()
        self._queue.put(_Op(run, future, alone, several, lazy))
        return future

    # -- the writer thread ---------------------------------------------------------------------

    def _work(self, ready: asyncio.Future[None]) -> None:
        loop = self._loop
        assert loop is not None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            for pragma in self._pragmas:
                conn.execute(f"PRAGMA {pragma}").fetchall()
        except BaseException as exc:  # noqa: BLE001 (handed to the opener)
            loop.call_soon_threadsafe(_fail, ready, exc)
            return
        loop.call_soon_threadsafe(_succeed, ready, None)
        while True:
            batch = self._next_batch()
            ops: list[_Op] = []
            for item in batch:
                if isinstance(item, tuple):  # stop: finish what came before it, then close
                    self._run_batch(conn, ops)
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    conn.close()
                    with contextlib.suppress(RuntimeError):
                        item[1].get_loop().call_soon_threadsafe(_succeed, item[1], None)
                    return
                if item.alone:
                    self._run_batch(conn, ops)
                    ops = []
                    self._run_alone(conn, item)
                else:
                    ops.append(item)
            self._run_batch(conn, ops)

    def _next_batch(self) -> list[Any]:
        """Everything queued; a batch of only lazy writes first waits a little for more."""
        batch = [self._queue.get()]
        while not self._queue.empty():
            batch.append(self._queue.get_nowait())
        now = time.monotonic()
        if now - self._last_eager > BUSY_WINDOW:
            return batch  # quiet: nothing is coming to share the commit with
        until = now + LAZY_WAIT
        while all(isinstance(item, _Op) and item.lazy for item in batch):
            remaining = until - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except Empty:
                break
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
        return batch

    def _run_alone(self, conn: sqlite3.Connection, op: _Op) -> None:
        try:
            op.outcome = (True, op.run(conn))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller)
            op.outcome = (False, exc)
        self._deliver([op])

    def _run_batch(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        if not ops:
            return
        try:
            if len(ops) == 1 and not ops[0].several:
                self._run_autocommit(conn, ops[0])  # alone in its batch: no transaction needed
            else:
                self._run_transaction(conn, ops)
        except BaseException as exc:  # noqa: BLE001 (the thread must never die: fail the batch)
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            for op in ops:
                op.outcome = (False, exc)
        self.statements += len(ops)
        self.batches += 1
        self._deliver(ops)

    @staticmethod
    def _run_autocommit(conn: sqlite3.Connection, op: _Op) -> None:
        try:
            op.outcome = (True, op.run(conn))
        except Exception as exc:  # noqa: BLE001 (handed to the caller)
            op.outcome = (False, exc)

    @staticmethod
    def _run_transaction(conn: sqlite3.Connection, ops: list[_Op]) -> None:
        """Every op under its own savepoint inside one transaction, one COMMIT for all."""
        conn.execute("BEGIN IMMEDIATE")
        done: list[_Op] = []
        for op in ops:
            if not conn.in_transaction:  # an error rolled the whole transaction back
                for earlier in done:
                    earlier.outcome = (False, sqlite3.OperationalError("the transaction was rolled back"))
                done = []
                conn.execute("BEGIN IMMEDIATE")
            conn.execute("SAVEPOINT op")
            try:
                op.outcome = (True, op.run(conn))
                conn.execute("RELEASE op")
            except Exception as exc:  # noqa: BLE001 (handed to the caller)
                op.outcome = (False, exc)
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
            done.append(op)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for op in ops:
                op.outcome = (False, exc)

    def _deliver(self, ops: list[_Op]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        for op in ops:
            by_loop.setdefault(op.future.get_loop(), []).append(op)
        for loop, mine in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, mine)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _resolve(ops: list[_Op]) -> None:
    for op in ops:
        ok, value = op.outcome
        if ok:
            _succeed(op.future, value)
        else:
            _fail(op.future, value)


def _succeed(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
