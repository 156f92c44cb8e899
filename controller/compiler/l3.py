"""Distributed routing in br-int flows: routers, their interfaces, static routes, ARP and ICMP echo.

A packet is routed on the hypervisor it comes from, in one pass, and then
tunnelled straight to the host of its destination with the destination
network's VNI (or delivered locally, never touching the underlay). Nothing is
resolved by ARP inside the cloud: the controller knows every port's MAC.

Tables (``dataplane.contract.pipeline``):

* ``arp_responder`` (30): a router interface's IP is answered on every host
  with a port on that interface's network.
* ``l3_lookup`` (40), admission: an IPv4 packet to an interface's MAC on its
  network clears its conntrack state (the security groups' zones are done with
  it), sets ``reg4`` := the router's tag and goes on to dnat; any other frame
  to that MAC is dropped rather than flooded.
* ``routing`` (42): longest prefix match by priority over the connected
  subnets (the interfaces' and the external gateway's) and the static routes,
  then ``dec_ttl``, source MAC := the egress interface, ``metadata`` := its
  network, ``reg6`` := the egress router port, ``reg3`` := the next hop.
  ICMP echo requests to any of the router's own addresses are answered in
  place. Routes towards the external network also pick the SNAT gateway
  (``reg2``) and un-DNAT floating IP replies (see ``controller.compiler.nat``).
* ``neighbor`` (44): (network, next hop) -> the owning port's MAC, and on to
  it: here (ingress security groups, then delivery), through the tunnel to its
  host, or out the provider bridge. An address no port owns matches nothing
  and is dropped. On the external network the next hops the controller cannot
  know (the upstream router) are rendered by the agent after it resolved them.

Where flows exist: a router's group on every host with a VIF on one of its
networks (and on its gateway hosts); a port's neighbor group on every host
where a router attached to the port's network is present. What grows with
what, per host: the router group is O(interfaces + routes), with the ARP and
admission flows only for interfaces on networks the host has a VIF on; the
neighbor groups are one flow per address of every port on the router's
networks. The neighbor flows for a port are the same tuple on every host but
its own (shared, as L2 shares remote ports' flows), so the controller holds
one copy per port, not one per host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from controller.compiler import l2
from controller.compiler.feature import ALL_GROUPS, Feature, GroupKey, HostGroups, touch
from controller.compiler.topology import Topology, is_vif_port
from controller.model import (
    OWNER_FLOATINGIP,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    Agent,
    FloatingIP,
    Network,
    Port,
    Resource,
    Router,
    Subnet,
)
from dataplane.common.addresses import is_ipv4
from dataplane.common.constants import GATEWAY_TUNNEL_OFPORT_MIN, TUNNEL_OFPORT
from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ETH_TYPE_IPV4, IP_PROTO_ICMP, OFPP_IN_PORT, ipv4_to_int
from dataplane.contract.flow import (
    Action,
    BundleLoad,
    Ct,
    CtClear,
    DecTtl,
    Flow,
    Match,
    Move,
    Nat,
    Output,
    Resubmit,
    SetField,
)

PRIO_ADMIT = 100
PRIO_ADMIT_DROP = 50
PRIO_ARP = 100
PRIO_ECHO = 900
PRIO_OWN_ADDRESS = 800  # other traffic to the router's own external address: dropped
PRIO_NEIGHBOR = 100
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


def route_priority(prefixlen: int, connected: bool) -> int:
    """Longest prefix wins; at equal length a connected subnet beats a static route."""
    return 100 + 4 * prefixlen + (2 if connected else 0)


# ---------------------------------------------------------------- who is where


def router_active(router: Router | None) -> bool:
    return router is not None and router.admin_state_up


def interfaces(topo: Topology, router_id: str) -> list[Port]:
    """The router's interfaces on networks that are up (VXLAN: routing on provider networks is refused)."""
    out = []
    for port in topo.l3.router_interfaces(router_id):
        net = topo.networks.get(port.network_id)
        if l2.network_active(net) and net is not None and net.network_type == "vxlan" and port.fixed_ips:
            out.append(port)
    return out


def internal_networks(topo: Topology, router_id: str) -> set[str]:
    return {port.network_id for port in interfaces(topo, router_id)}


def gateway_network(topo: Topology, router: Router) -> Network | None:
    """The router's external network, when it has a usable gateway there."""
    if not router.gateway_network_id or router.id not in topo.l3.gateway_ports:
        return None
    net = topo.networks.get(router.gateway_network_id)
    if not l2.network_active(net) or net is None or not net.physical_network:
        return None
    return net


def gateway_port(topo: Topology, router: Router) -> Port | None:
    return topo.l3.gateway_ports.get(router.id) if gateway_network(topo, router) is not None else None


def gateway_hosts(topo: Topology, router: Router) -> tuple[str, ...]:
    """The router's gateway hosts in the order every host tries them.

    Registered gateway hosts (``--gateway PRIORITY``) that map the external
    network's physical network, highest priority first (then by name); the one
    that reported being active goes first unless the controller preempts, so a
    gateway coming back does not take the role back (no second outage).
    """
    net = gateway_network(topo, router)
    if net is None:
        return ()
    candidates = sorted(
        (a for a in topo.agents.values() if a.gateway_priority > 0 and net.physical_network in a.physical_networks),
        key=lambda a: (-a.gateway_priority, a.host),
    )
    order = [a.host for a in candidates]
    if router.active_gateway in order and not topo.gateway_preempt:
        order.remove(router.active_gateway)
        order.insert(0, router.active_gateway)
    return tuple(order)


def gateway_tunnel_ofport(topo: Topology, host: str) -> int | None:
    """The OpenFlow port every other host reaches ``host``'s gateway tunnel on."""
    agent = topo.agents.get(host)
    return GATEWAY_TUNNEL_OFPORT_MIN + agent.tag if agent is not None and agent.tag else None


def gateways_before(topo: Topology, router: Router, host: str) -> tuple[int, ...] | None:
    """The gateway tunnel ports ``host`` tries for the router, in order; None when it has no gateway host.

    For a gateway host only those ahead of it: when none of them is live, it is the gateway itself.
    """
    order = gateway_hosts(topo, router)
    if not order:
        return None
    ahead = order[: order.index(host)] if host in order else order
    ports = [gateway_tunnel_ofport(topo, h) for h in ahead]
    if host not in order and not any(ports):
        return None
    return tuple(p for p in ports if p is not None)


def router_present(topo: Topology, router_id: str, host: str) -> bool:
    """Whether the router's flows belong on ``host``: a VIF on one of its networks, or one of its gateways."""
    router = topo.l3.routers.get(router_id)
    if not router_active(router):
        return False
    assert router is not None
    if any(topo.host_has_network(host, n) for n in internal_networks(topo, router_id)):
        return True
    return host in gateway_hosts(topo, router)


def router_hosts(topo: Topology, router_id: str) -> set[str]:
    router = topo.l3.routers.get(router_id)
    if not router_active(router):
        return set()
    assert router is not None
    hosts: set[str] = set(gateway_hosts(topo, router))
    for net_id in internal_networks(topo, router_id):
        hosts |= topo.hosts_of_network(net_id)
    return hosts


def routers_on_host(topo: Topology, host: str) -> set[str]:
    """Every router present on ``host``."""
    if not topo.l3.routers:
        return set()
    found: set[str] = set()
    for net_id in topo.networks_of_host(host):
        found |= set(topo.l3.routers_by_network.get(net_id, ()))
    agent = topo.agents.get(host)
    if agent is not None and agent.gateway_priority > 0:
        for routers in topo.l3.gateway_routers.values():
            found |= routers
    return {r for r in found if router_present(topo, r, host)}


def routed_networks(topo: Topology, router_id: str) -> set[str]:
    """The networks the router reaches: its interfaces' and its external network."""
    nets = internal_networks(topo, router_id)
    router = topo.l3.routers.get(router_id)
    if router is not None and gateway_network(topo, router) is not None:
        nets.add(router.gateway_network_id)
    return nets


def neighbor_present(topo: Topology, network_id: str, host: str) -> bool:
    return any(router_present(topo, r, host) for r in topo.l3.routers_on(network_id))


def neighbor_hosts(topo: Topology, network_id: str) -> set[str]:
    hosts: set[str] = set()
    for r in topo.l3.routers_on(network_id):
        hosts |= router_hosts(topo, r)
    return hosts


def l3_peers(topo: Topology, host: str) -> set[str]:
    """Tunnel IPs routed traffic from ``host`` can go to: the hosts of every network its routers reach."""
    peers: set[str] = set()
    for r in routers_on_host(topo, host):
        for net_id in routed_networks(topo, r):
            for other in topo.hosts_of_network(net_id):
                if other != host and (ip := topo.tunnel_ip(other)) is not None:
                    peers.add(ip)
        router = topo.l3.routers[r]
        for other in gateway_hosts(topo, router):
            if other != host and (ip := topo.tunnel_ip(other)) is not None:
                peers.add(ip)
    return peers


def _subnet_of(topo: Topology, port: Port) -> tuple[str, ipaddress.IPv4Network] | None:
    """The (address, subnet) of a router port's first IPv4 fixed IP."""
    for fixed in port.fixed_ips:
        subnet = topo.subnets.get(fixed.subnet_id)
        if subnet is not None and is_ipv4(fixed.ip_address):
            return fixed.ip_address, ipaddress.IPv4Network(subnet.cidr)
    return None


def snat_address(topo: Topology, router: Router) -> str | None:
    """The router's external IP: its gateway port's first IPv4 address."""
    port = gateway_port(topo, router)
    found = _subnet_of(topo, port) if port is not None else None
    return found[0] if found else None


def external_next_hops(topo: Topology, router: Router) -> tuple[str, ...]:
    """Next hops on the external network the agent must resolve: its subnets' gateways, static route hops."""
    net = gateway_network(topo, router)
    if net is None:
        return ()
    hops: set[str] = set()
    subnets = list(topo.subnets_by_network.get(net.id, {}).values())
    for subnet in subnets:
        if subnet.gateway_ip:
            hops.add(subnet.gateway_ip)
    for route in router.routes:
        hop = ipaddress.IPv4Address(route.nexthop)
        if any(hop in ipaddress.IPv4Network(s.cidr) for s in subnets):
            hops.add(route.nexthop)
    return tuple(sorted(hops, key=lambda ip: ipaddress.IPv4Address(ip)))


# ---------------------------------------------------------------- the router's flows


def _echo_reply_actions() -> tuple[Action, ...]:
    """Turn an ICMP echo request to the router into its reply, back out the port it came in on.

    Addresses are swapped through the L3 scratch registers (reg3 for the IPs,
    reg2 + reg3 for the MACs): the reply leaves from the MAC the request was
    sent to, whichever interface that was.
    """
    return (
        Move("ipv4_dst", p.REG_NEXT_HOP, 32),
        Move("ipv4_src", "ipv4_dst", 32),
        Move(p.REG_NEXT_HOP, "ipv4_src", 32),
        Move("eth_dst", p.REG_GATEWAY_CHOICE, 32),
        Move("eth_dst", p.REG_NEXT_HOP, 16, 32, 0),
        Move("eth_src", "eth_dst", 48),
        Move(p.REG_GATEWAY_CHOICE, "eth_src", 32),
        Move(p.REG_NEXT_HOP, "eth_src", 16, 0, 32),
        SetField("icmpv4_type", ICMP_ECHO_REPLY),
        Output(OFPP_IN_PORT),
    )


def _echo(router_tag: int, ip: str, cookie: int) -> Flow:
    return Flow(
        p.ROUTING,
        PRIO_ECHO,
        Match.of(
            reg4=router_tag, eth_type=ETH_TYPE_IPV4, ipv4_dst=ip, ip_proto=IP_PROTO_ICMP, icmpv4_type=ICMP_ECHO_REQUEST
        ),
        _echo_reply_actions(),
        cookie=cookie,
    )


def _admission(net_tag: int, mac: str, router_tag: int, cookie: int, then: tuple[Action, ...] = ()) -> list[Flow]:
    """IPv4 to a router MAC enters the router (conntrack state cleared); other frames to it are dropped."""
    actions: tuple[Action, ...] = (CtClear(), SetField(p.REG_ROUTER, router_tag), *then)
    return [
        Flow(
            p.L3_LOOKUP,
            PRIO_ADMIT,
            Match.of(metadata=net_tag, eth_dst=mac, eth_type=ETH_TYPE_IPV4),
            actions,
            goto=None if then else p.DNAT,
            cookie=cookie,
        ),
        Flow(p.L3_LOOKUP, PRIO_ADMIT_DROP, Match.of(metadata=net_tag, eth_dst=mac), cookie=cookie),
    ]


def admission_flows(net_tag: int, mac: str, router_tag: int, cookie: int, unsnat_zone: int = 0) -> list[Flow]:
    """Admission; from the external network (``unsnat_zone``) un-SNAT first, recirculating into dnat."""
    if unsnat_zone:
        return _admission(net_tag, mac, router_tag, cookie, (Ct(zone=unsnat_zone, table=p.DNAT, nat=Nat()),))
    return _admission(net_tag, mac, router_tag, cookie)


def _route(
    router_tag: int,
    dest: ipaddress.IPv4Network,
    connected: bool,
    egress: tuple[Action, ...],
    next_hop: str | None,
    cookie: int,
    then: tuple[Action, ...] = (),
) -> Flow:
    hop: tuple[Action, ...] = (
        (Move("ipv4_dst", p.REG_NEXT_HOP, 32),)
        if next_hop is None
        else (SetField(p.REG_NEXT_HOP, ipv4_to_int(next_hop)),)
    )
    ipv4_dst: tuple[str, str] = (str(dest.network_address), str(dest.netmask))
    match = (
        Match.of(reg4=router_tag, eth_type=ETH_TYPE_IPV4)
        if dest.prefixlen == 0
        else Match.of(reg4=router_tag, eth_type=ETH_TYPE_IPV4, ipv4_dst=ipv4_dst)
    )
    return Flow(
        p.ROUTING,
        route_priority(dest.prefixlen, connected),
        match,
        (DecTtl(), *egress, *hop, *then),
        goto=None if then else p.SNAT,
        cookie=cookie,
    )


def _egress(mac: str, net_tag: int, port_tag: int) -> tuple[Action, ...]:
    return (SetField.of("eth_src", mac), SetField(p.REG_NETWORK, net_tag), SetField(p.REG_SRC_PORT, port_tag))


def router_flows(topo: Topology, router_id: str, host: str) -> tuple[Flow, ...]:
    """Everything router ``router_id`` owns on ``host`` (nothing where it is not present)."""
    if not router_present(topo, router_id, host):
        return ()
    router = topo.l3.routers[router_id]
    cookie = make_cookie(CookieKind.ROUTER, router.tag)
    flows: list[Flow] = []
    own: list[str] = []
    connected: dict[str, ipaddress.IPv4Network] = {}
    # (subnet, egress actions) per interface, to find a static route's next hop in
    egress_of: list[tuple[ipaddress.IPv4Network, tuple[Action, ...], tuple[Action, ...]]] = []
    for port in interfaces(topo, router_id):
        found = _subnet_of(topo, port)
        if found is None:
            continue
        ip, subnet = found
        net = topo.networks[port.network_id]
        own.append(ip)
        if topo.host_has_network(host, net.id):
            flows.extend(l2._arp_responder(net.tag, port.mac_address, (ip,), cookie))
            flows.extend(admission_flows(net.tag, port.mac_address, router.tag, cookie))
        egress = _egress(port.mac_address, net.tag, port.tag)
        if str(subnet) not in connected:
            connected[str(subnet)] = subnet
            flows.append(_route(router.tag, subnet, True, egress, None, cookie))
        egress_of.append((subnet, egress, ()))
    ext = external_routing(topo, router, host)
    if ext is not None:
        gw_ip, gw_subnet, egress, then, default_hop = ext
        own.append(gw_ip)
        if str(gw_subnet) not in connected:
            connected[str(gw_subnet)] = gw_subnet
            flows.append(_route(router.tag, gw_subnet, True, egress, None, cookie, then))
        egress_of.append((gw_subnet, egress, then))
        # From outside, nothing but ICMP echo is for the router's external address itself (replies to SNATed
        # connections are not: un-SNAT rewrote them). From inside it is a next hop like any other on the
        # external network (replies to a floating IP from a port without one, SNATed at the gateway).
        ext_tag = topo.networks[router.gateway_network_id].tag
        flows.append(
            Flow(
                p.ROUTING,
                PRIO_OWN_ADDRESS,
                Match.of(reg4=router.tag, metadata=ext_tag, eth_type=ETH_TYPE_IPV4, ipv4_dst=gw_ip),
                cookie=cookie,
            )
        )
        has_default = any(ipaddress.IPv4Network(r.destination).prefixlen == 0 for r in router.routes)
        if default_hop is not None and not has_default:
            default = ipaddress.IPv4Network("0.0.0.0/0")
            flows.append(_route(router.tag, default, False, egress, default_hop, cookie, then))
    for route in router.routes:
        dest = ipaddress.IPv4Network(route.destination)
        hop = ipaddress.IPv4Address(route.nexthop)
        via = next(((e, t) for s, e, t in egress_of if hop in s), None)
        if via is None or str(dest) in connected:
            continue  # the API refuses next hops outside connected subnets; a connected subnet wins anyway
        flows.append(_route(router.tag, dest, False, via[0], route.nexthop, cookie, via[1]))
    for ip in own:
        flows.append(_echo(router.tag, ip, cookie))
    return tuple(flows)


def external_routing(
    topo: Topology, router: Router, host: str
) -> tuple[str, ipaddress.IPv4Network, tuple[Action, ...], tuple[Action, ...], str | None] | None:
    """How the router leaves through its gateway on ``host``.

    (external IP, external subnet, egress actions, what follows them, default next hop), or None without a
    gateway. What follows picks the SNAT gateway host into reg2 (a bundle_load over the BFD-watched
    gateway tunnels, ``0xffff`` when this host is next in line) and, where floating IPs of the router are
    NATed on this host, un-DNATs their replies in the DNAT zone before snat.
    """
    port = gateway_port(topo, router)
    if port is None:
        return None
    found = _subnet_of(topo, port)
    if found is None:
        return None
    ip, subnet = found
    net = topo.networks[router.gateway_network_id]
    egress = _egress(port.mac_address, net.tag, port.tag)
    then: list[Action] = []
    before = gateways_before(topo, router, host)
    if before is not None:
        if before:
            then.append(BundleLoad(before, p.REG_GATEWAY_CHOICE))
        else:
            then.append(SetField(p.REG_GATEWAY_CHOICE, BundleLoad.NONE))
    if fips_here(topo, router.id, host):
        then.append(Ct(zone=router.zone, table=p.SNAT, nat=Nat()))
    elif then:
        then.append(Resubmit(p.SNAT))
    subnet_gw = topo.subnets.get(next((f.subnet_id for f in port.fixed_ips if f.ip_address == ip), ""))
    default_hop = subnet_gw.gateway_ip if subnet_gw is not None and subnet_gw.gateway_ip else None
    return ip, subnet, egress, tuple(then), default_hop


def fips_here(topo: Topology, router_id: str, host: str) -> bool:
    """Whether a floating IP of the router is NATed on ``host`` (the host of the port it is associated with)."""
    for fip_id in topo.l3.fips_by_router.get(router_id, ()):
        fip = topo.l3.floating_ips[fip_id]
        if fip_host(topo, fip) == host:
            return True
    return False


# ---------------------------------------------------------------- neighbors


@lru_cache(maxsize=1 << 17)
def _to_remote(net_tag: int, ip: str, mac: str, vni: int, remote_ip: str, cookie: int) -> Flow:
    return Flow(
        p.NEIGHBOR,
        PRIO_NEIGHBOR,
        Match.of(metadata=net_tag, reg3=ipv4_to_int(ip)),
        (
            SetField.of("eth_dst", mac),
            SetField("tunnel_id", vni),
            SetField.of("tun_ipv4_dst", remote_ip),
            Output(TUNNEL_OFPORT),
        ),
        cookie=cookie,
    )


@lru_cache(maxsize=1 << 17)
def _to_provider(net_tag: int, ip: str, mac: str, cookie: int) -> Flow:
    return Flow(
        p.NEIGHBOR,
        PRIO_NEIGHBOR,
        Match.of(metadata=net_tag, reg3=ipv4_to_int(ip)),
        (SetField.of("eth_dst", mac), Resubmit(p.PROVIDER_EGRESS)),
        cookie=cookie,
    )


def _to_local(net_tag: int, ip: str, mac: str, port_tag: int, cookie: int) -> Flow:
    # The router's zones are done with the packet; the destination's security groups track it afresh.
    return Flow(
        p.NEIGHBOR,
        PRIO_NEIGHBOR,
        Match.of(metadata=net_tag, reg3=ipv4_to_int(ip)),
        (CtClear(), SetField.of("eth_dst", mac), SetField(p.REG_DST_PORT, port_tag), Resubmit(p.INGRESS_CT)),
        cookie=cookie,
    )


def _hairpin(net_tag: int, ip: str, mac: str, cookie: int) -> Flow:
    """A floating IP NATed on this host, reached through the external network: back into admission.

    As if it came back from the provider bridge: no conntrack state, and no input port (the packet may
    end up where it came from, a VM talking to its own floating IP, and OpenFlow never outputs a
    packet to its input port).
    """
    return Flow(
        p.NEIGHBOR,
        PRIO_NEIGHBOR,
        Match.of(metadata=net_tag, reg3=ipv4_to_int(ip)),
        (
            CtClear(),
            SetField.of("eth_dst", mac),
            # OVS refuses set_field on in_port (OXM); a move into it is taken, as ovs-ofctl's load is.
            SetField(p.REG_GATEWAY_CHOICE, 0),
            Move(p.REG_GATEWAY_CHOICE, "in_port", 32),
            Resubmit(p.L3_LOOKUP),
        ),
        cookie=cookie,
    )


def routable_port(port: Port) -> bool:
    """Ports routing delivers to: VIFs, floating IPs and routers' gateway ports."""
    return is_vif_port(port) or port.device_owner in (OWNER_FLOATINGIP, OWNER_ROUTER_GATEWAY)


def neighbor_flows(topo: Topology, port_id: str, host: str) -> tuple[Flow, ...]:
    """Port ``port_id``'s addresses as next hops on ``host``, where a router on its network is present."""
    port = topo.ports.get(port_id)
    if port is None or not routable_port(port):
        return ()
    net = topo.networks.get(port.network_id)
    if not l2.network_active(net) or net is None or not port.admin_state_up:
        return ()
    if not neighbor_present(topo, net.id, host):
        return ()
    cookie = make_cookie(CookieKind.NEIGHBOR, port.tag)
    ips = [ip for ip in port.ips if is_ipv4(ip)]
    flows: list[Flow] = []
    if port.device_owner == OWNER_FLOATINGIP:
        fip = topo.l3.floating_ip_of_port(port.id)
        nat_host = fip_host(topo, fip) if fip is not None else None
        for ip in ips:
            if nat_host == host:
                flows.append(_hairpin(net.tag, ip, port.mac_address, cookie))
            else:
                flows.append(_to_provider(net.tag, ip, port.mac_address, cookie))
        return tuple(flows)
    if port.device_owner == OWNER_ROUTER_GATEWAY:
        return tuple(_to_provider(net.tag, ip, port.mac_address, cookie) for ip in ips)
    if not l2.port_active(topo, port):
        return ()
    for ip in ips:
        if port.binding_host_id == host:
            flows.append(_to_local(net.tag, ip, port.mac_address, port.tag, cookie))
        elif net.network_type != "vxlan":
            flows.append(_to_provider(net.tag, ip, port.mac_address, cookie))
        else:
            remote_ip = topo.tunnel_ip(port.binding_host_id)
            if remote_ip is not None:
                flows.append(_to_remote(net.tag, ip, port.mac_address, net.segmentation_id, remote_ip, cookie))
    return tuple(flows)


def fip_host(topo: Topology, fip: FloatingIP) -> str | None:
    """Where a floating IP is NATed: the host of the port it is associated with (None: nowhere)."""
    if not fip.port_id or not fip.router_id:
        return None
    port = topo.ports.get(fip.port_id)
    if port is None or not is_vif_port(port) or not l2.port_active(topo, port):
        return None
    router = topo.l3.routers.get(fip.router_id)
    if not router_active(router) or router is None or gateway_port(topo, router) is None:
        return None
    return port.binding_host_id


# ---------------------------------------------------------------- the feature


class L3Feature(Feature):
    """Routers (admission, routing, ICMP echo, ARP for their interfaces) and next-hop resolution."""

    name = p.L3
    group_kinds = ("router", "neighbor")
    number = 3

    def compile(self, topo: Topology, key: GroupKey, host: str) -> tuple[Flow, ...]:
        kind, obj_id = key
        if kind == "router":
            return router_flows(topo, obj_id, host)
        if kind == "neighbor":
            return neighbor_flows(topo, obj_id, host)
        return ()

    def cookie(self, topo: Topology, key: GroupKey) -> int | None:
        kind, obj_id = key
        if kind == "router":
            router = topo.l3.routers.get(obj_id)
            return make_cookie(CookieKind.ROUTER, router.tag) if router else None
        if kind == "neighbor":
            port = topo.ports.get(obj_id)
            return make_cookie(CookieKind.NEIGHBOR, port.tag) if port else None
        return None

    def host_groups(self, topo: Topology, host: str) -> Iterable[GroupKey]:
        seen: set[str] = set()
        for router_id in sorted(routers_on_host(topo, host)):
            yield ("router", router_id)
            for net_id in sorted(routed_networks(topo, router_id)):
                if net_id in seen:
                    continue
                seen.add(net_id)
                for pid, port in topo.ports_by_network.get(net_id, {}).items():
                    if routable_port(port):
                        yield ("neighbor", pid)

    def affected(self, topo: Topology, old: Resource | None, new: Resource | None) -> HostGroups:
        out: HostGroups = {}
        if isinstance(old, Router) and isinstance(new, Router) and _same_reach(old, new):
            # Routes, name, the active gateway: only the router's own flows (and its gateway's) change.
            self._touch_router(topo, new.id, out, neighbors=False)
            return out
        for obj in (old, new):
            if isinstance(obj, Router):
                self._touch_router(topo, obj.id, out, neighbors=True)
            elif isinstance(obj, Port):
                self._port_affects(topo, obj, out)
            elif isinstance(obj, Network):
                for r in topo.l3.routers_on(obj.id):
                    self._touch_router(topo, r, out, neighbors=True)
            elif isinstance(obj, Subnet):
                for r in topo.l3.routers_on(obj.network_id):
                    self._touch_router(topo, r, out, neighbors=False)
            elif isinstance(obj, FloatingIP):
                self._fip_affects(topo, obj, out)
            elif isinstance(obj, Agent):
                # Its tunnel IP (neighbors of its ports everywhere), its gateway role and mappings (every
                # router with a gateway: the order of gateway hosts, where routers are present).
                touch(out, obj.id, ALL_GROUPS)
                for port in topo.vif_ports_by_host.get(obj.id, {}).values():
                    for h in neighbor_hosts(topo, port.network_id):
                        touch(out, h, ("neighbor", port.id))
                for routers in list(topo.l3.gateway_routers.values()):
                    for r in routers:
                        self._touch_router(topo, r, out, neighbors=True)
        return out

    def _touch_router(self, topo: Topology, router_id: str, out: HostGroups, neighbors: bool) -> None:
        hosts = router_hosts(topo, router_id)
        keys: list[GroupKey] = [("router", router_id)]
        if neighbors:
            for net_id in routed_networks(topo, router_id) | _attached(topo, router_id):
                keys.extend(("neighbor", pid) for pid in topo.ports_by_network.get(net_id, {}))
        for h in hosts:
            touch(out, h, *keys)

    def _port_affects(self, topo: Topology, port: Port, out: HostGroups) -> None:
        if port.device_owner in (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_GATEWAY) and port.device_id:
            # An interface or gateway: where the router is present, and every neighbor it now reaches or not.
            self._touch_router(topo, port.device_id, out, neighbors=True)
        # The port as a next hop (a gateway port is one for the other routers on its network too).
        hosts = neighbor_hosts(topo, port.network_id)
        if port.binding_host_id:
            hosts.add(port.binding_host_id)
        for h in hosts:
            touch(out, h, ("neighbor", port.id))
        for fip_id in topo.l3.fips_by_port.get(port.id, ()):
            fip = topo.l3.floating_ips.get(fip_id)
            if fip is not None:
                self._fip_affects(topo, fip, out)

    def _fip_affects(self, topo: Topology, fip: FloatingIP, out: HostGroups) -> None:
        # Its address as a next hop everywhere (hairpin on its host), and its router's external routes
        # on its host (the un-DNAT there).
        for h in neighbor_hosts(topo, fip.floating_network_id):
            touch(out, h, ("neighbor", fip.floating_port_id))
        host = fip_host(topo, fip)
        if host is not None:
            touch(out, host, ("router", fip.router_id), ("neighbor", fip.floating_port_id))

    def membership(self, topo: Topology, host: str, network_id: str) -> set[GroupKey]:
        # The host's first (or last) VIF on a routed network: its routers appear (or go) here, with every
        # next hop they reach.
        keys: set[GroupKey] = set()
        for r in topo.l3.routers_on(network_id):
            keys.add(("router", r))
            for net_id in routed_networks(topo, r) | _attached(topo, r):
                keys.update(("neighbor", pid) for pid in topo.ports_by_network.get(net_id, {}))
        return keys


def _attached(topo: Topology, router_id: str) -> set[str]:
    """Every network the router has a port on, up or not (what it may reach after a change)."""
    nets = {port.network_id for port in topo.l3.interfaces.get(router_id, {}).values()}
    router = topo.l3.routers.get(router_id)
    if router is not None and router.gateway_network_id:
        nets.add(router.gateway_network_id)
    return nets


def _same_reach(old: Router, new: Router) -> bool:
    """Two versions of a router present on the same hosts with the same next hops."""
    return (old.admin_state_up, old.gateway_network_id, old.gateway_port_id) == (
        new.admin_state_up,
        new.gateway_network_id,
        new.gateway_port_id,
    )
