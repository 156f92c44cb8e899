"""The controller's revisioned object store: the interface and its SQLite backend."""

from controller.store.base import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    InvariantError,
    NotFoundError,
    Store,
    StoreError,
)
from controller.store.sqlite import SqliteStore

__all__ = [
    "CompactedError",
    "ConflictError",
    "Event",
    "EventType",
    "InvariantError",
    "NotFoundError",
    "SqliteStore",
    "Store",
    "StoreError",
]
