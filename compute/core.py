"""What compute's parts share: the store, the NetworkService's API, settings, one lock, the hypervisors.

Every write of an instance, image or volume runs under ``ComputeCore.lock``
(a request and the status tracker both rewrite instances: without one lock a
status report could undo a stop request). A write that also makes or rebinds
ports takes the network API's lock inside it, never the other way round.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from compute.hypervisors import HypervisorRegistry
from controller.api.errors import from_store_error, not_found
from controller.api.network_api import NetworkApi
from controller.model import Resource
from controller.store.base import Store, StoreError

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class ComputeSettings:
    """Compute's part of the controller's configuration (Nova's and Glance's defaults where they have one)."""

    image_dir: str = "/var/lib/loom/images"  # uploaded images, and disks in transit during a cold migration
    volume_dir: str = "/var/lib/loom/volumes"  # the file backend: a directory every hypervisor mounts
    max_image_bytes: int = 64 * GIB
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    reserved_host_memory_mb: int = 512
    # A hypervisor that has not reported for this long is not scheduled to.
    report_timeout: float = 10.0


class ComputeCore:
    def __init__(self, store: Store, network: NetworkApi, settings: ComputeSettings | None = None) -> None:
        self.store = store
        self.network = network
        self.settings = settings or ComputeSettings()
        self.lock = threading.RLock()
        self.hypervisors = HypervisorRegistry(self.settings.report_timeout)

    def get(self, kind: str, oid: str, field: str | None = None) -> Any:
        obj = self.store.get(kind, oid) if oid else None
        if obj is None:
            raise not_found(kind, oid, field)
        return obj

    def commit(self, puts: Sequence[Resource] = (), deletes: Sequence[tuple[str, str]] = ()) -> int:
        try:
            return self.store.commit(puts, deletes)
        except StoreError as exc:
            raise from_store_error(exc) from exc
