"""Security groups, checked against a reference: random groups, rules, members and packets, two hosts.

The compiled tables of both hosts run in the simulator (OVS's userspace
conntrack ported), connection tables kept across packets and across rule
changes, exactly as a switch keeps them while the agent swaps flows. Every
packet's fate there must equal the verdict of ``secgroup_reference`` (the
API's semantics, no flows): new connections, their replies and further
requests, ICMP errors about them (related) and about nothing (invalid),
out-of-state TCP (lone ACK, RST, FIN+ACK: allowed like a new request; SYN+ACK
and a bare FIN: dropped), while rules come and go and ports change groups.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from controller.compiler.sim.fabric import Fabric
from controller.compiler.sim.packet import (
    ACK,
    FIN,
    ICMP_DEST_UNREACH,
    PSH,
    RST,
    SYN,
    Packet,
    icmp_echo,
    icmp_error,
    tcp,
    udp,
)
from controller.model import Port
from dataplane.contract.fields import IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP, ipv4_to_int
from tests.unit.compiler_world import World
from tests.unit.secgroup_reference import Reference, RefPort, RefRule

GROUPS = ("g0", "g1", "g2")
HOSTS = {"h1": "198.51.100.1", "h2": "198.51.100.2"}
# name, host, fixed IP, allowed address pair (or ""), port security
PORTS = (
    ("p0", "h1", "10.0.0.10", "", True),
    ("p1", "h1", "10.0.0.11", "10.0.0.128/25", True),
    ("p2", "h2", "10.0.0.12", "", True),
    ("p3", "h2", "10.0.0.13", "", True),
    ("p4", "h2", "10.0.0.14", "", False),
)
PROTOCOLS = {"any": 0, "tcp": IP_PROTO_TCP, "udp": IP_PROTO_UDP, "icmp": IP_PROTO_ICMP}

rules = st.builds(
    lambda direction, proto, ports, icmp, remote: _rule(direction, proto, ports, icmp, remote),
    st.sampled_from(("ingress", "ingress", "egress")),
    st.sampled_from(tuple(PROTOCOLS)),
    st.sampled_from((None, (22, 22), (1000, 1999), (1500, 2500))),
    st.sampled_from((None, (8, None), (8, 0), (0, None))),
    st.sampled_from(("", "10.0.0.0/24", "10.0.0.10/31", "10.0.0.200/32", "g0", "g1", "g2")),
)


def _rule(direction: str, proto: str, ports: tuple[int, int] | None, icmp: tuple | None, remote: str) -> RefRule:
    number = PROTOCOLS[proto]
    lo, hi = ports if ports and number in (IP_PROTO_TCP, IP_PROTO_UDP) else (None, None)
    itype, icode = icmp if icmp and number == IP_PROTO_ICMP else (None, None)
    group = remote if remote.startswith("g") else ""
    prefix = "" if group else remote
    return RefRule(direction, number, lo, hi, itype, icode, prefix, group)


@dataclass
class Conversation:
    """One connection a test plays: its first packet and what each side sends next."""

    src: str
    dst: str
    first: Packet
    client_seq: int
    server_seq: int = 0
    replies: int = 0
    requests: int = 1


class Harness:
    """The world (compiled and simulated) and the reference, changed together."""

    def __init__(self, group_rules: dict[str, list[RefRule]], memberships: dict[str, tuple[str, ...]]) -> None:
        self.world = World()
        self.ref = Reference()
        for host, ip in HOSTS.items():
            self.world.host(host, ip)
        net = self.world.network("red", vni=1001)
        for g in GROUPS:
            self.world.security_group(g)
        self.rule_ids: dict[tuple[str, RefRule], str] = {}
        self.removed: list[tuple[str, RefRule]] = []
        self.ref.rules = {g: [] for g in GROUPS}
        for g, rs in group_rules.items():
            for r in rs:
                self.add_rule(g, r, recompile=False)
        self.ports: dict[str, Port] = {}
        for i, (name, host, ip, pair, secure) in enumerate(PORTS):
            groups = memberships.get(name, ()) if secure else ()
            fields: dict[str, object] = {"security_groups": groups, "port_security_enabled": secure}
            if pair:
                from controller.model import AddressPair

                fields["allowed_address_pairs"] = (AddressPair(pair),)
            self.ports[name] = self.world.port(name, net, host, f"fa:16:3e:00:00:{i + 1:02x}", ip, **fields)
            addresses = (f"{ip}/32", *((pair,) if pair else ()))
            self.ref.ports[name] = RefPort(addresses, groups, secure)
        self.fabric = Fabric()
        self.recompile()
        self.conversations: list[Conversation] = []
        self._ids = itertools.count(20000)
        self.last = False  # the verdict of the last packet sent

    # ------------------------------------------------------------ changes

    def recompile(self) -> None:
        for host, ip in HOSTS.items():
            flows = self.world.flows(host)
            # The agent's diff key: two flows sharing it would silently leave only one in the switch.
            keys = [f.key for f in flows]
            assert len(keys) == len(set(keys)), f"{host}: two compiled flows share (table, priority, match)"
            self.fabric.add_host(host, ip, flows)  # the connection table stays

    def add_rule(self, group: str, rule: RefRule, recompile: bool = True) -> None:
        if rule in self.ref.rules[group]:
            return
        fields: dict[str, object] = {"protocol": {0: ""}.get(rule.protocol, str(rule.protocol))}
        for name in ("port_min", "port_max", "icmp_type", "icmp_code"):
            value = getattr(rule, name)
            if value is not None:
                fields[{"port_min": "port_range_min", "port_max": "port_range_max"}.get(name, name)] = value
        if rule.prefix:
            fields["remote_ip_prefix"] = rule.prefix
        if rule.remote_group:
            fields["remote_group_id"] = rule.remote_group
        created = self.world.rule(group, rule.direction, **fields)
        self.rule_ids[(group, rule)] = created.id
        self.ref.rules[group].append(rule)
        if recompile:
            self.recompile()

    def remove_rule(self, group: str, index: int) -> None:
        rules = self.ref.rules[group]
        if not rules:
            return
        rule = rules.pop(index % len(rules))
        self.world.topo.delete("security_group_rule", self.rule_ids.pop((group, rule)))
        self.removed.append((group, rule))
        self.recompile()

    def restore_rule(self, index: int) -> None:
        """Put back a rule removed earlier: what it had blocked must come back to life, both ways."""
        if self.removed:
            group, rule = self.removed.pop(index % len(self.removed))
            self.add_rule(group, rule)

    def set_groups(self, name: str, groups: tuple[str, ...]) -> None:
        if not self.ref.ports[name].filtered:
            return
        self.world.topo.put(replace(self.world.topo.ports[f"port-{name}"], security_groups=groups))
        self.ref.ports[name].groups = groups
        self.recompile()

    # ------------------------------------------------------------ packets

    def send(self, src: str, dst: str, pkt: Packet) -> None:
        s, d = self.ports[src], self.ports[dst]
        deliveries = self.fabric.send(s.binding_host_id, s.binding_ofport, pkt)
        got = {(x.host, x.port) for x in deliveries}
        assert got <= {(d.binding_host_id, d.binding_ofport)}, f"{src}->{dst} leaked to {got}"
        simulated = bool(got)
        expected = self.last = self.ref.delivered(src, dst, pkt)
        assert simulated == expected, (
            f"{src}->{dst} {_describe(pkt)}: simulator {'delivers' if simulated else 'drops'}, "
            f"reference {'delivers' if expected else 'drops'}"
        )

    def packet(self, src: str, dst: str, proto: str, dport: int, source_ip: str, flags: int = SYN) -> Packet:
        s, d = self.ports[src], self.ports[dst]
        sip = source_ip or s.ips[0]
        sport = next(self._ids)
        if proto == "tcp":
            return tcp(s.mac_address, d.mac_address, sip, d.ips[0], sport, dport, flags, seq=1000)
        if proto == "udp":
            return udp(s.mac_address, d.mac_address, sip, d.ips[0], sport, dport)
        if proto == "icmp":
            return icmp_echo(s.mac_address, d.mac_address, sip, d.ips[0], ident=sport)
        raise ValueError(proto)

    def open(self, src: str, dst: str, proto: str, dport: int, source_ip: str) -> None:
        pkt = self.packet(src, dst, proto, dport, source_ip)
        self.conversations.append(Conversation(src, dst, pkt, client_seq=1001))
        self.send(src, dst, pkt)

    def reply(self, c: Conversation) -> None:
        pkt = _swap(c.first, self.ports[c.dst], self.ports[c.src])
        proto = c.first["ip_proto"]
        if proto == IP_PROTO_TCP:
            if not c.replies:
                c.server_seq = 5000
                pkt.update(tcp_flags=SYN | ACK, tcp_seq=c.server_seq, tcp_ack=1001)
                c.server_seq += 1
            else:
                pkt.update(tcp_flags=ACK, tcp_seq=c.server_seq, tcp_ack=c.client_seq)
        elif proto == IP_PROTO_ICMP:
            pkt.update(icmpv4_type=0, icmp_seq=c.requests)
        c.replies += 1
        self.send(c.dst, c.src, pkt)

    def again(self, c: Conversation) -> None:
        pkt = dict(c.first)
        proto = pkt["ip_proto"]
        if proto == IP_PROTO_TCP:
            if c.replies:
                pkt.update(tcp_flags=ACK | PSH, tcp_seq=c.client_seq, tcp_ack=c.server_seq, l4_payload=10)
                c.client_seq += 10
            # else: the SYN again, a retransmission
        elif proto == IP_PROTO_ICMP:
            pkt["icmp_seq"] = c.requests + 1
        c.requests += 1
        self.send(c.src, c.dst, pkt)

    def error(self, c: Conversation) -> None:
        """The destination answers the conversation's request with an ICMP error (port unreachable)."""
        d, s = self.ports[c.dst], self.ports[c.src]
        pkt = icmp_error(d.mac_address, s.mac_address, d.ips[0], c.first, icmp_type=ICMP_DEST_UNREACH, code=3)
        self.send(c.dst, c.src, pkt)

    def stray(self, src: str, dst: str, kind: str, source_ip: str) -> None:
        """Out-of-state packets: TCP that opens nothing, an echo reply to nothing, an error about nothing."""
        if kind == "echo-reply":
            pkt = self.packet(src, dst, "icmp", 0, source_ip)
            pkt["icmpv4_type"] = 0
        elif kind == "error":
            s, d = self.ports[src], self.ports[dst]
            about = udp(d.mac_address, s.mac_address, d.ips[0], source_ip or s.ips[0], next(self._ids), 53)
            pkt = icmp_error(s.mac_address, d.mac_address, source_ip or s.ips[0], about)
        else:
            flags = {"ack": ACK, "rst": RST, "fin-ack": FIN | ACK, "syn-ack": SYN | ACK, "fin": FIN}[kind]
            pkt = self.packet(src, dst, "tcp", 22, source_ip, flags)
            pkt["tcp_ack"] = 77777 if flags & ACK else 0
        self.send(src, dst, pkt)


def _swap(pkt: Packet, sender: Port, receiver: Port) -> Packet:
    out = dict(pkt)
    out["eth_src"], out["eth_dst"] = pkt["eth_dst"], pkt["eth_src"]
    out["ipv4_src"], out["ipv4_dst"] = pkt["ipv4_dst"], pkt["ipv4_src"]
    for l4 in ("tcp", "udp"):
        if f"{l4}_src" in pkt:
            out[f"{l4}_src"], out[f"{l4}_dst"] = pkt[f"{l4}_dst"], pkt[f"{l4}_src"]
    return out


def _describe(pkt: Packet) -> str:
    from dataplane.contract.fields import int_to_ipv4

    proto = pkt["ip_proto"]
    text = f"{int_to_ipv4(pkt['ipv4_src'])}->{int_to_ipv4(pkt['ipv4_dst'])} proto {proto}"
    if proto == IP_PROTO_TCP:
        text += f" {pkt['tcp_src']}->{pkt['tcp_dst']} flags {pkt.get('tcp_flags', 0):#x}"
    elif proto == IP_PROTO_UDP:
        text += f" {pkt['udp_src']}->{pkt['udp_dst']}"
    else:
        text += f" type {pkt.get('icmpv4_type')}"
    return text


NAMES = tuple(p[0] for p in PORTS)
pairs = st.sampled_from([(a, b) for a in NAMES for b in NAMES if a != b])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Most groups let everything out (as a new Neutron group does), so ingress rules decide most verdicts.
    group_rules=st.fixed_dictionaries(
        {
            g: st.tuples(st.booleans() | st.just(True), st.lists(rules, max_size=4, unique=True)).map(
                lambda t: [RefRule("egress")] * t[0] + [r for r in t[1] if not (t[0] and r == RefRule("egress"))]
            )
            for g in GROUPS
        }
    ),
    memberships=st.fixed_dictionaries(
        {p[0]: st.lists(st.sampled_from(GROUPS), min_size=1, max_size=2, unique=True).map(tuple) for p in PORTS}
    ),
    data=st.data(),
)
def test_simulated_tables_agree_with_the_reference(
    group_rules: dict[str, list[RefRule]], memberships: dict[str, tuple[str, ...]], data: st.DataObject
) -> None:
    h = Harness(group_rules, memberships)
    for _ in range(data.draw(st.integers(min_value=5, max_value=40), label="steps")):
        op = data.draw(st.sampled_from(("open", "open", "open", "reply", "reply", "again", "error", "stray", "mutate")))
        if op == "open" or (op in ("reply", "again", "error") and not h.conversations):
            src, dst = data.draw(pairs)
            proto = data.draw(st.sampled_from(("tcp", "udp", "icmp")))
            dport = data.draw(st.sampled_from((22, 1234, 1600, 2222, 80)))
            # p1 may send from an address of its allowed address pair too.
            source_ip = data.draw(st.sampled_from(("", "10.0.0.200"))) if src == "p1" else ""
            h.open(src, dst, proto, dport, source_ip)
        elif op == "reply":
            h.reply(data.draw(st.sampled_from(h.conversations)))
        elif op == "again":
            h.again(data.draw(st.sampled_from(h.conversations)))
        elif op == "error":
            h.error(data.draw(st.sampled_from(h.conversations)))
        elif op == "stray":
            src, dst = data.draw(pairs)
            kind = data.draw(st.sampled_from(("ack", "rst", "fin-ack", "syn-ack", "fin", "echo-reply", "error")))
            h.stray(src, dst, kind, "")
        else:
            what = data.draw(st.sampled_from(("add", "remove", "remove", "restore", "groups")))
            group = data.draw(st.sampled_from(GROUPS))
            if what == "add":
                h.add_rule(group, data.draw(rules))
            elif what == "restore":
                h.restore_rule(data.draw(st.integers(min_value=0, max_value=5)))
            elif what == "remove":
                h.remove_rule(group, data.draw(st.integers(min_value=0, max_value=5)))
            else:
                name = data.draw(st.sampled_from(NAMES))
                h.set_groups(name, tuple(data.draw(st.lists(st.sampled_from(GROUPS), max_size=2, unique=True))))


def test_source_address_of_an_allowed_pair_counts_as_member() -> None:
    """A remote-group rule admits a member's allowed-address-pair address, and nothing outside it."""
    rule = RefRule("ingress", IP_PROTO_UDP, remote_group="g0")
    h = Harness({"g1": [rule], "g0": [RefRule("egress")]}, {"p1": ("g0",), "p2": ("g1",), "p0": ("g0",)})
    h.open("p1", "p2", "udp", 53, "10.0.0.200")  # from the pair's prefix
    h.open("p1", "p2", "udp", 53, "")
    assert ipv4_to_int("10.0.0.200")  # (the assertions are inside send: simulator == reference)
