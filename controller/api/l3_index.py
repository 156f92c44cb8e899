"""Lookups for the router and floating IP API, kept current by the store's commit events.

Like ``controller.api.index.ModelIndex`` (and fed the same way, inside each
commit), it answers what validation asks without scanning: which conntrack
zones routers hold, which floating IPs a port or a router has, which router
holds a subnet's gateway, and which routers use a network as their gateway.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from controller.ipam import IntAllocator
from controller.model import OWNER_ROUTER_INTERFACE, FloatingIP, Port, Router
from controller.store.base import Event, EventType, Store
from dataplane.common.constants import ROUTER_ZONE_MAX, ROUTER_ZONE_MIN


class L3ApiIndex:
    def __init__(self, store: Store) -> None:
        self._lock = threading.RLock()
        # Zone pairs: index n stands for zones (MIN + 2n, MIN + 2n + 1).
        self._zones = IntAllocator([(0, (ROUTER_ZONE_MAX - ROUTER_ZONE_MIN + 1) // 2 - 1)])
        self.fips_by_port: dict[str, set[str]] = defaultdict(set)
        self.fips_by_router: dict[str, set[str]] = defaultdict(set)
        self.gateway_routers: dict[str, set[str]] = defaultdict(set)  # external network -> routers
        self.interfaces: dict[str, set[str]] = defaultdict(set)  # router -> interface ports
        self.unsubscribe = store.subscribe(self.apply)
        with self._lock:
            for kind in ("router", "floatingip", "port"):
                for obj in store.list(kind):
                    self._apply_one(None, obj)

    def apply(self, events: list[Event]) -> None:
        with self._lock:
            for ev in events:
                if ev.kind in ("router", "floatingip", "port"):
                    self._apply_one(ev.old, None if ev.type is EventType.DELETED else ev.obj)

    def _apply_one(self, old: object | None, new: object | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if isinstance(obj, Router):
                if obj.zone:
                    n = (obj.zone - ROUTER_ZONE_MIN) // 2
                    self._zones.mark(n) if add else self._zones.release(n)
                if obj.gateway_network_id:
                    _update(self.gateway_routers, obj.gateway_network_id, obj.id, add)
            elif isinstance(obj, FloatingIP):
                if obj.port_id:
                    _update(self.fips_by_port, obj.port_id, obj.id, add)
                if obj.router_id:
                    _update(self.fips_by_router, obj.router_id, obj.id, add)
            elif isinstance(obj, Port) and obj.device_owner == OWNER_ROUTER_INTERFACE and obj.device_id:
                _update(self.interfaces, obj.device_id, obj.id, add)

    def allocate_zone(self) -> int | None:
        """The DNAT zone of a new router (its SNAT zone is the next one), or None when none is left."""
        with self._lock:
            n = self._zones.allocate()
            return None if n is None else ROUTER_ZONE_MIN + 2 * n

    def fips_of_port(self, port_id: str) -> set[str]:
        with self._lock:
            return set(self.fips_by_port.get(port_id, ()))

    def fips_of_router(self, router_id: str) -> set[str]:
        with self._lock:
            return set(self.fips_by_router.get(router_id, ()))

    def routers_with_gateway_on(self, network_id: str) -> set[str]:
        with self._lock:
            return set(self.gateway_routers.get(network_id, ()))

    def interface_ports(self, router_id: str) -> set[str]:
        with self._lock:
            return set(self.interfaces.get(router_id, ()))


def _update(index: dict[str, set[str]], key: str, value: str, add: bool) -> None:
    if add:
        index[key].add(value)
        return
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
