"""The NetworkService's business logic: networks, subnets and ports, without gRPC.

Methods take plain values (``fields``/``changes``: model field name -> value,
as the user gave them) and return model objects; errors are ``ApiError``.
Every write runs validate -> allocate -> commit under one lock, so two
requests never pick the same IP, MAC, VNI or ofport, and a request that fails
changes nothing (the store commits all of its objects or none).

Neutron behaviour kept on purpose: a network with DHCP-enabled subnets has
one ``network:dhcp`` port holding the first pool address of each of them;
deleting a network deletes its subnets and that port, but not user ports.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import netaddr

from controller.api import validation as v
from controller.api.errors import (
    ApiError,
    already_exists,
    failed_precondition,
    from_store_error,
    invalid,
    not_found,
)
from controller.api.index import ModelIndex
from controller.api.masks import NETWORK_RULES, PORT_RULES, SUBNET_RULES
from controller.api.paging import Page, paginate
from controller.ipam import VNI_MAX, VNI_MIN, first_usable, generate_mac, int_to_ip, ip_to_int, max_mtu
from controller.model import (
    OWNER_DHCP,
    OWNER_ROUTER_INTERFACE,
    PORT_DOWN,
    STAGE_ACCEPTED,
    AllocationPool,
    FixedIP,
    HostRoute,
    Network,
    Port,
    PortStage,
    Resource,
    Subnet,
)
from controller.store.base import Store, StoreError
from dataplane.constants import BR_INT
from dataplane.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """What the API needs from the controller's configuration."""

    underlay_mtu: int = 1500
    vni_range: tuple[int, int] = (VNI_MIN, VNI_MAX)


def new_id() -> str:
    return str(uuid.uuid4())


def accepted_stages() -> tuple[PortStage, ...]:
    return (PortStage(STAGE_ACCEPTED, done=True, at=time.time()),)


class NetworkApi:
    """Networks, subnets and ports: validation, allocation, defaults and cascades over one store."""

    def __init__(self, store: Store, settings: NetworkSettings | None = None) -> None:
        self.store = store
        self.settings = settings or NetworkSettings()
        lo, hi = self.settings.vni_range
        if not VNI_MIN <= lo <= hi <= VNI_MAX:
            raise ValueError(f"VNI range {lo}..{hi} is not inside {VNI_MIN}..{VNI_MAX}")
        self.index = ModelIndex(store, self.settings.vni_range)
        self.lock = threading.RLock()  # held from validation to commit by every write

    def close(self) -> None:
        self.index.unsubscribe()

    # -------------------------------------------------------------- helpers

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

    def subnet_ids(self, network_id: str) -> list[str]:
        return self.index.subnet_ids(network_id)

    def device_port_ids(self, device_id: str) -> list[str]:
        return self.index.device_port_ids(device_id)

    def network_mtu(self, network_id: str) -> int:
        net = self.store.get("network", network_id)
        return net.mtu if isinstance(net, Network) else 0

    def vif_details(self, port: Port) -> dict[str, str]:
        """Neutron's binding:vif_details: how the host plugs the VIF (empty while unbound)."""
        if not port.binding_ofport:
            return {}
        return {"bridge": BR_INT, "ofport": str(port.binding_ofport), "mtu": str(self.network_mtu(port.network_id))}

    # ------------------------------------------------------------- networks

    def get_network(self, network_id: str) -> Network:
        return self._get("network", network_id)

    def list_networks(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Network]:
        revision, objs = self.store.snapshot("network")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create_network(self, fields: Mapping[str, Any]) -> Network:
        name = v.text("network.name", fields.get("name", ""))
        project_id = v.text("network.project_id", fields.get("project_id", ""))
        network_type = v.network_type("network.network_type", fields.get("network_type", ""))
        segmentation_id, physical_network = v.segmentation(
            "network", network_type, fields.get("segmentation_id", 0), fields.get("physical_network", "")
        )
        mtu = v.mtu("network.mtu", fields.get("mtu", 0), max_mtu(network_type, self.settings.underlay_mtu))
        with self.lock:
            segmentation_id = self._claim_segment(network_type, segmentation_id, physical_network)
            net = Network(
                id=new_id(),
                name=name,
                project_id=project_id,
                admin_state_up=fields.get("admin_state_up", True),
                mtu=mtu,
                network_type=network_type,
                segmentation_id=segmentation_id,
                physical_network=physical_network,
                port_security_enabled=fields.get("port_security_enabled", True),
            )
            self._commit([net])
            log.info("network created", network_id=net.id, vni=segmentation_id, type=network_type)
            return self._get("network", net.id)

    def _claim_segment(self, network_type: str, segmentation_id: int, physical_network: str) -> int:
        if network_type == "vxlan":
            if segmentation_id == 0:
                vni = self.index.allocate_vni()
                if vni is None:
                    lo, hi = self.settings.vni_range
                    raise failed_precondition(f"network.segmentation_id: the VNI range {lo}..{hi} is exhausted")
                return vni
            owner = self.index.vni_owner(segmentation_id)
            if owner is not None:
                raise already_exists("network.segmentation_id", f"VNI {segmentation_id} is used by network {owner}")
        elif network_type == "vlan":
            owner = self.index.vlan_owner(physical_network, segmentation_id)
            if owner is not None:
                raise already_exists(
                    "network.segmentation_id",
                    f"VLAN {segmentation_id} on {physical_network} is used by network {owner}",
                )
        else:
            owner = self.index.flat_owner(physical_network)
            if owner is not None:
                raise already_exists(
                    "network.physical_network", f"{physical_network} already carries flat network {owner}"
                )
        return segmentation_id

    def update_network(self, network_id: str, changes: Mapping[str, Any]) -> Network:
        NETWORK_RULES.check(changes)
        with self.lock:
            net: Network = self._get("network", network_id)
            updates: dict[str, Any] = {}
            if "name" in changes:
                updates["name"] = v.text("network.name", changes["name"])
            if "mtu" in changes:
                limit = max_mtu(net.network_type, self.settings.underlay_mtu)
                updates["mtu"] = v.mtu("network.mtu", changes["mtu"], limit)
            for flag in ("admin_state_up", "port_security_enabled"):
                if flag in changes:
                    updates[flag] = bool(changes[flag])
            new = dataclasses.replace(net, **updates)
            if new != net:
                self._commit([new])
            return self._get("network", network_id)

    def delete_network(self, network_id: str) -> int:
        with self.lock:
            self._get("network", network_id)
            port_ids = self.index.port_ids(network_id)
            dhcp = set(self.index.dhcp_port_ids(network_id))
            in_use = [p for p in port_ids if p not in dhcp]
            if in_use:
                raise failed_precondition(
                    f"network {network_id} still has {len(in_use)} port(s) (e.g. {in_use[0]}); delete them first"
                )
            deletes = [("port", p) for p in dhcp]
            deletes += [("subnet", s) for s in self.index.subnet_ids(network_id)]
            deletes.append(("network", network_id))
            revision = self._commit(deletes=deletes)
            log.info("network deleted", network_id=network_id, revision=revision)
            return revision

    # -------------------------------------------------------------- subnets

    def get_subnet(self, subnet_id: str) -> Subnet:
        return self._get("subnet", subnet_id)

    def list_subnets(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Subnet]:
        revision, objs = self.store.snapshot("subnet")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create_subnet(self, fields: Mapping[str, Any]) -> Subnet:
        network_id = v.required("subnet.network_id", fields.get("network_id", ""))
        name = v.text("subnet.name", fields.get("name", ""))
        ip_version = v.ip_version("subnet.ip_version", fields.get("ip_version", 0))
        cidr = v.subnet_cidr("subnet.cidr", fields.get("cidr", ""))
        if "gateway_ip" in fields:
            gateway = v.gateway("subnet.gateway_ip", fields["gateway_ip"], cidr)
        else:
            gateway = first_usable(cidr)
        pools = v.allocation_pools("subnet.allocation_pools", fields.get("allocation_pools", ()), cidr, gateway)
        dns = v.dns_nameservers("subnet.dns_nameservers", fields.get("dns_nameservers", ()))
        routes = v.host_routes("subnet.host_routes", fields.get("host_routes", ()))
        enable_dhcp = fields.get("enable_dhcp", True)
        with self.lock:
            net: Network = self._get("network", network_id, "subnet.network_id")
            project_id = v.text("subnet.project_id", fields.get("project_id", "") or net.project_id)
            self._check_overlap(net.id, cidr)
            subnet = Subnet(
                id=new_id(),
                name=name,
                network_id=net.id,
                project_id=project_id,
                ip_version=ip_version,
                cidr=str(cidr),
                gateway_ip=int_to_ip(gateway) if gateway is not None else None,
                allocation_pools=tuple(AllocationPool(int_to_ip(s), int_to_ip(e)) for s, e in pools),
                dns_nameservers=dns,
                host_routes=tuple(HostRoute(d, n) for d, n in routes),
                enable_dhcp=enable_dhcp,
            )
            puts: list[Resource] = [subnet]
            if enable_dhcp:
                if not pools:
                    raise failed_precondition(f"subnet.allocation_pools: no address left for the DHCP port in {cidr}")
                # A new subnet has nothing allocated: the DHCP port takes the first pool address.
                puts.extend(self._dhcp_port_with(net, subnet.id, int_to_ip(pools[0][0])))
            self._commit(puts)
            log.info("subnet created", subnet_id=subnet.id, network_id=net.id, cidr=subnet.cidr)
            return self._get("subnet", subnet.id)

    def _check_overlap(self, network_id: str, cidr: netaddr.IPNetwork) -> None:
        for other_id in self.index.subnet_ids(network_id):
            other: Subnet = self._get("subnet", other_id)
            other_net = netaddr.IPNetwork(other.cidr, 4)
            if other_net.first <= cidr.last and cidr.first <= other_net.last:
                raise already_exists(
                    "subnet.cidr", f"{cidr} overlaps subnet {other.id} ({other.cidr}) of network {network_id}"
                )

    def _dhcp_port(self, network_id: str) -> Port | None:
        ids = self.index.dhcp_port_ids(network_id)
        return self.store.get("port", ids[0]) if ids else None  # type: ignore[return-value]

    def _dhcp_port_with(self, net: Network, subnet_id: str, ip: str) -> list[Port]:
        """The network's DHCP port, created or given an address on one more subnet."""
        port = self._dhcp_port(net.id)
        if port is not None:
            fixed = (*(f for f in port.fixed_ips if f.subnet_id != subnet_id), FixedIP(subnet_id, ip))
            return [dataclasses.replace(port, fixed_ips=fixed)]
        return [
            Port(
                id=new_id(),
                name="dhcp",
                network_id=net.id,
                project_id=net.project_id,
                mac_address=generate_mac(self.index.macs(net.id)),
                fixed_ips=(FixedIP(subnet_id, ip),),
                device_id=f"dhcp-{net.id}",
                device_owner=OWNER_DHCP,
                port_security_enabled=net.port_security_enabled,
                status=PORT_DOWN,
                stages=accepted_stages(),
            )
        ]

    def _dhcp_port_without(self, network_id: str, subnet_id: str) -> tuple[list[Port], list[tuple[str, str]]]:
        """(puts, deletes) taking a subnet's address off the DHCP port, deleting it when none is left."""
        port = self._dhcp_port(network_id)
        if port is None or all(f.subnet_id != subnet_id for f in port.fixed_ips):
            return [], []
        fixed = tuple(f for f in port.fixed_ips if f.subnet_id != subnet_id)
        if not fixed:
            return [], [("port", port.id)]
        return [dataclasses.replace(port, fixed_ips=fixed)], []

    def update_subnet(self, subnet_id: str, changes: Mapping[str, Any]) -> Subnet:
        SUBNET_RULES.check(changes)
        with self.lock:
            subnet: Subnet = self._get("subnet", subnet_id)
            cidr = netaddr.IPNetwork(subnet.cidr, 4)
            updates: dict[str, Any] = {}
            if "name" in changes:
                updates["name"] = v.text("subnet.name", changes["name"])
            gateway = ip_to_int(subnet.gateway_ip) if subnet.gateway_ip else None
            if "gateway_ip" in changes:
                gateway = v.gateway("subnet.gateway_ip", changes["gateway_ip"], cidr)
                updates["gateway_ip"] = int_to_ip(gateway) if gateway is not None else None
                addresses = self.index.addresses(subnet_id)
                owner = addresses.owners.get(gateway) if addresses and gateway is not None else None
                if owner is not None and not self._is_router_port(owner):
                    raise already_exists("subnet.gateway_ip", f"{changes['gateway_ip']} is in use by port {owner}")
            if "allocation_pools" in changes or "gateway_ip" in changes:
                requested = changes.get("allocation_pools", [(p.start, p.end) for p in subnet.allocation_pools])
                pools = v.allocation_pools("subnet.allocation_pools", requested, cidr, gateway)
                updates["allocation_pools"] = tuple(AllocationPool(int_to_ip(s), int_to_ip(e)) for s, e in pools)
            if "dns_nameservers" in changes:
                updates["dns_nameservers"] = v.dns_nameservers("subnet.dns_nameservers", changes["dns_nameservers"])
            if "host_routes" in changes:
                routes = v.host_routes("subnet.host_routes", changes["host_routes"])
                updates["host_routes"] = tuple(HostRoute(d, n) for d, n in routes)
            puts: list[Resource] = []
            deletes: list[tuple[str, str]] = []
            if "enable_dhcp" in changes and bool(changes["enable_dhcp"]) != subnet.enable_dhcp:
                updates["enable_dhcp"] = bool(changes["enable_dhcp"])
            new = dataclasses.replace(subnet, **updates)
            if new.enable_dhcp != subnet.enable_dhcp:
                if new.enable_dhcp:
                    ip = self._free_pool_address(new)
                    net: Network = self._get("network", subnet.network_id)
                    puts.extend(self._dhcp_port_with(net, subnet_id, int_to_ip(ip)))
                else:
                    puts_, deletes = self._dhcp_port_without(subnet.network_id, subnet_id)
                    puts.extend(puts_)
            if new != subnet:
                self._commit([new, *puts], deletes)
            return self._get("subnet", subnet_id)

    def _is_router_port(self, port_id: str) -> bool:
        port = self.store.get("port", port_id)
        return isinstance(port, Port) and port.device_owner == OWNER_ROUTER_INTERFACE

    def _free_pool_address(self, subnet: Subnet) -> int:
        """The lowest free pool address of a subnet (for its DHCP port), under the subnet's new pools."""
        addresses = self.index.addresses(subnet.id)
        owners = addresses.owners if addresses else {}
        for pool in subnet.allocation_pools:
            for ip in range(ip_to_int(pool.start), ip_to_int(pool.end) + 1):
                if ip not in owners:
                    return ip
        raise failed_precondition(f"subnet.allocation_pools: no free address for the DHCP port in {subnet.cidr}")

    def delete_subnet(self, subnet_id: str) -> int:
        with self.lock:
            subnet: Subnet = self._get("subnet", subnet_id)
            dhcp = set(self.index.dhcp_port_ids(subnet.network_id))
            addresses = self.index.addresses(subnet_id)
            holders = sorted({p for p in (addresses.owners.values() if addresses else ()) if p not in dhcp})
            if holders:
                raise failed_precondition(
                    f"subnet {subnet_id} still has allocated IP addresses (ports {', '.join(holders[:3])}"
                    f"{', ...' if len(holders) > 3 else ''}); delete or update those ports first"
                )
            puts, deletes = self._dhcp_port_without(subnet.network_id, subnet_id)
            deletes.append(("subnet", subnet_id))
            revision = self._commit(puts, deletes)
            log.info("subnet deleted", subnet_id=subnet_id, revision=revision)
            return revision

    # ---------------------------------------------------------------- ports

    def get_port(self, port_id: str) -> Port:
        return self._get("port", port_id)

    def list_ports(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Port]:
        network_id = filters.get("network_id") or ""
        if network_id:
            # Cheaper than filtering every port of every network.
            ids = set(self.index.port_ids(network_id))
            revision, objs = self.store.snapshot("port")
            objs = [p for p in objs if p.id in ids]
        else:
            revision, objs = self.store.snapshot("port")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create_port(self, fields: Mapping[str, Any]) -> Port:
        network_id = v.required("port.network_id", fields.get("network_id", ""))
        name = v.text("port.name", fields.get("name", ""))
        device_id = v.text("port.device_id", fields.get("device_id", ""))
        device_owner = v.text("port.device_owner", fields.get("device_owner", ""))
        host = v.text("port.binding_host_id", fields.get("binding_host_id", ""))
        mac = v.mac_address("port.mac_address", fields["mac_address"]) if fields.get("mac_address") else ""
        requested = self._requested_ips(fields["fixed_ips"]) if fields.get("fixed_ips") else None
        with self.lock:
            net: Network = self._get("network", network_id, "port.network_id")
            project_id = v.text("port.project_id", fields.get("project_id", "") or net.project_id)
            port_id = new_id()
            if mac:
                owner = self.index.mac_owner(net.id, mac)
                if owner is not None:
                    raise already_exists("port.mac_address", f"{mac} is used by port {owner} on network {net.id}")
            else:
                mac = generate_mac(self.index.macs(net.id))
            fixed_ips = self._assign_ips(net, port_id, requested, (), device_owner)
            port = Port(
                id=port_id,
                name=name,
                network_id=net.id,
                project_id=project_id,
                mac_address=mac,
                fixed_ips=fixed_ips,
                device_id=device_id,
                device_owner=device_owner,
                binding_host_id=host,
                binding_ofport=self._ofport_for(host) if host else 0,
                admin_state_up=fields.get("admin_state_up", True),
                port_security_enabled=fields.get("port_security_enabled", net.port_security_enabled),
                status=PORT_DOWN,
                stages=accepted_stages(),
            )
            self._commit([port])
            log.info("port created", port_id=port.id, network_id=net.id, mac=mac, ips=",".join(port.ips), host=host)
            return self._get("port", port.id)

    @staticmethod
    def _requested_ips(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(subnet_id or "", ip or "") for subnet_id, ip in entries]

    def _ofport_for(self, host: str) -> int:
        ofport = self.index.allocate_ofport(host)
        if ofport is None:
            raise failed_precondition(f"port.binding_host_id: host {host} has no free OpenFlow port number")
        return ofport

    def _assign_ips(
        self,
        net: Network,
        port_id: str,
        requested: list[tuple[str, str]] | None,
        current: tuple[FixedIP, ...],
        device_owner: str,
    ) -> tuple[FixedIP, ...]:
        """The port's fixed IPs: one per subnet by default, else as requested (keeping current ones)."""
        subnet_ids = self.index.subnet_ids(net.id)
        if requested is None:
            requested = [(sid, "") for sid in subnet_ids]
        picked: dict[str, set[int]] = {}  # subnet -> IPs chosen by this request
        resolved: list[tuple[Subnet, int | None, str]] = []  # (subnet, ip or None, field)
        for i, (subnet_id, ip_text) in enumerate(requested):
            field = f"port.fixed_ips[{i}]"
            if not subnet_id and not ip_text:
                raise invalid(field, "needs a subnet_id, an ip_address or both")
            ip = v.ipv4(f"{field}.ip_address", ip_text) if ip_text else None
            if subnet_id:
                subnet = self.store.get("subnet", subnet_id)
                if not isinstance(subnet, Subnet):
                    raise not_found("subnet", subnet_id, f"{field}.subnet_id")
                if subnet.network_id != net.id:
                    raise invalid(f"{field}.subnet_id", f"subnet {subnet_id} is not on network {net.id}")
            else:
                subnet = self._subnet_containing(subnet_ids, ip)  # type: ignore[arg-type]
                if subnet is None:
                    raise invalid(f"{field}.ip_address", f"{ip_text} is not inside any subnet of network {net.id}")
            if ip is not None:
                self._check_requested_ip(f"{field}.ip_address", subnet, ip, port_id, device_owner)
                taken = picked.setdefault(subnet.id, set())
                if ip in taken:
                    raise invalid(f"{field}.ip_address", f"{ip_text} is requested twice")
                taken.add(ip)
            resolved.append((subnet, ip, field))
        # Subnet-only entries keep an address the port already has there, else get a free one.
        keep: dict[str, list[int]] = {}
        for f in current:
            keep.setdefault(f.subnet_id, []).append(ip_to_int(f.ip_address))
        out: list[FixedIP] = []
        for subnet, ip, field in resolved:
            taken = picked.setdefault(subnet.id, set())
            if ip is None:
                kept = [k for k in keep.get(subnet.id, []) if k not in taken]
                if kept:
                    ip = kept[0]
                else:
                    addresses = self.index.addresses(subnet.id)
                    ip = addresses.allocate(taken) if addresses is not None else None
                    if ip is None:
                        raise failed_precondition(
                            f"{field}: subnet {subnet.id} ({subnet.cidr}) has no free address in its allocation pools"
                        )
                taken.add(ip)
            out.append(FixedIP(subnet.id, int_to_ip(ip)))
        return tuple(out)

    def _subnet_containing(self, subnet_ids: Iterable[str], ip: int) -> Subnet | None:
        for sid in subnet_ids:
            addresses = self.index.addresses(sid)
            if addresses is not None and addresses.first <= ip <= addresses.last:
                return self.store.get("subnet", sid)  # type: ignore[return-value]
        return None

    def _check_requested_ip(self, field: str, subnet: Subnet, ip: int, port_id: str, device_owner: str) -> None:
        addresses = self.index.addresses(subnet.id)
        if addresses is None:
            raise not_found("subnet", subnet.id, field)
        text = int_to_ip(ip)
        if not addresses.first <= ip <= addresses.last:
            raise invalid(field, f"{text} is outside subnet {subnet.id} ({subnet.cidr})")
        if ip in (addresses.first, addresses.last):
            raise invalid(field, f"{text} is the network or broadcast address of {subnet.cidr}")
        if ip == addresses.gateway and device_owner != OWNER_ROUTER_INTERFACE:
            raise invalid(field, f"{text} is the gateway of subnet {subnet.id}")
        owner = addresses.owners.get(ip)
        if owner is not None and owner != port_id:
            raise already_exists(field, f"{text} is already allocated to port {owner}")

    def update_port(self, port_id: str, changes: Mapping[str, Any]) -> Port:
        PORT_RULES.check(changes)
        with self.lock:
            port: Port = self._get("port", port_id)
            net: Network = self._get("network", port.network_id)
            updates: dict[str, Any] = {}
            for name in ("name", "device_id", "device_owner"):
                if name in changes:
                    updates[name] = v.text(f"port.{name}", changes[name])
            for flag in ("admin_state_up", "port_security_enabled"):
                if flag in changes:
                    updates[flag] = bool(changes[flag])
            if "mac_address" in changes:
                mac = v.mac_address("port.mac_address", v.required("port.mac_address", changes["mac_address"]))
                owner = self.index.mac_owner(net.id, mac)
                if owner is not None and owner != port_id:
                    raise already_exists("port.mac_address", f"{mac} is used by port {owner} on network {net.id}")
                updates["mac_address"] = mac
            if "fixed_ips" in changes:
                requested = self._requested_ips(changes["fixed_ips"])
                owner_role = updates.get("device_owner", port.device_owner)
                updates["fixed_ips"] = self._assign_ips(net, port_id, requested, port.fixed_ips, owner_role)
            if "binding_host_id" in changes:
                host = v.text("port.binding_host_id", changes["binding_host_id"])
                if host != port.binding_host_id:
                    updates["binding_host_id"] = host
                    updates["binding_ofport"] = self._ofport_for(host) if host else 0
                    # What the old host reached says nothing about the new one.
                    updates["status"] = PORT_DOWN
                    updates["stages"] = accepted_stages()
            new = dataclasses.replace(port, **updates)
            if new != port:
                self._commit([new])
                log.info("port updated", port_id=port_id, fields=",".join(sorted(changes)))
            return self._get("port", port_id)

    def delete_port(self, port_id: str) -> int:
        with self.lock:
            self._get("port", port_id)
            revision = self._commit(deletes=[("port", port_id)])
            log.info("port deleted", port_id=port_id, revision=revision)
            return revision

    def update_port_status(self, port_id: str, status: str, stages: Sequence[PortStage]) -> Port:
        """Set the output-only status and stages (for the AgentService); no commit when nothing changed."""
        status = v.port_status("port.status", status)
        stages = tuple(stages)
        with self.lock:
            port: Port = self._get("port", port_id)
            if port.status == status and port.stages == stages:
                return port
            self._commit([dataclasses.replace(port, status=status, stages=stages)])
            return self._get("port", port_id)


__all__ = ["ApiError", "NetworkApi", "NetworkSettings", "Page"]
