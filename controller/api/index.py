"""Lookup tables derived from the store, kept current by its commit events.

The service layer asks the index the questions validation and allocation need
("which port holds 10.0.0.7 in this subnet?", "is this MAC free on that
network?", "a free VNI?", "a free ofport on host h1?") without scanning every
object. The index is fed by the store's subscription, which runs inside each
commit: when ``commit`` returns, the index already reflects it, so an
allocate -> commit sequence done under the service's write lock can never
hand out a value twice.
"""

from __future__ import annotations

import threading
from collections.abc import Collection

from controller.ipam import IntAllocator, SubnetAddresses, bounds, default_pools, ip_to_int, parse_cidr
from controller.model import OWNER_DHCP, Network, Port, Subnet
from controller.store.base import Event, EventType, Store
from dataplane.common.constants import VIF_OFPORT_MAX, VIF_OFPORT_MIN


def _subnet_addresses(subnet: Subnet, owners: dict[int, str] | None = None) -> SubnetAddresses:
    net = parse_cidr(subnet.cidr)
    first, last = bounds(net)
    gateway = ip_to_int(subnet.gateway_ip) if subnet.gateway_ip else None
    if subnet.allocation_pools:
        pools = [(ip_to_int(p.start), ip_to_int(p.end)) for p in subnet.allocation_pools]
    else:
        pools = default_pools(net, gateway)
    return SubnetAddresses(subnet.id, first, last, gateway, pools, dict(owners or {}))


class ModelIndex:
    """Secondary indexes over networks, subnets and ports."""

    def __init__(self, store: Store, vni_range: tuple[int, int]) -> None:
        self.vni_range = vni_range
        self._lock = threading.RLock()
        self._subnets_by_network: dict[str, dict[str, None]] = {}  # ordered sets, oldest first
        self._ports_by_network: dict[str, dict[str, None]] = {}
        self._ports_by_device: dict[str, dict[str, None]] = {}
        self._dhcp_ports: dict[str, dict[str, None]] = {}  # network -> its network:dhcp ports
        self._macs: dict[str, dict[str, str]] = {}  # network -> mac -> port
        self._addresses: dict[str, SubnetAddresses] = {}
        self._vnis = IntAllocator([vni_range])
        self._vxlan: dict[int, str] = {}  # every VNI in use, inside the range or not
        self._vlans: dict[tuple[str, int], str] = {}
        self._flats: dict[str, str] = {}
        self._ofports: dict[str, IntAllocator] = {}  # host -> allocator
        # Subscribe before reading, so no commit falls between. A commit racing the load waits for the lock
        # below and is applied after it: its event's old state may or may not be the one loaded, and every
        # step below tolerates both (removing what is not there is a no-op; re-adding the current state is
        # harmless). (Subscribing outside the lock keeps the lock order of commits: store, then index.)
        self.unsubscribe = store.subscribe(self.apply)
        with self._lock:
            for kind in ("network", "subnet", "port"):
                for obj in store.list(kind):
                    self._apply_one(kind, None, obj)

    # ------------------------------------------------------------- updating

    def apply(self, events: list[Event]) -> None:
        """Store callback: live events carry the previous object, so no copy of the model is kept here."""
        with self._lock:
            for ev in events:
                if ev.kind in ("network", "subnet", "port"):
                    self._apply_one(ev.kind, ev.old, None if ev.type is EventType.DELETED else ev.obj)

    def _apply_one(self, kind: str, old: object | None, new: object | None) -> None:
        if kind == "network":
            self._apply_network(old, new)  # type: ignore[arg-type]
        elif kind == "subnet":
            self._apply_subnet(old, new)  # type: ignore[arg-type]
        else:
            self._apply_port(old, new)  # type: ignore[arg-type]

    def _segment_table(self, n: Network) -> tuple[dict, object] | None:
        if n.network_type == "vxlan":
            return self._vxlan, n.segmentation_id
        if n.network_type == "vlan":
            return self._vlans, (n.physical_network, n.segmentation_id)
        if n.network_type == "flat":
            return self._flats, n.physical_network
        return None

    def _apply_network(self, old: Network | None, new: Network | None) -> None:
        if old is not None:
            table = self._segment_table(old)
            if table is not None and table[0].get(table[1]) == old.id:
                del table[0][table[1]]
            if old.network_type == "vxlan":
                self._vnis.release(old.segmentation_id)
        if new is None:
            assert old is not None
            for table in (self._subnets_by_network, self._ports_by_network, self._macs, self._dhcp_ports):
                table.pop(old.id, None)
            return
        table = self._segment_table(new)
        if table is not None:
            table[0][table[1]] = new.id
        if new.network_type == "vxlan":
            self._vnis.mark(new.segmentation_id)
        self._subnets_by_network.setdefault(new.id, {})
        self._ports_by_network.setdefault(new.id, {})
        self._macs.setdefault(new.id, {})

    def _apply_subnet(self, old: Subnet | None, new: Subnet | None) -> None:
        if new is None:
            assert old is not None
            self._addresses.pop(old.id, None)
            self._subnets_by_network.get(old.network_id, {}).pop(old.id, None)
            return
        self._subnets_by_network.setdefault(new.network_id, {})[new.id] = None
        current = self._addresses.get(new.id)
        if (
            current is None
            or old is None
            or (old.cidr, old.gateway_ip, old.allocation_pools)
            != (
                new.cidr,
                new.gateway_ip,
                new.allocation_pools,
            )
        ):
            self._addresses[new.id] = _subnet_addresses(new, current.owners if current else None)

    def _apply_port(self, old: Port | None, new: Port | None) -> None:
        if old is not None:
            self._ports_by_network.get(old.network_id, {}).pop(old.id, None)
            device = self._ports_by_device.get(old.device_id)
            if device is not None:
                device.pop(old.id, None)
                if not device:
                    del self._ports_by_device[old.device_id]
            self._dhcp_ports.get(old.network_id, {}).pop(old.id, None)
            macs = self._macs.get(old.network_id, {})
            if macs.get(old.mac_address) == old.id:
                del macs[old.mac_address]
            for f in old.fixed_ips:
                addresses = self._addresses.get(f.subnet_id)
                if addresses is not None:
                    addresses.unassign(ip_to_int(f.ip_address), old.id)
            if old.binding_ofport and old.binding_host_id in self._ofports:
                self._ofports[old.binding_host_id].release(old.binding_ofport)
        if new is None:
            return
        self._ports_by_network.setdefault(new.network_id, {})[new.id] = None
        if new.device_id:
            self._ports_by_device.setdefault(new.device_id, {})[new.id] = None
        if new.device_owner == OWNER_DHCP:
            self._dhcp_ports.setdefault(new.network_id, {})[new.id] = None
        self._macs.setdefault(new.network_id, {})[new.mac_address] = new.id
        for f in new.fixed_ips:
            addresses = self._addresses.get(f.subnet_id)
            if addresses is not None:
                addresses.assign(ip_to_int(f.ip_address), new.id)
        if new.binding_ofport:
            self._host_ofports(new.binding_host_id).mark(new.binding_ofport)

    def _host_ofports(self, host: str) -> IntAllocator:
        allocator = self._ofports.get(host)
        if allocator is None:
            allocator = self._ofports[host] = IntAllocator([(VIF_OFPORT_MIN, VIF_OFPORT_MAX)])
        return allocator

    # -------------------------------------------------------------- queries

    def subnet_ids(self, network_id: str) -> list[str]:
        with self._lock:
            return list(self._subnets_by_network.get(network_id, ()))

    def port_ids(self, network_id: str) -> list[str]:
        with self._lock:
            return list(self._ports_by_network.get(network_id, ()))

    def device_port_ids(self, device_id: str) -> list[str]:
        with self._lock:
            return list(self._ports_by_device.get(device_id, ()))

    def dhcp_port_ids(self, network_id: str) -> list[str]:
        with self._lock:
            return list(self._dhcp_ports.get(network_id, ()))

    def mac_owner(self, network_id: str, mac: str) -> str | None:
        return self._macs.get(network_id, {}).get(mac)

    def macs(self, network_id: str) -> Collection[str]:
        return self._macs.get(network_id, {}).keys()

    def addresses(self, subnet_id: str) -> SubnetAddresses | None:
        return self._addresses.get(subnet_id)

    def vni_owner(self, vni: int) -> str | None:
        return self._vxlan.get(vni)

    def vlan_owner(self, physical_network: str, vlan: int) -> str | None:
        return self._vlans.get((physical_network, vlan))

    def flat_owner(self, physical_network: str) -> str | None:
        return self._flats.get(physical_network)

    def allocate_vni(self) -> int | None:
        with self._lock:
            return self._vnis.allocate()

    def allocate_ofport(self, host: str, exclude: Collection[int] = ()) -> int | None:
        with self._lock:
            return self._host_ofports(host).allocate(exclude)
