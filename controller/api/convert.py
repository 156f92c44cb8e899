"""Conversion between protobuf messages and the model.

Requests become plain dicts (field name -> value) for the service layer:
``create_fields`` keeps only the fields the user set (proto3 presence:
non-default scalars, present ``optional`` fields, non-empty lists and maps);
``update_changes`` keeps exactly the fields named by the ``update_mask``.
Repeated sub-messages become tuples of their fields (``AllocationPool`` ->
``(start, end)``), maps become dicts.

Model objects become messages through a ``Presenter``, which adds the output
fields computed from other objects (a network's subnets, a port's
binding_vif_details, an instance's ports).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from controller.api.errors import invalid
from controller.model import (
    FloatingIP,
    Image,
    Instance,
    Network,
    Port,
    Resource,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    Volume,
)
from controller.store.base import Event, EventType
from protos.loom.v1 import network_pb2, resources_pb2

# The kinds the API shows (a WatchEvent can carry); the store may hold others (e.g. agents).
ROUTER_KINDS = ("router", "floatingip")  # what RouterService.Watch streams
SECURITY_KINDS = ("security_group", "security_group_rule")  # what SecurityGroupService.Watch streams
# What NetworkService.Watch streams: every kind, so one watch (loomctl watch) follows everything.
PRESENTED_KINDS = ("network", "subnet", "port", "instance", "image", "volume", *SECURITY_KINDS, *ROUTER_KINDS)

_ONEOF = {"floatingip": "floating_ip"}  # kind -> its WatchEvent field, where they differ

_WATCH_TYPES = {
    EventType.CREATED: network_pb2.WatchEvent.CREATED,
    EventType.UPDATED: network_pb2.WatchEvent.UPDATED,
    EventType.DELETED: network_pb2.WatchEvent.DELETED,
}


def _is_map(fd: FieldDescriptor) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _python_value(fd: FieldDescriptor, value: Any) -> Any:
    if _is_map(fd):
        return dict(value)
    if fd.is_repeated:
        if fd.message_type is not None:
            return [tuple(getattr(item, f.name) for f in fd.message_type.fields) for item in value]
        return list(value)
    return value


def create_fields(msg: Message) -> dict[str, Any]:
    """The fields a create request set."""
    return {fd.name: _python_value(fd, value) for fd, value in msg.ListFields()}


def update_changes(msg: Message, mask: FieldMask) -> dict[str, Any]:
    """The fields an update's mask names, with their (possibly default) values."""
    fields = msg.DESCRIPTOR.fields_by_name
    changes: dict[str, Any] = {}
    for path in mask.paths:
        fd = fields.get(path)
        if fd is None:
            raise invalid("update_mask", f"unknown field {path!r} of {msg.DESCRIPTOR.name.lower()}")
        changes[path] = _python_value(fd, getattr(msg, path))
    return changes


class Lookups(Protocol):
    """What presenting an object needs to know about the others."""

    def subnet_ids(self, network_id: str) -> list[str]: ...

    def device_port_ids(self, device_id: str) -> list[str]: ...

    def vif_details(self, port: Port) -> dict[str, str]: ...

    def binding(self, port: Port) -> tuple[str, str]: ...

    def security_group_rules_of(self, group_id: str) -> list[SecurityGroupRule]: ...

    def router_details(self, router: Router) -> Any: ...

    def fip_details(self, fip: FloatingIP) -> Any: ...


class Presenter:
    """Model objects as API messages."""

    def __init__(self, lookups: Lookups, volume_ids: Callable[[str], list[str]] | None = None) -> None:
        self.lookups = lookups
        # instance id -> ids of the volumes attached to it (compute's volumes)
        self.volume_ids = volume_ids or (lambda _instance_id: [])

    def network(self, n: Network) -> resources_pb2.Network:
        return resources_pb2.Network(
            id=n.id,
            name=n.name,
            project_id=n.project_id,
            admin_state_up=n.admin_state_up,
            mtu=n.mtu,
            network_type=n.network_type,
            segmentation_id=n.segmentation_id,
            physical_network=n.physical_network,
            port_security_enabled=n.port_security_enabled,
            status=n.status,
            router_external=n.router_external,
            subnets=self.lookups.subnet_ids(n.id),
            tag=n.tag,
            revision_number=n.revision_number,
            created_at=n.created_at,
            updated_at=n.updated_at,
        )

    def subnet(self, s: Subnet) -> resources_pb2.Subnet:
        msg = resources_pb2.Subnet(
            id=s.id,
            name=s.name,
            network_id=s.network_id,
            project_id=s.project_id,
            ip_version=s.ip_version,
            cidr=s.cidr,
            gateway_ip=s.gateway_ip or "",  # present and empty: no gateway
            allocation_pools=[resources_pb2.AllocationPool(start=p.start, end=p.end) for p in s.allocation_pools],
            dns_nameservers=s.dns_nameservers,
            host_routes=[resources_pb2.HostRoute(destination=r.destination, nexthop=r.nexthop) for r in s.host_routes],
            enable_dhcp=s.enable_dhcp,
            tag=s.tag,
            revision_number=s.revision_number,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )
        return msg

    def port(self, p: Port) -> resources_pb2.Port:
        vif_type, failure = self.lookups.binding(p)
        return resources_pb2.Port(
            id=p.id,
            name=p.name,
            network_id=p.network_id,
            project_id=p.project_id,
            mac_address=p.mac_address,
            fixed_ips=[resources_pb2.FixedIP(subnet_id=f.subnet_id, ip_address=f.ip_address) for f in p.fixed_ips],
            device_id=p.device_id,
            device_owner=p.device_owner,
            binding_host_id=p.binding_host_id,
            admin_state_up=p.admin_state_up,
            port_security_enabled=p.port_security_enabled,
            status=p.status,
            stages=[resources_pb2.PortStage(name=s.name, done=s.done, at=s.at, detail=s.detail) for s in p.stages],
            binding_vif_details=self.lookups.vif_details(p),
            tag=p.tag,
            revision_number=p.revision_number,
            created_at=p.created_at,
            updated_at=p.updated_at,
            binding_vif_type=vif_type,
            binding_failure_reason=failure,
            security_groups=p.security_groups,
            allowed_address_pairs=[
                resources_pb2.AddressPair(ip_address=a.ip_address, mac_address=a.mac_address)
                for a in p.allowed_address_pairs
            ],
        )

    def instance(self, i: Instance) -> resources_pb2.Instance:
        return resources_pb2.Instance(
            id=i.id,
            name=i.name,
            hostname=i.hostname,
            project_id=i.project_id,
            user_data=i.user_data,
            public_keys=dict(i.public_keys),
            metadata=dict(i.metadata),
            availability_zone=i.availability_zone,
            host=i.host,
            status=i.status,
            ports=self.lookups.device_port_ids(i.id),
            tag=i.tag,
            revision_number=i.revision_number,
            created_at=i.created_at,
            updated_at=i.updated_at,
            flavor=resources_pb2.Flavor(vcpus=i.vcpus, ram_mb=i.ram_mb, disk_gb=i.disk_gb) if i.booted else None,
            image_id=i.image_id,
            power_state=i.power_state,
            task_state=i.task_state,
            fault=i.fault,
            volumes=self.volume_ids(i.id) if i.booted else [],
            launched_at=i.launched_at,
        )

    def image(self, i: Image) -> resources_pb2.Image:
        return resources_pb2.Image(
            id=i.id,
            name=i.name,
            project_id=i.project_id,
            disk_format=i.disk_format,
            container_format=i.container_format,
            size=i.size,
            virtual_size=i.virtual_size,
            sha256=i.sha256,
            status=i.status,
            min_disk=i.min_disk,
            min_ram=i.min_ram,
            properties=dict(i.properties),
            tag=i.tag,
            revision_number=i.revision_number,
            created_at=i.created_at,
            updated_at=i.updated_at,
        )

    def volume(self, v: Volume) -> resources_pb2.Volume:
        return resources_pb2.Volume(
            id=v.id,
            name=v.name,
            project_id=v.project_id,
            size_gb=v.size_gb,
            image_id=v.image_id,
            status=v.status,
            instance_id=v.instance_id,
            device=f"/dev/{v.device}" if v.device else "",
            backend=v.backend,
            fault=v.fault,
            tag=v.tag,
            revision_number=v.revision_number,
            created_at=v.created_at,
            updated_at=v.updated_at,
        )

    def security_group(self, g: SecurityGroup) -> resources_pb2.SecurityGroup:
        return resources_pb2.SecurityGroup(
            id=g.id,
            name=g.name,
            description=g.description,
            project_id=g.project_id,
            rules=[self.security_group_rule(r) for r in self.lookups.security_group_rules_of(g.id)],
            tag=g.tag,
            revision_number=g.revision_number,
            created_at=g.created_at,
            updated_at=g.updated_at,
        )

    def security_group_rule(self, r: SecurityGroupRule) -> resources_pb2.SecurityGroupRule:
        msg = resources_pb2.SecurityGroupRule(
            id=r.id,
            security_group_id=r.security_group_id,
            project_id=r.project_id,
            direction=r.direction,
            ethertype=r.ethertype,
            protocol=r.protocol,
            remote_ip_prefix=r.remote_ip_prefix,
            remote_group_id=r.remote_group_id,
            description=r.description,
            tag=r.tag,
            revision_number=r.revision_number,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for name in ("port_range_min", "port_range_max", "icmp_type", "icmp_code"):
            value = getattr(r, name)
            if value is not None:
                setattr(msg, name, value)
        return msg

    def router(self, r: Router) -> resources_pb2.Router:
        details = self.lookups.router_details(r)
        msg = resources_pb2.Router(
            id=r.id,
            name=r.name,
            project_id=r.project_id,
            admin_state_up=r.admin_state_up,
            routes=[resources_pb2.HostRoute(destination=x.destination, nexthop=x.nexthop) for x in r.routes],
            status=r.status,
            interfaces=list(details.interfaces),
            gateway_port_id=r.gateway_port_id,
            dnat_zone=r.zone,
            snat_zone=r.zone + 1 if r.zone else 0,
            gateway_hosts=[
                resources_pb2.GatewayHost(host=g.host, priority=g.priority, alive=g.alive, active=g.active)
                for g in details.gateway_hosts
            ],
            active_gateway_host=r.active_gateway,
            tag=r.tag,
            revision_number=r.revision_number,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        if r.gateway_network_id:
            msg.external_gateway_info.CopyFrom(
                resources_pb2.ExternalGatewayInfo(
                    network_id=r.gateway_network_id,
                    enable_snat=r.enable_snat,
                    external_fixed_ips=[
                        resources_pb2.FixedIP(subnet_id=f.subnet_id, ip_address=f.ip_address)
                        for f in details.external_fixed_ips
                    ],
                )
            )
        return msg

    def floating_ip(self, f: FloatingIP) -> resources_pb2.FloatingIp:
        details = self.lookups.fip_details(f)
        return resources_pb2.FloatingIp(
            id=f.id,
            project_id=f.project_id,
            description=f.description,
            floating_network_id=f.floating_network_id,
            floating_ip_address=f.floating_ip_address,
            port_id=f.port_id,
            fixed_ip_address=f.fixed_ip_address,
            router_id=f.router_id,
            status=f.status,
            host=details.host,
            floating_port_id=f.floating_port_id,
            mac_address=details.mac_address,
            tag=f.tag,
            revision_number=f.revision_number,
            created_at=f.created_at,
            updated_at=f.updated_at,
        )

    def any(self, obj: Resource) -> Message:
        if isinstance(obj, Network):
            return self.network(obj)
        if isinstance(obj, Subnet):
            return self.subnet(obj)
        if isinstance(obj, Port):
            return self.port(obj)
        if isinstance(obj, Instance):
            return self.instance(obj)
        if isinstance(obj, SecurityGroup):
            return self.security_group(obj)
        if isinstance(obj, SecurityGroupRule):
            return self.security_group_rule(obj)
        if isinstance(obj, Router):
            return self.router(obj)
        if isinstance(obj, FloatingIP):
            return self.floating_ip(obj)
        if isinstance(obj, Image):
            return self.image(obj)
        if isinstance(obj, Volume):
            return self.volume(obj)
        raise TypeError(f"cannot present {type(obj).__name__}")

    def event(self, ev: Event) -> network_pb2.WatchEvent:
        msg = network_pb2.WatchEvent(revision=ev.revision, type=_WATCH_TYPES[ev.type], kind=ev.kind, id=ev.id, at=ev.at)
        getattr(msg, _ONEOF.get(ev.kind, ev.kind)).CopyFrom(self.any(ev.obj))
        return msg
