"""Security groups, compiled and simulated: the behaviours a Neutron user relies on, one scenario each.

Each scenario also runs through the reference evaluator (``Harness.send``
asserts simulator == reference), and states the expected outcome itself.
"""

from __future__ import annotations

from dataclasses import replace

from controller.compiler.host import compile_host
from controller.compiler.secgroups import PRIO_CONJ, port_range_masks
from controller.compiler.sim.packet import ACK, PSH, SYN, arp_request, dhcp_discover, icmp_echo, tcp, udp
from controller.compiler.sim.switch import CtEvent
from controller.compiler.topology import Topology
from controller.model import AddressPair, FixedIP, Port, SecurityGroup, SecurityGroupRule
from dataplane.common.constants import METADATA_IP
from dataplane.contract.cookie import CookieKind, split_cookie
from dataplane.contract.fields import IP_PROTO_TCP, IP_PROTO_UDP
from dataplane.contract.flow import Conjunction, CtClear
from tests.unit.compiler_world import World
from tests.unit.secgroup_reference import RefRule
from tests.unit.test_secgroups_reference import Harness

EGRESS_ALL = RefRule("egress")


def syn(h: Harness, src: str, dst: str, dport: int, sport: int = 40000) -> dict:
    s, d = h.ports[src], h.ports[dst]
    return tcp(s.mac_address, d.mac_address, s.ips[0], d.ips[0], sport, dport, SYN, seq=1000)


def answer(pkt: dict, flags: int, seq: int, ack: int, payload: int = 0) -> dict:
    out = dict(pkt)
    out["eth_src"], out["eth_dst"] = pkt["eth_dst"], pkt["eth_src"]
    out["ipv4_src"], out["ipv4_dst"] = pkt["ipv4_dst"], pkt["ipv4_src"]
    out["tcp_src"], out["tcp_dst"] = pkt["tcp_dst"], pkt["tcp_src"]
    out.update(tcp_flags=flags, tcp_seq=seq, tcp_ack=ack, l4_payload=payload)
    return out


def onward(pkt: dict, flags: int, seq: int, ack: int, payload: int = 0) -> dict:
    return {**pkt, "tcp_flags": flags, "tcp_seq": seq, "tcp_ack": ack, "l4_payload": payload}


def send(h: Harness, src: str, dst: str, pkt: dict) -> bool:
    h.send(src, dst, pkt)
    return h.last


# ---------------------------------------------------------------- Neutron's default group


def default_group_harness() -> Harness:
    rules = {"g0": [EGRESS_ALL, RefRule("ingress", remote_group="g0")], "g1": [EGRESS_ALL, RefRule("ingress")]}
    return Harness(rules, {"p0": ("g0",), "p1": ("g0",), "p2": ("g0",), "p3": ("g1",)})


def test_default_group_members_reach_each_other_others_are_refused_egress_is_open() -> None:
    h = default_group_harness()
    for src, dst in (("p0", "p2"), ("p2", "p1"), ("p0", "p1")):  # across hosts and on one host
        first = syn(h, src, dst, 22)
        assert send(h, src, dst, first), f"{src} -> {dst}"
        assert send(h, dst, src, answer(first, SYN | ACK, 5000, 1001)), f"{dst} -> {src} reply"
    assert not send(h, "p3", "p0", syn(h, "p3", "p0", 22)), "a non-member got in"
    first = syn(h, "p0", "p3", 80, sport=40001)
    assert send(h, "p0", "p3", first), "egress is open (and p3 accepts anything)"
    assert send(h, "p3", "p0", answer(first, SYN | ACK, 5000, 1001)), "the reply of an allowed connection"


# ---------------------------------------------------------------- rule changes on open connections


def established(h: Harness, src: str, dst: str, dport: int, sport: int) -> tuple[dict, dict]:
    first = syn(h, src, dst, dport, sport)
    assert send(h, src, dst, first)
    synack = answer(first, SYN | ACK, 5000, 1001)
    assert send(h, dst, src, synack)
    ack = onward(first, ACK, 1001, 5001)
    assert send(h, src, dst, ack)
    return ack, answer(first, ACK, 5001, 1001)


def test_removing_one_of_two_allowing_rules_changes_nothing_removing_the_last_cuts_both_ways() -> None:
    wide, narrow = RefRule("ingress", IP_PROTO_TCP), RefRule("ingress", IP_PROTO_TCP, 5201, 5201, prefix="10.0.0.0/24")
    h = Harness({"g0": [EGRESS_ALL], "g1": [EGRESS_ALL, wide, narrow]}, {"p0": ("g0",), "p2": ("g1",)})
    request, response = established(h, "p0", "p2", 5201, 41000)
    h.remove_rule("g1", 1)  # wide goes; narrow still allows the connection
    assert send(h, "p0", "p2", onward(request, ACK | PSH, 1001, 5001, 100))
    assert send(h, "p2", "p0", onward(response, ACK, 5001, 1101))
    h.remove_rule("g1", 1)  # the last allowing rule
    assert not send(h, "p0", "p2", onward(request, ACK | PSH, 1101, 5001, 100)), "the request must stop"
    assert not send(h, "p2", "p0", onward(response, ACK | PSH, 5001, 1101, 100)), "and so must the replies"


def test_a_blocked_connection_comes_back_with_its_rule() -> None:
    rule = RefRule("ingress", IP_PROTO_TCP, 5201, 5201)
    h = Harness({"g0": [EGRESS_ALL], "g1": [EGRESS_ALL, rule]}, {"p0": ("g0",), "p2": ("g1",)})
    request, response = established(h, "p0", "p2", 5201, 41001)
    h.remove_rule("g1", 1)
    assert not send(h, "p0", "p2", onward(request, ACK | PSH, 1001, 5001, 100))
    assert not send(h, "p2", "p0", onward(response, ACK, 5001, 1001))
    h.restore_rule(0)
    assert send(h, "p0", "p2", onward(request, ACK | PSH, 1001, 5001, 100)), "retransmitted, allowed again"
    assert send(h, "p2", "p0", onward(response, ACK, 5001, 1101)), "its replies pass again"


def test_unrelated_rule_changes_leave_open_connections_alone() -> None:
    rule = RefRule("ingress", IP_PROTO_TCP, 22, 22)
    h = Harness({"g0": [EGRESS_ALL], "g1": [EGRESS_ALL, rule]}, {"p0": ("g0",), "p2": ("g1",)})
    request, response = established(h, "p0", "p2", 22, 41002)
    h.add_rule("g1", RefRule("ingress", IP_PROTO_UDP, 53, 53))
    h.remove_rule("g1", 2)
    h.set_groups("p3", ("g1", "g0"))
    assert send(h, "p0", "p2", onward(request, ACK | PSH, 1001, 5001, 100))
    assert send(h, "p2", "p0", onward(response, ACK, 5001, 1101))


# ---------------------------------------------------------------- remote groups: conjunctions


def test_overlapping_port_ranges_from_two_remote_groups_both_work_merged_into_one_flow() -> None:
    # 2000-2100 and 2048-2100 share the masks of 2048-2100: identical dimension flows, two conj ids.
    from_g0 = RefRule("ingress", IP_PROTO_TCP, 2000, 2100, remote_group="g0")
    from_g1 = RefRule("ingress", IP_PROTO_TCP, 2048, 2100, remote_group="g1")
    rules = {"g0": [EGRESS_ALL], "g1": [EGRESS_ALL], "g2": [EGRESS_ALL, from_g0, from_g1]}
    h = Harness(rules, {"p0": ("g0",), "p1": ("g1",), "p3": ("g0", "g1"), "p2": ("g2",)})
    for src, sport in (("p0", 42000), ("p1", 42001), ("p3", 42002)):
        assert send(h, src, "p2", syn(h, src, "p2", 2050, sport)), f"{src} -> 2050"
    assert send(h, "p0", "p2", syn(h, "p0", "p2", 2010, 42003))
    assert not send(h, "p1", "p2", syn(h, "p1", "p2", 2010, 42004)), "2010 is g0's only"
    flows = h.world.flows("h2")
    dims = [f for f in flows if f.priority == PRIO_CONJ and f.actions and isinstance(f.actions[0], Conjunction)]
    merged = [f for f in dims if len(f.actions) == 2]
    assert merged, "the shared dimension flows carry both conjunctions in one flow"
    keys = [f.key for f in flows]
    assert len(keys) == len(set(keys))
    # p3 is a member of both groups: one address flow, both conj ids.
    p3 = h.ports["p3"].ips[0]
    by_address = [f for f in dims if (m := f.match.get("ipv4_src")) is not None and m.value == _ip(p3)]
    assert len(by_address) == 1 and len(by_address[0].actions) == 2


def _ip(text: str) -> int:
    from dataplane.contract.fields import ipv4_to_int

    return ipv4_to_int(text)


def test_member_flows_only_on_hosts_with_a_port_that_references_the_group() -> None:
    rules = {"g0": [EGRESS_ALL], "g1": [EGRESS_ALL, RefRule("ingress", remote_group="g0")]}
    h = Harness(rules, {"p0": ("g0",), "p1": ("g0",), "p2": ("g1",), "p3": ("g0",)})
    kinds = {host: {split_cookie(f.cookie)[0] for f in h.world.flows(host)} for host in ("h1", "h2")}
    assert CookieKind.SG_ADDRESS in kinds["h2"], "p2 on h2 references g0"
    assert CookieKind.SG_ADDRESS not in kinds["h1"], "nobody on h1 references a group"
    h.set_groups("p2", ("g0",))
    assert CookieKind.SG_ADDRESS not in {split_cookie(f.cookie)[0] for f in h.world.flows("h2")}


# ---------------------------------------------------------------- local traffic, exemptions, no port security


def test_two_vms_on_one_host_the_destinations_ingress_rules_hold() -> None:
    h = Harness({"g0": [EGRESS_ALL], "g1": [EGRESS_ALL, RefRule("ingress", IP_PROTO_TCP, 22, 22)]}, {})
    h.set_groups("p0", ("g0",))
    h.set_groups("p1", ("g1",))
    assert send(h, "p0", "p1", syn(h, "p0", "p1", 22, 43000))
    assert not send(h, "p0", "p1", syn(h, "p0", "p1", 80, 43001))
    p0, p1 = h.ports["p0"], h.ports["p1"]
    assert not send(h, "p0", "p1", icmp_echo(p0.mac_address, p1.mac_address, p0.ips[0], p1.ips[0], ident=7))


def test_a_port_without_port_security_passes_everything_and_sees_no_conntrack() -> None:
    h = Harness({"g0": [EGRESS_ALL, RefRule("ingress")]}, {"p3": ("g0",)})
    p3, p4 = h.ports["p3"], h.ports["p4"]  # both on h2; p4 has port security off
    spoofed = udp(p4.mac_address, p3.mac_address, "10.9.9.9", p3.ips[0], 5000, 53)
    assert send(h, "p4", "p3", spoofed), "no anti-spoofing, and p3 lets anything in"
    # p3 -> p4 on one host: tracked in p3's zone on the way out, and p4's side must not judge that state.
    to_p4 = udp(p3.mac_address, p4.mac_address, p3.ips[0], p4.ips[0], 5001, 9)
    trace = h.fabric.trace("h2", p3.binding_ofport, to_p4)
    (hop,) = trace.hops
    assert {e.zone for e in hop.trace.events if isinstance(e, CtEvent)} == {p3.binding_ofport}
    hit = [f for f in hop.trace.hits if f.table in (55, 60, 61)]
    assert any(f.table == 55 and any(isinstance(a, CtClear) for a in f.actions) for f in hit), "no ct_clear"
    assert not [f for f in hit if f.table in (60, 61) and "ct_state" in f.match], "judged by p3's conntrack state"
    assert [d.port for d in trace.deliveries] == [p4.binding_ofport]


def test_dhcp_arp_and_metadata_work_whatever_the_rules() -> None:
    world = World()
    world.host("h1", "198.51.100.1")
    net = world.network("red", vni=1001)
    world.security_group("none")  # no rule at all: every other packet is dropped
    vm = world.port("vm", net, "h1", "fa:16:3e:00:00:01", "10.0.0.11", security_groups=("none",))
    peer = world.port("peer", net, "h1", "fa:16:3e:00:00:02", "10.0.0.12")
    fabric = world.fabric()
    lp = world.localport_ofport(net.id)
    send_vm = lambda pkt: {(d.host, d.port) for d in fabric.send("h1", vm.binding_ofport, pkt)}  # noqa: E731
    assert send_vm(dhcp_discover(vm.mac_address)) == {("h1", lp)}
    dhcp_port = world.topo.dhcp_ports[net.id]
    offer = udp(dhcp_port.mac_address, vm.mac_address, dhcp_port.ips[0], "10.0.0.11", 67, 68)
    assert {d.port for d in fabric.send("h1", lp, offer)} == {vm.binding_ofport}
    # Metadata: the request leaves, the localport's answer comes back (a reply of a committed connection).
    request = tcp(vm.mac_address, dhcp_port.mac_address, "10.0.0.11", METADATA_IP, 45000, 80, SYN)
    assert send_vm(request) == {("h1", lp)}
    back = answer(request, SYN | ACK, 9000, 1001)
    assert {d.port for d in fabric.send("h1", lp, back)} == {vm.binding_ofport}
    # Everything else obeys the (empty) rules, both ways.
    assert not send_vm(udp(vm.mac_address, peer.mac_address, "10.0.0.11", "10.0.0.12", 1, 2))
    inbound = udp(peer.mac_address, vm.mac_address, "10.0.0.12", "10.0.0.11", 3, 4)
    assert not fabric.send("h1", peer.binding_ofport, inbound)
    assert send_vm(arp_request(vm.mac_address, "10.0.0.11", "10.0.0.12")), "ARP is never filtered"


# ---------------------------------------------------------------- flow counts


def default_group_world(ports: int) -> tuple[World, Topology]:
    world = World()
    world.host("h1", "198.51.100.1")
    world.host("h2", "198.51.100.2")
    net = world.network("red", vni=1001, cidr="10.0.0.0/16")
    world.security_group("default")
    world.rule("default", "egress")
    world.rule("default", "ingress", remote_group_id="default")
    world.port("far", net, "h2", "fa:16:3e:00:ff:ff", "10.0.255.1", security_groups=("default",))
    for i in range(ports):
        world.port(
            f"vm{i}",
            net,
            "h1",
            f"fa:16:3e:00:{i >> 8:02x}:{i & 0xFF:02x}",
            f"10.0.{i >> 8}.{(i & 0xFF) + 2}",
            security_groups=("default",),
        )
    return world, world.topo


def test_flows_per_port_with_the_default_group_are_at_most_14_and_linear() -> None:
    counts = {n: len(compile_host(default_group_world(n)[1], "h1").flows()) for n in (10, 50, 100)}
    per_port = (counts[100] - counts[10]) / 90
    assert per_port == (counts[50] - counts[10]) / 40, f"not linear: {counts}"
    # Compiled flows only; the agent adds 2 per port (classify by in_port, delivery).
    assert per_port + 2 <= 14, f"{per_port + 2} flows per port"


def test_port_range_masks_cover_exactly_the_range() -> None:
    for low, high in ((22, 22), (1000, 1999), (1, 65535), (0, 65535), (80, 81), (1024, 65535), (3, 4097)):
        covered = set()
        for value, mask in port_range_masks(low, high):
            covered |= {p for p in range(65536) if p & mask == value}
        assert covered == (set() if (low <= 1 and high == 65535) else set(range(low, high + 1)))


def test_unknown_remote_group_or_ipv6_rule_compiles_to_nothing() -> None:
    topo = Topology()
    topo.put(SecurityGroup(id="g", tag=1))
    topo.put(SecurityGroupRule(id="r1", tag=2, security_group_id="g", direction="ingress", remote_group_id="gone"))
    topo.put(SecurityGroupRule(id="r2", tag=3, security_group_id="g", direction="ingress", ethertype="IPv6"))
    port = Port(
        id="p",
        tag=4,
        network_id="n",
        mac_address="fa:16:3e:00:00:01",
        fixed_ips=(FixedIP("s", "10.0.0.5"),),
        binding_host_id="h1",
        binding_ofport=100,
        security_groups=("g",),
        allowed_address_pairs=(AddressPair("10.0.1.0/24"),),
    )
    topo.put(port)
    from controller.compiler.secgroups import port_flows

    flows = port_flows(topo, "p", "h1")
    assert len(flows) == 2, [f.text() for f in flows]  # the two conntrack entries, no rule
    topo.put(replace(port, port_security_enabled=False, security_groups=()))
    assert port_flows(topo, "p", "h1") == ()


def test_the_trace_names_the_rule_the_remote_group_and_why_a_packet_dropped() -> None:
    from controller.compiler.trace import build_packet, trace_from_port

    h = default_group_harness()
    topo = h.world.topo
    p0, p2, p3 = (topo.ports[f"port-{n}"] for n in ("p0", "p2", "p3"))
    allowed = trace_from_port(topo, p0, build_packet(topo, p0, "tcp", dst=p2, dst_port=22))
    assert [d.port_name for d in allowed.deliveries] == ["p2"]
    owners = [s.owner for hop in allowed.hops for s in hop.steps]
    assert any(o.startswith("security groups of port p0: rule ") and "of group g0" in o for o in owners)
    assert "security group g0 as remote group, ingress rules" in owners
    refused = trace_from_port(topo, p3, build_packet(topo, p3, "tcp", dst=p0, dst_port=22))
    assert not refused.deliveries
    assert (
        refused.hops[-1].drop_reason
        == "security groups: no rule of the port's security groups allows it (default deny)"
    )
