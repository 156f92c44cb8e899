"""L2: the logical flows for networks and ports on one host, over VXLAN or a provider network.

Pure functions of (topology, object, host) that return the flows the object
owns on that host. Flows name logical ports by tag (reg6/reg7) and networks by
tag (metadata); only the agent knows OpenFlow port numbers of VIFs (see
``physical.py``). The tunnel port has a fixed number on every host.

A flat or VLAN (provider) network is switched the same way, except that what
leaves the host goes out the provider bridge (``provider_egress``, compiled by
``controller.compiler.provider``) instead of the tunnel: remote ports by MAC,
and broadcast/unknown traffic from local ports. What came in from the physical
network is flooded to the local ports only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from controller.compiler.feature import ALL_GROUPS, HOST_KIND, Feature, GroupKey, HostGroups, touch
from controller.compiler.topology import Topology, is_vif_port
from controller.model import AddressPair, Agent, Instance, Network, Port, Resource, Subnet
from dataplane.common.addresses import is_ipv4
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.encode import joined_actions
from dataplane.contract.fields import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    IP_PROTO_UDP,
    OFPP_IN_PORT,
)
from dataplane.contract.flow import Action, Flow, Match, Move, Output, Resubmit, SetField

MULTICAST = ("01:00:00:00:00:00", "01:00:00:00:00:00")

PRIO_DEFAULT = 0
PRIO_FLOOD = 5
PRIO_FLOOD_FROM_PHYSICAL = 10
PRIO_FLOOD_FROM_LOCALPORT = 15
PRIO_ENTRY = 100
PRIO_ARP_PROBE = 110
PRIO_DHCP_TO_LOCALPORT = 110
PRIO_BLOCK = 200


@lru_cache(maxsize=1)
def host_flows() -> tuple[Flow, ...]:
    """Host-wide guards of L2, owned by no object."""
    c = make_cookie(CookieKind.PIPELINE, L2Feature.number)
    return (
        # No VM may answer DHCP: only the localport's dnsmasq does, and it
        # enters the pipeline after port security.
        Flow(
            p.PORT_SECURITY,
            PRIO_BLOCK,
            Match.of(eth_type=ETH_TYPE_IPV4, ip_proto=IP_PROTO_UDP, udp_src=67, udp_dst=68),
            cookie=c,
        ),
        # An ARP probe (sender 0.0.0.0) is duplicate address detection: answering
        # it from the responder would tell a VM its own address is taken.
        Flow(
            p.ARP_RESPONDER,
            PRIO_ARP_PROBE,
            Match.of(eth_type=ETH_TYPE_ARP, arp_spa="0.0.0.0"),
            goto=p.L3_LOOKUP,
            cookie=c,
        ),
    )


@lru_cache(maxsize=1 << 17)
def _to_local_port(tag: int) -> tuple[Action, ...]:
    return (SetField(p.REG_DST_PORT, tag), Resubmit(p.INGRESS_CT))


@lru_cache(maxsize=1 << 17)
def _to_tunnel(vni: int, remote_ip: str) -> tuple[Action, ...]:
    return (SetField("tunnel_id", vni), SetField.of("tun_ipv4_dst", remote_ip), Output(TUNNEL_OFPORT))


@lru_cache(maxsize=1 << 16)
def arp_reply_actions(mac: str, ip: str) -> tuple[Action, ...]:
    """Turn an ARP request for ``ip`` into the reply ``ip is-at mac``, back out its port."""
    return (
        Move("eth_src", "eth_dst", 48),
        SetField.of("eth_src", mac),
        SetField("arp_op", 2),
        Move("arp_sha", "arp_tha", 48),
        Move("arp_spa", "arp_tpa", 32),
        SetField.of("arp_sha", mac),
        SetField.of("arp_spa", ip),
        Output(OFPP_IN_PORT),
    )


def _arp_responder(net_tag: int, mac: str, ips: tuple[str, ...], cookie: int) -> list[Flow]:
    return [
        Flow(
            p.ARP_RESPONDER,
            PRIO_ENTRY,
            Match.of(metadata=net_tag, eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa=ip),
            arp_reply_actions(mac, ip),
            cookie=cookie,
        )
        for ip in ips
    ]


PROVIDER_TYPES = ("flat", "vlan")


def network_active(net: Network | None) -> bool:
    return net is not None and net.admin_state_up and net.network_type in ("vxlan", *PROVIDER_TYPES)


def is_provider(net: Network) -> bool:
    return net.network_type in PROVIDER_TYPES


def port_active(topo: Topology, port: Port) -> bool:
    return port.admin_state_up and network_active(topo.networks.get(port.network_id))


def localport_ips(topo: Topology, network_id: str) -> tuple[str, ...]:
    """The DHCP/metadata localport's IPs, on DHCP-enabled subnets only."""
    dhcp = topo.dhcp_ports.get(network_id)
    if dhcp is None:
        return ()
    subnets = topo.subnets_by_network.get(network_id, {})
    return tuple(f.ip_address for f in dhcp.fixed_ips if f.subnet_id in subnets and subnets[f.subnet_id].enable_dhcp)


def _localport(topo: Topology, network_id: str) -> tuple[int, str, tuple[str, ...]]:
    """The network's DHCP/metadata localport as (tag, MAC, IPs); tag 0 when it serves no subnet."""
    return topo.derived(("localport", network_id), lambda: _find_localport(topo, network_id))


def _find_localport(topo: Topology, network_id: str) -> tuple[int, str, tuple[str, ...]]:
    dhcp = topo.dhcp_ports.get(network_id)
    lp_ips = localport_ips(topo, network_id)
    return (dhcp.tag, dhcp.mac_address, lp_ips) if dhcp is not None and lp_ips else (0, "", ())


def network_flows(topo: Topology, network_id: str, host: str) -> tuple[Flow, ...]:
    """What network ``network_id`` owns on ``host`` that is the same on every host: tunnel classification
    and its localport's entry and ARP answers."""
    net = topo.networks.get(network_id)
    if not network_active(net) or not topo.host_has_network(host, network_id):
        return ()
    assert net is not None
    lp_tag, lp_mac, lp_ips = _localport(topo, network_id)
    vni = 0 if is_provider(net) else net.segmentation_id  # a provider network is not classified by VNI
    return _network_fixed_flows(net.tag, vni, lp_tag, lp_mac, lp_ips)


def flood_flows(topo: Topology, network_id: str, host: str) -> tuple[Flow, ...]:
    """How network ``network_id`` floods on ``host``: to its local ports and a tunnel to each other host.

    A group of its own: a host joining the network changes this on every host, the rest of the
    network's flows on none.
    """
    net = topo.networks.get(network_id)
    if not network_active(net) or not topo.host_has_network(host, network_id):
        return ()
    assert net is not None
    lp_tag = _localport(topo, network_id)[0]
    local_vifs = tuple(
        sorted(q.tag for q in topo.vif_ports_by_host_network.get((host, network_id), {}).values() if q.admin_state_up)
    )
    if is_provider(net):
        return _provider_flood_flows(net.tag, local_vifs, lp_tag)
    # Every host of the network floods to the same tunnels but its own: listed once per topology, not per host.
    index, tunnels = topo.derived(("flood-tunnels", network_id), lambda: _tunnels_of(topo, network_id))
    mine = index.get(host)
    remote = tunnels if mine is None else tunnels[:mine] + tunnels[mine + 1 :]
    return _flood_flows(net.tag, local_vifs, lp_tag, remote)


def _tunnels_of(topo: Topology, network_id: str) -> tuple[dict[str, int], tuple[tuple[Action, ...], ...]]:
    """The tunnel output to each registered host of the network (by host name), and each host's place in them."""
    net = topo.networks[network_id]
    index: dict[str, int] = {}
    tunnels: list[tuple[Action, ...]] = []
    for h in sorted(topo.hosts_of_network(network_id)):
        ip = topo.tunnel_ip(h)
        if ip is not None:
            index[h] = len(tunnels)
            tunnels.append(_to_tunnel(net.segmentation_id, ip))
    return index, tuple(tunnels)


# What a network owns that is the same on every host: shared, not copied per host.
@lru_cache(maxsize=1 << 14)
def _network_fixed_flows(net_tag: int, vni: int, lp_tag: int, lp_mac: str, lp_ips: tuple[str, ...]) -> tuple[Flow, ...]:
    cookie = make_cookie(CookieKind.NETWORK, net_tag)
    flows = []
    if vni:  # a provider network (vni 0) is classified by the provider feature, from its bridge
        flows.append(
            Flow(
                p.CLASSIFY,
                PRIO_ENTRY,
                Match.of(in_port=TUNNEL_OFPORT, tunnel_id=vni),
                (SetField(p.REG_NETWORK, net_tag),),
                goto=p.L2_LOOKUP,
                cookie=cookie,
            )
        )
    if lp_tag:
        flows.append(
            Flow(
                p.L2_LOOKUP,
                PRIO_ENTRY,
                Match.of(metadata=net_tag, eth_dst=lp_mac),
                _to_local_port(lp_tag),
                cookie=cookie,
            )
        )
        # DHCP requests stay on their host: the local dnsmasq answers them.
        flows.append(
            Flow(
                p.L2_LOOKUP,
                PRIO_DHCP_TO_LOCALPORT,
                Match.of(metadata=net_tag, eth_type=ETH_TYPE_IPV4, ip_proto=IP_PROTO_UDP, udp_dst=67),
                _to_local_port(lp_tag),
                cookie=cookie,
            )
        )
        flows.extend(_arp_responder(net_tag, lp_mac, lp_ips, cookie))
    return tuple(flows)


def _flood_flows(
    net_tag: int, local_vifs: tuple[int, ...], lp_tag: int, remote: tuple[tuple[Action, ...], ...]
) -> tuple[Flow, ...]:
    to_local = _to_local_ports(local_vifs)
    # Joined from cached pieces, so that encoding it joins their encodings too.
    to_all = joined_actions((to_local, _to_local_port(lp_tag), *remote) if lp_tag else (to_local, *remote))
    # Broadcast, multicast and unknown unicast. A packet that came in on the
    # tunnel is never sent back into it: OpenFlow drops output to the in_port,
    # and all tunnels share the one flow-based port.
    flood = Flow(p.L2_LOOKUP, PRIO_FLOOD, _network_match(net_tag), to_all, cookie=_flood_cookie(net_tag))
    if lp_tag:
        return (_localport_flood(net_tag, lp_tag, local_vifs), flood)
    return (flood,)


# The pieces of a flood flow that stay put while hosts join and leave the network: cached.
@lru_cache(maxsize=1 << 16)
def _to_local_ports(tags: tuple[int, ...]) -> tuple[Action, ...]:
    return tuple(a for tag in tags for a in _to_local_port(tag))


@lru_cache(maxsize=1 << 14)
def _network_match(net_tag: int) -> Match:
    return Match.of(metadata=net_tag)


@lru_cache(maxsize=1 << 14)
def _flood_cookie(net_tag: int) -> int:
    return make_cookie(CookieKind.NETWORK_FLOOD, net_tag)


@lru_cache(maxsize=1 << 16)
def _localport_flood(net_tag: int, lp_tag: int, local_vifs: tuple[int, ...]) -> Flow:
    # The localport's broadcasts (e.g. DHCP offers) never leave the host.
    return Flow(
        p.L2_LOOKUP,
        PRIO_FLOOD_FROM_LOCALPORT,
        Match.of(metadata=net_tag, reg6=lp_tag),
        _to_local_ports(local_vifs),
        cookie=_flood_cookie(net_tag),
    )


_TO_PROVIDER: tuple[Action, ...] = (Resubmit(p.PROVIDER_EGRESS),)


def _provider_flood_flows(net_tag: int, local_vifs: tuple[int, ...], lp_tag: int) -> tuple[Flow, ...]:
    cookie = _flood_cookie(net_tag)
    to_local = _to_local_ports(local_vifs)
    to_all = to_local + (_to_local_port(lp_tag) if lp_tag else ()) + _TO_PROVIDER
    flows = [
        # From the physical network (reg6=0): this host's VMs only, never back out, never the localport
        # (each host's localport serves its own VMs; the physical network has one of them per host).
        Flow(p.L2_LOOKUP, PRIO_FLOOD_FROM_PHYSICAL, Match.of(metadata=net_tag, reg6=0), to_local, cookie=cookie),
        Flow(p.L2_LOOKUP, PRIO_FLOOD, _network_match(net_tag), to_all, cookie=cookie),
    ]
    if lp_tag:
        flows.append(_localport_flood(net_tag, lp_tag, local_vifs))
    return tuple(flows)


def port_flows(topo: Topology, port_id: str, host: str) -> tuple[Flow, ...]:
    """What VIF port ``port_id`` owns on ``host``: local port security and L2 entry, or a remote entry."""
    port = topo.ports.get(port_id)
    if port is None or not is_vif_port(port) or not port_active(topo, port):
        return ()
    if not topo.host_has_network(host, port.network_id):
        return ()
    net = topo.networks[port.network_id]
    cookie = make_cookie(CookieKind.PORT, port.tag)
    if port.binding_host_id == host:
        return _local_port_flows(
            port.tag,
            net.tag,
            port.mac_address,
            port.ips,
            port.port_security_enabled,
            cookie,
            port.allowed_address_pairs,
        )
    # The same on every other host of the network: worked out once while the topology stands.
    return topo.derived(("remote-port", port_id), lambda: _remote_entry(topo, port, net, cookie))


def _remote_entry(topo: Topology, port: Port, net: Network, cookie: int) -> tuple[Flow, ...]:
    if is_provider(net):
        # Another host's port on a provider network is reached through the physical network.
        return _remote_port_flows(net.tag, 0, port.mac_address, port.ips, "", cookie)
    remote_ip = topo.tunnel_ip(port.binding_host_id)
    if remote_ip is None:
        return ()  # the host has not registered: its ports are unreachable until it does
    return _remote_port_flows(net.tag, net.segmentation_id, port.mac_address, port.ips, remote_ip, cookie)


# A port's own flows depend on these values only; cached, as its group is recompiled at every
# change that touches its network on its host.
@lru_cache(maxsize=1 << 16)
def _local_port_flows(
    tag: int,
    net_tag: int,
    mac: str,
    ips: tuple[str, ...],
    port_security: bool,
    cookie: int,
    pairs: tuple[AddressPair, ...] = (),
) -> tuple[Flow, ...]:
    entry = Flow(p.L2_LOOKUP, PRIO_ENTRY, Match.of(metadata=net_tag, eth_dst=mac), _to_local_port(tag), cookie=cookie)
    flows = (
        *_port_security(tag, mac, ips, port_security, cookie, pairs),
        entry,
        *_arp_responder(net_tag, mac, ips, cookie),
    )
    return tuple(dict.fromkeys(flows))  # an allowed address pair may repeat a fixed IP's flow


# Every host but the port's own gets the same flows for it: share one tuple, so
# the controller's memory grows with ports, not ports x hosts.
@lru_cache(maxsize=1 << 17)
def _remote_port_flows(
    net_tag: int, vni: int, mac: str, ips: tuple[str, ...], remote_ip: str, cookie: int
) -> tuple[Flow, ...]:
    entry = Flow(
        p.L2_LOOKUP,
        PRIO_ENTRY,
        Match.of(metadata=net_tag, eth_dst=mac),
        _to_tunnel(vni, remote_ip) if remote_ip else _TO_PROVIDER,
        cookie=cookie,
    )
    return (entry, *_arp_responder(net_tag, mac, ips, cookie))


def _port_security(
    tag: int, mac: str, ips: tuple[str, ...], enabled: bool, cookie: int, pairs: tuple[AddressPair, ...] = ()
) -> list[Flow]:
    if not enabled:
        return [Flow(p.PORT_SECURITY, PRIO_ENTRY, Match.of(reg6=tag), goto=p.EGRESS_CT, cookie=cookie)]
    flows = []
    for ip in ips:
        if not is_ipv4(ip):  # IPv6 is not supported: its packets are dropped
            continue
        flows.append(
            Flow(
                p.PORT_SECURITY,
                PRIO_ENTRY,
                Match.of(reg6=tag, eth_src=mac, eth_type=ETH_TYPE_ARP, arp_sha=mac, arp_spa=ip),
                goto=p.EGRESS_CT,
                cookie=cookie,
            )
        )
        flows.append(
            Flow(
                p.PORT_SECURITY,
                PRIO_ENTRY,
                Match.of(reg6=tag, eth_src=mac, eth_type=ETH_TYPE_IPV4, ipv4_src=ip),
                goto=p.EGRESS_CT,
                cookie=cookie,
            )
        )
    # Allowed address pairs widen it: an address or prefix (0.0.0.0/0: any), from the port's MAC or the pair's own.
    for pair in pairs:
        pair_mac = pair.mac_address or mac
        prefix = _prefix(pair.ip_address)
        arp_fields: dict[str, int | str | tuple[str, str]] = {"eth_type": ETH_TYPE_ARP, "arp_sha": pair_mac}
        ip_fields: dict[str, int | str | tuple[str, str]] = {"eth_type": ETH_TYPE_IPV4}
        if prefix is not None:
            arp_fields["arp_spa"] = prefix
            ip_fields["ipv4_src"] = prefix
        for fields in (arp_fields, ip_fields):
            flows.append(
                Flow(
                    p.PORT_SECURITY,
                    PRIO_ENTRY,
                    Match.of(reg6=tag, eth_src=pair_mac, **fields),
                    goto=p.EGRESS_CT,
                    cookie=cookie,
                )
            )
    # A VM without an address yet may ask for one.
    flows.append(
        Flow(
            p.PORT_SECURITY,
            PRIO_ENTRY,
            Match.of(
                reg6=tag,
                eth_src=mac,
                eth_type=ETH_TYPE_IPV4,
                ipv4_src="0.0.0.0",
                ip_proto=IP_PROTO_UDP,
                udp_src=68,
                udp_dst=67,
            ),
            goto=p.EGRESS_CT,
            cookie=cookie,
        )
    )
    return flows


def _prefix(text: str) -> str | tuple[str, str] | None:
    """An allowed address pair's address as a match value: an address, (network, netmask), or None for any."""
    net = ipaddress.IPv4Network(text, strict=False)
    if net.prefixlen == 0:
        return None
    if net.prefixlen == 32:
        return str(net.network_address)
    return str(net.network_address), str(net.netmask)


class L2Feature(Feature):
    """Networks and ports: classification, port security, ARP responder, switching and flooding over VXLAN."""

    name = p.L2
    group_kinds = ("network", "flood", "port")
    number = 1
    # Peers follow network membership, which the distributor tracks itself (a host joining or leaving a
    # network, an agent changing): a port on a network its host is already on moves no peer.
    shapes_host_specs = False

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        kind, obj_id = key
        if kind == HOST_KIND:
            return host_flows()
        if kind == "network":
            return network_flows(topo, obj_id, host)
        if kind == "flood":
            return flood_flows(topo, obj_id, host)
        return port_flows(topo, obj_id, host)

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        kind, obj_id = key
        if kind == HOST_KIND:
            return make_cookie(CookieKind.PIPELINE, self.number)
        if kind in ("network", "flood"):
            net = topo.networks.get(obj_id)
            kind_of = CookieKind.NETWORK if kind == "network" else CookieKind.NETWORK_FLOOD
            return make_cookie(kind_of, net.tag) if net else None
        port = topo.ports.get(obj_id)
        return make_cookie(CookieKind.PORT, port.tag) if port else None

    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        yield (HOST_KIND, self.name)
        for net_id in sorted(topo.networks_of_host(host)):
            yield ("network", net_id)
            yield ("flood", net_id)
            for pid, port in topo.ports_by_network.get(net_id, {}).items():
                if is_vif_port(port):
                    yield ("port", pid)

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        for obj in (old, new):
            if isinstance(obj, Port):
                self._port_affects(topo, obj, out)
            elif isinstance(obj, Network):
                ports = [("port", pid) for pid in topo.ports_by_network.get(obj.id, {})]
                for h in topo.hosts_of_network(obj.id):
                    touch(out, h, ("network", obj.id), ("flood", obj.id), *ports)
            elif isinstance(obj, Subnet):
                # Its DHCP setting decides whether the localport serves: its entry, ARP answers and flooding.
                for h in topo.hosts_of_network(obj.network_id):
                    touch(out, h, ("network", obj.network_id), ("flood", obj.network_id))
            elif isinstance(obj, Instance):
                # Its ports' hostname and project (in their local specs) come from it.
                for port in topo.ports_by_device.get(obj.id, {}).values():
                    if is_vif_port(port):
                        touch(out, port.binding_host_id, ("port", port.id))
            elif isinstance(obj, Agent):
                # The host's whole state, and on its peers every flow that tunnels to it.
                touch(out, obj.id, ALL_GROUPS)
                for port in topo.vif_ports_by_host.get(obj.id, {}).values():
                    for h in topo.hosts_of_network(port.network_id):
                        touch(out, h, ("port", port.id), ("flood", port.network_id))
        return out

    @staticmethod
    def _port_affects(topo: Topology, port: Port, out: HostGroups) -> None:
        net_id = port.network_id
        if not is_vif_port(port):  # the network's DHCP/metadata localport, present on every host of the network
            for h in topo.hosts_of_network(net_id):
                touch(out, h, ("network", net_id), ("flood", net_id))
            return
        # Every host of the network has an entry for the port; only its own host's flooding lists it...
        hosts = topo.hosts_of_network(net_id)
        for h in hosts:
            touch(out, h, ("port", port.id))
        touch(out, port.binding_host_id, ("port", port.id), ("flood", net_id))
        # ...unless the port alone puts its host on the network: then every other host's flooding
        # gains or loses a tunnel to it.
        if topo.network_hosts.get(net_id, {}).get(port.binding_host_id) == 1:
            for h in hosts:
                touch(out, h, ("flood", net_id))

    def membership(self, topo: Topology, host: str, network_id: str) -> set[GroupKey]:
        # Joining a network brings its flooding, its localport and every remote port's entry.
        ports = (("port", pid) for pid in topo.ports_by_network.get(network_id, {}))
        return {("network", network_id), ("flood", network_id), *ports}
