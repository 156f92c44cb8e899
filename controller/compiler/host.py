"""A host's desired state, and the compiler's entry points.

``compile_host`` builds everything one hypervisor must realise: flow groups
(keyed by the object that owns them, compiled by the feature that owns their
kind), the VIF ports bound to it, and the networks that need a DHCP/metadata
localport there. ``compile_group`` recomputes a single group, which is what
incremental updates use. ``FEATURES`` is the registry of features; the
distributor asks it what a change touches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from controller.compiler import l2, l3, nat, provider, secgroups
from controller.compiler.feature import ALL_GROUPS, HOST_KIND, PIPELINE_KEY, Feature, GroupKey, HostGroups
from controller.compiler.l3spec import HostL3Spec, host_l3_spec
from controller.compiler.topology import Topology
from controller.model import Network, Port, Resource, Subnet
from dataplane.common.constants import METADATA_IP
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.flow import Flow
from dataplane.contract.pipeline import check_flow, miss_flows

_CHECKED_MAX = 1 << 16


class FeatureRegistry:
    """The compiler's features, and the dispatch from a group's kind to the feature that owns it."""

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = tuple(features)
        self._by_kind: dict[str, Feature] = {}
        self._by_name: dict[str, Feature] = {}
        self._checked: dict[int, tuple[tuple[Flow, ...], str]] = {}
        numbers: set[int] = set()
        for f in self.features:
            if f.name in self._by_name or f.number in numbers or f.number <= 0:
                raise ValueError(f"feature {f.name}: name or number {f.number} is taken (or not positive)")
            self._by_name[f.name] = f
            numbers.add(f.number)
            for kind in f.group_kinds:
                if kind in self._by_kind or kind in (HOST_KIND, PIPELINE_KEY[0], ALL_GROUPS[0]):
                    raise ValueError(f"group kind {kind!r} of feature {f.name} is declared twice or reserved")
                self._by_kind[kind] = f

    def owner(self, key: GroupKey) -> Feature | None:
        """The feature owning ``key`` (None for the pipeline's table misses)."""
        kind, obj_id = key
        if kind == PIPELINE_KEY[0]:
            return None
        feature = self._by_name.get(obj_id) if kind == HOST_KIND else self._by_kind.get(kind)
        if feature is None:
            raise ValueError(f"no feature owns group {key!r}")
        return feature

    def flows_only(self, keys: Iterable[GroupKey]) -> bool:
        """True when ``keys`` (some) all belong to features whose groups cannot change host peers or L3 specs."""
        keys = list(keys)
        if not keys:
            return False
        for key in keys:
            feature = self.owner(key) if key != ALL_GROUPS else None
            if feature is None or feature.shapes_host_specs:
                return False
        return True

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        feature = self.owner(key)
        return make_cookie(CookieKind.PIPELINE) if feature is None else feature.cookie(topo, key)

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        """``key``'s flows on ``host``, each checked against the pipeline and its owner's tables."""
        feature = self.owner(key)
        if feature is None:
            return miss_flows(make_cookie(CookieKind.PIPELINE))
        flows = feature.compile(topo, key, host)
        # Features hand out the same cached tuple for what is identical on many hosts: check it once.
        seen = self._checked.get(id(flows))
        if seen is None or seen[0] is not flows or seen[1] != feature.name:
            for f in flows:
                check_flow(f, feature.name)
            if len(self._checked) >= _CHECKED_MAX:
                self._checked.clear()
            self._checked[id(flows)] = (flows, feature.name)  # holding the tuple keeps its id unique
        return flows

    def host_groups(self, topo: Topology, host: str) -> list[GroupKey]:
        keys: list[GroupKey] = [PIPELINE_KEY]
        for f in self.features:
            keys.extend(f.host_groups(topo, host))
        return keys

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        for f in self.features:
            for host, keys in f.affected(topo, old, new).items():
                out.setdefault(host, set()).update(keys)
        return out

    def membership(self, topo: Topology, changes: Iterable[tuple[str, str]]) -> HostGroups:
        out: HostGroups = {}
        for host, network_id in changes:
            for f in self.features:
                out.setdefault(host, set()).update(f.membership(topo, host, network_id))
        return out


FEATURES = FeatureRegistry(
    [l2.L2Feature(), secgroups.SecGroupsFeature(), l3.L3Feature(), nat.NatFeature(), provider.ProviderFeature()]
)


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
    l3: HostL3Spec = field(default_factory=HostL3Spec)

    def flows(self) -> list[Flow]:
        return [f for group in self.groups.values() for f in group]


def group_cookie(topo: Topology, key: GroupKey) -> int | None:
    """The cookie of a group's flows, or None if its object is unknown."""
    return FEATURES.cookie(topo, key)


def compile_group(topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
    return FEATURES.compile(topo, key, host)


def compile_host(topo: Topology, host: str) -> HostState:
    """Everything ``host`` holds, flows included: its compiled groups and the member flows its agent renders
    from its address sets (as groups ``("sg-address", cidr)``)."""
    state = HostState()
    for key in FEATURES.host_groups(topo, host):
        flows = compile_group(topo, key, host)
        if flows:
            state.groups[key] = flows
    state.groups.update(secgroups.address_groups(topo, host))
    for port in topo.vif_ports_by_host.get(host, {}).values():
        state.ports[port.id] = local_port_spec(topo, port)
    for net_id in topo.networks_of_host(host):
        spec = local_network_spec(topo, net_id)
        if spec is not None:
            state.networks[net_id] = spec
    state.l3 = host_l3_spec(topo, host)
    return state


def host_peers(topo: Topology, host: str) -> tuple[str, ...]:
    """The tunnel IPs ``host`` sends to: peers on its networks, and the hosts its routers reach."""
    tunnel = topo.tunnel_peers(host)  # sorted, cached by the topology
    routed = l3.l3_peers(topo, host)
    if routed.issubset(tunnel):
        return tunnel
    return tuple(sorted(routed.union(tunnel)))


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
    subnets = tuple(sorted(topo.subnets_by_network.get(network_id, {}).values(), key=lambda s: s.cidr))
    return _network_spec(net, dhcp, subnets, topo.dns_domain)


# The same on every host of the network, and asked for on each of them at every change to the
# network's ports: computed once per version of its inputs (all immutable).
@lru_cache(maxsize=1 << 14)
def _network_spec(net: Network, dhcp: Port, subnets: tuple[Subnet, ...], dns_domain: str) -> LocalNetworkSpec | None:
    lp_ip_by_subnet = {f.subnet_id: f.ip_address for f in dhcp.fixed_ips}
    lp_ips: list[str] = []
    specs: list[DhcpSubnetSpec] = []
    for subnet in subnets:
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
        dns_domain=dns_domain,
    )
