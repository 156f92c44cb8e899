"""What a host's agent must know about L3 besides its flows, compiled from the topology.

The agent acts on it directly: it resolves the external next hops (the
upstream router, whose MAC the controller cannot know) and renders the flows
that use them; announces floating IPs and router external IPs by gratuitous
ARP and flushes a floating IP's conntrack entries when it goes; keeps the
point-to-point gateway tunnels (with BFD) that the SNAT redirection and the
gateway choice run over; and reports which routers it is the active gateway
for. Sent whole (``HostL3``) whenever any of it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.compiler import l3, nat
from controller.compiler.topology import Topology


@dataclass(frozen=True, slots=True)
class ExternalNetworkSpec:
    network_id: str
    tag: int
    physical_network: str
    vlan: int
    patch_ofport: int
    next_hops: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FloatingIpSpec:
    id: str
    address: str
    mac_address: str
    fixed_ip: str
    network_tag: int
    patch_ofport: int
    vlan: int
    dnat_zone: int
    snat_zone: int


@dataclass(frozen=True, slots=True)
class GatewayRouterSpec:
    router_id: str
    tag: int
    external_ip: str
    mac_address: str
    network_tag: int
    patch_ofport: int
    vlan: int
    before: tuple[int, ...]
    external_network_id: str
    gateway_hosts: int  # how many hosts the router's gateway order has (this one included)


@dataclass(frozen=True, slots=True)
class GatewayTunnelSpec:
    host: str
    remote_ip: str
    ofport: int


@dataclass(frozen=True, slots=True)
class HostL3Spec:
    externals: tuple[ExternalNetworkSpec, ...] = ()
    floating_ips: tuple[FloatingIpSpec, ...] = ()
    gateway_routers: tuple[GatewayRouterSpec, ...] = ()
    gateway_tunnels: tuple[GatewayTunnelSpec, ...] = field(default_factory=tuple)


def host_l3_spec(topo: Topology, host: str) -> HostL3Spec:
    routers = sorted(l3.routers_on_host(topo, host))
    externals: dict[str, ExternalNetworkSpec] = {}
    fips: list[FloatingIpSpec] = []
    gateways: list[GatewayRouterSpec] = []
    for router_id in routers:
        router = topo.l3.routers[router_id]
        net = l3.gateway_network(topo, router)
        if net is None:
            continue
        ofport = topo.physnet_ofport(host, net.physical_network)
        if ofport is None:
            continue
        vlan = net.segmentation_id if net.network_type == "vlan" else 0
        hops = l3.external_next_hops(topo, router)
        known = externals.get(net.id)
        if known is not None:
            hops = tuple(sorted(set(hops) | set(known.next_hops)))
        externals[net.id] = ExternalNetworkSpec(net.id, net.tag, net.physical_network, vlan, ofport, hops)
        for fip_id in sorted(topo.l3.fips_by_router.get(router_id, ())):
            fip = topo.l3.floating_ips[fip_id]
            port = topo.ports.get(fip.floating_port_id)
            if l3.fip_host(topo, fip) != host or port is None:
                continue
            fips.append(
                FloatingIpSpec(
                    fip.id,
                    fip.floating_ip_address,
                    port.mac_address,
                    fip.fixed_ip_address,
                    net.tag,
                    ofport,
                    vlan,
                    nat.dnat_zone(router),
                    nat.snat_zone(router),
                )
            )
        order = l3.gateway_hosts(topo, router)
        gw_port = l3.gateway_port(topo, router)
        external_ip = l3.snat_address(topo, router)
        if host in order and gw_port is not None and external_ip is not None:
            before = tuple(
                ofp for h in order[: order.index(host)] if (ofp := l3.gateway_tunnel_ofport(topo, h)) is not None
            )
            gateways.append(
                GatewayRouterSpec(
                    router.id,
                    router.tag,
                    external_ip,
                    gw_port.mac_address,
                    net.tag,
                    ofport,
                    vlan,
                    before,
                    net.id,
                    len(order),
                )
            )
    return HostL3Spec(
        tuple(externals[k] for k in sorted(externals)), tuple(fips), tuple(gateways), gateway_tunnels(topo, host)
    )


def gateway_tunnels(topo: Topology, host: str) -> tuple[GatewayTunnelSpec, ...]:
    """Point-to-point tunnels (BFD runs on them) from ``host``.

    A host that is a gateway of some router: to every other registered host (any of them may start
    sending to it). Any other host: to the gateway hosts of the routers present on it.
    """
    if host not in topo.agents:
        return ()
    peers: set[str] = set()
    routers = l3.routers_on_host(topo, host)
    for router_id in routers:
        order = l3.gateway_hosts(topo, topo.l3.routers[router_id])
        if host in order:
            peers = set(topo.agents)
            break
        peers.update(order)
    out = []
    for peer in sorted(peers - {host}):
        agent = topo.agents.get(peer)
        ofport = l3.gateway_tunnel_ofport(topo, peer)
        if agent is not None and ofport is not None:
            out.append(GatewayTunnelSpec(peer, agent.tunnel_ip, ofport))
    return tuple(out)
