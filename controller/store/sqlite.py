"""The embedded store: SQLite in WAL mode, with a full in-memory copy for reads.

Layout of the database:

* ``obj_<kind>`` (``obj_network``, ``obj_port``, ...) -- one row per object:
  tag, id, revision, JSON body. Keyed by tag, which grows with creation, so
  new rows append to the table instead of splitting pages at random.
* ``events`` -- the change log: type, kind, id, commit time and JSON body per
  (revision, seq). Its key packs both, ``revision * 2**20 + seq``, so the log
  is one append-only table with no extra index. Old revisions are deleted
  (bounded retention); ``meta.compacted`` records the last revision removed.
* ``meta`` -- the current revision, the compaction point, the per-kind tag counters.
* The invariant tables of ``invariants.py``, updated in the same transaction.

Durability: WAL with ``synchronous=NORMAL`` appends each commit to the WAL file
before COMMIT returns and only skips the fsync. The data is then in the
kernel's page cache, so a killed process (even SIGKILL) loses nothing it
acknowledged; only a power loss or kernel crash can drop the last commits.
Checkpoints (copying the WAL into the database, with fsyncs) run in a thread
of their own rather than inside commits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from controller.model import RESOURCE_TYPES, Resource, dumps, from_dict
from controller.store import invariants
from controller.store.base import Callback, CompactedError, Event, EventType, NotFoundError, StoreError
from controller.store.invariants import Change
from dataplane.common.logs import get_logger

log = get_logger(__name__)

SCHEMA_VERSION = 1
DEFAULT_RETENTION = 100_000  # revisions of events kept for watchers
SEQ_BITS = 20  # events key = revision << SEQ_BITS | seq: at most 2**20 objects per commit
CHECKPOINT_INTERVAL = 0.2  # seconds between background checkpoints (when something was committed)
WAL_RESTART_PAGES = 4096  # WAL pages (16 MiB) after which a checkpoint briefly holds commits back to rewind the WAL
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of WAL file kept on disk after a rewind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    key INTEGER PRIMARY KEY,  -- revision << 20 | seq
    revision INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('CREATED', 'UPDATED', 'DELETED')),
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    at REAL NOT NULL,
    body TEXT NOT NULL
);
"""

_OBJECT_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    tag INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


def _table(kind: str) -> str:
    if not kind.isidentifier():
        raise ValueError(f"kind {kind!r} cannot name a table")
    return f"obj_{kind}"


class SqliteStore:
    """The default Store: one SQLite file, every object also held in memory."""

    def __init__(self, path: str, retention: int = DEFAULT_RETENTION) -> None:
        if retention < 1:
            raise ValueError("retention must be at least one revision")
        self.path = path
        self.retention = retention
        # Compact in steps, not on every commit: deleting old events costs a write.
        self._compact_every = max(1, retention // 10)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._conn = self._connect(path)
        self._conn.executescript(_SCHEMA + invariants.SCHEMA)
        for kind in RESOURCE_TYPES:
            self._conn.execute(_OBJECT_TABLE.format(table=_table(kind)))
        # Watchers replay from their own connection so they never wait for a writer (WAL readers don't block).
        self._read_conn = self._connect(path)
        self._write_lock = threading.Lock()  # one commit at a time, and guards self._conn
        self._read_lock = threading.Lock()  # guards self._read_conn
        self._mem_lock = threading.Lock()  # guards the in-memory copy while a commit applies
        self._subscribers: dict[int, Callback] = {}
        self._next_subscriber = 0
        self._objects: dict[str, dict[str, Resource]] = {kind: {} for kind in RESOURCE_TYPES}
        self._load()
        # SQLite's automatic checkpoint would stall every ~100th commit for milliseconds (two fsyncs).
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        self._checkpoint_conn = self._connect(path)
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="store-checkpoint", daemon=True)
        self._checkpointer.start()

    @staticmethod
    def _connect(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable against process death; see the module docstring
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    # ------------------------------------------------------------------ load

    def _load(self) -> None:
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        version = meta.get("schema_version")
        if version is None:
            self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {version}, this controller knows {SCHEMA_VERSION}")
        self._revision: int = meta.get("revision", 0)
        self._compacted: int = meta.get("compacted", 0)
        self._tags: dict[str, int] = {kind: meta.get(f"tag.{kind}", 0) for kind in RESOURCE_TYPES}
        tables = {
            row[0] for row in self._conn.execute("SELECT name FROM sqlite_schema WHERE name LIKE 'obj\\_%' ESCAPE '\\'")
        }
        unknown = tables - {_table(kind) for kind in RESOURCE_TYPES}
        for table in sorted(unknown):
            if self._conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                raise StoreError(f"{self.path}: objects of unknown kind {table[4:]!r}")
        for kind, objects in self._objects.items():
            for (body,) in self._conn.execute(f"SELECT body FROM {_table(kind)} ORDER BY tag"):
                obj = from_dict(kind, json.loads(body))
                objects[obj.id] = obj
        log.info(
            "store opened",
            path=self.path,
            revision=self._revision,
            compacted=self._compacted,
            **{f"{k}s": len(v) for k, v in self._objects.items()},
        )

    # ----------------------------------------------------------------- reads

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def get(self, kind: str, id: str) -> Resource | None:
        return self._objects[kind].get(id)

    def list(self, kind: str) -> list[Resource]:
        with self._mem_lock:
            return list(self._objects[kind].values())

    def snapshot(self, kind: str) -> tuple[int, list[Resource]]:
        with self._mem_lock:
            return self._revision, list(self._objects[kind].values())

    def count(self, kind: str) -> int:
        return len(self._objects[kind])

    def events_since(self, revision: int) -> list[Event]:
        with self._read_lock, self._read_transaction() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = 'compacted'").fetchone()
            compacted = row[0] if row else 0
            if revision < compacted:
                raise CompactedError(revision, compacted)
            rows = cur.execute(
                "SELECT revision, seq, type, kind, id, at, body FROM events WHERE key >= ? ORDER BY key",
                ((revision + 1) << SEQ_BITS,),
            ).fetchall()
        return [
            Event(rev, seq, EventType(typ), kind, oid, from_dict(kind, json.loads(body)), at)
            for rev, seq, typ, kind, oid, at, body in rows
        ]

    @contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Cursor]:
        cur = self._read_conn.cursor()
        cur.execute("BEGIN")  # one snapshot for the compaction point and the events
        try:
            yield cur
        finally:
            cur.execute("COMMIT")

    # ----------------------------------------------------------------- watch

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        with self._write_lock:  # never half-way through delivering a commit
            key = self._next_subscriber
            self._next_subscriber += 1
            self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return unsubscribe

    # ---------------------------------------------------------------- commit

    def commit(self, puts: Sequence[Resource] = (), deletes: Sequence[tuple[str, str]] = ()) -> int:
        if not puts and not deletes:
            raise ValueError("empty commit")
        if len(puts) + len(deletes) >= 1 << SEQ_BITS:
            raise ValueError(f"a commit holds at most {(1 << SEQ_BITS) - 1} objects")
        with self._write_lock:
            now = time.time()
            revision = self._revision + 1
            tags = dict(self._tags)
            changes = self._plan(puts, deletes, revision, now, tags)
            compacted = (
                revision - self.retention if revision - self._compacted > self.retention + self._compact_every else 0
            )
            self._write(changes, revision, now, tags, compacted)
            events = [
                Event(revision, seq, c.type, c.kind, c.id, c.new if c.new is not None else c.old, now, c.old)  # type: ignore[arg-type]
                for seq, c in enumerate(changes)
            ]
            with self._mem_lock:
                for c in changes:
                    if c.new is None:
                        del self._objects[c.kind][c.id]
                    else:
                        self._objects[c.kind][c.id] = c.new
                self._tags = tags
                self._revision = revision
                self._compacted = compacted or self._compacted
            for callback in list(self._subscribers.values()):
                try:
                    callback(events)
                except Exception:
                    # The commit is durable already; a broken subscriber must not undo it for the caller.
                    log.exception("store subscriber failed", revision=revision)
            return revision

    def _plan(
        self,
        puts: Sequence[Resource],
        deletes: Sequence[tuple[str, str]],
        revision: int,
        now: float,
        tags: dict[str, int],
    ) -> list[Change]:
        """The changes of a commit: deletes first, then puts, with tag, revision and times set."""
        seen: set[tuple[str, str]] = set()
        changes: list[Change] = []
        for kind, oid in deletes:
            if kind not in self._objects:
                raise ValueError(f"unknown kind {kind!r}")
            if (kind, oid) in seen:
                raise ValueError(f"{kind} {oid} appears twice in one commit")
            seen.add((kind, oid))
            old = self._objects[kind].get(oid)
            if old is None:
                raise NotFoundError(kind, oid)
            changes.append(Change(EventType.DELETED, kind, oid, old, None))
        for obj in puts:
            kind = obj.KIND
            if kind not in self._objects or not isinstance(obj, RESOURCE_TYPES[kind]):
                raise ValueError(f"cannot store {type(obj).__name__}")
            if not obj.id:
                raise ValueError(f"{kind} without an id")
            if (kind, obj.id) in seen:
                raise ValueError(f"{kind} {obj.id} appears twice in one commit")
            seen.add((kind, obj.id))
            old = self._objects[kind].get(obj.id)
            if old is None:
                tags[kind] += 1
                new = dataclasses.replace(obj, tag=tags[kind], revision_number=revision, created_at=now, updated_at=now)
                changes.append(Change(EventType.CREATED, kind, obj.id, None, new))
            else:
                new = dataclasses.replace(
                    obj, tag=old.tag, revision_number=revision, created_at=old.created_at, updated_at=now
                )
                changes.append(Change(EventType.UPDATED, kind, obj.id, old, new))
        return changes

    def _write(self, changes: list[Change], revision: int, now: float, tags: dict[str, int], compacted: int) -> None:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            invariants.write(cur, changes)
            for seq, c in enumerate(changes):
                table = _table(c.kind)
                if c.new is None:
                    assert c.old is not None
                    cur.execute(f"DELETE FROM {table} WHERE tag = ?", (c.old.tag,))
                    body = dumps(c.old)
                else:
                    body = dumps(c.new)
                    cur.execute(
                        f"INSERT OR REPLACE INTO {table} (tag, id, revision, body) VALUES (?, ?, ?, ?)",
                        (c.new.tag, c.id, revision, body),
                    )
                cur.execute(
                    "INSERT INTO events (key, revision, seq, type, kind, id, at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ((revision << SEQ_BITS) | seq, revision, seq, c.type.value, c.kind, c.id, now, body),
                )
            meta = [("revision", revision)]
            meta.extend((f"tag.{kind}", tag) for kind, tag in tags.items() if tag != self._tags[kind])
            if compacted:
                cur.execute("DELETE FROM events WHERE key < ?", ((compacted + 1) << SEQ_BITS,))
                meta.append(("compacted", compacted))
            cur.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ checkpoint

    def _checkpoint_loop(self) -> None:
        done = self._revision
        while not self._closing.wait(CHECKPOINT_INTERVAL):
            if self._revision == done:
                continue
            done = self._revision
            try:
                self.checkpoint()
            except sqlite3.Error as exc:
                log.warning("store checkpoint failed", path=self.path, error=str(exc))

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database file.

        The bulk is copied while commits go on. When the WAL has grown large, a
        second pass runs with commits held back, so that it copies everything
        and the next commit starts the WAL file from its beginning again
        (otherwise, under a steady stream of commits, it would grow for ever).
        """
        _, wal_pages, _ = self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if wal_pages >= WAL_RESTART_PAGES:
            with self._write_lock:
                self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    # ----------------------------------------------------------------- close

    def close(self) -> None:
        if self._closing.is_set():
            return
        self._closing.set()
        self._checkpointer.join()
        with self._write_lock, self._read_lock:
            try:
                self._checkpoint_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("store checkpoint failed", path=self.path, error=str(exc))
            self._checkpoint_conn.close()
            self._read_conn.close()
            self._conn.close()
