"""Is this alert a repeat? The same ``id`` as any signal past the guard, or (without an ``id``)
the same body as one past the guard within ``dedupe_window_seconds``.

Answered on the decision path without waiting for the disk: the bodies of the window are kept
in memory (loaded at start, so the window survives a restart), and so are the ``id``s of the
signals decided but not yet written; an ``id`` not among them is looked up on the read
connection (one indexed query). A hit in memory is confirmed against the signal's current
status (an operator may have rejected it since), falling back to the database's own answer.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pipsync_lite.config import Config
from pipsync_lite.store import PAST_THE_GUARD, Store, utcnow_iso

_MARKS = ", ".join("?" for _ in PAST_THE_GUARD)


def longest_window(config: Config) -> float:
    """The longest ``dedupe_window_seconds`` in force (the global one or a symbol's)."""
    risk = config.risk
    return float(max([risk.dedupe_window_seconds, *(risk.for_symbol(n).dedupe_window_seconds for n in risk.symbols)]))


class Dedupe:
    def __init__(self, store: Store, config: Config) -> None:
        self._store = store
        self._horizon = timedelta(seconds=longest_window(config))  # how long bodies are kept
        self._complete = self._horizon  # windows up to this long are answered from memory alone
        self._bodies: dict[str, tuple[int, datetime]] = {}  # body hash → first signal past the guard
        self._keys: dict[str, int] = {}  # id → signal, while its row is not written yet
        self._unwritten: set[int] = set()

    async def load(self, now: datetime) -> None:
        """The window's bodies from the database (signals stored before this start)."""
        async with self._store.db.execute(
            f"""SELECT id, body_hash, received_at FROM signals WHERE body_hash IS NOT NULL
                AND received_at >= ? AND status IN ({_MARKS}) ORDER BY id""",
            (utcnow_iso(now - self._horizon), *PAST_THE_GUARD),
        ) as cursor:
            for signal_id, body_hash, received_at in await cursor.fetchall():
                self._bodies.setdefault(body_hash, (int(signal_id), datetime.fromisoformat(received_at)))

    def apply_config(self, config: Config) -> None:
        """A reload may lengthen the window: bodies from before it are then looked up on disk."""
        self._horizon = max(self._horizon, timedelta(seconds=longest_window(config)))

    async def original(self, key: str | None, body_hash: str | None, window: float, now: datetime) -> int | None:
        """The signal this one repeats, or None."""
        if key is not None:
            pending = self._keys.get(key)
            if pending is not None:
                return pending
            return await self._first("idempotency_key = ?", (key,))
        if window <= 0 or body_hash is None:
            return None
        since = now - timedelta(seconds=window)
        seen = self._bodies.get(body_hash)
        if seen is None or seen[1] < since:
            if timedelta(seconds=window) <= self._complete:
                return None  # memory holds every such body of the window
        elif seen[0] in self._unwritten or await self._still_past_the_guard(seen[0]):
            return seen[0]
        # not in memory for so long a window, or rejected since: the database answers
        return await self._first("body_hash = ? AND received_at >= ?", (body_hash, utcnow_iso(since)))

    def remember(self, signal_id: int, key: str | None, body_hash: str | None, received_at: datetime) -> None:
        """A signal got past the guard (its row is about to be written)."""
        self._unwritten.add(signal_id)
        if key is not None:
            self._keys.setdefault(key, signal_id)
        if body_hash is not None:
            self._prune(received_at)
            self._bodies.pop(body_hash, None)  # an older one is out of its window, or was rejected since
            self._bodies[body_hash] = (signal_id, received_at)

    def written(self, signal_id: int, key: str | None) -> None:
        """Its row is on disk: the read connection answers for its ``id`` from now on."""
        self._unwritten.discard(signal_id)
        if key is not None and self._keys.get(key) == signal_id:
            del self._keys[key]

    def forget(self, signal_id: int, key: str | None, body_hash: str | None) -> None:
        """Its row could not be written: it never happened."""
        self.written(signal_id, key)
        if body_hash is not None and self._bodies.get(body_hash, (None,))[0] == signal_id:
            del self._bodies[body_hash]

    def _prune(self, now: datetime) -> None:
        cutoff = now - self._horizon
        while self._bodies:
            oldest = next(iter(self._bodies))  # dicts keep insertion order: oldest first
            if self._bodies[oldest][1] >= cutoff:
                return
            del self._bodies[oldest]

    async def _still_past_the_guard(self, signal_id: int) -> bool:
        async with self._store.reader.execute("SELECT status FROM signals WHERE id = ?", (signal_id,)) as cursor:
            row = await cursor.fetchone()
        return row is not None and row[0] in PAST_THE_GUARD

    async def _first(self, where: str, args: tuple[object, ...]) -> int | None:
        async with self._store.reader.execute(
            f"SELECT id FROM signals WHERE {where} AND status IN ({_MARKS}) ORDER BY id LIMIT 1",
            (*args, *PAST_THE_GUARD),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else None
