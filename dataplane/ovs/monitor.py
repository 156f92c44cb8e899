"""Watch the VIFs on br-int: report each as soon as ovs-vswitchd has given it an OpenFlow port.

A VIF is an Interface row with ``external_ids:iface-id`` whose Port is on the
watched bridge. Its row appears first without an ofport; ovs-vswitchd fills
the ofport in a moment later (or -1 and ``error`` when it cannot open the
device). The monitor runs inside the IDL thread on the server's push updates,
so an event is out within a millisecond of the update reaching us; it emits

- ``present=True`` once ofport > 0 (again if iface-id, MAC, name or ofport change),
- ``present=False, error=...`` when vswitchd failed on it,
- ``present=False`` when it left the bridge, lost its iface-id or was deleted.

On start (and after every reconnect) the current VIFs are reported, so a
consumer's first events are a full snapshot.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.ovs.idl import OvsdbClient, RowChange, opt_value
from dataplane.ovs.types import ATTACHED_MAC, IFACE_ID, InterfaceEvent

log = get_logger(__name__)


class InterfaceMonitor:
    """Events for the VIFs of one bridge, to ``callback`` (called in the IDL thread) or the ``events`` queue."""

    def __init__(
        self,
        client: OvsdbClient,
        bridge: str = BR_INT,
        callback: Callable[[InterfaceEvent], None] | None = None,
    ) -> None:
        self.client = client
        self.bridge = bridge
        self.callback = callback
        self.events: queue.Queue[InterfaceEvent] = queue.Queue()
        self._members: set[Any] = set()  # Interface uuids on the bridge
        self._reported: dict[Any, InterfaceEvent] = {}  # uuid -> last event, for VIFs present or failed
        self._started = False

    def start(self) -> InterfaceMonitor:
        if not self._started:
            self.client.add_listener(self._on_changes)
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self.client.remove_listener(self._on_changes)
            self._started = False

    def __enter__(self) -> InterfaceMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, timeout: float | None = None) -> InterfaceEvent:
        """The next event from the queue (queue mode); raises queue.Empty on timeout."""
        return self.events.get(timeout=timeout)

    def present(self) -> dict[str, InterfaceEvent]:
        """The VIFs present now, by iface-id."""
        return self.client.call(lambda: {e.iface_id: e for e in self._reported.values() if e.present})

    # -- in the IDL thread -----------------------------------------------------

    def _bridge_members(self, idl: Any) -> set[Any]:
        for br in idl.tables["Bridge"].rows.values():
            if br.name == self.bridge:
                return {iface.uuid for port in br.ports for iface in port.interfaces}
        return set()

    def _on_changes(self, idl: Any, changes: Sequence[RowChange], resync: bool) -> None:
        now = time.monotonic()
        dirty = {c.row.uuid for c in changes if c.table == "Interface"}
        if resync or any(c.table in ("Bridge", "Port") for c in changes):
            members = self._bridge_members(idl)
            dirty |= members ^ self._members
            self._members = members
        if resync:
            dirty |= self._members | set(self._reported)
        rows = idl.tables["Interface"].rows
        for uuid in dirty:
            self._evaluate(uuid, rows.get(uuid) if uuid in self._members else None, now)

    def _evaluate(self, uuid: Any, row: Any | None, now: float) -> None:
        prev = self._reported.get(uuid)
        iface_id = row.external_ids.get(IFACE_ID, "") if row is not None else ""
        if row is None or not iface_id:
            if prev is not None:
                self._reported.pop(uuid)
                self._emit(replace(prev, present=False, error=None, seen_at=now))
            return
        ofport = opt_value(row.ofport)
        error = opt_value(row.error)
        ext = dict(row.external_ids)
        common = {"iface_id": iface_id, "name": row.name, "attached_mac": ext.get(ATTACHED_MAC, "")}
        if ofport == -1 or error:
            event = InterfaceEvent(
                ofport=ofport or -1, present=False, error=error or "ofport -1", external_ids=ext, seen_at=now, **common
            )
        elif not ofport:
            return  # ovs-vswitchd has not numbered it yet
        else:
            event = InterfaceEvent(ofport=ofport, present=True, external_ids=ext, seen_at=now, **common)
        if prev == event:  # seen_at is not compared
            return
        if prev is not None and prev.present and prev.iface_id != iface_id:
            self._emit(replace(prev, present=False, error=None, seen_at=now))
        self._reported[uuid] = event
        self._emit(event)

    def _emit(self, event: InterfaceEvent) -> None:
        if event.failed:
            log.warning("interface failed", iface_id=event.iface_id, name=event.name, error=event.error)
        else:
            log.debug(
                "interface event", iface_id=event.iface_id, name=event.name, ofport=event.ofport, present=event.present
            )
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:
                log.exception("interface monitor callback failed", iface_id=event.iface_id)
        else:
            self.events.put(event)
