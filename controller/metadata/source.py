"""Where the metadata service reads instances, their ports, subnets and networks.

``MetadataSource`` is the narrow read interface the service needs; the controller adapts its store to it.
``DictMetadataSource`` keeps the objects in dicts (tests, benchmarks, and ``python -m controller.metadata``
with a JSON file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from controller.model import Instance, Network, Port, Resource, Subnet, from_dict, to_dict


class MetadataSource(Protocol):
    """Read access to the model objects the metadata service serves. Called on every request: keep it fast."""

    def instance(self, instance_id: str) -> Instance | None: ...

    def ports_of_instance(self, instance_id: str) -> Sequence[Port]:
        """The instance's ports (``device_id == instance_id``), in a stable order."""
        ...

    def subnet(self, subnet_id: str) -> Subnet | None: ...

    def network(self, network_id: str) -> Network | None: ...


@dataclass(slots=True)
class DictMetadataSource:
    """A ``MetadataSource`` over in-memory dicts."""

    instances: dict[str, Instance] = field(default_factory=dict)
    ports: dict[str, Port] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    _ports_by_device: dict[str, list[str]] = field(default_factory=dict)

    def add(self, *objects: Resource) -> DictMetadataSource:
        """Add or replace objects (instances, ports, subnets, networks)."""
        for obj in objects:
            if isinstance(obj, Instance):
                self.instances[obj.id] = obj
            elif isinstance(obj, Port):
                self.remove_port(obj.id)
                self.ports[obj.id] = obj
                if obj.device_id:
                    self._ports_by_device.setdefault(obj.device_id, []).append(obj.id)
            elif isinstance(obj, Subnet):
                self.subnets[obj.id] = obj
            elif isinstance(obj, Network):
                self.networks[obj.id] = obj
            else:
                raise TypeError(f"not served by the metadata service: {type(obj).__name__}")
        return self

    def remove_port(self, port_id: str) -> None:
        old = self.ports.pop(port_id, None)
        if old is not None and old.device_id:
            self._ports_by_device[old.device_id].remove(port_id)

    def instance(self, instance_id: str) -> Instance | None:
        return self.instances.get(instance_id)

    def ports_of_instance(self, instance_id: str) -> Sequence[Port]:
        return [self.ports[p] for p in self._ports_by_device.get(instance_id, ())]

    def subnet(self, subnet_id: str) -> Subnet | None:
        return self.subnets.get(subnet_id)

    def network(self, network_id: str) -> Network | None:
        return self.networks.get(network_id)

    # ------------------------------------------------------------------ JSON files

    def to_json(self) -> str:
        objects: Iterable[Resource] = [
            *self.networks.values(),
            *self.subnets.values(),
            *self.ports.values(),
            *self.instances.values(),
        ]
        return json.dumps([{"kind": o.KIND, **to_dict(o)} for o in objects])

    @classmethod
    def from_json(cls, text: str) -> DictMetadataSource:
        source = cls()
        for item in json.loads(text):
            kind = item.pop("kind")
            source.add(from_dict(kind, item))
        return source

    @classmethod
    def load(cls, path: Path) -> DictMetadataSource:
        return cls.from_json(Path(path).read_text())
