"""The world outside the hypervisors, for L3 tests: the external L2 segment and the upstream router.

``Cloud`` wraps a ``World`` and its simulated ``Fabric``. Frames leaving a
host's provider bridge (its patch port) go onto one external segment, which
delivers them as a learning switch would: to the upstream router (the
"internet", recorded), to the host a floating IP or a router's external MAC
was last announced from (``locate``), or, when broadcast, to every other
host on the segment. Traffic from the internet enters through the upstream
router, addressed to the MAC the segment knows for the destination address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.compiler.sim import Delivery, Fabric, FabricTrace, Packet
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.fields import int_to_mac, mac_to_int
from tests.unit.compiler_world import PATCH, UPSTREAM_MAC, World

BROADCAST = 0xFFFFFFFFFFFF


@dataclass
class Outcome:
    """Where one packet ended up: VIF deliveries, what reached the internet, every hop it took."""

    vifs: list[Delivery] = field(default_factory=list)
    internet: list[Delivery] = field(default_factory=list)
    hops: list[tuple[str, int]] = field(default_factory=list)  # (host, in_port) of every bridge crossed

    def underlay_hosts(self) -> list[str]:
        """Hosts the packet reached over a tunnel, in order."""
        return [h for h, port in self.hops if port == TUNNEL_OFPORT or 40000 <= port < 65000]


class Cloud:
    def __init__(self, world: World, down: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.world = world
        self.fabric: Fabric = world.fabric(down)
        self.where: dict[int, str] = {}  # MAC -> host, as the external segment learned it
        self.segment_hosts = {h for h, a in world.topo.agents.items() if "external" in a.physical_networks}

    def locate(self, mac: str, host: str) -> None:
        self.where[mac_to_int(mac)] = host

    def host_down(self, host: str) -> None:
        """The host's switch is gone: nothing reaches it, over a tunnel or the external segment."""
        self.fabric.set_host_down(host)
        self.segment_hosts.discard(host)

    def send(self, host: str, in_port: int, packet: Packet) -> Outcome:
        out = Outcome()
        self._run(host, in_port, packet, out, 0)
        return out

    def from_port(self, port_id: str, packet: Packet) -> Outcome:
        port = self.world.topo.ports[port_id]
        return self.send(port.binding_host_id, port.binding_ofport, packet)

    def from_internet(self, packet: Packet) -> Outcome:
        """A packet the upstream router sends onto the segment (its eth_dst says to whom)."""
        out = Outcome()
        self._segment(packet, None, out, 0)
        return out

    def _run(self, host: str, in_port: int, packet: Packet, out: Outcome, depth: int) -> None:
        assert depth < 8, "frames loop between the hosts and the external segment"
        trace: FabricTrace = self.fabric.trace(host, in_port, packet)
        out.hops.extend((h.host, h.in_port) for h in trace.hops)
        for d in trace.deliveries:
            if d.port == PATCH:
                self._segment(d.packet, d.host, out, depth + 1)
            else:
                out.vifs.append(d)

    def _segment(self, packet: Packet, sender: str | None, out: Outcome, depth: int) -> None:
        dst = packet["eth_dst"]
        if dst == mac_to_int(UPSTREAM_MAC):
            out.internet.append(Delivery(sender or "", PATCH, packet))
            return
        if dst == BROADCAST:
            for host in sorted(self.segment_hosts - {sender or ""}):
                self._run(host, PATCH, dict(packet), out, depth)
            return
        host = self.where.get(dst)
        if host is not None and host != sender and host in self.segment_hosts:
            self._run(host, PATCH, dict(packet), out, depth)


def mac(value: int) -> str:
    return int_to_mac(value)
