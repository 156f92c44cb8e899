"""What every resource of the NetworkService API shares: the store, the indexes, one write lock.

Each resource module (``networks``, ``subnets``, ``ports``, ``routers``,
``floating_ips``; security groups next) is a class over one :class:`ApiCore`. Methods
take plain values (``fields``/``changes``: model field name -> value, as the
user gave them) and return model objects; errors are ``ApiError``. Every write
runs validate -> allocate -> commit under the core's lock, so two requests
never pick the same IP, MAC, VNI or ofport, and a request that fails changes
nothing (the store commits all of its objects or none).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from controller.api.errors import from_store_error, not_found
from controller.api.index import ModelIndex
from controller.api.l3_index import L3ApiIndex
from controller.api.security_index import SecurityIndex
from controller.ipam import VNI_MAX, VNI_MIN
from controller.model import STAGE_ACCEPTED, PortStage, Resource
from controller.store.base import Store, StoreError


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What the API needs from the controller's configuration."""

    underlay_mtu: int = 1500
    vni_range: tuple[int, int] = (VNI_MIN, VNI_MAX)
    # A gateway host that comes back takes its routers' SNAT back (off: it stays a backup, no second outage).
    gateway_preempt: bool = False


def new_id() -> str:
    return str(uuid.uuid4())


def accepted_stages() -> tuple[PortStage, ...]:
    return (PortStage(STAGE_ACCEPTED, done=True, at=time.time()),)


class ApiCore:
    """The store, its secondary indexes, the settings and the lock every write holds."""

    def __init__(self, store: Store, settings: NetworkSettings | None = None) -> None:
        self.store = store
        self.settings = settings or NetworkSettings()
        lo, hi = self.settings.vni_range
        if not VNI_MIN <= lo <= hi <= VNI_MAX:
            raise ValueError(f"VNI range {lo}..{hi} is not inside {VNI_MIN}..{VNI_MAX}")
        self.index = ModelIndex(store, self.settings.vni_range)
        self.secgroups = SecurityIndex(store)
        self.l3 = L3ApiIndex(store)  # routers' zones and interfaces, floating IPs by port and router
        self.lock = threading.RLock()  # held from validation to commit by every write

    def close(self) -> None:
        self.index.unsubscribe()
        self.secgroups.unsubscribe()
        self.l3.unsubscribe()


class ResourceApi:
    """Base of one resource's API: shortcuts to the core and its two error-mapping helpers."""

    def __init__(self, core: ApiCore) -> None:
        self.core = core
        self.store = core.store
        self.settings = core.settings
        self.index = core.index
        self.lock = core.lock

    def _get(self, kind: str, oid: str, field: str | None = None) -> Any:
        obj = self.store.get(kind, oid) if oid else None
        if obj is None:
            raise not_found(kind, oid, field)
        return obj

    def _commit(self, puts: Sequence[Resource] = (), deletes: Sequence[tuple[str, str]] = ()) -> int:
        try:
            return self.store.commit(puts, deletes)
        except StoreError as exc:
            raise from_store_error(exc) from exc
