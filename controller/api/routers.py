"""Routers: CRUD, the external gateway (a port on the external network), interfaces, static routes.

Neutron's semantics and refusals, with errors naming the field:

* an external gateway must be on a ``router_external`` network; its fixed IPs
  must be inside that network's subnets (INVALID_ARGUMENT) and free;
* an interface is added by subnet (the router takes the subnet's gateway IP:
  refused when the subnet has none) or by an unused, unbound port; a subnet
  overlapping one the router already routes is refused (INVALID_ARGUMENT), a
  subnet another router already serves too (ALREADY_EXISTS);
* interfaces on flat/VLAN networks are refused: a distributed router's MAC
  would appear from every hypervisor on the physical network (Loom routes
  between VXLAN networks; flat/VLAN networks reach routers as external ones);
* static routes need a next hop in a subnet the router is connected to;
* a router with interfaces, or with floating IPs NATed through it, cannot be
  deleted, nor its gateway cleared while floating IPs use it, nor an
  interface removed while a floating IP of that subnet needs it
  (FAILED_PRECONDITION).

Each router gets a pair of conntrack zones (DNAT, SNAT) once, at creation.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.api import validation as v
from controller.api.core import ResourceApi, accepted_stages, new_id
from controller.api.errors import already_exists, failed_precondition, invalid, not_found
from controller.api.masks import ROUTER_RULES
from controller.api.paging import Page, paginate
from controller.api.ports import PortResource
from controller.api.security_groups import PortSecurity, SecurityGroupResource
from controller.ipam import generate_mac
from controller.model import (
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    PORT_DOWN,
    FixedIP,
    FloatingIP,
    HostRoute,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
)
from dataplane.common.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """Neutron's external_gateway_info, as the API layer takes it."""

    network_id: str
    enable_snat: bool = True
    external_fixed_ips: tuple[tuple[str, str], ...] = ()  # (subnet_id, ip_address)


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    router_id: str
    subnet_id: str
    port_id: str
    network_id: str
    revision: int


class RouterResource(ResourceApi):
    """Router CRUD, gateways and interfaces."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.ports = PortResource(core, PortSecurity(core, SecurityGroupResource(core)))

    # ------------------------------------------------------------ reads

    def get(self, router_id: str) -> Router:
        return self._get("router", router_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Router]:
        revision, objs = self.store.snapshot("router")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def interface_ports(self, router_id: str) -> list[Port]:
        ports = [self.store.get("port", pid) for pid in self.core.l3.interface_ports(router_id)]
        return sorted((p for p in ports if isinstance(p, Port)), key=lambda p: p.tag)

    def gateway_port(self, router: Router) -> Port | None:
        port = self.store.get("port", router.gateway_port_id) if router.gateway_port_id else None
        return port if isinstance(port, Port) else None

    # ------------------------------------------------------------ create / update / delete

    def create(self, fields: Mapping[str, Any]) -> Router:
        name = v.text("router.name", fields.get("name", ""))
        project_id = v.text("router.project_id", fields.get("project_id", ""))
        routes = v.host_routes("router.routes", fields.get("routes", ()))
        gateway: GatewayInfo | None = fields.get("external_gateway_info")
        with self.lock:
            zone = self.core.l3.allocate_zone()
            if zone is None:
                raise failed_precondition("router: every conntrack zone of the router range is taken")
            router = Router(
                id=new_id(),
                name=name,
                project_id=project_id,
                admin_state_up=fields.get("admin_state_up", True),
                zone=zone,
            )
            puts: list[Resource] = []
            if gateway is not None and gateway.network_id:
                router, port = self._with_gateway(router, gateway)
                puts.append(port)
            router = dataclasses.replace(router, routes=self._routes(router, routes, []))
            self._commit([router, *puts])
            log.info("router created", router_id=router.id, zone=zone, gateway=router.gateway_network_id)
            return self._get("router", router.id)

    def update(self, router_id: str, changes: Mapping[str, Any]) -> Router:
        ROUTER_RULES.check(changes)
        with self.lock:
            router: Router = self._get("router", router_id)
            new = router
            puts: list[Resource] = []
            deletes: list[tuple[str, str]] = []
            if "name" in changes:
                new = dataclasses.replace(new, name=v.text("router.name", changes["name"]))
            if "admin_state_up" in changes:
                new = dataclasses.replace(new, admin_state_up=bool(changes["admin_state_up"]))
            if "external_gateway_info" in changes:
                gateway: GatewayInfo | None = changes["external_gateway_info"]
                old_port = self.gateway_port(router)
                if gateway is None or not gateway.network_id:
                    if old_port is not None:
                        self._refuse_if_fips(router, "clear its external gateway")
                        deletes.append(("port", old_port.id))
                    new = dataclasses.replace(new, gateway_network_id="", gateway_port_id="", active_gateway="")
                elif old_port is not None and gateway.network_id == router.gateway_network_id:
                    new = dataclasses.replace(new, enable_snat=gateway.enable_snat)
                    if gateway.external_fixed_ips:
                        fixed = self._gateway_ips(router.gateway_network_id, old_port, gateway)
                        puts.append(dataclasses.replace(old_port, fixed_ips=fixed))
                else:
                    if old_port is not None:
                        self._refuse_if_fips(router, "move its external gateway")
                        deletes.append(("port", old_port.id))
                    new, port = self._with_gateway(dataclasses.replace(new, active_gateway=""), gateway)
                    puts.append(port)
            routes = v.host_routes("router.routes", changes["routes"]) if "routes" in changes else _pairs(router.routes)
            gw_port = next((p for p in puts if isinstance(p, Port)), None)
            if gw_port is None and not any(d[1] == router.gateway_port_id for d in deletes):
                gw_port = self.gateway_port(router)
            new = dataclasses.replace(new, routes=self._routes(new, routes, [gw_port] if gw_port else []))
            if new != router or puts or deletes:
                self._commit([new, *puts], deletes)
                log.info("router updated", router_id=router_id, fields=",".join(sorted(changes)))
            return self._get("router", router_id)

    def delete(self, router_id: str) -> int:
        with self.lock:
            router: Router = self._get("router", router_id)
            ifaces = self.core.l3.interface_ports(router_id)
            if ifaces:
                raise failed_precondition(
                    f"router {router_id} is in use: it still has {len(ifaces)} interface(s) "
                    f"(e.g. port {sorted(ifaces)[0]}); remove them first"
                )
            self._refuse_if_fips(router, "be deleted")
            deletes = [("router", router_id)]
            if router.gateway_port_id and self.store.get("port", router.gateway_port_id) is not None:
                deletes.insert(0, ("port", router.gateway_port_id))
            revision = self._commit(deletes=deletes)
            log.info("router deleted", router_id=router_id, revision=revision)
            return revision

    def _refuse_if_fips(self, router: Router, what: str) -> None:
        fips = self.core.l3.fips_of_router(router.id)
        if fips:
            raise failed_precondition(
                f"router {router.id} cannot {what}: floating IP(s) {', '.join(sorted(fips)[:3])} are NATed "
                "through it; disassociate them first"
            )

    def set_active_gateway(self, host: str, router_ids: Sequence[str]) -> None:
        """Record ``host`` as the active SNAT gateway of these routers (reported by its agent)."""
        with self.lock:
            puts: list[Resource] = []
            for router_id in router_ids:
                router = self.store.get("router", router_id)
                if isinstance(router, Router) and router.gateway_network_id and router.active_gateway != host:
                    puts.append(dataclasses.replace(router, active_gateway=host))
                    log.info("router gateway now active", router_id=router_id, host=host, was=router.active_gateway)
            if puts:
                self._commit(puts)

    # ------------------------------------------------------------ the gateway

    def _with_gateway(self, router: Router, gateway: GatewayInfo) -> tuple[Router, Port]:
        net: Network = self._get("network", gateway.network_id, "router.external_gateway_info.network_id")
        if not net.router_external:
            raise invalid(
                "router.external_gateway_info.network_id", f"network {net.id} is not external (router_external)"
            )
        port_id = new_id()
        port = Port(
            id=port_id,
            name="",
            network_id=net.id,
            project_id="",
            mac_address=generate_mac(self.index.macs(net.id)),
            fixed_ips=(),
            device_id=router.id,
            device_owner=OWNER_ROUTER_GATEWAY,
            port_security_enabled=False,
            status=PORT_DOWN,
            stages=accepted_stages(),
        )
        fixed = self._gateway_ips(net.id, port, gateway)
        port = dataclasses.replace(port, fixed_ips=fixed)
        router = dataclasses.replace(
            router, gateway_network_id=net.id, gateway_port_id=port.id, enable_snat=gateway.enable_snat
        )
        return router, port

    def _gateway_ips(self, network_id: str, port: Port, gateway: GatewayInfo) -> tuple[FixedIP, ...]:
        net: Network = self._get("network", network_id)
        requested = None
        if gateway.external_fixed_ips:
            requested = [(s or "", ip or "") for s, ip in gateway.external_fixed_ips]
        try:
            fixed = self.ports._assign_ips(net, port.id, requested, port.fixed_ips, OWNER_ROUTER_GATEWAY)
        except Exception as exc:
            raise _renamed(exc, "port.fixed_ips", "router.external_gateway_info.external_fixed_ips") from None
        if not fixed:
            raise invalid(
                "router.external_gateway_info.network_id",
                f"external network {network_id} has no subnet to take an IP from",
            )
        return fixed

    # ------------------------------------------------------------ routes

    def _routes(
        self, router: Router, routes: Sequence[tuple[str, str]], extra_ports: Sequence[Port]
    ) -> tuple[HostRoute, ...]:
        """Static routes, each next hop inside a subnet the router is connected to."""
        connected = self._connected(router, extra_ports)
        out = []
        for i, (destination, nexthop) in enumerate(routes):
            hop = ipaddress.IPv4Address(nexthop)
            if not any(hop in subnet for subnet in connected):
                raise invalid(
                    f"router.routes[{i}].nexthop",
                    f"{nexthop} is not inside a subnet the router is connected to",
                )
            if any(hop == ipaddress.IPv4Address(ip) for ip in self._own_ips(router, extra_ports)):
                raise invalid(f"router.routes[{i}].nexthop", f"{nexthop} is the router's own address")
            out.append(HostRoute(destination, nexthop))
        return tuple(out)

    def _router_ports(self, router: Router, extra_ports: Sequence[Port]) -> list[Port]:
        ports = self.interface_ports(router.id)
        gw = self.gateway_port(router) if router.gateway_port_id else None
        ids = {p.id for p in extra_ports}
        ports = [p for p in ports if p.id not in ids] + list(extra_ports)
        if gw is not None and gw.id not in ids:
            ports.append(gw)
        return ports

    def _connected(self, router: Router, extra_ports: Sequence[Port]) -> list[ipaddress.IPv4Network]:
        nets = []
        for port in self._router_ports(router, extra_ports):
            for fixed in port.fixed_ips:
                subnet = self.store.get("subnet", fixed.subnet_id)
                if isinstance(subnet, Subnet):
                    nets.append(ipaddress.IPv4Network(subnet.cidr))
        return nets

    def _own_ips(self, router: Router, extra_ports: Sequence[Port]) -> list[str]:
        return [f.ip_address for port in self._router_ports(router, extra_ports) for f in port.fixed_ips]

    # ------------------------------------------------------------ interfaces

    def add_interface(self, router_id: str, subnet_id: str = "", port_id: str = "") -> InterfaceInfo:
        if bool(subnet_id) == bool(port_id):
            raise invalid("subnet_id", "give exactly one of subnet_id and port_id")
        with self.lock:
            router: Router = self._get("router", router_id, "router_id")
            if subnet_id:
                subnet: Subnet = self._get("subnet", subnet_id, "subnet_id")
                net: Network = self._get("network", subnet.network_id)
                self._check_interface_network(net, "subnet_id")
                if not subnet.gateway_ip:
                    raise invalid("subnet_id", f"subnet {subnet_id} has no gateway IP for the router to take")
                holder = self._address_holder(subnet, subnet.gateway_ip)
                if holder is not None:
                    raise already_exists(
                        "subnet_id",
                        f"the gateway IP {subnet.gateway_ip} of subnet {subnet_id} is held by port {holder}",
                    )
                self._check_overlap(router, subnet, "subnet_id")
                port = Port(
                    id=new_id(),
                    name="",
                    network_id=net.id,
                    project_id=net.project_id,
                    mac_address=generate_mac(self.index.macs(net.id)),
                    fixed_ips=(FixedIP(subnet.id, subnet.gateway_ip),),
                    device_id=router.id,
                    device_owner=OWNER_ROUTER_INTERFACE,
                    port_security_enabled=False,
                    status=PORT_DOWN,
                    stages=accepted_stages(),
                )
            else:
                found: Port = self._get("port", port_id, "port_id")
                if found.device_owner or found.device_id or found.binding_host_id:
                    raise failed_precondition(
                        f"port_id: port {port_id} is in use (device_owner {found.device_owner!r}, "
                        f"device_id {found.device_id!r}, host {found.binding_host_id!r})"
                    )
                if len(found.fixed_ips) != 1:
                    raise invalid("port_id", f"port {port_id} must have exactly one fixed IP to be a router interface")
                net = self._get("network", found.network_id)
                self._check_interface_network(net, "port_id")
                subnet = self._get("subnet", found.fixed_ips[0].subnet_id)
                self._check_overlap(router, subnet, "port_id")
                port = dataclasses.replace(
                    found, device_id=router.id, device_owner=OWNER_ROUTER_INTERFACE, port_security_enabled=False
                )
            revision = self._commit([port])
            log.info("router interface added", router_id=router_id, port_id=port.id, subnet_id=subnet.id)
            return InterfaceInfo(router.id, subnet.id, port.id, port.network_id, revision)

    def _check_interface_network(self, net: Network, field: str) -> None:
        if net.router_external:
            raise invalid(field, f"network {net.id} is external: make it the router's gateway instead")
        if net.network_type != "vxlan":
            raise invalid(
                field,
                f"network {net.id} is a {net.network_type} network: distributed routers route between VXLAN "
                "networks only (their MAC would appear on the physical network from every hypervisor)",
            )

    def _address_holder(self, subnet: Subnet, ip: str) -> str | None:
        from controller.ipam import ip_to_int

        addresses = self.index.addresses(subnet.id)
        return addresses.owners.get(ip_to_int(ip)) if addresses is not None else None

    def _check_overlap(self, router: Router, subnet: Subnet, field: str) -> None:
        new = ipaddress.IPv4Network(subnet.cidr)
        for port in self.interface_ports(router.id):
            for fixed in port.fixed_ips:
                other = self.store.get("subnet", fixed.subnet_id)
                if not isinstance(other, Subnet):
                    continue
                if other.id == subnet.id:
                    raise already_exists(field, f"router {router.id} already has an interface on subnet {subnet.id}")
                if ipaddress.IPv4Network(other.cidr).overlaps(new):
                    raise invalid(
                        field,
                        f"subnet {subnet.id} ({subnet.cidr}) overlaps subnet {other.id} ({other.cidr}) "
                        f"of router {router.id}",
                    )

    def remove_interface(self, router_id: str, subnet_id: str = "", port_id: str = "") -> InterfaceInfo:
        if bool(subnet_id) == bool(port_id):
            raise invalid("subnet_id", "give exactly one of subnet_id and port_id")
        with self.lock:
            router: Router = self._get("router", router_id, "router_id")
            ifaces = self.interface_ports(router_id)
            if port_id:
                port = next((p for p in ifaces if p.id == port_id), None)
                if port is None:
                    raise not_found("router interface", port_id, "port_id")
            else:
                port = next((p for p in ifaces if any(f.subnet_id == subnet_id for f in p.fixed_ips)), None)
                if port is None:
                    raise not_found("router interface on subnet", subnet_id, "subnet_id")
            subnets = {f.subnet_id for f in port.fixed_ips}
            for fip_id in sorted(self.core.l3.fips_of_router(router_id)):
                fip = self.store.get("floatingip", fip_id)
                if isinstance(fip, FloatingIP) and self._fip_subnet(fip) in subnets:
                    raise failed_precondition(
                        f"router {router_id}: floating IP {fip_id} ({fip.floating_ip_address}) needs the interface "
                        f"on subnet {self._fip_subnet(fip)}; disassociate it first"
                    )
            revision = self._commit(deletes=[("port", port.id)])
            log.info("router interface removed", router_id=router_id, port_id=port.id)
            return InterfaceInfo(router.id, sorted(subnets)[0] if subnets else "", port.id, port.network_id, revision)

    def _fip_subnet(self, fip: FloatingIP) -> str:
        port = self.store.get("port", fip.port_id)
        if not isinstance(port, Port):
            return ""
        return next((f.subnet_id for f in port.fixed_ips if f.ip_address == fip.fixed_ip_address), "")


def _pairs(routes: Sequence[HostRoute]) -> list[tuple[str, str]]:
    return [(r.destination, r.nexthop) for r in routes]


def _renamed(exc: Exception, old: str, new: str) -> Exception:
    """An ApiError from the port helpers, its field named as the router API calls it."""
    from controller.api.errors import ApiError

    if isinstance(exc, ApiError):
        return ApiError(exc.code, exc.message.replace(old, new))
    return exc
