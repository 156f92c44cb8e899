"""L2 compiler behaviour: packets pushed through every host's compiled tables land where they should."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.compiler.host import compile_host
from controller.compiler.simulator import (
    Fabric,
    FlowTable,
    arp_request,
    dhcp_discover,
    dhcp_offer,
    ethernet,
    ipv4,
)
from controller.model import FixedIP
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.cookie import CookieKind, split_cookie
from dataplane.contract.fields import IP_PROTO_TCP, int_to_mac, ipv4_to_int, mac_to_int
from dataplane.contract.flow import Flow, Match, Output, Resubmit
from dataplane.contract.pipeline import PipelineError, check_flow
from tests.unit.compiler_world import World, at

BCAST = "ff:ff:ff:ff:ff:ff"


@pytest.fixture
def world() -> World:
    """Three hosts; two networks with the same CIDR and a clashing MAC; a third network only on h3."""
    w = World()
    w.host("h1", "198.51.100.1")
    w.host("h2", "198.51.100.2")
    w.host("h3", "198.51.100.3")
    red = w.network("red", vni=1001)
    blue = w.network("blue", vni=1002)
    green = w.network("green", vni=1003, cidr="10.9.0.0/24")
    w.port("r1", red, "h1", "fa:16:3e:00:00:01", "10.0.0.11")
    w.port("r2", red, "h2", "fa:16:3e:00:00:02", "10.0.0.12")
    w.port("r3", red, "h1", "fa:16:3e:00:00:03", "10.0.0.13")
    # blue reuses red's CIDR and even r2's MAC and IP.
    w.port("b1", blue, "h1", "fa:16:3e:00:00:11", "10.0.0.11")
    w.port("b2", blue, "h2", "fa:16:3e:00:00:02", "10.0.0.12")
    w.port("g1", green, "h3", "fa:16:3e:00:00:21", "10.9.0.11")
    return w


def P(w: World, name: str):
    return w.topo.ports[f"port-{name}"]


def test_unicast_crosses_hosts_only_to_its_destination(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    pkt = ipv4(r1.mac_address, r2.mac_address, "10.0.0.11", "10.0.0.12", IP_PROTO_TCP, 40000, 80)
    assert world.send(r1, pkt) == {at(r2)}


def test_unicast_on_the_same_host(world: World) -> None:
    r1, r3 = P(world, "r1"), P(world, "r3")
    pkt = ipv4(r1.mac_address, r3.mac_address, "10.0.0.11", "10.0.0.13")
    assert world.send(r1, pkt) == {at(r3)}


def test_networks_are_isolated_even_with_identical_cidr_and_mac(world: World) -> None:
    r1, b1, b2 = P(world, "r1"), P(world, "b1"), P(world, "b2")
    # r2 and b2 share a MAC and IP: red's frame must reach r2 only, blue's b2 only.
    from_red = world.send(r1, ipv4(r1.mac_address, b2.mac_address, "10.0.0.11", "10.0.0.12"))
    from_blue = world.send(b1, ipv4(b1.mac_address, b2.mac_address, "10.0.0.11", "10.0.0.12"))
    assert from_red == {at(P(world, "r2"))}
    assert from_blue == {at(b2)}
    # Nothing on red ever reaches a blue port, whatever the destination.
    for dst in ("fa:16:3e:00:00:11", "fa:16:3e:99:99:99", BCAST):
        reached = world.send(r1, ipv4(r1.mac_address, dst, "10.0.0.11", "10.0.0.99"))
        assert not reached & {at(b1), at(b2)}


def test_broadcast_reaches_exactly_its_network_everywhere(world: World) -> None:
    r1 = P(world, "r1")
    pkt = arp_request(r1.mac_address, "10.0.0.11", "10.0.0.77")  # nobody owns .77: flooded
    deliveries = world.send_full(r1, pkt)
    reached = {(d.host, d.port) for d in deliveries}
    red_localport = world.localport_ofport("net-red")
    assert reached == {at(P(world, "r3")), at(P(world, "r2")), ("h1", red_localport), ("h2", red_localport)}
    # h3 has no red port: the broadcast never travels there.
    assert all(d.host != "h3" for d in deliveries)
    # The frame arrives unchanged.
    assert all(d.packet["arp_tpa"] == ipv4_to_int("10.0.0.77") for d in deliveries)


def test_broadcast_goes_to_each_remote_host_once(world: World) -> None:
    r2 = P(world, "r2")
    deliveries = world.send_full(r2, ipv4(r2.mac_address, BCAST, "10.0.0.12", "10.0.0.255", 17, 5000, 5000))
    hosts = [d.host for d in deliveries if (d.host, d.port) in (at(P(world, "r1")), at(P(world, "r3")))]
    assert sorted(hosts) == ["h1", "h1"]


def test_port_security_drops_non_ip_ethertypes(world: World) -> None:
    r2 = P(world, "r2")
    assert world.send(r2, ethernet(r2.mac_address, BCAST, 0x88B5)) == set()


def test_arp_for_a_known_port_is_answered_on_the_spot(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    deliveries = world.send_full(r1, arp_request(r1.mac_address, "10.0.0.11", "10.0.0.12"))
    assert [(d.host, d.port) for d in deliveries] == [at(r1)]
    reply = deliveries[0].packet
    assert reply["arp_op"] == 2
    assert int_to_mac(reply["arp_sha"]) == r2.mac_address
    assert reply["arp_spa"] == ipv4_to_int("10.0.0.12")
    assert reply["eth_dst"] == mac_to_int(r1.mac_address)
    assert reply["arp_tha"] == mac_to_int(r1.mac_address)
    assert reply["arp_tpa"] == ipv4_to_int("10.0.0.11")


def test_arp_answer_comes_from_the_callers_network(world: World) -> None:
    b1 = P(world, "b1")
    world.port("r9", world.topo.networks["net-red"], "h2", "fa:16:3e:00:00:99", "10.0.0.99")
    # .99 exists only on red: a blue VM asking for it gets no answer, only a blue flood.
    reached = world.send(b1, arp_request(b1.mac_address, "10.0.0.11", "10.0.0.99"))
    assert at(P(world, "r9")) not in reached
    assert reached <= {
        at(P(world, "b2")),
        ("h1", world.localport_ofport("net-blue")),
        ("h2", world.localport_ofport("net-blue")),
    }


def test_arp_probe_is_not_answered(world: World) -> None:
    r1 = P(world, "r1")
    # Duplicate address detection for .12: the responder must not claim it.
    deliveries = world.send_full(r1, arp_request(r1.mac_address, "0.0.0.0", "10.0.0.12"))
    assert all(d.packet["arp_op"] == 1 for d in deliveries)
    assert at(r1) not in {(d.host, d.port) for d in deliveries}


@pytest.mark.parametrize(
    "spoof",
    ["mac", "ip", "arp_ip", "arp_mac"],
)
def test_spoofed_packets_are_dropped(world: World, spoof: str) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    if spoof == "mac":
        pkt = ipv4("fa:16:3e:66:66:66", r2.mac_address, "10.0.0.11", "10.0.0.12")
    elif spoof == "ip":
        pkt = ipv4(r1.mac_address, r2.mac_address, "10.0.0.13", "10.0.0.12")
    elif spoof == "arp_ip":
        pkt = arp_request(r1.mac_address, "10.0.0.13", "10.0.0.77")
    else:
        pkt = arp_request(r1.mac_address, "10.0.0.11", "10.0.0.77")
        pkt["arp_sha"] = mac_to_int("fa:16:3e:66:66:66")
    assert world.send(r1, pkt) == set()


def test_port_security_disabled_lets_anything_through(world: World) -> None:
    r1 = P(world, "r1")
    world.topo.put(replace(r1, port_security_enabled=False))
    r2 = P(world, "r2")
    pkt = ipv4("fa:16:3e:66:66:66", r2.mac_address, "10.0.0.200", "10.0.0.12")
    assert world.send(r1, pkt) == {at(r2)}


def test_dhcp_requests_stay_on_the_host(world: World) -> None:
    r2 = P(world, "r2")
    assert world.send(r2, dhcp_discover(r2.mac_address)) == {("h2", world.localport_ofport("net-red"))}


def test_localport_answers_reach_only_the_local_client(world: World) -> None:
    r1 = P(world, "r1")
    dhcp = world.topo.dhcp_ports["net-red"]
    fabric: Fabric = world.fabric()
    lp = world.localport_ofport("net-red")
    offer = dhcp_offer(dhcp.mac_address, "10.0.0.2", r1.mac_address, "10.0.0.11")
    assert {(d.host, d.port) for d in fabric.send("h1", lp, offer)} == {at(r1)}
    # A broadcast offer stays on the host too.
    bcast_offer = dhcp_offer(dhcp.mac_address, "10.0.0.2", BCAST, "255.255.255.255")
    reached = {(d.host, d.port) for d in fabric.send("h1", lp, bcast_offer)}
    assert reached == {at(r1), at(P(world, "r3"))}


def test_a_vm_cannot_be_a_dhcp_server(world: World) -> None:
    r1, r3 = P(world, "r1"), P(world, "r3")
    assert world.send(r1, dhcp_offer(r1.mac_address, "10.0.0.11", r3.mac_address, "10.0.0.13")) == set()
    assert world.send(r1, dhcp_offer(r1.mac_address, "10.0.0.11", BCAST, "255.255.255.255")) == set()


def test_vm_reaches_its_localport(world: World) -> None:
    r2 = P(world, "r2")
    dhcp = world.topo.dhcp_ports["net-red"]
    pkt = ipv4(r2.mac_address, dhcp.mac_address, "10.0.0.12", "169.254.169.254", IP_PROTO_TCP, 40000, 80)
    assert world.send(r2, pkt) == {("h2", world.localport_ofport("net-red"))}
    # and ARP for the localport's address is answered locally with its MAC
    deliveries = world.send_full(r2, arp_request(r2.mac_address, "10.0.0.12", "10.0.0.2"))
    assert [(d.host, d.port) for d in deliveries] == [at(r2)]
    assert int_to_mac(deliveries[0].packet["arp_sha"]) == dhcp.mac_address


def test_deleted_port_is_unreachable(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    pkt = ipv4(r1.mac_address, r2.mac_address, "10.0.0.11", "10.0.0.12")
    world.topo.delete("port", r2.id)
    reached = world.send(r1, pkt)
    assert at(r2) not in reached
    # h2 has no red port left, so the tunnel to h2 is gone from red's flood too.
    assert all(host != "h2" for host, _ in reached)


def test_admin_down_port_neither_sends_nor_receives(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    world.topo.put(replace(r2, admin_state_up=False))
    assert at(r2) not in world.send(r1, ipv4(r1.mac_address, r2.mac_address, "10.0.0.11", "10.0.0.12"))
    assert world.send(r2, ipv4(r2.mac_address, r1.mac_address, "10.0.0.12", "10.0.0.11")) == set()


def test_admin_down_network_carries_nothing(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    world.topo.put(replace(world.topo.networks["net-red"], admin_state_up=False))
    assert world.send(r1, ipv4(r1.mac_address, r2.mac_address, "10.0.0.11", "10.0.0.12")) == set()


def test_second_ip_is_allowed_and_answered(world: World) -> None:
    r1, r2 = P(world, "r1"), P(world, "r2")
    world.topo.put(replace(r2, fixed_ips=(*r2.fixed_ips, FixedIP("sub-red", "10.0.0.42"))))
    r2 = P(world, "r2")
    deliveries = world.send_full(r1, arp_request(r1.mac_address, "10.0.0.11", "10.0.0.42"))
    assert int_to_mac(deliveries[0].packet["arp_sha"]) == r2.mac_address
    assert world.send(r2, ipv4(r2.mac_address, r1.mac_address, "10.0.0.42", "10.0.0.11")) == {at(r1)}


def test_a_host_that_moves_its_tunnel_is_flooded_to_at_its_new_address(world: World) -> None:
    """A network's tunnels are worked out once for all its hosts: a new tunnel IP must not find the old list."""
    r1, r2 = P(world, "r1"), P(world, "r2")
    pkt = arp_request(r1.mac_address, "10.0.0.11", "10.0.0.77")  # nobody owns .77: flooded
    assert at(r2) in {(d.host, d.port) for d in world.send_full(r1, pkt)}
    world.host("h2", "198.51.100.22")
    assert at(r2) in {(d.host, d.port) for d in world.send_full(r1, pkt)}
    # A host leaving the network leaves every flood of it.
    world.topo.delete("port", r2.id)
    world.topo.delete("port", "port-b2")
    assert {d.host for d in world.send_full(r1, pkt)} == {"h1"}
    red_tag = world.topo.networks["net-red"].tag
    floods = [f for f in world.flows("h1") if split_cookie(f.cookie) == (CookieKind.NETWORK_FLOOD, red_tag)]
    assert floods and not any(a.port == TUNNEL_OFPORT for f in floods for a in f.actions if isinstance(a, Output))


def test_tunnel_traffic_is_never_sent_back_into_the_tunnel(world: World) -> None:
    fabric = world.fabric()
    red = world.topo.networks["net-red"]
    # A frame for an unknown MAC arriving from the tunnel floods locally only.
    pkt = ipv4("fa:16:3e:00:00:02", "fa:16:3e:77:77:77", "10.0.0.12", "10.0.0.77")
    pkt["tunnel_id"] = red.segmentation_id
    deliveries = fabric.send("h1", TUNNEL_OFPORT, pkt)
    assert {d.host for d in deliveries} == {"h1"}


def test_unknown_vni_is_dropped(world: World) -> None:
    pkt = ipv4("fa:16:3e:00:00:02", "fa:16:3e:00:00:01", "10.0.0.12", "10.0.0.11")
    pkt["tunnel_id"] = 4242
    assert world.fabric().send("h1", TUNNEL_OFPORT, pkt) == []


def test_hosts_without_a_network_get_none_of_its_flows(world: World) -> None:
    state = compile_host(world.topo, "h3")
    red, blue = world.topo.networks["net-red"], world.topo.networks["net-blue"]
    for flow in state.flows():
        meta = flow.match.get("metadata")
        assert meta is None or meta.value not in (red.tag, blue.tag)
    assert set(state.ports) == {"port-g1"}
    assert set(state.networks) == {"net-green"}


def test_unregistered_host_ports_are_not_tunnelled_to(world: World) -> None:
    r1 = P(world, "r1")
    world.port("r4", world.topo.networks["net-red"], "h9", "fa:16:3e:00:00:44", "10.0.0.44")
    reached = world.send(r1, ipv4(r1.mac_address, "fa:16:3e:00:00:44", "10.0.0.11", "10.0.0.44"))
    assert all(host != "h9" for host, _ in reached)


def test_every_flow_fits_the_pipeline_and_has_an_owner(world: World) -> None:
    for host in ("h1", "h2", "h3"):
        for flow in world.flows(host):
            check_flow(flow)
            kind, tag = split_cookie(flow.cookie)
            if kind is CookieKind.PORT:
                assert any(p.tag == tag for p in world.topo.ports.values())
            elif kind is CookieKind.NETWORK:
                assert any(n.tag == tag for n in world.topo.networks.values())


def test_pipeline_rejects_flows_that_do_not_fit() -> None:
    with pytest.raises(PipelineError, match="does not match on"):
        check_flow(Flow(0, 1, Match.of(eth_dst="fa:16:3e:00:00:01")))
    with pytest.raises(PipelineError, match="may not continue"):
        check_flow(Flow(50, 1, Match.of(metadata=1), goto=10))
    with pytest.raises(PipelineError, match="may not continue"):
        check_flow(Flow(50, 1, Match.of(metadata=1), (Resubmit(10),)))
    with pytest.raises(PipelineError, match="not declared"):
        check_flow(Flow(99, 1))


def test_simulator_refuses_ambiguous_tables() -> None:
    table = FlowTable([Flow(0, 5, Match.of(in_port=1), goto=10), Flow(0, 5, Match.of(eth_type=0x800))])
    from controller.compiler.simulator import SimulationError

    with pytest.raises(SimulationError, match="ambiguous"):
        table.process({"eth_type": 0x800}, 1)


def test_flows_per_extra_port(world: World) -> None:
    red = world.topo.networks["net-red"]
    before = len(world.flows("h1"))
    world.port("r5", red, "h1", "fa:16:3e:00:00:55", "10.0.0.55")
    added = len(world.flows("h1")) - before
    # 7 of L2 (classify, 3 port security, ARP responder, L2 entry, delivery) and 4 of its security group
    # (allow all: two conntrack entries, one rule per direction).
    assert added <= 11, added
