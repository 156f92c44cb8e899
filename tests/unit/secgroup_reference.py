"""A reference evaluator of security-group semantics, written from the API's definition, with no flows.

It answers "is this packet from port S delivered to port D?" for packets
between filtered ports (port security on) and unfiltered ones, keeping, per
filtered port, the connections that port has seen — the way a user reasons
about security groups, not the way OVS implements them:

* A port with port security off is not filtered at all.
* Each filtered port keeps its own connections (a zone of its own). A packet
  leaving S is judged by S's egress rules, arriving at D by D's ingress rules.
* A packet of a connection the port knows, in the reply direction, passes
  unless the connection is blocked. An ICMP error about a connection the port
  knows is *related* and passes unless it is blocked; an ICMP error about
  nothing the port knows is invalid and dropped, as is an echo reply to no
  request and a TCP segment no connection can start with (SYN+ACK, a FIN
  without ACK, SYN with RST or FIN).
* Every request-direction packet is judged by the current rules: allowed, it
  passes (and a new connection is remembered; a blocked one is unblocked);
  not allowed, it is dropped, and if its connection is established the
  connection becomes blocked, so its replies drop as well.
* A rule allows a packet when its direction, protocol (any, or equal), port
  range (tcp/udp destination port), ICMP type/code and remote side all match.
  The remote side is the packet's source for ingress and destination for
  egress: inside the rule's prefix, or, for a remote-group rule, inside one of
  the member addresses of the group (the fixed IPs and allowed address pairs
  of its filtered ports).

"Established" is conntrack's notion, which rule changes expose: a UDP or ICMP
connection once a reply was seen; a TCP connection for any segment but a
pure SYN (a retransmitted SYN is still "new").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.compiler.sim.packet import ACK, FIN, RST, SYN, Packet
from dataplane.contract.fields import IP_PROTO_ICMP, IP_PROTO_TCP, IP_PROTO_UDP, int_to_ipv4

ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


@dataclass(frozen=True)
class RefRule:
    direction: str
    protocol: int = 0  # 0: any
    port_min: int | None = None
    port_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    prefix: str = ""  # "": anywhere
    remote_group: str = ""


@dataclass
class RefPort:
    addresses: tuple[str, ...]  # CIDRs the port may send from: fixed IPs (/32) and allowed address pairs
    groups: tuple[str, ...] = ()
    filtered: bool = True  # port security on


# A connection as a port sees it: (protocol, (address, port or ICMP id), (address, port or ICMP id)).
Key = tuple[int, tuple[int, int], tuple[int, int]]


@dataclass
class RefConn:
    key: Key  # in the direction of its first packet
    replied: bool = False
    blocked: bool = False


@dataclass
class Reference:
    ports: dict[str, RefPort] = field(default_factory=dict)
    rules: dict[str, list[RefRule]] = field(default_factory=dict)  # group -> its rules
    conns: dict[str, dict[Key, RefConn]] = field(default_factory=dict)  # port -> what it has seen

    # ------------------------------------------------------------ the verdict

    def delivered(self, src: str, dst: str, pkt: Packet) -> bool:
        """Does ``pkt``, sent by port ``src`` to port ``dst``, arrive? (Updates what the ports remember.)"""
        return self._judge(src, "egress", pkt) and self._judge(dst, "ingress", pkt)

    def _judge(self, port_name: str, direction: str, pkt: Packet) -> bool:
        port = self.ports[port_name]
        if not port.filtered:
            return True
        seen = self.conns.setdefault(port_name, {})
        proto = pkt["ip_proto"]
        if proto == IP_PROTO_ICMP and pkt.get("icmpv4_type") in ICMP_ERRORS:
            quoted = _quoted_key(pkt)
            conn = seen.get(quoted) or seen.get(_reverse(quoted)) if quoted else None
            return conn is not None and not conn.blocked  # related, or about nothing known: invalid
        key = _key(pkt)
        conn = seen.get(key)
        if conn is None and (back := seen.get(_reverse(key))) is not None:
            if back.blocked:
                return False
            back.replied = True  # a reply of a known connection
            return True
        allowed = self.allows(port, direction, pkt)
        if conn is None:
            if not _may_start(pkt):
                return False
            if allowed:
                seen[key] = RefConn(key)
            return allowed
        if allowed:
            conn.blocked = False
            return True
        if _established(conn, pkt):
            conn.blocked = True
        return False

    # ------------------------------------------------------------ rules

    def allows(self, port: RefPort, direction: str, pkt: Packet) -> bool:
        remote = pkt["ipv4_src"] if direction == "ingress" else pkt["ipv4_dst"]
        for group in dict.fromkeys(port.groups):
            for rule in self.rules.get(group, ()):
                if rule.direction == direction and self._rule_matches(rule, pkt, remote):
                    return True
        return False

    def _rule_matches(self, rule: RefRule, pkt: Packet, remote: int) -> bool:
        proto = pkt["ip_proto"]
        if rule.protocol and rule.protocol != proto:
            return False
        if rule.port_min is not None and proto in (IP_PROTO_TCP, IP_PROTO_UDP):
            dport = pkt["tcp_dst"] if proto == IP_PROTO_TCP else pkt["udp_dst"]
            if not rule.port_min <= dport <= (rule.port_max if rule.port_max is not None else rule.port_min):
                return False
        if rule.icmp_type is not None and (
            pkt.get("icmpv4_type") != rule.icmp_type
            or (rule.icmp_code is not None and pkt.get("icmpv4_code") != rule.icmp_code)
        ):
            return False
        address = ipaddress.IPv4Address(int_to_ipv4(remote))
        if rule.remote_group:
            return any(address in ipaddress.IPv4Network(m) for m in self.members(rule.remote_group))
        return not rule.prefix or address in ipaddress.IPv4Network(rule.prefix)

    def members(self, group: str) -> list[str]:
        return [a for p in self.ports.values() if p.filtered and group in p.groups for a in p.addresses]


def _key(pkt: Packet) -> Key:
    proto = pkt["ip_proto"]
    if proto == IP_PROTO_TCP:
        return (proto, (pkt["ipv4_src"], pkt["tcp_src"]), (pkt["ipv4_dst"], pkt["tcp_dst"]))
    if proto == IP_PROTO_UDP:
        return (proto, (pkt["ipv4_src"], pkt["udp_src"]), (pkt["ipv4_dst"], pkt["udp_dst"]))
    if proto == IP_PROTO_ICMP:
        return (proto, (pkt["ipv4_src"], pkt["icmp_id"]), (pkt["ipv4_dst"], pkt["icmp_id"]))
    return (proto, (pkt["ipv4_src"], 0), (pkt["ipv4_dst"], 0))


def _quoted_key(pkt: Packet) -> Key | None:
    proto = pkt.get("inner_ip_proto")
    if proto is None:
        return None
    src, dst = pkt["inner_ipv4_src"], pkt["inner_ipv4_dst"]
    if proto in (IP_PROTO_TCP, IP_PROTO_UDP):
        return (proto, (src, pkt["inner_sport"]), (dst, pkt["inner_dport"]))
    if proto == IP_PROTO_ICMP:
        return (proto, (src, pkt["inner_icmp_id"]), (dst, pkt["inner_icmp_id"]))
    return (proto, (src, 0), (dst, 0))


def _reverse(key: Key) -> Key:
    proto, a, b = key
    return (proto, b, a)


def _may_start(pkt: Packet) -> bool:
    """Can this packet open a connection? Not a TCP SYN+ACK, FIN without ACK, SYN+RST/FIN; not an echo reply."""
    proto = pkt["ip_proto"]
    if proto == IP_PROTO_TCP:
        flags = pkt.get("tcp_flags", 0)
        if flags & SYN:
            return not flags & (ACK | RST | FIN)
        return bool(flags & (ACK | RST)) and not (not flags & ACK and flags & FIN)
    if proto == IP_PROTO_ICMP:
        return pkt.get("icmpv4_type") == ICMP_ECHO_REQUEST
    return True


def _established(conn: RefConn, pkt: Packet) -> bool:
    if pkt["ip_proto"] == IP_PROTO_TCP:
        return pkt.get("tcp_flags", 0) & (SYN | ACK) != SYN
    return conn.replied
