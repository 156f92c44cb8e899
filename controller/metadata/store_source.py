"""The metadata service's view of the controller's store.

Reads go to the store's in-memory copy; ports by device_id come from the API's
model index, which the controller keeps current anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from controller.model import Instance, Network, Port, Subnet
from controller.store.base import Store


class StoreMetadataSource:
    """A ``MetadataSource`` over a live ``Store``."""

    def __init__(self, store: Store, device_port_ids: Callable[[str], list[str]]) -> None:
        self.store = store
        self._device_port_ids = device_port_ids

    def instance(self, instance_id: str) -> Instance | None:
        obj = self.store.get("instance", instance_id)
        return obj if isinstance(obj, Instance) else None

    def ports_of_instance(self, instance_id: str) -> Sequence[Port]:
        ports = [self.store.get("port", pid) for pid in self._device_port_ids(instance_id)]
        return sorted((p for p in ports if isinstance(p, Port)), key=lambda p: (p.created_at, p.id))

    def subnet(self, subnet_id: str) -> Subnet | None:
        obj = self.store.get("subnet", subnet_id)
        return obj if isinstance(obj, Subnet) else None

    def network(self, network_id: str) -> Network | None:
        obj = self.store.get("network", network_id)
        return obj if isinstance(obj, Network) else None
