"""The controller's packet trace: a packet followed through the compiled flows of every host it reaches.

What ``ovn-trace`` does for OVN, done for Loom with the flow-table simulator:
each host's br-int is what the compiler produces for it plus the binding
flows its agent renders (``dataplane.contract.bindings``), a packet goes in
at the sending port, and every flow it hits, every tunnel crossing and every
delivery (or the drop, and why) is recorded, host after host.

Pure, like the rest of the compiler: it reads a :class:`Topology` and
returns dataclasses; the caller holds whatever lock keeps the topology still.
It walks host by host with the simulator's ``FlowTable`` (a tunnel crossing
is what ``Fabric.trace`` does: the packet as on the wire, with the VNI and
both tunnel endpoints) rather than through a ``Fabric``, because a Fabric
wants every host's tables up front, and this compiles only the hosts the
packet reaches; ``tests/unit/test_trace.py`` holds the two to the same
deliveries.

Two things the controller cannot know exactly, and how they are filled in:

* a VIF's OpenFlow port is the number the controller allocated and the VIF
  requests (``binding_ofport``); OVS gives another only if that one is taken;
* a network's DHCP/metadata localport gets its number from its host's agent,
  which does not report it: here the localports of a host are numbered from
  65001 in network-tag order. Outputs name them ("localport of network
  blue"), so the number is only a placeholder (``NOTES`` says so).
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

from controller.compiler import secgroups
from controller.compiler import simulator as sim
from controller.compiler.host import HostState, compile_host
from controller.compiler.topology import Topology
from controller.model import Port
from dataplane.common.constants import LOCALPORT_OFPORT_MAX, LOCALPORT_OFPORT_MIN, PATCH_OFPORT_MIN, TUNNEL_OFPORT
from dataplane.contract import pipeline as p
from dataplane.contract.bindings import localport_binding_flows, vif_binding_flows
from dataplane.contract.cookie import CookieKind, describe_cookie, make_cookie, owner_labels, split_cookie
from dataplane.contract.fields import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    FIELDS,
    IP_PROTO_ICMP,
    IP_PROTO_TCP,
    IP_PROTO_UDP,
    format_value,
    int_to_ipv4,
    ipv4_to_int,
)
from dataplane.contract.flow import Flow, Output

PROTOCOLS = ("icmp", "tcp", "udp", "arp")
DEFAULT_DST_PORT = 80
DEFAULT_SRC_PORT = 40000
BROADCAST = "ff:ff:ff:ff:ff:ff"
MAX_HOPS = 64  # host visits: a flood reaches each host with the network once

NOTES = (
    "simulated on the flows the controller compiled, plus the binding flows each agent renders; "
    "the switches were not asked (loomctl trace --switch asks one)",
    "VIF OpenFlow ports are the numbers the ports request (binding_vif_details.ofport); localports are "
    f"numbered from {LOCALPORT_OFPORT_MIN} in network-tag order on each host, which may differ from the "
    "numbers their agent chose",
)

# Why a packet ends in a table's default (priority 0) drop, for the tables where that has one usual cause.
_DEFAULT_DROP = {
    p.CLASSIFY: "no flow in classify knows its in_port: the port has no binding here "
    "(not bound to this host, administratively down, or its network is not active)",
    p.PORT_SECURITY: "port security: it is not from the port's MAC and fixed IPs (nor a DHCP request)",
    p.NEIGHBOR: "no neighbour entry for its next hop: no port holds that address, or it is an external next hop "
    "whose MAC the host's agent resolves by ARP and renders itself (the controller's trace does not know it; "
    "loomctl trace --switch shows the real switch)",
}


class TraceError(ValueError):
    """The request cannot be traced; ``field`` names the request field at fault, ``kind`` the gRPC-like class."""

    def __init__(self, kind: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.kind = kind  # "invalid", "not_found" or "precondition"
        self.field = field


@dataclass(frozen=True, slots=True)
class Step:
    """One flow a packet hit."""

    table: int
    table_name: str
    flow: str  # ovs-ofctl syntax, without the cookie
    cookie: int
    owner: str


@dataclass(frozen=True, slots=True)
class TraceOutput:
    """Where a packet left a host: delivered to a local port, or into the tunnel."""

    kind: str  # "delivered", "tunnel" or "lost"
    host: str
    ofport: int
    packet: str
    port_id: str = ""
    port_name: str = ""
    vni: int = 0
    remote_host: str = ""
    remote_ip: str = ""


@dataclass
class Hop:
    """A packet's pass through one host's br-int."""

    host: str
    in_port: int
    came_from: str
    packet: str
    steps: list[Step] = field(default_factory=list)
    outputs: list[TraceOutput] = field(default_factory=list)
    drop_table: int | None = None
    drop_reason: str = ""

    @property
    def dropped(self) -> bool:
        return not self.outputs


@dataclass
class PacketTrace:
    packet: str
    hops: list[Hop] = field(default_factory=list)
    notes: tuple[str, ...] = NOTES

    @property
    def deliveries(self) -> list[TraceOutput]:
        return [o for hop in self.hops for o in hop.outputs if o.kind == "delivered"]


@dataclass(frozen=True, slots=True)
class LocalPortName:
    """What sits behind one OpenFlow port of a host's br-int."""

    port_id: str
    name: str


@dataclass
class HostView:
    """One host's br-int as the trace sees it: the flow table and what each OpenFlow port is."""

    table: sim.FlowTable
    ports: dict[int, LocalPortName]
    gateway_tunnels: dict[int, str] = field(default_factory=dict)  # ofport -> the host at its other end


# ---------------------------------------------------------------- a host's switch


def host_switch(topo: Topology, host: str) -> tuple[list[Flow], dict[int, LocalPortName]]:
    """Everything br-int on ``host`` holds (compiled flows + the agent's binding flows) and its ports' names."""
    flows, ports, _ = _host_switch(topo, host)
    return flows, ports


def host_view(topo: Topology, host: str) -> HostView:
    """``host``'s switch for the trace. Its gateway tunnels (the point-to-point ones to gateway hosts, which the
    SNAT redirection's bundle picks among) count as up: the controller does not see BFD."""
    flows, ports, state = _host_switch(topo, host)
    tunnels = {t.ofport: t.host for t in state.l3.gateway_tunnels}
    agent = topo.agents.get(host)
    for i, physnet in enumerate(agent.physical_networks if agent is not None else ()):
        ports[PATCH_OFPORT_MIN + i] = LocalPortName("", f"provider bridge of physical network {physnet}")
    return HostView(sim.FlowTable(flows, ports=dict.fromkeys(tunnels, True)), ports, tunnels)


def _host_switch(topo: Topology, host: str) -> tuple[list[Flow], dict[int, LocalPortName], HostState]:
    state = compile_host(topo, host)
    flows = state.flows()
    ports: dict[int, LocalPortName] = {}
    for spec in state.ports.values():
        if spec.admin_state_up:  # the agent renders binding flows only for ports that are up
            flows.extend(vif_binding_flows(spec.tag, spec.network_tag, spec.ofport))
        port = topo.ports.get(spec.port_id)
        ports[spec.ofport] = LocalPortName(spec.port_id, port_label(port) if port else spec.port_id)
    for i, net in enumerate(sorted(state.networks.values(), key=lambda n: n.tag)):
        ofport = LOCALPORT_OFPORT_MIN + i
        if ofport > LOCALPORT_OFPORT_MAX:
            break  # the agent has no number left for more either
        flows.extend(localport_binding_flows(net.localport_tag, net.tag, ofport))
        ports[ofport] = LocalPortName(net.localport_id, f"localport of network {network_label(topo, net.network_id)}")
    return flows, ports, state


def port_label(port: Port) -> str:
    return port.name or port.device_owner or port.id


def network_label(topo: Topology, network_id: str) -> str:
    net = topo.networks.get(network_id)
    return (net.name or net.id) if net else network_id


def owner_names(topo: Topology) -> dict[int, str]:
    """Cookie -> the object that owns the flow, by name ("port vm1", "network blue", "binding of port vm1")."""
    names = owner_labels(
        ((net.tag, f"network {net.name or net.id}") for net in topo.networks.values()),
        ((port.tag, f"port {port_label(port)}") for port in topo.ports.values()),
        ((dhcp.tag, f"network {network_label(topo, dhcp.network_id)}") for dhcp in topo.dhcp_ports.values()),
        security_groups=((g.tag, f"security group {g.name or g.id}") for g in topo.secgroups.groups.values()),
        routers=((r.tag, f"router {r.name or r.id}") for r in topo.l3.routers.values()),
        floating_ips=((f.tag, f"floating IP {f.floating_ip_address}") for f in topo.l3.floating_ips.values()),
    )
    names[make_cookie(CookieKind.PIPELINE, secgroups.SecGroupsFeature.number)] = "security groups (every port)"
    return names


def _owner(names: dict[int, str], cookie: int) -> str:
    if cookie in names:
        return names[cookie]
    try:
        kind, _ = split_cookie(cookie)
    except ValueError:
        return describe_cookie(cookie)
    # Host-wide flows of a feature carry its number as the tag of a pipeline cookie.
    return "pipeline" if kind is CookieKind.PIPELINE else describe_cookie(cookie)


# ---------------------------------------------------------------- packets


def build_packet(
    topo: Topology,
    src: Port,
    protocol: str,
    dst: Port | None = None,
    dst_ip: str = "",
    dst_mac: str = "",
    dst_port: int = 0,
    src_port: int = 0,
) -> sim.Packet:
    """The packet ``src`` sends: an ICMP echo request, a TCP SYN, a UDP datagram or an ARP request."""
    protocol = protocol or "icmp"
    if protocol not in PROTOCOLS:
        raise TraceError("invalid", "protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not src.ips:
        raise TraceError("precondition", "from_port_id", f"port {port_label(src)} has no fixed IP to send from")
    target_ip = dst_ip or (dst.ips[0] if dst is not None and dst.ips else "")
    if not target_ip:
        raise TraceError("invalid", "dst_ip", "give to_port_id (a port with a fixed IP) or dst_ip")
    try:
        ipv4_to_int(target_ip)
    except ValueError:
        raise TraceError("invalid", "dst_ip", f"{target_ip!r} is not an IPv4 address") from None
    if protocol == "arp":
        return sim.arp_request(src.mac_address, src.ips[0], target_ip, dst_mac or BROADCAST)
    if dst_mac:
        mac = dst_mac
    elif dst is not None and dst.network_id == src.network_id:
        mac = dst.mac_address
    else:
        # Off the network (another network's port, or an address no port here holds): to the gateway, as the VM
        # would; with no router there, to the port's own MAC (which that network never sees).
        on_net = "" if dst is not None else _mac_of(topo, src.network_id, target_ip)
        mac = on_net or _gateway_mac(topo, src) or (dst.mac_address if dst is not None else "")
    if not mac:
        raise TraceError(
            "invalid",
            "dst_mac",
            f"no port on network {network_label(topo, src.network_id)} holds {target_ip}: give dst_mac, "
            "or trace an ARP request",
        )
    proto = {"icmp": IP_PROTO_ICMP, "tcp": IP_PROTO_TCP, "udp": IP_PROTO_UDP}[protocol]
    return sim.ipv4(
        src.mac_address,
        mac,
        src.ips[0],
        target_ip,
        proto,
        src_port or DEFAULT_SRC_PORT,
        dst_port or DEFAULT_DST_PORT,
    )


def _gateway_mac(topo: Topology, src: Port) -> str:
    """The MAC of the gateway of ``src``'s subnet, when a port on its network (a router interface) holds it."""
    src_ip = ipaddress.IPv4Address(src.ips[0])
    for subnet in topo.subnets_by_network.get(src.network_id, {}).values():
        if subnet.gateway_ip and src_ip in ipaddress.ip_network(subnet.cidr, strict=False):
            return _mac_of(topo, src.network_id, subnet.gateway_ip)
    return ""


def _mac_of(topo: Topology, network_id: str, ip: str) -> str:
    for port in topo.ports_by_network.get(network_id, {}).values():
        if ip in port.ips:
            return port.mac_address
    return ""


def describe_packet(pkt: sim.Packet) -> str:
    """A packet in ovs-ofctl flow syntax (what ``ofproto/trace`` takes), e.g. ``icmp,dl_src=...,nw_dst=...``."""
    eth_type = pkt.get("eth_type")
    names: list[str] = []
    if eth_type == ETH_TYPE_ARP:
        head = "arp"
        names = ["eth_src", "eth_dst", "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha"]
    elif eth_type == ETH_TYPE_IPV4:
        proto = pkt.get("ip_proto")
        head = {IP_PROTO_ICMP: "icmp", IP_PROTO_TCP: "tcp", IP_PROTO_UDP: "udp"}.get(proto or -1, "ip")
        names = ["eth_src", "eth_dst", "ipv4_src", "ipv4_dst", "nw_ttl"]
        names += {
            "icmp": ["icmpv4_type", "icmpv4_code"],
            "tcp": ["tcp_src", "tcp_dst"],
            "udp": ["udp_src", "udp_dst"],
        }.get(head, ["ip_proto"])
    else:
        head = f"dl_type={eth_type:#06x}" if eth_type is not None else ""
        names = ["eth_src", "eth_dst"]
    parts = [head] if head else []
    if "tunnel_id" in pkt:
        parts.insert(0, f"tun_id={pkt['tunnel_id']:#x}")
    for name in names:
        if name in pkt:
            spec = FIELDS[name]
            parts.append(f"{spec.ofctl_name}={format_value(spec, pkt[name])}")
    return ",".join(parts)


# ---------------------------------------------------------------- the trace


def trace_from_port(topo: Topology, src: Port, packet: sim.Packet) -> PacketTrace:
    """Send ``packet`` from ``src``'s VIF on its host and follow it everywhere it goes."""
    if not src.binding_host_id:
        raise TraceError("precondition", "from_port_id", f"port {port_label(src)} is not bound to a host")
    return trace(topo, src.binding_host_id, src.binding_ofport, packet, f"port {port_label(src)}")


def trace(topo: Topology, host: str, in_port: int, packet: sim.Packet, came_from: str = "") -> PacketTrace:
    """Put ``packet`` into ``host``'s br-int at ``in_port`` and follow it through every host it reaches."""
    names = owner_names(topo)
    by_tunnel_ip = {a.tunnel_ip: h for h, a in topo.agents.items()}
    views: dict[str, HostView] = {}
    result = PacketTrace(describe_packet(packet))
    pending: deque[tuple[str, int, sim.Packet, str]] = deque([(host, in_port, packet, came_from or f"port {in_port}")])
    while pending:
        if len(result.hops) >= MAX_HOPS:
            raise sim.SimulationError(f"more than {MAX_HOPS} host visits: a loop between hosts")
        h, port, pkt, came = pending.popleft()
        view = views.get(h)
        if view is None:
            view = views[h] = host_view(topo, h)
        ran = view.table.process(pkt, port)
        hop = Hop(h, port, came, describe_packet(pkt))
        hop.steps = [_step(f, names, topo) for f in ran.hits]
        for emit in ran.emitted:
            out = emit.packet
            if emit.port in view.gateway_tunnels:
                _follow_gateway_tunnel(topo, views, h, emit, hop, pending)
                continue
            if emit.port != TUNNEL_OFPORT:
                where = view.ports.get(emit.port, LocalPortName("", f"OpenFlow port {emit.port}"))
                hop.outputs.append(
                    TraceOutput("delivered", h, emit.port, describe_packet(sim.wire(out)), where.port_id, where.name)
                )
                continue
            vni = out.get("tunnel_id", 0)
            remote_ip = int_to_ipv4(out.get("tun_ipv4_dst", 0))
            inner = sim.wire(out)
            remote = by_tunnel_ip.get(remote_ip)
            kind = "tunnel" if remote is not None else "lost"
            hop.outputs.append(
                TraceOutput(
                    kind, h, emit.port, describe_packet(inner), vni=vni, remote_host=remote or "", remote_ip=remote_ip
                )
            )
            if remote is not None:
                # As the receiving switch sees it (and as Fabric.trace passes it): the VNI and both endpoints.
                local_ip = topo.tunnel_ip(h)  # None: the sender's host has no agent (its ports' binding failed)
                arriving = {**inner, "tunnel_id": vni, "tun_ipv4_src": ipv4_to_int(local_ip) if local_ip else 0}
                arriving["tun_ipv4_dst"] = ipv4_to_int(remote_ip)
                pending.append((remote, TUNNEL_OFPORT, arriving, f"tunnel from {h}, VNI {vni}"))
        if not hop.outputs:
            hop.drop_table, hop.drop_reason = _why_dropped(ran, port, names)
        result.hops.append(hop)
    return result


def _follow_gateway_tunnel(
    topo: Topology,
    views: dict[str, HostView],
    host: str,
    emit: sim.Emit,
    hop: Hop,
    pending: deque[tuple[str, int, sim.Packet, str]],
) -> None:
    """A packet redirected to a gateway host (SNAT): it arrives there on that host's tunnel port back to ``host``."""
    view = views[host]
    remote = view.gateway_tunnels[emit.port]
    vni = emit.packet.get("tunnel_id", 0)
    inner = sim.wire(emit.packet)
    remote_ip = topo.tunnel_ip(remote) or ""
    remote_view = views.get(remote)
    if remote_view is None:
        remote_view = views[remote] = host_view(topo, remote)
    back = [port for port, peer in remote_view.gateway_tunnels.items() if peer == host]
    kind = "tunnel" if back else "lost"
    hop.outputs.append(
        TraceOutput(kind, host, emit.port, describe_packet(inner), vni=vni, remote_host=remote, remote_ip=remote_ip)
    )
    if back:
        local_ip, arriving = topo.tunnel_ip(host), {**inner, "tunnel_id": vni}
        arriving["tun_ipv4_src"] = ipv4_to_int(local_ip) if local_ip else 0
        arriving["tun_ipv4_dst"] = ipv4_to_int(remote_ip) if remote_ip else 0
        pending.append((remote, back[0], arriving, f"gateway tunnel from {host}, VNI {vni} (the router's tag)"))


def _step(flow: Flow, names: dict[int, str], topo: Topology | None = None) -> Step:
    text = flow.text()
    _, _, without_cookie = text.partition(", ")
    owner = _owner(names, flow.cookie)
    if topo is not None and (flow.cookie >> 48) & 0xFF == CookieKind.SG_PORT:
        rules = secgroups.rules_behind(topo, flow)
        if rules:
            groups = topo.secgroups.groups
            owner += ": " + ", ".join(
                f"rule {r.id} of group {(g.name or g.id) if (g := groups.get(r.security_group_id)) else '?'}"
                for r in rules
            )
    return Step(flow.table, p.table_name(flow.table), without_cookie, flow.cookie, owner)


def _why_dropped(ran: sim.Trace, in_port: int, names: dict[int, str]) -> tuple[int, str]:
    """The table a packet died in, and why: a drop flow, a table's default, no way out but the in_port,
    or what the simulator says ended it (e.g. dec_ttl on a TTL of 1)."""
    hits = ran.hits
    stopped = [e.reason for e in ran.events if isinstance(e, sim.DropEvent)]
    if stopped and hits:
        return hits[-1].table, stopped[-1]
    if not hits:
        return p.CLASSIFY, "no flow in classify matched it (the table is empty)"
    last = hits[-1]
    name = p.table_name(last.table)
    if not last.actions and last.goto is None:
        if last.priority == 0:
            return last.table, _DEFAULT_DROP.get(
                last.table, f"no flow in {name} matched it: the table's default drops it"
            )
        if last.table in (p.EGRESS_ACL, p.INGRESS_ACL) and last.priority in secgroups.DROP_REASONS:
            return last.table, f"security groups: {secgroups.DROP_REASONS[last.priority]}"
        return last.table, f"dropped in {name} by a flow of {_owner(names, last.cookie)}"
    if any(isinstance(a, Output) and a.port == in_port for f in hits for a in f.actions):
        return last.table, (
            "its only way out was the port it came in on, and a switch never sends a packet back out its in_port "
            "(no other port of the network here or on other hosts)"
        )
    return last.table, f"no flow after {name} sent it anywhere"
