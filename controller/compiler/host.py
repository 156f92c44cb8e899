"""A host's desired state, and the compiler's entry points.

``compile_host`` builds everything one hypervisor must realise: flow groups
(keyed by the object that owns them), the VIF ports bound to it, and the
networks that need a DHCP/metadata localport there. ``compile_group``
recomputes a single group, which is what incremental updates use.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.compiler import l2
from controller.compiler.topology import Topology, is_vif_port
from controller.model import Port
from dataplane.common.constants import METADATA_IP
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.flow import Flow
from dataplane.contract.pipeline import check_flow

# What owns a group of flows: ("pipeline", ""), ("network", id) or ("port", id).
GroupKey = tuple[str, str]
PIPELINE_KEY: GroupKey = ("pipeline", "")


@dataclass(frozen=True, slots=True)
class LocalPortSpec:
    port_id: str
    tag: int
    network_id: str
    network_tag: int
    mac_address: str
    ip_addresses: tuple[str, ...]
    ofport: int
    mtu: int
    admin_state_up: bool
    device_id: str = ""
    device_owner: str = ""
    hostname: str = ""
    instance_id: str = ""
    project_id: str = ""


@dataclass(frozen=True, slots=True)
class DhcpSubnetSpec:
    subnet_id: str
    cidr: str
    gateway_ip: str
    dns_nameservers: tuple[str, ...]
    host_routes: tuple[tuple[str, str], ...]  # (destination CIDR, nexthop)
    enable_dhcp: bool


@dataclass(frozen=True, slots=True)
class LocalNetworkSpec:
    network_id: str
    tag: int
    segmentation_id: int
    mtu: int
    localport_id: str
    localport_tag: int
    localport_mac: str
    localport_ips: tuple[str, ...]  # with prefix length: 10.0.0.2/24
    subnets: tuple[DhcpSubnetSpec, ...]
    dns_domain: str


@dataclass
class HostState:
    groups: dict[GroupKey, tuple[Flow, ...]] = field(default_factory=dict)
    ports: dict[str, LocalPortSpec] = field(default_factory=dict)
    networks: dict[str, LocalNetworkSpec] = field(default_factory=dict)

    def flows(self) -> list[Flow]:
        return [f for group in self.groups.values() for f in group]


def group_cookie(topo: Topology, key: GroupKey) -> int | None:
    """The cookie of a group's flows, or None if its object is unknown."""
    kind, obj_id = key
    if kind == "pipeline":
        return make_cookie(CookieKind.PIPELINE)
    if kind == "network":
        net = topo.networks.get(obj_id)
        return make_cookie(CookieKind.NETWORK, net.tag) if net else None
    if kind == "port":
        port = topo.ports.get(obj_id)
        return make_cookie(CookieKind.PORT, port.tag) if port else None
    raise ValueError(f"unknown group kind {kind!r}")


def compile_group(topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
    kind, obj_id = key
    if kind == "pipeline":
        flows = l2.pipeline_flows()
    elif kind == "network":
        flows = l2.network_flows(topo, obj_id, host)
    elif kind == "port":
        flows = l2.port_flows(topo, obj_id, host)
    else:
        raise ValueError(f"unknown group kind {kind!r}")
    for f in flows:
        check_flow(f)
    return flows


def host_group_keys(topo: Topology, host: str) -> list[GroupKey]:
    """Every group that can have flows on ``host``."""
    keys: list[GroupKey] = [PIPELINE_KEY]
    for net_id in sorted(topo.networks_of_host(host)):
        keys.append(("network", net_id))
        keys.extend(("port", pid) for pid, port in topo.ports_by_network.get(net_id, {}).items() if is_vif_port(port))
    return keys


def compile_host(topo: Topology, host: str) -> HostState:
    state = HostState()
    for key in host_group_keys(topo, host):
        flows = compile_group(topo, key, host)
        if flows:
            state.groups[key] = flows
    for port in topo.vif_ports_by_host.get(host, {}).values():
        state.ports[port.id] = local_port_spec(topo, port)
    for net_id in topo.networks_of_host(host):
        spec = local_network_spec(topo, net_id)
        if spec is not None:
            state.networks[net_id] = spec
    return state


def _hostname(topo: Topology, port: Port) -> str:
    instance = topo.instance_of(port)
    if instance is not None and instance.hostname:
        return instance.hostname
    ip = port.ips[0] if port.ips else ""
    return "host-" + ip.replace(".", "-") if ip else "port-" + port.id[:8]


def local_port_spec(topo: Topology, port: Port) -> LocalPortSpec:
    net = topo.networks.get(port.network_id)
    instance = topo.instance_of(port)
    return LocalPortSpec(
        port_id=port.id,
        tag=port.tag,
        network_id=port.network_id,
        network_tag=net.tag if net else 0,
        mac_address=port.mac_address,
        ip_addresses=port.ips,
        ofport=port.binding_ofport,
        mtu=net.mtu if net else 0,
        admin_state_up=l2.port_active(topo, port),
        device_id=port.device_id,
        device_owner=port.device_owner,
        hostname=_hostname(topo, port),
        instance_id=instance.id if instance else "",
        project_id=instance.project_id if instance else port.project_id,
    )


def local_network_spec(topo: Topology, network_id: str) -> LocalNetworkSpec | None:
    """The localport a host needs for a network, or None (no DHCP-enabled subnet)."""
    net = topo.networks.get(network_id)
    dhcp = topo.dhcp_ports.get(network_id)
    if not l2.network_active(net) or dhcp is None:
        return None
    assert net is not None
    subnets = topo.subnets_by_network.get(network_id, {})
    lp_ip_by_subnet = {f.subnet_id: f.ip_address for f in dhcp.fixed_ips}
    lp_ips: list[str] = []
    specs: list[DhcpSubnetSpec] = []
    for subnet in sorted(subnets.values(), key=lambda s: s.cidr):
        lp_ip = lp_ip_by_subnet.get(subnet.id)
        if lp_ip is None or not subnet.enable_dhcp:
            continue
        prefix = ipaddress.ip_network(subnet.cidr).prefixlen
        lp_ips.append(f"{lp_ip}/{prefix}")
        routes = [(r.destination, r.nexthop) for r in subnet.host_routes]
        routes.append((f"{METADATA_IP}/32", lp_ip))
        specs.append(
            DhcpSubnetSpec(
                subnet_id=subnet.id,
                cidr=subnet.cidr,
                gateway_ip=subnet.gateway_ip or "",
                dns_nameservers=subnet.dns_nameservers,
                host_routes=tuple(routes),
                enable_dhcp=subnet.enable_dhcp,
            )
        )
    if not lp_ips:
        return None
    return LocalNetworkSpec(
        network_id=net.id,
        tag=net.tag,
        segmentation_id=net.segmentation_id,
        mtu=net.mtu,
        localport_id=dhcp.id,
        localport_tag=dhcp.tag,
        localport_mac=dhcp.mac_address,
        localport_ips=tuple(lp_ips),
        subnets=tuple(specs),
        dns_domain=topo.dns_domain,
    )
