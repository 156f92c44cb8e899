"""The controller's packet trace: every hop named, tunnels followed, deliveries agreeing with the Fabric simulator."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.compiler.simulator import Fabric
from controller.compiler.trace import (
    PacketTrace,
    TraceError,
    build_packet,
    host_switch,
    trace,
    trace_from_port,
)
from controller.model import Port
from dataplane.common.constants import LOCALPORT_OFPORT_MIN, TUNNEL_OFPORT
from dataplane.contract import pipeline as p
from tests.unit.compiler_world import World


@pytest.fixture
def world() -> World:
    """red on h1 and h2, blue on h2, green (one port, h3) alone; h4 has no port at all."""
    w = World()
    for i in (1, 2, 3):
        w.host(f"h{i}", f"198.51.100.{i}")
    red = w.network("red", vni=1001)
    blue = w.network("blue", vni=1002)
    green = w.network("green", vni=1003, cidr="10.9.0.0/24")
    w.port("r1", red, "h1", "fa:16:3e:00:00:01", "10.0.0.11")
    w.port("r2", red, "h2", "fa:16:3e:00:00:02", "10.0.0.12")
    w.port("b1", blue, "h2", "fa:16:3e:00:00:11", "10.0.0.21")
    w.port("g1", green, "h3", "fa:16:3e:00:00:21", "10.9.0.11")
    return w


def P(w: World, name: str) -> Port:
    return w.topo.ports[f"port-{name}"]


def fabric_of(w: World) -> Fabric:
    """The Fabric simulator over exactly the switches the trace builds."""
    fabric = Fabric()
    for host, agent in w.topo.agents.items():
        fabric.add_host(host, agent.tunnel_ip, host_switch(w.topo, host)[0])
    return fabric


def delivered(t: PacketTrace) -> set[tuple[str, int]]:
    return {(o.host, o.ofport) for o in t.deliveries}


def check_against_fabric(w: World, src: Port, t: PacketTrace, packet: dict[str, int]) -> None:
    """The hop-by-hop walk reaches exactly what the Fabric simulator reaches."""
    fabric = {(d.host, d.port) for d in fabric_of(w).send(src.binding_host_id, src.binding_ofport, packet)}
    assert delivered(t) == fabric


@pytest.mark.parametrize(
    ("protocol", "dport"), [("icmp", 0), ("tcp", 22), ("udp", 53)], ids=["icmp", "tcp-22", "udp-53"]
)
def test_unicast_across_the_tunnel_names_every_hop(world: World, protocol: str, dport: int) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    packet = build_packet(world.topo, r1, protocol, dst=r2, dst_port=dport)
    t = trace_from_port(world.topo, r1, packet)
    check_against_fabric(world, r1, t, packet)
    assert [h.host for h in t.hops] == ["h1", "h2"]
    first, second = t.hops
    assert first.came_from == "port r1" and first.in_port == r1.binding_ofport
    # The world's ports are in a group letting everything through: conntrack, a rule, the commit.
    assert [s.table for s in first.steps] == [0, 10, 15, 20, 21, 30, 40, 50]
    assert first.steps[3].owner.startswith("security groups of port r1: rule ")
    assert [s.table_name for s in first.steps][:2] == ["classify", "port_security"]
    assert first.steps[0].owner == "binding of port r1"
    assert first.steps[1].owner == "port r1"
    assert first.steps[-1].owner == "port r2", "the remote port's L2 entry tunnels it"
    assert "output:65200" in first.steps[-1].flow and not first.steps[-1].flow.startswith("cookie")
    (tunnel,) = first.outputs
    assert (tunnel.kind, tunnel.vni, tunnel.remote_host, tunnel.remote_ip) == ("tunnel", 1001, "h2", "198.51.100.2")
    assert second.came_from == "tunnel from h1, VNI 1001" and second.in_port == TUNNEL_OFPORT
    assert second.packet.startswith("tun_id=0x3e9,")
    assert second.steps[0].owner == "network red" and second.steps[-1].owner == "binding of port r2"
    assert second.steps[-1].table_name == "deliver"
    (out,) = t.deliveries
    assert (out.host, out.port_id, out.port_name, out.ofport) == ("h2", r2.id, "r2", r2.binding_ofport)
    proto_part = {"icmp": "icmp,", "tcp": "tcp,", "udp": "udp,"}[protocol]
    assert t.packet.startswith(proto_part) and "nw_dst=10.0.0.12" in t.packet
    if dport:
        assert f"tp_dst={dport}" in t.packet


def test_arp_for_a_known_address_is_answered_on_the_senders_host(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    packet = build_packet(world.topo, r1, "arp", dst=r2)
    t = trace_from_port(world.topo, r1, packet)
    check_against_fabric(world, r1, t, packet)
    assert [h.host for h in t.hops] == ["h1"]
    (out,) = t.deliveries
    assert (out.port_name, out.ofport) == ("r1", t.hops[0].in_port), "back out the port it came in on"
    assert "arp_op=2" in out.packet and "arp_spa=10.0.0.12" in out.packet and "dl_src=fa:16:3e:00:00:02" in out.packet
    assert t.hops[0].steps[-1].table_name == "arp_responder" and t.hops[0].steps[-1].owner == "port r2"


def test_another_networks_port_is_never_reached(world: World) -> None:
    """r1 -> b1 (blue): red does not know b1's MAC, floods it on red everywhere, and blue never sees it."""
    r1, b1 = P(world, "r1"), P(world, "b1")
    packet = build_packet(world.topo, r1, "icmp", dst=b1)
    t = trace_from_port(world.topo, r1, packet)
    check_against_fabric(world, r1, t, packet)
    names = {(o.host, o.port_name) for o in t.deliveries}
    assert names == {("h1", "localport of network red"), ("h2", "r2"), ("h2", "localport of network red")}
    assert b1.id not in {o.port_id for o in t.deliveries}
    flood = [s for s in t.hops[0].steps if s.table_name == "l2_lookup"]
    assert [s.owner for s in flood] == ["flooding of network red"], "the flood flow belongs to the network"


def test_a_network_alone_on_its_host_drops_an_unknown_destination(world: World) -> None:
    """green has one port (and DHCP's localport) on h3 only: a frame for r1's MAC has nowhere to go but DHCP."""
    g1, r1 = P(world, "g1"), P(world, "r1")
    # DHCP off on green: no localport either, so the flood has no port left but the sender's own.
    world.topo.put(replace(world.topo.subnets["sub-green"], enable_dhcp=False))
    packet = build_packet(world.topo, g1, "icmp", dst_ip="10.9.0.99", dst_mac=r1.mac_address)
    t = trace_from_port(world.topo, g1, packet)
    check_against_fabric(world, g1, t, packet)
    (hop,) = t.hops
    assert hop.dropped and not t.deliveries
    assert hop.drop_table == p.DELIVER
    assert "back out its in_port" in hop.drop_reason


def test_a_disabled_port_is_dropped_at_classify_with_the_reason(world: World) -> None:
    r1 = P(world, "r1")
    down = replace(r1, admin_state_up=False)
    world.topo.put(down)
    packet = build_packet(world.topo, down, "icmp", dst=P(world, "r2"))
    t = trace_from_port(world.topo, down, packet)
    (hop,) = t.hops
    assert hop.dropped and hop.drop_table == p.CLASSIFY
    assert "no binding here" in hop.drop_reason
    assert [s.owner for s in hop.steps] == ["pipeline"]


def test_a_spoofed_source_dies_in_port_security(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    packet = build_packet(world.topo, r1, "icmp", dst=r2)
    packet["ipv4_src"] = 0x0A000063  # 10.0.0.99: not r1's
    t = trace(world.topo, "h1", r1.binding_ofport, packet, "port r1")
    (hop,) = t.hops
    assert hop.drop_table == p.PORT_SECURITY and "port security" in hop.drop_reason


def test_broadcast_floods_to_every_host_of_the_network_once(world: World) -> None:
    r1 = P(world, "r1")
    packet = build_packet(world.topo, r1, "arp", dst_ip="10.0.0.99")  # nobody has it: flooded
    t = trace_from_port(world.topo, r1, packet)
    check_against_fabric(world, r1, t, packet)
    assert [h.host for h in t.hops] == ["h1", "h2"]
    assert {o.port_name for o in t.deliveries} == {"localport of network red", "r2"}


def test_localports_are_numbered_per_host_and_named(world: World) -> None:
    _, ports = host_switch(world.topo, "h2")
    localports = {n: v.name for n, v in ports.items() if n >= LOCALPORT_OFPORT_MIN}
    assert localports == {
        LOCALPORT_OFPORT_MIN: "localport of network red",
        LOCALPORT_OFPORT_MIN + 1: "localport of network blue",
    }
    assert ports[P(world, "r2").binding_ofport].name == "r2"


def test_requests_that_cannot_be_traced_name_the_field(world: World) -> None:
    r1 = P(world, "r1")
    with pytest.raises(TraceError, match="protocol: 'sctp'"):
        build_packet(world.topo, r1, "sctp", dst=P(world, "r2"))
    with pytest.raises(TraceError, match=r"dst_mac: no port on network red holds 10\.0\.0\.77"):
        build_packet(world.topo, r1, "icmp", dst_ip="10.0.0.77")
    with pytest.raises(TraceError, match="dst_ip: 'x' is not an IPv4 address"):
        build_packet(world.topo, r1, "icmp", dst_ip="x")
    with pytest.raises(TraceError, match="from_port_id: port r1 is not bound") as info:
        trace_from_port(world.topo, replace(r1, binding_host_id=""), {})
    assert info.value.kind == "precondition"
    # An address known on the network: its MAC is looked up.
    packet = build_packet(world.topo, r1, "icmp", dst_ip="10.0.0.12")
    assert trace_from_port(world.topo, r1, packet).deliveries[0].port_name == "r2"


def test_a_sender_on_a_host_without_an_agent_is_traced_all_the_same(world: World) -> None:
    """binding_failed: the controller compiles its host anyway; the trace shows what that host would do."""
    lone = world.port("x9", world.topo.networks["net-red"], "h9", "fa:16:3e:00:00:99", "10.0.0.99")
    r1 = P(world, "r1")
    t = trace_from_port(world.topo, lone, build_packet(world.topo, lone, "icmp", dst=r1))
    assert [h.host for h in t.hops] == ["h9", "h1"]
    assert [(o.host, o.port_name) for o in t.deliveries] == [("h1", "r1")]
