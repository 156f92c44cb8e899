"""The store interface: what the API and the distributor need from any backend.

A store holds the logical model (the objects of ``controller.model``) and a log
of changes. Every commit is one transaction that bumps one global, monotonic
revision; every object changed by it gets that revision as its
``revision_number``. Watchers read the log with ``events_since`` and follow
live commits with ``subscribe``.

The SQLite backend lives in ``sqlite.py``; a distributed one (etcd) can be
added behind the same Protocol.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from controller.model import Resource


class EventType(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    """One object changed by one commit.

    ``obj`` is the object after the change, or before it for DELETED.
    ``old`` is the object before the change (None for CREATED). Live events
    (``subscribe``) carry it, so followers need no copy of the model just to
    learn what changed; events read back from the log (``events_since``) do
    not (None).
    ``seq`` orders the events of one commit (0, 1, ...).
    """

    revision: int
    seq: int
    type: EventType
    kind: str
    id: str
    obj: Resource
    at: float = 0.0  # commit time, seconds since the epoch
    old: Resource | None = None


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class NotFoundError(StoreError):
    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"{kind} {id} not found")
        self.kind = kind
        self.id = id


class InvariantError(StoreError):
    """A commit would break one of the store's invariants; nothing was changed.

    ``kind`` and ``field`` name what is wrong, e.g. ("port", "network_id").
    """

    def __init__(self, kind: str, field: str, message: str) -> None:
        super().__init__(f"{kind}.{field}: {message}")
        self.kind = kind
        self.field = field
        self.message = message


class ConflictError(InvariantError):
    """A uniqueness invariant: the value is already taken (VNI, MAC, IP, ofport, address range)."""


class CompactedError(StoreError):
    """The events asked for are older than the log keeps."""

    def __init__(self, revision: int, compacted: int) -> None:
        super().__init__(f"revision {revision} is compacted (the log starts after revision {compacted})")
        self.revision = revision
        self.compacted = compacted


Callback = Callable[[list[Event]], None]


class Store(Protocol):
    """A revisioned object store with an event log."""

    @property
    def revision(self) -> int:
        """The revision of the last commit (0 for an empty store)."""
        ...

    @property
    def compacted_revision(self) -> int:
        """Events at or below this revision are gone from the log."""
        ...

    def get(self, kind: str, id: str) -> Resource | None: ...

    def list(self, kind: str) -> list[Resource]:
        """Every object of a kind, oldest first (tag order); in memory, no I/O."""
        ...

    def snapshot(self, kind: str) -> tuple[int, list[Resource]]:
        """``list(kind)`` and the revision it was read at, consistently."""
        ...

    def commit(self, puts: Sequence[Resource] = (), deletes: Sequence[tuple[str, str]] = ()) -> int:
        """Create or replace ``puts`` and delete ``deletes`` ((kind, id) pairs) in one transaction.

        The stored objects get ``revision_number`` (the new revision), ``updated_at``,
        and on creation ``tag`` and ``created_at``; a put keeps the stored ``tag``
        and ``created_at`` of an existing object. Returns the new revision.
        Raises ConflictError / InvariantError / NotFoundError, changing nothing.
        """
        ...

    def events_since(self, revision: int) -> list[Event]:
        """Every event with a revision above ``revision``, in order. CompactedError if too old."""
        ...

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` with each commit's events, in commit order; returns unsubscribe.

        Callbacks run in the committing thread before ``commit`` returns, so they
        must be cheap (enqueue, update an index) and must not commit themselves.
        """
        ...

    def close(self) -> None: ...
