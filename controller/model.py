"""The controller's logical model: immutable dataclasses for every resource.

The store persists these, the API converts them to and from protobuf, and the
compiler reads them. Objects are frozen; a change is a new object with
``dataclasses.replace``. Every object has a ``tag``: a small integer, unique per
kind and never reused, which the dataplane uses in registers and cookies.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar

# device_owner values with a meaning to Loom, re-exported: they are the model's vocabulary too.
from dataplane.common.constants import OWNER_COMPUTE_PREFIX as OWNER_COMPUTE_PREFIX
from dataplane.common.constants import OWNER_DHCP as OWNER_DHCP
from dataplane.common.constants import OWNER_FLOATINGIP as OWNER_FLOATINGIP
from dataplane.common.constants import OWNER_ROUTER_GATEWAY as OWNER_ROUTER_GATEWAY
from dataplane.common.constants import OWNER_ROUTER_INTERFACE as OWNER_ROUTER_INTERFACE

PORT_DOWN = "DOWN"
PORT_BUILD = "BUILD"
PORT_ACTIVE = "ACTIVE"
PORT_ERROR = "ERROR"
PORT_STATUSES = (PORT_DOWN, PORT_BUILD, PORT_ACTIVE, PORT_ERROR)

NETWORK_TYPES = ("vxlan", "flat", "vlan")

# Neutron's binding:vif_type values, as a port shows them.
VIF_TYPE_OVS = "ovs"  # bound to a host whose agent has registered
VIF_TYPE_BINDING_FAILED = "binding_failed"  # bound to a host no agent has registered for
VIF_TYPE_UNBOUND = "unbound"  # no host


def binding_vif_type(host: str, agent_registered: bool) -> tuple[str, str]:
    """A port's (binding_vif_type, binding_failure_reason), given its host and whether that host has an agent.

    Neutron binds a port only to a host one of its agents serves and shows
    ``binding_failed`` otherwise; Loom accepts the port all the same (its
    agent may register later, and the port binds then), but says why it
    cannot become ACTIVE meanwhile.
    """
    if not host:
        return VIF_TYPE_UNBOUND, ""
    if not agent_registered:
        return VIF_TYPE_BINDING_FAILED, f"host {host} has no registered agent"
    return VIF_TYPE_OVS, ""


# The stages a port goes through on its host, in order. A port is ACTIVE when
# every stage its host must reach is done.
STAGE_ACCEPTED = "accepted"
STAGE_COMPILED = "compiled"
STAGE_FLOWS_INSTALLED = "flows_installed"
STAGE_DHCP_READY = "dhcp_ready"
STAGE_METADATA_READY = "metadata_ready"
STAGE_UP = "up"
PORT_STAGES = (
    STAGE_ACCEPTED,
    STAGE_COMPILED,
    STAGE_FLOWS_INSTALLED,
    STAGE_DHCP_READY,
    STAGE_METADATA_READY,
    STAGE_UP,
)


@dataclass(frozen=True, slots=True)
class Resource:
    """Fields every stored resource has."""

    KIND: ClassVar[str] = ""

    id: str
    tag: int = 0
    revision_number: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Network(Resource):
    KIND: ClassVar[str] = "network"

    name: str = ""
    project_id: str = ""
    admin_state_up: bool = True
    mtu: int = 0
    network_type: str = "vxlan"
    segmentation_id: int = 0
    physical_network: str = ""
    port_security_enabled: bool = True
    status: str = "ACTIVE"
    # Neutron's router:external: routers use it as their gateway, floating IPs come from it.
    router_external: bool = False


@dataclass(frozen=True, slots=True)
class AllocationPool:
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class HostRoute:
    destination: str
    nexthop: str


@dataclass(frozen=True, slots=True)
class Subnet(Resource):
    KIND: ClassVar[str] = "subnet"

    name: str = ""
    network_id: str = ""
    project_id: str = ""
    ip_version: int = 4
    cidr: str = ""
    gateway_ip: str | None = None
    allocation_pools: tuple[AllocationPool, ...] = ()
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[HostRoute, ...] = ()
    enable_dhcp: bool = True


@dataclass(frozen=True, slots=True)
class FixedIP:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True, slots=True)
class PortStage:
    name: str
    done: bool = False
    at: float = 0.0  # when it was reached, seconds since the epoch
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AddressPair:
    """An allowed address pair: an IPv4 address or CIDR (canonical text; a host is written without /32)
    the port may also send from, with the MAC it uses for it ("": the port's own)."""

    ip_address: str
    mac_address: str = ""


@dataclass(frozen=True, slots=True)
class Port(Resource):
    KIND: ClassVar[str] = "port"

    name: str = ""
    network_id: str = ""
    project_id: str = ""
    mac_address: str = ""
    fixed_ips: tuple[FixedIP, ...] = ()
    device_id: str = ""
    device_owner: str = ""
    binding_host_id: str = ""
    # The OpenFlow port number the VIF should request on its host's br-int, so
    # the port's flows can be installed before the VIF exists (0: unbound).
    binding_ofport: int = 0
    admin_state_up: bool = True
    port_security_enabled: bool = True
    status: str = PORT_DOWN
    stages: tuple[PortStage, ...] = ()
    # Ids of its security groups (only with port security enabled; empty: all IP traffic is dropped).
    security_groups: tuple[str, ...] = ()
    allowed_address_pairs: tuple[AddressPair, ...] = ()

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(f.ip_address for f in self.fixed_ips)


@dataclass(frozen=True, slots=True)
class Instance(Resource):
    KIND: ClassVar[str] = "instance"

    name: str = ""
    hostname: str = ""
    project_id: str = ""
    user_data: bytes = b""
    public_keys: tuple[tuple[str, str], ...] = ()  # (name, key), ordered
    metadata: tuple[tuple[str, str], ...] = ()  # (key, value), ordered
    availability_zone: str = ""
    host: str = ""
    status: str = "ACTIVE"
    # A booted instance (image_id set; compute/): what the API asked for ...
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    image_id: str = ""
    power_on: bool = True  # the desired power state
    power_generation: int = 0  # bumped by each change of power_on (a guest's own shutdown is told apart by it)
    boot_generation: int = 0  # bumped by each reboot request
    hard_reboot: bool = False  # how to carry out the last one
    owned_ports: tuple[str, ...] = ()  # ports its creation made: deleted with it
    migration_id: str = ""  # a cold migration in progress
    migration_target: str = ""  # where it goes
    migration_phase: str = ""  # "export": its host uploads the disk; "import": host is the target, fetching it
    # ... and what its host reported (compute/status.py).
    power_state: str = ""
    task_state: str = ""
    fault: str = ""
    provisioned_host: str = ""  # where its root disk was built (or imported)
    launched_at: float = 0.0

    @property
    def booted(self) -> bool:
        """Loom runs its guest (it has an image); otherwise it is a record for something else's guest."""
        return bool(self.image_id)


@dataclass(frozen=True, slots=True)
class Agent(Resource):
    """A hypervisor's agent, as registered. ``id`` is the host name.

    Persisted, so a restarted controller still knows every host's tunnel
    endpoint before the agents reconnect: compiling a host without its peers
    would make its agent delete working tunnel flows.
    """

    KIND: ClassVar[str] = "agent"

    tunnel_ip: str = ""
    datapath_type: str = "netdev"
    version: str = ""
    # The physical networks of its bridge mappings, in the order it registered them: the i-th one's
    # bridge is patched to br-int on OpenFlow port PATCH_OFPORT_MIN + i.
    physical_networks: tuple[str, ...] = ()
    # Above 0: a gateway host (SNAT for routers whose external network it has), higher goes first.
    gateway_priority: int = 0


# Security groups (Neutron's API): a group is a set of allow rules; rules are objects of their own.
DIRECTIONS = ("ingress", "egress")
DEFAULT_SECURITY_GROUP = "default"


@dataclass(frozen=True, slots=True)
class SecurityGroup(Resource):
    KIND: ClassVar[str] = "security_group"

    name: str = ""
    description: str = ""
    project_id: str = ""


@dataclass(frozen=True, slots=True)
class SecurityGroupRule(Resource):
    """One allow rule. Immutable once created (as in Neutron): change it by adding a new one and deleting it.

    ``protocol``: "" (any), "tcp", "udp", "icmp" or another IP protocol number as decimal text.
    Port range (tcp/udp) and ICMP type/code: None means any. ``remote_ip_prefix`` ("" = any) and
    ``remote_group_id`` exclude each other.
    """

    KIND: ClassVar[str] = "security_group_rule"

    security_group_id: str = ""
    project_id: str = ""
    direction: str = "ingress"
    ethertype: str = "IPv4"
    protocol: str = ""
    port_range_min: int | None = None
    port_range_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_ip_prefix: str = ""
    remote_group_id: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Router(Resource):
    """A distributed router. Its interfaces are ports (device_owner network:router_interface, device_id the
    router's id); its external gateway is a port on the external network (network:router_gateway) holding
    the external fixed IPs and the MAC it uses there."""

    KIND: ClassVar[str] = "router"

    name: str = ""
    project_id: str = ""
    admin_state_up: bool = True
    gateway_network_id: str = ""  # external_gateway_info.network_id ("": no gateway)
    gateway_port_id: str = ""
    enable_snat: bool = True
    routes: tuple[HostRoute, ...] = ()
    # Conntrack zones: ``zone`` for DNAT, ``zone + 1`` for SNAT; allocated once, the same on every host.
    zone: int = 0
    # The gateway host that announced it SNATs for this router (agents report it). The order of the
    # gateway hosts every host's bundle tries starts with it, so a recovered host does not take it back.
    active_gateway: str = ""
    status: str = "ACTIVE"


@dataclass(frozen=True, slots=True)
class FloatingIP(Resource):
    """A floating IP: an address of an external network (held by a network:floatingip port, which also
    gives it its MAC there), 1:1 NATed to a fixed IP of a port behind a router with that gateway."""

    KIND: ClassVar[str] = "floatingip"

    project_id: str = ""
    description: str = ""
    floating_network_id: str = ""
    floating_ip_address: str = ""
    floating_port_id: str = ""
    port_id: str = ""  # "": not associated
    fixed_ip_address: str = ""
    router_id: str = ""  # the router NATing it, found at association
    status: str = "DOWN"


@dataclass(frozen=True, slots=True)
class Image(Resource):
    """A disk image (compute/images.py): its bytes live in the controller's image directory."""

    KIND: ClassVar[str] = "image"

    name: str = ""
    project_id: str = ""
    disk_format: str = ""  # raw, qcow2, aki, ari
    container_format: str = "bare"
    size: int = 0
    virtual_size: int = 0
    sha256: str = ""
    status: str = "active"
    min_disk: int = 0
    min_ram: int = 0
    properties: tuple[tuple[str, str], ...] = ()  # (key, value), ordered

    def prop(self, key: str) -> str:
        return dict(self.properties).get(key, "")


@dataclass(frozen=True, slots=True)
class Volume(Resource):
    """A block device on a volume backend (compute/volumes.py), attached to at most one instance."""

    KIND: ClassVar[str] = "volume"

    name: str = ""
    project_id: str = ""
    size_gb: int = 0
    image_id: str = ""
    status: str = "available"
    instance_id: str = ""
    device: str = ""  # vdb, vdc, ...
    backend: str = "file"
    location: str = ""  # the backend's name for it (file: the path)
    fault: str = ""


RESOURCE_TYPES: dict[str, type[Resource]] = {
    c.KIND: c
    for c in (
        Network,
        Subnet,
        Port,
        Instance,
        Agent,
        SecurityGroup,
        SecurityGroupRule,
        Router,
        FloatingIP,
        Image,
        Volume,
    )
}


# ------------------------------------------------------------ (de)serialise

_NESTED: dict[tuple[str, str], type] = {
    ("subnet", "allocation_pools"): AllocationPool,
    ("subnet", "host_routes"): HostRoute,
    ("port", "fixed_ips"): FixedIP,
    ("port", "stages"): PortStage,
    ("port", "allowed_address_pairs"): AddressPair,
    ("router", "routes"): HostRoute,
}


# Field names per class, computed once: dataclasses.fields() and asdict() are slow on the store's hot path.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value):
        # Nested model values (FixedIP, PortStage, ...) hold scalars only.
        return {name: getattr(value, name) for name in _field_names(type(value))}
    return value


def to_dict(obj: Resource) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _field_names(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, bytes):
            value = {"__bytes__": value.hex()}
        elif isinstance(value, tuple):
            value = [_plain(v) for v in value]
        out[name] = value
    return out


def from_dict(kind: str, data: dict[str, Any]) -> Resource:
    cls = RESOURCE_TYPES[kind]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, dict) and "__bytes__" in value:
            value = bytes.fromhex(value["__bytes__"])
        elif isinstance(value, list):
            nested = _NESTED.get((kind, f.name))
            if nested is not None:
                value = tuple(nested(**v) for v in value)
            else:
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[f.name] = value
    return cls(**kwargs)


def dumps(obj: Resource) -> str:
    return json.dumps(to_dict(obj), separators=(",", ":"), sort_keys=True)


def loads(kind: str, text: str) -> Resource:
    return from_dict(kind, json.loads(text))
