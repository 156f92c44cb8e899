"""The metadata service's view of the controller's store.

Reads go to the store's in-memory copy; the one index the store lacks (ports by
device_id) is kept current from the store's change events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from controller.model import Instance, Network, Port, Subnet
from controller.store.base import Event, EventType, Store


class StoreMetadataSource:
    """A ``MetadataSource`` over a live ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._ports_by_device: dict[str, set[str]] = {}
        self._device_of: dict[str, str] = {}  # port id -> device id
        self._unsubscribe: Callable[[], None] = store.subscribe(self._on_events)
        _, ports = store.snapshot("port")
        with self._lock:
            for port in ports:
                assert isinstance(port, Port)
                self._index(port.id, port.device_id)

    def close(self) -> None:
        self._unsubscribe()

    def _index(self, port_id: str, device_id: str) -> None:
        if device_id:
            self._ports_by_device.setdefault(device_id, set()).add(port_id)
            self._device_of[port_id] = device_id

    def _unindex(self, port_id: str) -> None:
        device_id = self._device_of.pop(port_id, None)
        ids = self._ports_by_device.get(device_id) if device_id else None
        if ids is not None:
            ids.discard(port_id)
            if not ids:
                del self._ports_by_device[device_id]  # type: ignore[arg-type]

    def _on_events(self, events: list[Event]) -> None:
        with self._lock:
            for ev in events:
                if ev.kind != "port":
                    continue
                self._unindex(ev.id)
                if ev.type != EventType.DELETED:
                    assert isinstance(ev.obj, Port)
                    self._index(ev.id, ev.obj.device_id)

    def instance(self, instance_id: str) -> Instance | None:
        obj = self.store.get("instance", instance_id)
        return obj if isinstance(obj, Instance) else None

    def ports_of_instance(self, instance_id: str) -> Sequence[Port]:
        with self._lock:
            ids = sorted(self._ports_by_device.get(instance_id, ()))
        ports = [self.store.get("port", pid) for pid in ids]
        return sorted((p for p in ports if isinstance(p, Port)), key=lambda p: (p.created_at, p.id))

    def subnet(self, subnet_id: str) -> Subnet | None:
        obj = self.store.get("subnet", subnet_id)
        return obj if isinstance(obj, Subnet) else None

    def network(self, network_id: str) -> Network | None:
        obj = self.store.get("network", network_id)
        return obj if isinstance(obj, Network) else None
