"""Floating IPs: an address of an external network held by a ``network:floatingip`` port, 1:1 NATed to a
fixed IP of a port behind a router whose gateway is on that network.

Neutron's rules: the floating network must be ``router_external``; a
requested address must be inside one of its subnets (INVALID_ARGUMENT) and
free (ALREADY_EXISTS); the fixed IP must be the port's (INVALID_ARGUMENT) and
have no floating IP yet (ALREADY_EXISTS); a router must connect the fixed IP's
subnet to the floating network (FAILED_PRECONDITION otherwise). The port's own
network does not matter beyond that: the router is what is looked up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from controller.api import validation as v
from controller.api.core import ResourceApi, accepted_stages, new_id
from controller.api.errors import ApiError, already_exists, failed_precondition, invalid
from controller.api.masks import FLOATINGIP_RULES
from controller.api.paging import Page, paginate
from controller.api.ports import PortResource
from controller.api.security_groups import PortSecurity, SecurityGroupResource
from controller.ipam import generate_mac
from controller.model import (
    OWNER_FLOATINGIP,
    PORT_DOWN,
    FloatingIP,
    Network,
    Port,
    Router,
)
from dataplane.common.addresses import is_ipv4
from dataplane.common.logs import get_logger

log = get_logger(__name__)

STATUS_ACTIVE = "ACTIVE"
STATUS_DOWN = "DOWN"


class FloatingIpResource(ResourceApi):
    """Floating IP CRUD, association and disassociation."""

    def __init__(self, core: Any) -> None:
        super().__init__(core)
        self.ports = PortResource(core, PortSecurity(core, SecurityGroupResource(core)))

    def get(self, fip_id: str) -> FloatingIP:
        return self._get("floatingip", fip_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[FloatingIP]:
        revision, objs = self.store.snapshot("floatingip")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def floating_port(self, fip: FloatingIP) -> Port | None:
        port = self.store.get("port", fip.floating_port_id) if fip.floating_port_id else None
        return port if isinstance(port, Port) else None

    def create(self, fields: Mapping[str, Any]) -> FloatingIP:
        network_id = v.required("floating_ip.floating_network_id", fields.get("floating_network_id", ""))
        description = v.text("floating_ip.description", fields.get("description", ""))
        project_id = v.text("floating_ip.project_id", fields.get("project_id", ""))
        address = fields.get("floating_ip_address", "")
        if address:
            v.ipv4("floating_ip.floating_ip_address", address)
        with self.lock:
            net: Network = self._get("network", network_id, "floating_ip.floating_network_id")
            if not net.router_external:
                raise invalid("floating_ip.floating_network_id", f"network {net.id} is not external (router_external)")
            fip_id = new_id()
            port = Port(
                id=new_id(),
                network_id=net.id,
                project_id=project_id or net.project_id,
                mac_address=generate_mac(self.index.macs(net.id)),
                device_id=fip_id,
                device_owner=OWNER_FLOATINGIP,
                port_security_enabled=False,
                status=PORT_DOWN,
                stages=accepted_stages(),
            )
            try:
                fixed = self.ports._assign_ips(net, port.id, [("", address)] if address else None, (), OWNER_FLOATINGIP)
            except ApiError as exc:
                raise ApiError(
                    exc.code, exc.message.replace("port.fixed_ips[0].ip_address", "floating_ip.floating_ip_address")
                ) from None
            if not fixed:
                raise invalid("floating_ip.floating_network_id", f"network {net.id} has no subnet to take an IP from")
            fixed = fixed[:1]
            port = dataclasses.replace(port, fixed_ips=fixed)
            fip = FloatingIP(
                id=fip_id,
                project_id=port.project_id,
                description=description,
                floating_network_id=net.id,
                floating_ip_address=fixed[0].ip_address,
                floating_port_id=port.id,
                status=STATUS_DOWN,
            )
            if fields.get("port_id"):
                fip = self._associated(fip, fields["port_id"], fields.get("fixed_ip_address", ""))
            self._commit([port, fip])
            log.info("floating ip created", fip_id=fip.id, address=fip.floating_ip_address, port_id=fip.port_id or None)
            return self._get("floatingip", fip.id)

    def update(self, fip_id: str, changes: Mapping[str, Any]) -> FloatingIP:
        FLOATINGIP_RULES.check(changes)
        with self.lock:
            fip: FloatingIP = self._get("floatingip", fip_id)
            new = fip
            if "description" in changes:
                new = dataclasses.replace(new, description=v.text("floating_ip.description", changes["description"]))
            if "port_id" in changes or "fixed_ip_address" in changes:
                port_id = changes.get("port_id", fip.port_id)
                fixed_ip = changes.get("fixed_ip_address", "" if "port_id" in changes else fip.fixed_ip_address)
                new = self._associated(new, port_id, fixed_ip) if port_id else _disassociated(new)
            if new != fip:
                self._commit([new])
                log.info(
                    "floating ip updated",
                    fip_id=fip_id,
                    port_id=new.port_id or None,
                    fixed_ip=new.fixed_ip_address or None,
                    router_id=new.router_id or None,
                )
            return self._get("floatingip", fip_id)

    def associate(self, fip_id: str, port_id: str, fixed_ip: str = "") -> FloatingIP:
        v.required("port_id", port_id)
        return self.update(fip_id, {"port_id": port_id, "fixed_ip_address": fixed_ip})

    def disassociate(self, fip_id: str) -> FloatingIP:
        return self.update(fip_id, {"port_id": ""})

    def delete(self, fip_id: str) -> int:
        with self.lock:
            fip: FloatingIP = self._get("floatingip", fip_id)
            deletes = [("floatingip", fip_id)]
            if fip.floating_port_id and self.store.get("port", fip.floating_port_id) is not None:
                deletes.append(("port", fip.floating_port_id))
            revision = self._commit(deletes=deletes)
            log.info("floating ip deleted", fip_id=fip_id, address=fip.floating_ip_address, revision=revision)
            return revision

    # ------------------------------------------------------------ association

    def _associated(self, fip: FloatingIP, port_id: str, fixed_ip: str) -> FloatingIP:
        port: Port = self._get("port", port_id, "floating_ip.port_id")
        if port.device_owner.startswith("network:"):
            raise invalid("floating_ip.port_id", f"port {port_id} is a {port.device_owner} port")
        if fixed_ip:
            v.ipv4("floating_ip.fixed_ip_address", fixed_ip)
            if fixed_ip not in port.ips:
                raise invalid("floating_ip.fixed_ip_address", f"{fixed_ip} is not an address of port {port_id}")
        else:
            fixed_ip = next((ip for ip in port.ips if is_ipv4(ip)), "")
            if not fixed_ip:
                raise invalid("floating_ip.port_id", f"port {port_id} has no IPv4 address")
        for other_id in self.core.l3.fips_of_port(port_id):
            other = self.store.get("floatingip", other_id)
            if other_id != fip.id and isinstance(other, FloatingIP) and other.fixed_ip_address == fixed_ip:
                raise already_exists(
                    "floating_ip.fixed_ip_address", f"{fixed_ip} of port {port_id} has floating IP {other_id}"
                )
        subnet_id = next(f.subnet_id for f in port.fixed_ips if f.ip_address == fixed_ip)
        router = self._router_for(subnet_id, fip.floating_network_id)
        if router is None:
            raise failed_precondition(
                f"floating_ip.port_id: no router connects subnet {subnet_id} of port {port_id} to external network "
                f"{fip.floating_network_id}; add a router interface there and set the router's gateway"
            )
        return dataclasses.replace(
            fip, port_id=port_id, fixed_ip_address=fixed_ip, router_id=router.id, status=STATUS_ACTIVE
        )

    def _router_for(self, subnet_id: str, network_id: str) -> Router | None:
        """The router with an interface on ``subnet_id`` and its gateway on ``network_id`` (Neutron's lookup)."""
        for router_id in sorted(self.core.l3.routers_with_gateway_on(network_id)):
            for port_id in self.core.l3.interface_ports(router_id):
                port = self.store.get("port", port_id)
                if isinstance(port, Port) and any(f.subnet_id == subnet_id for f in port.fixed_ips):
                    router = self.store.get("router", router_id)
                    return router if isinstance(router, Router) else None
        return None


def _disassociated(fip: FloatingIP) -> FloatingIP:
    return dataclasses.replace(fip, port_id="", fixed_ip_address="", router_id="", status=STATUS_DOWN)
