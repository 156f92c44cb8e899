"""A small OpenFlow flow-table simulator, for tests and offline traces.

It follows OpenFlow 1.3 / OVS semantics for what the compiler emits: highest
priority match wins (two matching flows at the same priority is a compiler bug
and raises), apply-actions in order, goto_table, Nicira resubmit (a
subroutine whose field changes persist), output to the input port is dropped,
``IN_PORT`` sends back. A :class:`Fabric` joins several hosts' tables through
the flow-based VXLAN port, so a test can send a packet from a VM and see every
port, on every host, it reaches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.fields import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    FIELDS,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    OFPP_IN_PORT,
    ipv4_to_int,
    mac_to_int,
)
from dataplane.contract.flow import Conjunction, Ct, CtClear, DecTtl, Flow, Move, Output, Resubmit, SetField

Packet = dict[str, int]

# Fields that belong to the pipeline, not the packet: reset at every bridge.
_PIPELINE_FIELDS = ("metadata", *(f"reg{i}" for i in range(16)))
_MAX_DEPTH = 64


class SimulationError(RuntimeError):
    """The flow tables are inconsistent (ambiguous match, loop, unsupported action)."""


@dataclass(frozen=True)
class Emit:
    port: int
    packet: Packet


@dataclass
class Trace:
    """What happened to one packet on one bridge: flows hit and packets emitted."""

    hits: list[Flow] = field(default_factory=list)
    emitted: list[Emit] = field(default_factory=list)


class FlowTable:
    """The flows of one bridge."""

    def __init__(self, flows: Iterable[Flow]) -> None:
        self.tables: dict[int, list[Flow]] = defaultdict(list)
        for f in flows:
            self.tables[f.table].append(f)
        for flows_in_table in self.tables.values():
            flows_in_table.sort(key=lambda f: -f.priority)

    def lookup(self, table: int, pkt: Packet) -> Flow | None:
        best: Flow | None = None
        for f in self.tables.get(table, ()):
            if best is not None and f.priority < best.priority:
                break
            if _matches(f, pkt):
                if best is not None:
                    raise SimulationError(f"ambiguous match in table {table}: {best.text()} and {f.text()}")
                best = f
        return best

    def process(self, packet: Packet, in_port: int) -> Trace:
        pkt = dict(packet)
        for name in _PIPELINE_FIELDS:
            pkt.pop(name, None)
        pkt["in_port"] = in_port
        trace = Trace()
        self._run_table(0, pkt, trace, 0)
        return trace

    def _run_table(self, table: int, pkt: Packet, trace: Trace, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise SimulationError("resubmit/goto depth exceeded: a loop in the tables")
        flow = self.lookup(table, pkt)
        if flow is None:
            return  # table miss: OpenFlow 1.3 drops
        trace.hits.append(flow)
        for action in flow.actions:
            self._apply(action, pkt, trace, depth)
        if flow.goto is not None:
            if flow.goto <= table:
                raise SimulationError(f"goto_table {flow.goto} from table {table} goes backwards")
            self._run_table(flow.goto, pkt, trace, depth + 1)

    def _apply(self, action: object, pkt: Packet, trace: Trace, depth: int) -> None:
        if isinstance(action, SetField):
            pkt[action.field] = action.value
        elif isinstance(action, Move):
            src = (pkt.get(action.src, 0) >> action.src_ofs) & ((1 << action.n_bits) - 1)
            mask = ((1 << action.n_bits) - 1) << action.dst_ofs
            pkt[action.dst] = (pkt.get(action.dst, 0) & ~mask) | (src << action.dst_ofs)
        elif isinstance(action, Output):
            in_port = pkt["in_port"]
            if action.port == OFPP_IN_PORT:
                trace.emitted.append(Emit(in_port, dict(pkt)))
            elif action.port != in_port:
                trace.emitted.append(Emit(action.port, dict(pkt)))
        elif isinstance(action, Resubmit):
            self._run_table(action.table, pkt, trace, depth + 1)
        elif isinstance(action, DecTtl):
            pkt["nw_ttl"] = pkt.get("nw_ttl", 64) - 1
        elif isinstance(action, Ct | CtClear | Conjunction):
            raise SimulationError(f"{type(action).__name__} is not simulated")
        else:
            raise SimulationError(f"unknown action {action!r}")


def _matches(flow: Flow, pkt: Packet) -> bool:
    for f in flow.match.fields:
        if f.name in pkt:
            value = pkt[f.name]
        elif f.name in _PIPELINE_FIELDS:
            value = 0
        else:
            return False
        if (value if f.mask is None else value & f.mask) != f.value:
            return False
    return True


@dataclass(frozen=True)
class Delivery:
    host: str
    port: int
    packet: Packet


class Fabric:
    """Several hosts' bridges joined by the flow-based tunnel port."""

    def __init__(self) -> None:
        self.hosts: dict[str, FlowTable] = {}
        self.by_tunnel_ip: dict[int, str] = {}

    def add_host(self, host: str, tunnel_ip: str, flows: Iterable[Flow]) -> None:
        self.hosts[host] = FlowTable(flows)
        self.by_tunnel_ip[ipv4_to_int(tunnel_ip)] = host

    def send(self, host: str, in_port: int, packet: Packet) -> list[Delivery]:
        """Every (host, port) the packet reaches, tunnels followed, tunnel ports excluded."""
        out: list[Delivery] = []
        pending = [(host, in_port, packet)]
        hops = 0
        while pending:
            hops += 1
            if hops > 1000:
                raise SimulationError("tunnel loop between hosts")
            h, port, pkt = pending.pop(0)
            for emit in self.hosts[h].process(pkt, port).emitted:
                if emit.port != TUNNEL_OFPORT:
                    out.append(Delivery(h, emit.port, _strip(emit.packet)))
                    continue
                remote = self.by_tunnel_ip.get(emit.packet.get("tun_ipv4_dst", -1))
                if remote is None:
                    continue  # no such underlay address: lost
                inner = _strip(emit.packet)
                inner["tunnel_id"] = emit.packet.get("tunnel_id", 0)
                pending.append((remote, TUNNEL_OFPORT, inner))
        return out


def _strip(pkt: Packet) -> Packet:
    """The packet as it is on the wire: no registers, no tunnel metadata."""
    drop = {*_PIPELINE_FIELDS, "in_port", "tunnel_id", "tun_ipv4_dst", "tun_ipv4_src"}
    return {k: v for k, v in pkt.items() if k not in drop}


# ---------------------------------------------------------------- packets


def ethernet(src: str, dst: str, eth_type: int) -> Packet:
    return {"eth_src": mac_to_int(src), "eth_dst": mac_to_int(dst), "eth_type": eth_type}


def arp_request(src_mac: str, src_ip: str, target_ip: str, dst_mac: str = "ff:ff:ff:ff:ff:ff") -> Packet:
    pkt = ethernet(src_mac, dst_mac, ETH_TYPE_ARP)
    pkt.update(
        arp_op=1,
        arp_sha=mac_to_int(src_mac),
        arp_spa=ipv4_to_int(src_ip),
        arp_tha=0,
        arp_tpa=ipv4_to_int(target_ip),
    )
    return pkt


def ipv4(
    src_mac: str, dst_mac: str, src_ip: str, dst_ip: str, proto: int = 1, sport: int = 0, dport: int = 0
) -> Packet:
    pkt = ethernet(src_mac, dst_mac, ETH_TYPE_IPV4)
    pkt.update(ipv4_src=ipv4_to_int(src_ip), ipv4_dst=ipv4_to_int(dst_ip), ip_proto=proto, nw_ttl=64)
    if proto == IP_PROTO_TCP:
        pkt.update(tcp_src=sport, tcp_dst=dport)
    elif proto == IP_PROTO_UDP:
        pkt.update(udp_src=sport, udp_dst=dport)
    elif proto == 1:
        pkt.update(icmpv4_type=8, icmpv4_code=0)
    return pkt


def dhcp_discover(src_mac: str) -> Packet:
    return ipv4(src_mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", IP_PROTO_UDP, 68, 67)


def dhcp_offer(server_mac: str, server_ip: str, client_mac: str, client_ip: str) -> Packet:
    return ipv4(server_mac, client_mac, server_ip, client_ip, IP_PROTO_UDP, 67, 68)


def field_value(name: str, value: str) -> int:
    """Parse a human value for ``name`` (MAC or IPv4 text) as the simulator stores it."""
    from dataplane.contract.fields import to_int

    return to_int(FIELDS[name], value)
