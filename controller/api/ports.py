"""Ports: MAC and fixed IP allocation, binding to a host (with the OpenFlow port number the VIF requests),
and the status and stages the agents report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.api import validation as v
from controller.api.core import ApiCore, ResourceApi, accepted_stages, new_id
from controller.api.errors import already_exists, failed_precondition, invalid, not_found
from controller.api.masks import PORT_RULES
from controller.api.paging import Page, paginate
from controller.api.security_groups import PortSecurity
from controller.ipam import generate_mac, int_to_ip, ip_to_int
from controller.model import (
    OWNER_FLOATINGIP,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    PORT_DOWN,
    Agent,
    FixedIP,
    FloatingIP,
    Network,
    Port,
    PortStage,
    Resource,
    Subnet,
    binding_vif_type,
)
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger

log = get_logger(__name__)


# Ports the L3 API creates and removes itself.
_L3_OWNED = (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY, OWNER_FLOATINGIP)


@dataclass
class Reservation:
    """Values picked for ports not committed yet, when one request makes several (an instance's ports).

    The index only learns of a value when its port is committed, so without
    this the second port of a request could be given the first one's IP, MAC
    or OpenFlow port number.
    """

    ips: dict[str, set[int]] = field(default_factory=dict)  # subnet id -> addresses
    macs: dict[str, set[str]] = field(default_factory=dict)  # network id -> MACs
    ofports: dict[str, set[int]] = field(default_factory=dict)  # host -> OpenFlow port numbers
    # What the request must commit with its ports (a project's default security group made now), and the
    # default groups it already picked, by project, so two ports of one request never make two.
    extra: list[Resource] = field(default_factory=list)
    default_groups: dict[str, str] = field(default_factory=dict)


class PortResource(ResourceApi):
    """Port CRUD, IP assignment and binding, security groups; the agents' status reports."""

    def __init__(self, core: ApiCore, security: PortSecurity) -> None:
        super().__init__(core)
        self.security = security

    def vif_details(self, port: Port) -> dict[str, str]:
        """Neutron's binding:vif_details: how the host plugs the VIF (empty while unbound)."""
        if not port.binding_ofport:
            return {}
        net = self.store.get("network", port.network_id)
        mtu = net.mtu if isinstance(net, Network) else 0
        return {"bridge": BR_INT, "ofport": str(port.binding_ofport), "mtu": str(mtu)}

    def binding(self, port: Port) -> tuple[str, str]:
        """Neutron's binding:vif_type and, when it is binding_failed, why (no agent registered for the host)."""
        host = port.binding_host_id
        return binding_vif_type(host, bool(host) and isinstance(self.store.get("agent", host), Agent))

    def get(self, port_id: str) -> Port:
        return self._get("port", port_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Port]:
        network_id = filters.get("network_id") or ""
        if network_id:
            # Cheaper than filtering every port of every network.
            ids = set(self.index.port_ids(network_id))
            revision, objs = self.store.snapshot("port")
            objs = [p for p in objs if p.id in ids]
        else:
            revision, objs = self.store.snapshot("port")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def create(self, fields: Mapping[str, Any]) -> Port:
        with self.lock:
            reservation = Reservation()
            port = self.prepare(fields, reservation)
            self._commit([*reservation.extra, port])  # a default group made for it comes in the same commit
            log.info(
                "port created",
                port_id=port.id,
                network_id=port.network_id,
                mac=port.mac_address,
                ips=",".join(port.ips),
                host=port.binding_host_id,
                security_groups=",".join(port.security_groups),
            )
            return self._get("port", port.id)

    def prepare(self, fields: Mapping[str, Any], reservation: Reservation | None = None, field: str = "port") -> Port:
        """A new port, validated and with its MAC, IPs and ofport allocated, not committed (hold ``self.lock``).

        ``field`` prefixes error messages (``instance.networks[0]`` when an instance makes the port).
        """
        res = reservation if reservation is not None else Reservation()
        network_id = v.required(f"{field}.network_id", fields.get("network_id", ""))
        name = v.text(f"{field}.name", fields.get("name", ""))
        device_id = v.text(f"{field}.device_id", fields.get("device_id", ""))
        device_owner = v.text(f"{field}.device_owner", fields.get("device_owner", ""))
        host = v.text(f"{field}.binding_host_id", fields.get("binding_host_id", ""))
        mac = v.mac_address(f"{field}.mac_address", fields["mac_address"]) if fields.get("mac_address") else ""
        requested = self._requested_ips(fields["fixed_ips"]) if fields.get("fixed_ips") else None
        with self.lock:
            net: Network = self._get("network", network_id, f"{field}.network_id")
            project_id = v.text(f"{field}.project_id", fields.get("project_id", "") or net.project_id)
            port_id = new_id()
            macs = res.macs.setdefault(net.id, set())
            if mac:
                owner = self.index.mac_owner(net.id, mac)
                if owner is not None or mac in macs:
                    holder = f"port {owner}" if owner else "another port of this request"
                    raise already_exists(f"{field}.mac_address", f"{mac} is used by {holder} on network {net.id}")
            else:
                mac = generate_mac(self.index.macs(net.id), macs)
            macs.add(mac)
            fixed_ips = self._assign_ips(net, port_id, requested, (), device_owner, res.ips, field)
            port_security = bool(fields.get("port_security_enabled", net.port_security_enabled))
            groups, pairs, extra = self.security.for_new_port(
                fields, project_id, device_owner, port_security, res.default_groups, field
            )
            res.extra.extend(extra)
            return Port(
                id=port_id,
                name=name,
                network_id=net.id,
                project_id=project_id,
                mac_address=mac,
                fixed_ips=fixed_ips,
                device_id=device_id,
                device_owner=device_owner,
                binding_host_id=host,
                binding_ofport=self._ofport_for(host, res, field) if host else 0,
                admin_state_up=fields.get("admin_state_up", True),
                port_security_enabled=port_security,
                status=PORT_DOWN,
                stages=accepted_stages(),
                security_groups=groups,
                allowed_address_pairs=pairs,
            )

    def rebound(
        self, port: Port, host: str, reservation: Reservation | None = None, field: str = "port", **changes: Any
    ) -> Port:
        """``port`` bound to ``host`` (a new ofport there; empty host: unbound) with ``changes``, not committed."""
        res = reservation if reservation is not None else Reservation()
        updates: dict[str, Any] = dict(changes)
        if host != port.binding_host_id:
            updates["binding_host_id"] = host
            updates["binding_ofport"] = self._ofport_for(host, res, field) if host else 0
            # What the old host reached says nothing about the new one.
            updates["status"] = PORT_DOWN
            updates["stages"] = accepted_stages()
        return dataclasses.replace(port, **updates)

    @staticmethod
    def _requested_ips(entries: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(subnet_id or "", ip or "") for subnet_id, ip in entries]

    def _ofport_for(self, host: str, reservation: Reservation | None = None, field: str = "port") -> int:
        taken = reservation.ofports.setdefault(host, set()) if reservation is not None else set()
        ofport = self.index.allocate_ofport(host, taken)
        if ofport is None:
            raise failed_precondition(f"{field}.binding_host_id: host {host} has no free OpenFlow port number")
        taken.add(ofport)
        return ofport

    def _assign_ips(
        self,
        net: Network,
        port_id: str,
        requested: list[tuple[str, str]] | None,
        current: tuple[FixedIP, ...],
        device_owner: str,
        picked: dict[str, set[int]] | None = None,
        prefix: str = "port",
    ) -> tuple[FixedIP, ...]:
        """The port's fixed IPs: one per subnet by default, else as requested (keeping current ones).

        ``picked`` (subnet -> IPs) holds what this request chose already, for this port and the ones before it.
        """
        subnet_ids = self.index.subnet_ids(net.id)
        if requested is None:
            requested = [(sid, "") for sid in subnet_ids]
        if picked is None:
            picked = {}
        resolved: list[tuple[Subnet, int | None, str]] = []  # (subnet, ip or None, field)
        for i, (subnet_id, ip_text) in enumerate(requested):
            field = f"{prefix}.fixed_ips[{i}]"
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
        if ip == addresses.gateway and device_owner not in (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY):
            raise invalid(field, f"{text} is the gateway of subnet {subnet.id}")
        owner = addresses.owners.get(ip)
        if owner is not None and owner != port_id:
            raise already_exists(field, f"{text} is already allocated to port {owner}")

    def update(self, port_id: str, changes: Mapping[str, Any]) -> Port:
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
                kept = {f.ip_address for f in updates["fixed_ips"]}
                for fip in self._floating_ips(port_id):
                    if fip.fixed_ip_address not in kept:
                        raise failed_precondition(
                            f"port.fixed_ips: {fip.fixed_ip_address} has floating IP {fip.id} "
                            f"({fip.floating_ip_address}); disassociate it first"
                        )
            host = port.binding_host_id
            if "binding_host_id" in changes:
                host = v.text("port.binding_host_id", changes["binding_host_id"])
            self.security.check_update(port, changes, updates)
            new = self.rebound(port, host, **updates)
            if new != port:
                self._commit([new])
                log.info("port updated", port_id=port_id, fields=",".join(sorted(changes)))
            return self._get("port", port_id)

    def delete(self, port_id: str) -> int:
        with self.lock:
            port: Port = self._get("port", port_id)
            if port.device_owner in _L3_OWNED:
                raise failed_precondition(
                    f"port {port_id} belongs to {port.device_owner} {port.device_id}; remove it through the "
                    "router (RemoveRouterInterface, the router's gateway) or the floating IP"
                )
            # Neutron disassociates the port's floating IPs with it.
            puts: list[Resource] = [
                dataclasses.replace(fip, port_id="", fixed_ip_address="", router_id="", status="DOWN")
                for fip in self._floating_ips(port_id)
            ]
            revision = self._commit(puts, deletes=[("port", port_id)])
            log.info("port deleted", port_id=port_id, revision=revision, floating_ips_disassociated=len(puts))
            return revision

    def update_statuses(self, updates: Sequence[tuple[str, str, Sequence[PortStage]]]) -> int:
        """Set the status and stages of many ports in one commit (for the status tracker).

        Ports deleted meanwhile and unchanged ones are skipped. Returns how many were written.
        """
        with self.lock:
            puts = []
            for port_id, status, stages in updates:
                status = v.port_status("port.status", status)
                port = self.store.get("port", port_id)
                if not isinstance(port, Port) or (port.status == status and port.stages == tuple(stages)):
                    continue
                puts.append(dataclasses.replace(port, status=status, stages=tuple(stages)))
            if puts:
                self._commit(puts)
            return len(puts)

    def _floating_ips(self, port_id: str) -> list[FloatingIP]:
        fips = [self.store.get("floatingip", f) for f in sorted(self.core.l3.fips_of_port(port_id))]
        return [f for f in fips if isinstance(f, FloatingIP)]

    def update_status(self, port_id: str, status: str, stages: Sequence[PortStage]) -> Port:
        """Set the output-only status and stages (for the AgentService); no commit when nothing changed."""
        status = v.port_status("port.status", status)
        stages = tuple(stages)
        with self.lock:
            port: Port = self._get("port", port_id)
            if port.status == status and port.stages == stages:
                return port
            self._commit([dataclasses.replace(port, status=status, stages=stages)])
            return self._get("port", port_id)
