"""Watch: replay the event log from a revision, then follow live commits.

The stream subscribes to the store *before* it reads the log, then drops live
events at or below the last revision it has sent. So a commit landing between
the replay and the switch to live events is sent exactly once: it is either in
the replay (then skipped live) or only live.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator

import grpc

from controller.api.convert import PRESENTED_KINDS, Presenter
from controller.api.errors import ApiError, ErrorCode, invalid
from controller.api.status import abort
from controller.store.base import CompactedError, Event, Store
from dataplane.common.logs import get_logger
from protos.loom.v1 import network_pb2

log = get_logger(__name__)

# Commits a watcher may fall behind before it is cut off (it re-watches from its last revision).
MAX_PENDING_COMMITS = 50_000
_WAKE_INTERVAL = 1.0  # seconds; a backstop, the cancellation callback wakes the stream at once


def watch(
    store: Store,
    presenter: Presenter,
    request: network_pb2.WatchRequest,
    context: grpc.ServicerContext,
    served: tuple[str, ...] = PRESENTED_KINDS,
) -> Iterator[network_pb2.WatchEvent]:
    kinds = set(request.kinds) or set(served)
    unknown = kinds - set(served)
    if unknown:
        abort(context, invalid("kinds", f"unknown kind {sorted(unknown)[0]!r}; one of {', '.join(served)}"))

    def wanted(ev: Event) -> bool:
        return ev.kind in kinds and (not request.id or ev.id == request.id)

    pending: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
    unsubscribe = store.subscribe(pending.put)
    context.add_callback(lambda: pending.put(None))  # the RPC ended: client cancelled or server stopping
    try:
        if request.HasField("since_revision"):
            last = request.since_revision
            try:
                replay = store.events_since(last)
            except CompactedError as exc:
                abort(context, ApiError(ErrorCode.OUT_OF_RANGE, f"since_revision: {exc}; list and watch again"))
            for ev in replay:
                if wanted(ev):
                    yield presenter.event(ev)
                last = ev.revision
        else:
            last = store.revision
        while context.is_active():
            try:
                batch = pending.get(timeout=_WAKE_INTERVAL)
            except queue.Empty:
                continue
            if batch is None:
                break
            if pending.qsize() > MAX_PENDING_COMMITS:
                abort(
                    context,
                    ApiError(ErrorCode.OUT_OF_RANGE, f"watcher fell too far behind; watch again from revision {last}"),
                )
            for ev in batch:
                if ev.revision > last and wanted(ev):
                    yield presenter.event(ev)
            last = max(last, batch[-1].revision)
    finally:
        unsubscribe()
