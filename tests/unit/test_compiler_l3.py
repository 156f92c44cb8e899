"""Routers, floating IPs and gateway SNAT: packets pushed through every host's compiled tables and conntrack.

The hosts are simulated bridges joined by tunnels (``controller.compiler.sim``,
held against ovs-vswitchd), the external network an L2 segment with the
upstream router on it (``tests.unit.l3_world``).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from controller.compiler.host import compile_host
from controller.compiler.sim import SYN, arp_request, icmp_echo, reply, tcp
from controller.compiler.trace import build_packet, trace_from_port
from controller.model import Port, Router
from dataplane.contract.cookie import CookieKind, split_cookie
from dataplane.contract.fields import int_to_ipv4, mac_to_int
from tests.unit.compiler_world import UPSTREAM_MAC, World
from tests.unit.l3_world import Cloud

INTERNET = "100.64.0.10"
G = "203.0.113.2"  # r1's external IP
FA = "203.0.113.50"  # a's floating IP
FD = "203.0.113.51"  # d's floating IP


@pytest.fixture
def world() -> World:
    """h1, h2: compute hosts; g1 (priority 20), g2 (10): gateways; h3: no VM at all. r1 routes red and blue."""
    w = World()
    for i, (name, gateway) in enumerate((("h1", 0), ("h2", 0), ("h3", 0), ("g1", 20), ("g2", 10)), 1):
        w.host(name, f"198.51.100.{i}", physnets=("external",), gateway=gateway)
    ext = w.external("ext")
    red = w.network("red", vni=1001, cidr="10.0.0.0/24")
    blue = w.network("blue", vni=1002, cidr="10.0.1.0/24")
    r1 = w.router("r1", gateway=ext, external_ip=G)
    w.interface(r1, red)
    w.interface(r1, blue)
    a = w.port("a", red, "h1", "fa:16:3e:00:00:0a", "10.0.0.11")
    w.port("b", blue, "h2", "fa:16:3e:00:00:0b", "10.0.1.12")
    w.port("c", blue, "h1", "fa:16:3e:00:00:0c", "10.0.1.13")
    w.port("d", red, "h2", "fa:16:3e:00:00:0d", "10.0.0.14")
    w.floating_ip("fa", r1, ext, FA, a)
    return w


def P(w: World, name: str) -> Port:
    return w.topo.ports[f"port-{name}"]


def R(w: World, name: str) -> Router:
    return w.topo.l3.routers[f"router-{name}"]


def router_mac(w: World, router: str, net: str) -> str:
    return w.topo.ports[f"ri-{router}-{net}"].mac_address


def fip_mac(w: World, name: str) -> str:
    return w.topo.ports[f"fipport-{name}"].mac_address


def gw_mac(w: World, router: str) -> str:
    return w.topo.ports[f"gw-{router}"].mac_address


def cloud(w: World, active_gateway: str = "g1", down: frozenset[tuple[str, str]] = frozenset()) -> Cloud:
    c = Cloud(w, down)
    for fip in w.topo.l3.floating_ips.values():
        port = w.topo.ports.get(fip.port_id)
        if port is not None:
            c.locate(w.topo.ports[fip.floating_port_id].mac_address, port.binding_host_id)
    for router_id in w.topo.l3.gateway_ports:
        c.locate(w.topo.l3.gateway_ports[router_id].mac_address, active_gateway)
    return c


def to_router(w: World, src: str, dst_ip: str, net: str, proto: str = "tcp", **kw: int) -> dict[str, int]:
    """A packet from VM ``src`` to ``dst_ip`` off its subnet: sent to its router's MAC on ``net``."""
    port = P(w, src)
    dst_mac = router_mac(w, "r1", net)
    if proto == "icmp":
        return icmp_echo(port.mac_address, dst_mac, port.ips[0], dst_ip, **kw)
    return tcp(port.mac_address, dst_mac, port.ips[0], dst_ip, 40000, 80, SYN, **kw)


def from_internet(w: World, dst_ip: str, dst_mac: str, sport: int = 5555, dport: int = 22) -> dict[str, int]:
    return tcp(UPSTREAM_MAC, dst_mac, INTERNET, dst_ip, sport, dport, SYN)


def ip(value: int) -> str:
    return int_to_ipv4(value)


# ---------------------------------------------------------------- east-west


def test_routed_across_hosts_in_one_pass_with_the_destination_vni(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-a", to_router(world, "a", "10.0.1.12", "red"))
    (got,) = out.vifs
    b = P(world, "b")
    assert (got.host, got.port) == (b.binding_host_id, b.binding_ofport)
    assert got.packet["nw_ttl"] == 63
    assert got.packet["eth_src"] == mac_to_int(router_mac(world, "r1", "blue"))
    assert got.packet["eth_dst"] == mac_to_int(b.mac_address)
    assert ip(got.packet["ipv4_src"]) == "10.0.0.11"
    # Host to host straight: h1, then h2 over the flow-based tunnel with blue's VNI, no gateway in between.
    assert [h for h, _ in out.hops] == ["h1", "h2"]
    trace = c.fabric.trace("h1", P(world, "a").binding_ofport, to_router(world, "a", "10.0.1.12", "red"))
    (tunnelled,) = [e for e in trace.hops[0].trace.emitted]
    assert tunnelled.packet["tunnel_id"] == 1002


def test_the_reply_is_routed_back_the_same_way(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-a", to_router(world, "a", "10.0.1.12", "red"))
    syn = out.vifs[0].packet
    back = reply(syn)
    back["eth_dst"] = mac_to_int(router_mac(world, "r1", "blue"))
    (got,) = c.from_port("port-b", back).vifs
    assert (got.host, got.port) == ("h1", P(world, "a").binding_ofport)
    assert got.packet["nw_ttl"] == 63 and ip(got.packet["ipv4_src"]) == "10.0.1.12"


def test_same_host_routing_never_touches_the_underlay(world: World) -> None:
    out = cloud(world).from_port("port-a", to_router(world, "a", "10.0.1.13", "red"))
    (got,) = out.vifs
    assert (got.host, got.port) == ("h1", P(world, "c").binding_ofport)
    assert [h for h, _ in out.hops] == ["h1"]


def test_loomctl_trace_follows_a_routed_packet_and_names_the_router(world: World) -> None:
    """The controller's trace (loomctl trace): a packet to another network's port goes to the gateway's MAC,
    is routed on h1 and tunnelled to h2 with blue's VNI, every routing step named by its owner."""
    a, b = P(world, "a"), P(world, "b")
    packet = build_packet(world.topo, a, "icmp", dst=b)
    assert packet["eth_dst"] == mac_to_int(router_mac(world, "r1", "red")), "a VM sends off-subnet to its gateway"
    t = trace_from_port(world.topo, a, packet)
    assert [h.host for h in t.hops] == ["h1", "h2"]
    (tunnel,) = t.hops[0].outputs
    assert (tunnel.kind, tunnel.vni, tunnel.remote_host) == ("tunnel", 1002, "h2")
    owners = {s.owner for s in t.hops[0].steps}
    assert "router r1" in owners and "routing to port b" in owners
    (out,) = t.deliveries
    assert (out.host, out.port_name) == ("h2", "b") and "nw_ttl=63" in out.packet


def test_loomctl_trace_follows_snat_to_the_gateway_host_and_says_where_it_stops(world: World) -> None:
    """b has no floating IP: routed on h2, redirected over the gateway tunnel to g1 (the router's tag as VNI),
    SNATed there; the external next hop's MAC is the agent's, so the trace stops there and says so."""
    b = P(world, "b")
    t = trace_from_port(world.topo, b, build_packet(world.topo, b, "icmp", dst_ip=INTERNET))
    assert [h.host for h in t.hops] == ["h2", "g1"]
    (redirect,) = t.hops[0].outputs
    assert (redirect.kind, redirect.remote_host, redirect.vni) == ("tunnel", "g1", R(world, "r1").tag)
    assert t.hops[1].came_from.startswith("gateway tunnel from h2")
    assert "gateway of router r1" in {s.owner for s in t.hops[1].steps}
    assert t.hops[1].drop_table == 44 and "agent resolves by ARP" in t.hops[1].drop_reason


def test_arp_for_the_router_is_answered_on_the_spot(world: World) -> None:
    a = P(world, "a")
    out = cloud(world).from_port("port-a", arp_request(a.mac_address, "10.0.0.11", "10.0.0.1"))
    (got,) = out.vifs
    assert (got.host, got.port) == ("h1", a.binding_ofport)
    assert got.packet["arp_op"] == 2 and got.packet["arp_sha"] == mac_to_int(router_mac(world, "r1", "red"))


@pytest.mark.parametrize("target", ["10.0.0.1", "10.0.1.1", G])
def test_the_router_answers_ping_on_every_address(world: World, target: str) -> None:
    a = P(world, "a")
    out = cloud(world).from_port("port-a", to_router(world, "a", target, "red", proto="icmp"))
    (got,) = out.vifs
    assert (got.host, got.port) == ("h1", a.binding_ofport)
    assert got.packet["icmpv4_type"] == 0
    assert (ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == (target, "10.0.0.11")
    assert got.packet["eth_src"] == mac_to_int(router_mac(world, "r1", "red"))
    assert got.packet["eth_dst"] == mac_to_int(a.mac_address)


def test_an_address_no_port_owns_is_dropped_not_flooded(world: World) -> None:
    out = cloud(world).from_port("port-a", to_router(world, "a", "10.0.1.99", "red"))
    assert out.vifs == [] and out.internet == [] and [h for h, _ in out.hops] == ["h1"]


def test_ttl_one_dies_at_the_router(world: World) -> None:
    out = cloud(world).from_port("port-a", to_router(world, "a", "10.0.1.12", "red", ttl=1))
    assert out.vifs == []


def test_other_frames_to_the_router_mac_are_dropped(world: World) -> None:
    a = P(world, "a")
    frame = {
        "eth_src": mac_to_int(a.mac_address),
        "eth_dst": mac_to_int(router_mac(world, "r1", "red")),
        "eth_type": 0x86DD,
    }
    out = cloud(world).from_port("port-a", frame)
    assert out.vifs == [] and [h for h, _ in out.hops] == ["h1"]


def test_router_flows_only_where_the_router_is_present(world: World) -> None:
    def kinds(host: str) -> set[CookieKind]:
        return {split_cookie(f.cookie)[0] for f in compile_host(world.topo, host).flows()}

    assert CookieKind.ROUTER in kinds("h1") and CookieKind.ROUTER in kinds("g1")
    assert not kinds("h3") & {CookieKind.ROUTER, CookieKind.NEIGHBOR, CookieKind.ROUTER_GATEWAY}
    # ARP for an interface only where its network has a VIF: red and blue have none on g1.
    internal = {world.topo.networks[n].tag for n in ("net-red", "net-blue")}
    g1 = compile_host(world.topo, "g1").flows()
    assert not [f for f in g1 if f.table == 30 and (m := f.match.get("metadata")) and m.value in internal]


def test_static_route_through_a_vm(world: World) -> None:
    world.topo.put(replace(R(world, "r1"), routes=(world_route("192.168.0.0/16", "10.0.0.14"),)))
    out = cloud(world).from_port("port-a", to_router(world, "a", "192.168.5.5", "red"))
    (got,) = out.vifs
    d = P(world, "d")
    assert (got.host, got.port) == ("h2", d.binding_ofport) and got.packet["eth_dst"] == mac_to_int(d.mac_address)
    assert ip(got.packet["ipv4_dst"]) == "192.168.5.5"


def world_route(destination: str, nexthop: str):  # type: ignore[no-untyped-def]
    from controller.model import HostRoute

    return HostRoute(destination, nexthop)


# ---------------------------------------------------------------- floating IPs


def test_the_internet_reaches_a_vm_by_its_floating_ip_on_its_own_host(world: World) -> None:
    c = cloud(world)
    out = c.from_internet(from_internet(world, FA, fip_mac(world, "fa")))
    (got,) = out.vifs
    a = P(world, "a")
    assert (got.host, got.port) == ("h1", a.binding_ofport)
    assert (ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == (INTERNET, "10.0.0.11")
    assert got.packet["nw_ttl"] == 63
    assert [h for h, _ in out.hops] == ["h1"]
    # The reply leaves h1's own provider bridge with the floating IP and MAC as source.
    back = reply(got.packet)
    back["eth_dst"] = mac_to_int(router_mac(world, "r1", "red"))
    (left,) = c.from_port("port-a", back).internet
    assert left.host == "h1"
    assert (ip(left.packet["ipv4_src"]), ip(left.packet["ipv4_dst"])) == (FA, INTERNET)
    assert left.packet["eth_src"] == mac_to_int(fip_mac(world, "fa"))


def test_a_vm_with_a_floating_ip_goes_out_with_it(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-a", to_router(world, "a", INTERNET, "red"))
    (left,) = out.internet
    assert left.host == "h1" and ip(left.packet["ipv4_src"]) == FA and left.packet["nw_ttl"] == 63
    assert left.packet["eth_dst"] == mac_to_int(UPSTREAM_MAC)
    back = reply(left.packet)
    (got,) = c.from_internet(back).vifs
    assert (got.host, got.port) == ("h1", P(world, "a").binding_ofport)
    assert (ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == (INTERNET, "10.0.0.11")


def test_only_the_floating_ips_host_answers_arp_for_it(world: World) -> None:
    c = cloud(world)
    request = arp_request(UPSTREAM_MAC, "203.0.113.1", FA)
    out = c.from_internet(request)
    answers = [d for d in out.internet if d.packet.get("arp_op") == 2]
    assert [d.host for d in answers] == ["h1"]
    assert answers[0].packet["arp_sha"] == mac_to_int(fip_mac(world, "fa"))


def test_a_disassociated_floating_ip_is_gone(world: World) -> None:
    fip = world.topo.l3.floating_ips["fip-fa"]
    world.topo.put(replace(fip, port_id="", fixed_ip_address="", router_id=""))
    c = cloud(world)
    c.locate(fip_mac(world, "fa"), "h1")  # the segment still sends there
    assert c.from_internet(from_internet(world, FA, fip_mac(world, "fa"))).vifs == []
    out = c.from_internet(arp_request(UPSTREAM_MAC, "203.0.113.1", FA))
    assert not [d for d in out.internet if d.packet.get("arp_op") == 2]
    # a falls back to SNAT through the gateway.
    (left,) = c.from_port("port-a", to_router(world, "a", INTERNET, "red")).internet
    assert left.host == "g1" and ip(left.packet["ipv4_src"]) == G


def test_the_floating_ip_follows_its_port_to_another_host(world: World) -> None:
    world.topo.put(replace(P(world, "a"), binding_host_id="h2", binding_ofport=150))
    c = cloud(world)
    out = c.from_internet(from_internet(world, FA, fip_mac(world, "fa")))
    (got,) = out.vifs
    assert (got.host, got.port) == ("h2", 150) and [h for h, _ in out.hops] == ["h2"]
    assert not [
        f for f in compile_host(world.topo, "h1").flows() if split_cookie(f.cookie)[0] is CookieKind.FLOATING_IP
    ]


# ---------------------------------------------------------------- hairpin


def test_a_vm_reaches_its_own_floating_ip(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-a", to_router(world, "a", FA, "red"))
    (got,) = out.vifs
    a = P(world, "a")
    assert (got.host, got.port) == ("h1", a.binding_ofport)
    assert (ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == (FA, "10.0.0.11")
    back = reply(got.packet)
    back["eth_dst"] = mac_to_int(router_mac(world, "r1", "red"))
    (again,) = c.from_port("port-a", back).vifs
    assert (again.host, again.port) == ("h1", a.binding_ofport)
    assert (ip(again.packet["ipv4_src"]), ip(again.packet["ipv4_dst"])) == (FA, "10.0.0.11")
    assert again.packet["tcp_flags"] & 0x12 == 0x12  # the SYN-ACK, not a second SYN


def test_floating_ip_to_floating_ip_across_hosts(world: World) -> None:
    d = P(world, "d")
    world.floating_ip("fd", R(world, "r1"), world.topo.networks["net-ext"], FD, d)
    c = cloud(world)
    out = c.from_port("port-d", to_router(world, "d", FA, "red"))
    (got,) = out.vifs
    assert (got.host, ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == ("h1", FD, "10.0.0.11")
    back = reply(got.packet)
    back["eth_dst"] = mac_to_int(router_mac(world, "r1", "red"))
    (returned,) = c.from_port("port-a", back).vifs
    assert (returned.host, returned.port) == ("h2", d.binding_ofport)
    assert (ip(returned.packet["ipv4_src"]), ip(returned.packet["ipv4_dst"])) == (FA, "10.0.0.14")


def test_a_vm_without_floating_ip_reaches_one_through_the_gateway(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-b", to_router(world, "b", FA, "blue"))
    (got,) = out.vifs
    assert (got.host, ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == ("h1", G, "10.0.0.11")
    back = reply(got.packet)
    back["eth_dst"] = mac_to_int(router_mac(world, "r1", "red"))
    (returned,) = c.from_port("port-a", back).vifs
    assert (returned.host, returned.port) == ("h2", P(world, "b").binding_ofport)
    assert (ip(returned.packet["ipv4_src"]), ip(returned.packet["ipv4_dst"])) == (FA, "10.0.1.12")


def test_hairpin_needs_no_flow_per_floating_ip_pair(world: World) -> None:
    r1, ext = R(world, "r1"), world.topo.networks["net-ext"]
    counts = []
    for n in range(4):
        vm = world.port(f"x{n}", world.topo.networks["net-red"], "h1", f"fa:16:3e:01:00:{n:02x}", f"10.0.0.{100 + n}")
        world.floating_ip(f"x{n}", r1, ext, f"203.0.113.{100 + n}", vm)
        counts.append(len([f for f in compile_host(world.topo, "h1").flows()]))
    steps = {b - a for a, b in itertools.pairwise(counts)}
    assert len(steps) == 1  # each floating IP adds the same number of flows, however many there are


# ---------------------------------------------------------------- gateway SNAT and failover


def test_snat_leaves_only_through_the_active_gateway(world: World) -> None:
    c = cloud(world)
    out = c.from_port("port-b", to_router(world, "b", INTERNET, "blue"))
    (left,) = out.internet
    assert left.host == "g1"
    assert ip(left.packet["ipv4_src"]) == G and left.packet["eth_src"] == mac_to_int(gw_mac(world, "r1"))
    assert left.packet["nw_ttl"] == 63
    assert [h for h, _ in out.hops] == ["h2", "g1"]
    back = reply(left.packet)
    (got,) = c.from_internet(back).vifs
    b = P(world, "b")
    assert (got.host, got.port) == ("h2", b.binding_ofport)
    assert (ip(got.packet["ipv4_src"]), ip(got.packet["ipv4_dst"])) == (INTERNET, "10.0.1.12")


def test_snat_fails_over_when_bfd_to_the_active_gateway_is_down(world: World) -> None:
    down = frozenset({("h2", "g1"), ("g2", "g1")})  # g1 gone: its BFD sessions are down everywhere
    c = cloud(world, active_gateway="g2", down=down)
    c.host_down("g1")
    (left,) = c.from_port("port-b", to_router(world, "b", INTERNET, "blue")).internet
    assert left.host == "g2" and ip(left.packet["ipv4_src"]) == G


def test_only_the_active_gateway_answers_arp_for_the_external_ip(world: World) -> None:
    request = arp_request(UPSTREAM_MAC, "203.0.113.1", G)
    answers = [d for d in cloud(world).from_internet(request).internet if d.packet.get("arp_op") == 2]
    assert [d.host for d in answers] == ["g1"]
    down = frozenset({("g2", "g1"), ("h1", "g1"), ("h2", "g1")})
    c = cloud(world, "g2", down)
    c.host_down("g1")
    answers = [d for d in c.from_internet(request).internet if d.packet.get("arp_op") == 2]
    assert [d.host for d in answers] == ["g2"]


def test_the_reported_active_gateway_goes_first_so_a_returning_one_does_not_take_over(world: World) -> None:
    world.topo.put(replace(R(world, "r1"), active_gateway="g2"))
    (left,) = cloud(world, active_gateway="g2").from_port("port-b", to_router(world, "b", INTERNET, "blue")).internet
    assert left.host == "g2"
    world.topo.gateway_preempt = True
    (left,) = cloud(world, active_gateway="g1").from_port("port-b", to_router(world, "b", INTERNET, "blue")).internet
    assert left.host == "g1"


def test_without_snat_the_router_forwards_private_sources_through_the_gateway(world: World) -> None:
    world.topo.put(replace(R(world, "r1"), enable_snat=False))
    (left,) = cloud(world).from_port("port-b", to_router(world, "b", INTERNET, "blue")).internet
    assert left.host == "g1" and ip(left.packet["ipv4_src"]) == "10.0.1.12"


def test_no_live_gateway_means_nothing_leaves_with_a_private_address(world: World) -> None:
    down = frozenset({("h2", "g1"), ("h2", "g2")})
    out = cloud(world, down=down).from_port("port-b", to_router(world, "b", INTERNET, "blue"))
    assert out.internet == [] and out.vifs == []


# ---------------------------------------------------------------- tenants with overlapping addresses


def test_two_routers_with_overlapping_tenants_do_not_interfere(world: World) -> None:
    ext = world.topo.networks["net-ext"]
    red2 = world.network("red2", vni=2001, cidr="10.0.0.0/24")
    r2 = world.router("r2", gateway=ext, external_ip="203.0.113.3")
    world.interface(r2, red2)
    a2 = world.port("a2", red2, "h1", "fa:16:3e:00:00:0a", "10.0.0.11")  # same MAC and IP as a
    world.floating_ip("fa2", r2, ext, "203.0.113.60", a2)
    world.port("e2", red2, "h2", "fa:16:3e:00:00:e2", "10.0.0.20")
    c = cloud(world)
    # Each floating IP reaches its own VM.
    (got,) = c.from_internet(from_internet(world, "203.0.113.60", fip_mac(world, "fa2"))).vifs
    assert got.port == a2.binding_ofport
    (got,) = c.from_internet(from_internet(world, FA, fip_mac(world, "fa"))).vifs
    assert got.port == P(world, "a").binding_ofport
    # Both go out with their own floating IP from the same host, the same fixed IP and ports.
    pkt2 = tcp(a2.mac_address, world.topo.ports["ri-r2-red2"].mac_address, "10.0.0.11", INTERNET, 40000, 80, SYN)
    (left2,) = c.from_port(a2.id, pkt2).internet
    (left1,) = c.from_port("port-a", to_router(world, "a", INTERNET, "red")).internet
    assert {ip(left1.packet["ipv4_src"]), ip(left2.packet["ipv4_src"])} == {FA, "203.0.113.60"}
    # SNAT of the second tenant through its own external IP.
    e2 = world.topo.ports["port-e2"]
    pkt = tcp(e2.mac_address, world.topo.ports["ri-r2-red2"].mac_address, "10.0.0.20", INTERNET, 40000, 80, SYN)
    (left,) = c.from_port(e2.id, pkt).internet
    assert ip(left.packet["ipv4_src"]) == "203.0.113.3"


def test_fip_flows_on_a_host_without_the_external_mapping_are_not_compiled(world: World) -> None:
    world.host("h1", "198.51.100.1", physnets=())
    assert not [
        f for f in compile_host(world.topo, "h1").flows() if split_cookie(f.cookie)[0] is CookieKind.FLOATING_IP
    ]
