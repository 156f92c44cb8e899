"""Per-host compiled state, its deltas, and their protobuf form.

A :class:`HostRecord` holds what the controller last compiled for one host:
flow groups keyed by owner, the address sets it holds (which remote groups,
with which conj ids: the members themselves are the same on every host and live
in the topology), the local ports, the local networks and the guests
(instance specs, from compute). Applying a
recompiled part yields a ``HostDelta`` that is logged (so a reconnecting agent
can catch up) and pushed to the host's open Sync streams.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TypeVar

from controller.compiler.host import GroupKey, LocalNetworkSpec, LocalPortSpec
from controller.compiler.l3spec import HostL3Spec
from dataplane.contract import address_sets, encode
from dataplane.contract.flow import Flow
from protos.loom.v1 import agent_pb2, hypervisor_pb2, resources_pb2

DELTA_LOG_LENGTH = 512

Spec = TypeVar("Spec", LocalPortSpec, LocalNetworkSpec, hypervisor_pb2.InstanceSpec)
# An address set as a host holds it: (ingress conj id, egress conj id); 0 where that direction is not referenced.
SetRef = tuple[int, int]
# A group's member addresses now (the topology's security group index).
Members = Callable[[str], Collection[str]]


@dataclass
class HostRecord:
    host: str
    revision: int = 0
    groups: dict[GroupKey, tuple[Flow, ...]] = field(default_factory=dict)
    cookies: dict[GroupKey, int] = field(default_factory=dict)
    address_sets: dict[str, SetRef] = field(default_factory=dict)  # remote group id -> its conj ids here
    ports: dict[str, LocalPortSpec] = field(default_factory=dict)
    networks: dict[str, LocalNetworkSpec] = field(default_factory=dict)
    peers: tuple[str, ...] = ()
    l3: HostL3Spec = field(default_factory=HostL3Spec)
    instances: dict[str, hypervisor_pb2.InstanceSpec] = field(default_factory=dict)  # the guests it runs
    # Every delta after log_floor is in log, oldest first.
    log: deque[tuple[int, agent_pb2.HostDelta]] = field(default_factory=lambda: deque(maxlen=DELTA_LOG_LENGTH))
    log_floor: int = 0
    subscribers: set[queue.SimpleQueue] = field(default_factory=set)

    def flows(self, members: Members) -> list[Flow]:
        """Every flow of the host: its groups and the member flows its agent renders from its address sets."""
        out = [f for group in self.groups.values() for f in group]
        for flows in address_sets.render(address_sets.held_sets(self.address_sets, members)).values():
            out.extend(flows)
        return out

    def flow_count(self, members: Members) -> int:
        """``len(self.flows(members))`` without rendering: one member flow per address and referenced direction."""
        ingress: set[str] = set()
        egress: set[str] = set()
        for group_id, (i, e) in self.address_sets.items():
            for into, cid in ((ingress, i), (egress, e)):
                if cid:
                    into.update(members(group_id))
        return sum(len(g) for g in self.groups.values()) + len(ingress) + len(egress)


@dataclass
class DeltaBuilder:
    """Applies one batch of recompiled parts to a host record and remembers what changed.

    The protobuf form is built only on demand (``to_proto``): a host nobody
    streams from, or a record being created, never pays for encoding.
    """

    record: HostRecord
    upserted_groups: dict[GroupKey, int] = field(default_factory=dict)  # key -> cookie
    removed_cookies: list[int] = field(default_factory=list)
    upserted_ports: list[str] = field(default_factory=list)
    removed_ports: list[str] = field(default_factory=list)
    upserted_networks: list[str] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    removed_keys: set[GroupKey] = field(default_factory=set)
    peers_changed: bool = False
    l3_changed: bool = False
    upserted_instances: list[str] = field(default_factory=list)
    removed_instances: list[str] = field(default_factory=list)
    upserted_sets: list[agent_pb2.AddressSet] = field(default_factory=list)
    removed_sets: list[str] = field(default_factory=list)
    set_changes: list[agent_pb2.AddressSetChange] = field(default_factory=list)

    @property
    def changed_groups(self) -> set[GroupKey]:
        return set(self.upserted_groups) | self.removed_keys

    def set_group(self, key: GroupKey, cookie: int | None, flows: tuple[Flow, ...]) -> None:
        rec = self.record
        old = rec.groups.get(key)
        if not flows:
            if old is not None:
                self.removed_cookies.append(rec.cookies.pop(key))
                del rec.groups[key]
                self.removed_keys.add(key)
            return
        if old == flows:
            return
        assert cookie is not None, key
        rec.groups[key] = flows
        rec.cookies[key] = cookie
        self.upserted_groups[key] = cookie

    def set_port(self, port_id: str, spec: LocalPortSpec | None) -> None:
        _put(self.record.ports, port_id, spec, self.upserted_ports, self.removed_ports)

    def set_network(self, network_id: str, spec: LocalNetworkSpec | None) -> None:
        _put(self.record.networks, network_id, spec, self.upserted_networks, self.removed_networks)

    def set_instance(self, instance_id: str, spec: hypervisor_pb2.InstanceSpec | None) -> None:
        _put(self.record.instances, instance_id, spec, self.upserted_instances, self.removed_instances)

    def set_address_sets(
        self,
        refs: dict[str, SetRef],
        whole: Callable[[str, SetRef], agent_pb2.AddressSet],
        changes: dict[str, agent_pb2.AddressSetChange],
    ) -> None:
        """The host now holds the sets ``refs``. A set it did not hold, or held with other conj ids, goes whole
        (``whole``); one it keeps gets this pass's membership change, if any (``changes``, shared by every host)."""
        held = self.record.address_sets
        for group_id in [g for g in held if g not in refs]:
            del held[group_id]
            self.removed_sets.append(group_id)
        for group_id, ref in refs.items():
            if held.get(group_id) != ref:
                held[group_id] = ref
                self.upserted_sets.append(whole(group_id, ref))
            elif group_id in changes:
                self.set_changes.append(changes[group_id])

    def set_peers(self, peers: tuple[str, ...]) -> None:
        if peers != self.record.peers:
            self.record.peers = peers
            self.peers_changed = True

    def set_l3(self, spec: HostL3Spec) -> None:
        if spec != self.record.l3:
            self.record.l3 = spec
            self.l3_changed = True

    def empty(self) -> bool:
        return not (
            self.l3_changed
            or self.peers_changed
            or self.upserted_groups
            or self.removed_cookies
            or self.upserted_ports
            or self.removed_ports
            or self.upserted_networks
            or self.removed_networks
            or self.upserted_instances
            or self.removed_instances
            or self.upserted_sets
            or self.removed_sets
            or self.set_changes
        )

    def to_proto(self) -> agent_pb2.HostDelta:
        rec = self.record
        return agent_pb2.HostDelta(
            upsert_groups=[group_to_proto(cookie, rec.groups[key]) for key, cookie in self.upserted_groups.items()],
            removed_groups=self.removed_cookies,
            upsert_ports=[port_to_proto(rec.ports[pid]) for pid in self.upserted_ports],
            removed_ports=self.removed_ports,
            upsert_networks=[network_to_proto(rec.networks[nid]) for nid in self.upserted_networks],
            removed_networks=self.removed_networks,
            peers=agent_pb2.TunnelPeers(ips=rec.peers) if self.peers_changed else None,
            l3=l3_to_proto(rec.l3) if self.l3_changed else None,
            upsert_instances=[rec.instances[i] for i in self.upserted_instances],
            removed_instances=self.removed_instances,
            removed_address_sets=self.removed_sets,
            upsert_address_sets=self.upserted_sets,
            address_set_changes=self.set_changes,
        )


def merge_deltas(deltas: list[agent_pb2.HostDelta]) -> agent_pb2.HostDelta:
    """The one delta equivalent to applying ``deltas`` in order (each part: last word wins)."""
    groups: dict[int, agent_pb2.FlowGroup | None] = {}
    ports: dict[str, agent_pb2.LocalPort | None] = {}
    networks: dict[str, agent_pb2.LocalNetwork | None] = {}
    peers: agent_pb2.TunnelPeers | None = None
    l3: agent_pb2.HostL3 | None = None
    instances: dict[str, hypervisor_pb2.InstanceSpec | None] = {}
    sets = _SetMerge()
    for d in deltas:
        sets.add(d)
        instances.update(dict.fromkeys(d.removed_instances))
        instances.update((i.instance_id, i) for i in d.upsert_instances)
        groups.update(dict.fromkeys(d.removed_groups))
        groups.update((g.cookie, g) for g in d.upsert_groups)
        ports.update(dict.fromkeys(d.removed_ports))
        ports.update((p.port_id, p) for p in d.upsert_ports)
        networks.update(dict.fromkeys(d.removed_networks))
        networks.update((n.network_id, n) for n in d.upsert_networks)
        if d.HasField("peers"):
            peers = d.peers
        if d.HasField("l3"):
            l3 = d.l3
    return agent_pb2.HostDelta(
        upsert_groups=[g for g in groups.values() if g is not None],
        removed_groups=[c for c, g in groups.items() if g is None],
        upsert_ports=[p for p in ports.values() if p is not None],
        removed_ports=[i for i, p in ports.items() if p is None],
        upsert_networks=[n for n in networks.values() if n is not None],
        removed_networks=[i for i, n in networks.items() if n is None],
        peers=peers,
        l3=l3,
        upsert_instances=[i for i in instances.values() if i is not None],
        removed_instances=[k for k, i in instances.items() if i is None],
        removed_address_sets=sets.removed(),
        upsert_address_sets=sets.whole(),
        address_set_changes=sets.changes(),
    )


@dataclass
class _SetMerge:
    """The address-set part of merged deltas: per set, removed, whole (with changes applied), or a net change."""

    removed_ids: set[str] = field(default_factory=set)
    whole_sets: dict[str, tuple[int, int, set[str]]] = field(default_factory=dict)
    net: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # group -> (added, removed)

    def add(self, d: agent_pb2.HostDelta) -> None:
        for group_id in d.removed_address_sets:
            self.whole_sets.pop(group_id, None)
            self.net.pop(group_id, None)
            self.removed_ids.add(group_id)
        for s in d.upsert_address_sets:
            self.removed_ids.discard(s.group_id)
            self.net.pop(s.group_id, None)
            self.whole_sets[s.group_id] = (s.ingress_conj_id, s.egress_conj_id, set(s.addresses))
        for c in d.address_set_changes:
            held = self.whole_sets.get(c.group_id)
            if held is not None:
                held[2].difference_update(c.removed)
                held[2].update(c.added)
                continue
            # Two changes in a row: removals then additions, each time.
            added, removed = self.net.get(c.group_id, (set(), set()))
            added = (added - set(c.removed)) | set(c.added)
            removed = (removed | set(c.removed)) - added
            self.net[c.group_id] = (added, removed)

    def removed(self) -> list[str]:
        return sorted(self.removed_ids)

    def whole(self) -> list[agent_pb2.AddressSet]:
        return [address_set_to_proto(g, (i, e), a) for g, (i, e, a) in self.whole_sets.items()]

    def changes(self) -> list[agent_pb2.AddressSetChange]:
        return [
            agent_pb2.AddressSetChange(group_id=g, added=sorted(a), removed=sorted(r))
            for g, (a, r) in self.net.items()
            if a or r
        ]


def _put(table: dict[str, Spec], key: str, spec: Spec | None, upserted: list[str], removed: list[str]) -> None:
    """Set ``table[key]`` to ``spec`` (None removes it), noting ``key`` in upserted or removed if anything changed."""
    old = table.get(key)
    if spec is None:
        if old is not None:
            del table[key]
            removed.append(key)
    elif old != spec:
        table[key] = spec
        upserted.append(key)


# ---------------------------------------------------------------- protobuf


# Groups identical on many hosts (a port's entry on every other host of its network) come from the
# compiler as one shared tuple: encode it once. The cache holds the tuple, so its id stays unique.
_GROUP_PROTOS: dict[int, tuple[tuple[Flow, ...], int, agent_pb2.FlowGroup]] = {}
_GROUP_PROTOS_MAX = 1 << 16


def group_to_proto(cookie: int, flows: tuple[Flow, ...]) -> agent_pb2.FlowGroup:
    """The FlowGroup message of ``flows`` (callers copy it into their own messages, as protobuf does)."""
    hit = _GROUP_PROTOS.get(id(flows))
    if hit is not None and hit[0] is flows and hit[1] == cookie:
        return hit[2]
    group = encode.group_to_proto(cookie, (encode.to_wire(f) for f in flows))
    if len(_GROUP_PROTOS) >= _GROUP_PROTOS_MAX:
        _GROUP_PROTOS.clear()
    _GROUP_PROTOS[id(flows)] = (flows, cookie, group)
    return group


def port_to_proto(s: LocalPortSpec) -> agent_pb2.LocalPort:
    return agent_pb2.LocalPort(
        port_id=s.port_id,
        tag=s.tag,
        network_id=s.network_id,
        network_tag=s.network_tag,
        mac_address=s.mac_address,
        ip_addresses=list(s.ip_addresses),
        ofport=s.ofport,
        mtu=s.mtu,
        admin_state_up=s.admin_state_up,
        device_id=s.device_id,
        device_owner=s.device_owner,
        hostname=s.hostname,
        instance_id=s.instance_id,
        project_id=s.project_id,
    )


def network_to_proto(s: LocalNetworkSpec) -> agent_pb2.LocalNetwork:
    return agent_pb2.LocalNetwork(
        network_id=s.network_id,
        tag=s.tag,
        segmentation_id=s.segmentation_id,
        mtu=s.mtu,
        localport_id=s.localport_id,
        localport_tag=s.localport_tag,
        localport_mac=s.localport_mac,
        localport_ips=list(s.localport_ips),
        subnets=[
            agent_pb2.DhcpSubnet(
                subnet_id=sub.subnet_id,
                cidr=sub.cidr,
                gateway_ip=sub.gateway_ip,
                dns_nameservers=list(sub.dns_nameservers),
                host_routes=[resources_pb2.HostRoute(destination=d, nexthop=n) for d, n in sub.host_routes],
                enable_dhcp=sub.enable_dhcp,
            )
            for sub in s.subnets
        ],
        dns_domain=s.dns_domain,
    )


def address_set_to_proto(group_id: str, ref: SetRef, addresses: Collection[str]) -> agent_pb2.AddressSet:
    return address_sets.to_proto(group_id, address_sets.HeldSet(ref[0], ref[1], set(addresses)))


def snapshot_to_proto(rec: HostRecord, tunnel_ip: str, metadata_url: str, members: Members) -> agent_pb2.HostState:
    return agent_pb2.HostState(
        address_sets=[address_set_to_proto(g, ref, members(g)) for g, ref in rec.address_sets.items()],
        groups=[group_to_proto(rec.cookies[k], flows) for k, flows in rec.groups.items()],
        ports=[port_to_proto(s) for s in rec.ports.values()],
        networks=[network_to_proto(s) for s in rec.networks.values()],
        tunnel_ip=tunnel_ip,
        metadata_url=metadata_url,
        peers=agent_pb2.TunnelPeers(ips=rec.peers),
        instances=list(rec.instances.values()),
        l3=l3_to_proto(rec.l3),
    )


def l3_to_proto(s: HostL3Spec) -> agent_pb2.HostL3:
    return agent_pb2.HostL3(
        externals=[
            agent_pb2.ExternalNetwork(
                network_id=e.network_id,
                tag=e.tag,
                physical_network=e.physical_network,
                vlan=e.vlan,
                patch_ofport=e.patch_ofport,
                next_hops=list(e.next_hops),
            )
            for e in s.externals
        ],
        floating_ips=[
            agent_pb2.LocalFloatingIp(
                id=f.id,
                address=f.address,
                mac_address=f.mac_address,
                fixed_ip=f.fixed_ip,
                network_tag=f.network_tag,
                patch_ofport=f.patch_ofport,
                vlan=f.vlan,
                dnat_zone=f.dnat_zone,
                snat_zone=f.snat_zone,
            )
            for f in s.floating_ips
        ],
        gateway_routers=[
            agent_pb2.GatewayRouter(
                router_id=g.router_id,
                tag=g.tag,
                external_ip=g.external_ip,
                mac_address=g.mac_address,
                network_tag=g.network_tag,
                patch_ofport=g.patch_ofport,
                vlan=g.vlan,
                before=list(g.before),
                external_network_id=g.external_network_id,
                gateway_hosts=g.gateway_hosts,
            )
            for g in s.gateway_routers
        ],
        gateway_tunnels=[
            agent_pb2.GatewayTunnel(host=t.host, remote_ip=t.remote_ip, ofport=t.ofport) for t in s.gateway_tunnels
        ],
    )
