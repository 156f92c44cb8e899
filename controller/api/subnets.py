"""Subnets: CIDR, gateway and pools validated against each other, and the network's DHCP port.

Neutron behaviour kept on purpose: a network with DHCP-enabled subnets has one
``network:dhcp`` port holding the first pool address of each of them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from typing import Any

from controller.api import validation as v
from controller.api.core import ResourceApi, accepted_stages, new_id
from controller.api.errors import already_exists, failed_precondition
from controller.api.masks import SUBNET_RULES
from controller.api.paging import Page, paginate
from controller.ipam import first_usable, generate_mac, int_to_ip, ip_to_int, parse_cidr
from controller.model import (
    OWNER_DHCP,
    OWNER_ROUTER_INTERFACE,
    PORT_DOWN,
    AllocationPool,
    FixedIP,
    HostRoute,
    Network,
    Port,
    Resource,
    Subnet,
)
from dataplane.common.logs import get_logger

log = get_logger(__name__)


class SubnetResource(ResourceApi):
    """Subnet CRUD, and the DHCP port each DHCP-enabled subnet gives its network."""

    def get(self, subnet_id: str) -> Subnet:
        return self._get("subnet", subnet_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Subnet]:
        revision, objs = self.store.snapshot("subnet")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create(self, fields: Mapping[str, Any]) -> Subnet:
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

    def _check_overlap(self, network_id: str, cidr: ipaddress.IPv4Network) -> None:
        for other_id in self.index.subnet_ids(network_id):
            other: Subnet = self._get("subnet", other_id)
            if parse_cidr(other.cidr).overlaps(cidr):
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

    def update(self, subnet_id: str, changes: Mapping[str, Any]) -> Subnet:
        SUBNET_RULES.check(changes)
        with self.lock:
            subnet: Subnet = self._get("subnet", subnet_id)
            cidr = parse_cidr(subnet.cidr)
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

    def delete(self, subnet_id: str) -> int:
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
