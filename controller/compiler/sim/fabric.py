"""Several simulated hypervisors joined by VXLAN tunnels, for tests that cross hosts.

Each host is a :class:`~.switch.FlowTable` with its own connection table and
port liveness, kept across :meth:`Fabric.send` calls, so a request and then its
reply can cross the same hosts and meet the state the request left. A packet
output to the flow-based tunnel port (``TUNNEL_OFPORT``, ``remote_ip=flow``)
goes to the host whose tunnel IP is its ``tun_ipv4_dst``; one output to a
point-to-point tunnel port (``tunnel_ports``, as BFD needs) goes to that port's
remote. The receiver sees it on its tunnel port for the sender, or on the
flow-based one (OVS prefers a port with the exact remote_ip), with
``tunnel_id``, ``tun_ipv4_src`` and ``tun_ipv4_dst`` set.

With ``separate_udp_port`` (Loom's gateway tunnels: their own UDP port), the
point-to-point ports are a tunnel namespace of their own: what the flow-based
port sends arrives on the flow-based port, what a point-to-point port sends
arrives on the receiver's point-to-point port for the sender, and is lost if
the receiver has none (no OVS port listens for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.compiler.sim.conntrack import Conntrack
from controller.compiler.sim.errors import SimulationError
from controller.compiler.sim.packet import Packet
from controller.compiler.sim.switch import PIPELINE_FIELDS, FlowTable, Trace
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.fields import ipv4_to_int
from dataplane.contract.flow import Flow, GroupDef

_TUNNEL_METADATA = ("tunnel_id", "tun_ipv4_src", "tun_ipv4_dst")
_NOT_ON_THE_WIRE = frozenset(
    {*PIPELINE_FIELDS, *_TUNNEL_METADATA, "in_port", "conj_id", "ct_state", "ct_zone", "ct_mark", "ct_label"}
)
_MAX_HOPS = 1000


@dataclass(frozen=True)
class Delivery:
    """A packet leaving ``host`` through ``port`` (not a tunnel), as it is on the wire."""

    host: str
    port: int
    packet: Packet


@dataclass(frozen=True)
class Hop:
    """One bridge a packet crossed: where it came in, and what the bridge did."""

    host: str
    in_port: int
    packet: Packet
    trace: Trace


@dataclass
class FabricTrace:
    deliveries: list[Delivery] = field(default_factory=list)
    hops: list[Hop] = field(default_factory=list)
    lost: list[Delivery] = field(default_factory=list)  # tunnel packets to no host, or to a host that is down


class Fabric:
    """Several hosts' bridges joined by tunnels."""

    def __init__(self, separate_udp_port: bool = False) -> None:
        self.separate_udp_port = separate_udp_port
        self.hosts: dict[str, FlowTable] = {}
        self.tunnel_ip: dict[str, int] = {}
        self.by_tunnel_ip: dict[int, str] = {}
        self.tunnel_ports: dict[str, dict[int, int]] = {}  # host -> ofport -> remote tunnel IP
        self.down: set[str] = set()

    def add_host(
        self,
        host: str,
        tunnel_ip: str,
        flows: Iterable[Flow],
        groups: Iterable[GroupDef] = (),
        *,
        tunnel_ports: Mapping[int, str] | None = None,
        ports: Mapping[int, bool] | None = None,
    ) -> FlowTable:
        """Add (or replace the tables of) a host; its connection table survives a replacement."""
        old = self.hosts.get(host)
        table = FlowTable(flows, groups, conntrack=old.conntrack if old else None, ports=dict(ports or {}))
        if old is not None:
            table.ports = {**old.ports, **table.ports}
        self.hosts[host] = table
        ip = ipv4_to_int(tunnel_ip)
        self.tunnel_ip[host] = ip
        self.by_tunnel_ip[ip] = host
        self.tunnel_ports[host] = {port: ipv4_to_int(remote) for port, remote in (tunnel_ports or {}).items()}
        return table

    def switch(self, host: str) -> FlowTable:
        return self.hosts[host]

    def conntrack(self, host: str) -> Conntrack:
        return self.hosts[host].conntrack

    def set_port(self, host: str, port: int, up: bool = True) -> None:
        """A port's liveness on one host (link, or BFD on a tunnel port): bundles and groups follow it."""
        self.hosts[host].set_port(port, up)

    def set_host_down(self, host: str, down: bool = True) -> None:
        """A host that is down receives nothing: packets tunneled to it are lost."""
        (self.down.add if down else self.down.discard)(host)

    def send(self, host: str, in_port: int, packet: Packet) -> list[Delivery]:
        """Every (host, port) the packet reaches, tunnels followed, tunnel ports excluded."""
        return self.trace(host, in_port, packet).deliveries

    def trace(self, host: str, in_port: int, packet: Packet) -> FabricTrace:
        result = FabricTrace()
        pending = [(host, in_port, packet)]
        while pending:
            if len(result.hops) >= _MAX_HOPS:
                raise SimulationError("tunnel loop between hosts")
            h, port, pkt = pending.pop(0)
            trace = self.hosts[h].process(pkt, port)
            result.hops.append(Hop(h, port, pkt, trace))
            for emit in trace.emitted:
                remote_ip = self._tunnel_remote(h, emit.port, emit.packet)
                if remote_ip is None:
                    result.deliveries.append(Delivery(h, emit.port, wire(emit.packet)))
                    continue
                remote = self.by_tunnel_ip.get(remote_ip)
                if remote is None or remote in self.down:
                    result.lost.append(Delivery(h, emit.port, wire(emit.packet)))
                    continue
                inner = wire(emit.packet)
                inner["tunnel_id"] = emit.packet.get("tunnel_id", 0)
                inner["tun_ipv4_src"] = self.tunnel_ip[h]
                inner["tun_ipv4_dst"] = remote_ip
                receiving = self._receiving_port(remote, self.tunnel_ip[h], point_to_point=emit.port != TUNNEL_OFPORT)
                if receiving is None:
                    result.lost.append(Delivery(h, emit.port, wire(emit.packet)))
                    continue
                pending.append((remote, receiving, inner))
        return result

    def _tunnel_remote(self, host: str, port: int, pkt: Packet) -> int | None:
        if port == TUNNEL_OFPORT:
            return pkt.get("tun_ipv4_dst", -1)
        return self.tunnel_ports[host].get(port)

    def _receiving_port(self, host: str, sender_ip: int, point_to_point: bool) -> int | None:
        if self.separate_udp_port and not point_to_point:
            return TUNNEL_OFPORT
        for port, remote in self.tunnel_ports[host].items():
            if remote == sender_ip:
                return port
        return None if self.separate_udp_port else TUNNEL_OFPORT


def wire(pkt: Packet) -> Packet:
    """The packet as it is on the wire: no registers, no conntrack or tunnel metadata."""
    return {k: v for k, v in pkt.items() if k not in _NOT_ON_THE_WIRE}
