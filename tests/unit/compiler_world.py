"""A small logical world for compiler tests: builds a Topology and a simulated fabric.

Besides networks and ports it builds routers (interfaces, gateways), external
provider networks and floating IPs, and the part of the world outside the
hypervisors that L3 tests need: ``fabric()`` adds every host's gateway tunnels
(up unless a test says otherwise) and, as the agent would once it resolved
them, the external next hops' flows for ``UPSTREAM_MAC``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from controller.compiler.host import compile_host
from controller.compiler.simulator import Delivery, Fabric, Packet
from controller.compiler.topology import AgentInfo, Topology
from controller.model import (
    OWNER_DHCP,
    OWNER_FLOATINGIP,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    FixedIP,
    FloatingIP,
    HostRoute,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from dataplane.common.constants import LOCALPORT_OFPORT_MIN, PATCH_OFPORT_MIN, ROUTER_ZONE_MIN
from dataplane.contract.bindings import localport_binding_flows, vif_binding_flows
from dataplane.contract.external import external_neighbor_flow
from dataplane.contract.flow import Flow

# Every port of a World is in this group unless told otherwise: it allows everything, both ways, so tests
# of other features see their packets pass (through conntrack, as with any filtered port).
OPEN_GROUP = "sg-open"
UPSTREAM_MAC = "02:00:5e:00:00:01"  # the upstream router on every external network
PATCH = PATCH_OFPORT_MIN  # every host maps "external" first


@dataclass
class World:
    topo: Topology = field(default_factory=Topology)
    _tags: itertools.count = field(default_factory=lambda: itertools.count(1))
    _ofports: dict[str, itertools.count] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.security_group(OPEN_GROUP)
        for direction in ("ingress", "egress"):
            self.rule(OPEN_GROUP, direction)

    def security_group(self, group_id: str, name: str = "") -> SecurityGroup:
        group = SecurityGroup(id=group_id, tag=next(self._tags), name=name or group_id)
        self.topo.put(group)
        return group

    def rule(self, group_id: str, direction: str, rule_id: str = "", **fields: object) -> SecurityGroupRule:
        tag = next(self._tags)
        rule = SecurityGroupRule(
            id=rule_id or f"rule-{tag}", tag=tag, security_group_id=group_id, direction=direction, **fields
        )  # type: ignore[arg-type]
        self.topo.put(rule)
        return rule

    def host(self, name: str, tunnel_ip: str, physnets: tuple[str, ...] = (), gateway: int = 0) -> None:
        tag = self.topo.agents[name].tag if name in self.topo.agents else next(self._tags)
        self.topo.set_agent(AgentInfo(name, tunnel_ip, "netdev", tag, physnets, gateway))

    def network(self, name: str, vni: int, cidr: str = "10.0.0.0/24", admin: bool = True) -> Network:
        net = Network(
            id=f"net-{name}", tag=next(self._tags), name=name, segmentation_id=vni, mtu=1450, admin_state_up=admin
        )
        self.topo.put(net)
        subnet = Subnet(id=f"sub-{name}", tag=next(self._tags), network_id=net.id, cidr=cidr, gateway_ip=_nth(cidr, 1))
        self.topo.put(subnet)
        dhcp = Port(
            id=f"dhcp-{name}",
            tag=next(self._tags),
            network_id=net.id,
            mac_address=f"fa:16:3e:dd:00:{net.tag:02x}",
            fixed_ips=(FixedIP(subnet.id, _nth(cidr, 2)),),
            device_owner=OWNER_DHCP,
            device_id=f"dhcp-{net.id}",
        )
        self.topo.put(dhcp)
        return net

    def port(self, name: str, net: Network, host: str, mac: str, ip: str, **kw: object) -> Port:
        ofports = self._ofports.setdefault(host, itertools.count(100))
        port = Port(
            id=f"port-{name}",
            tag=next(self._tags),
            name=name,
            network_id=net.id,
            mac_address=mac,
            fixed_ips=(FixedIP(f"sub-{net.name}", ip),),
            device_owner="compute:test",
            binding_host_id=host,
            binding_ofport=next(ofports),
            security_groups=(OPEN_GROUP,),
        )
        port = replace(port, **kw)  # type: ignore[arg-type]
        self.topo.put(port)
        return port

    def external(self, name: str, cidr: str = "203.0.113.0/24", physnet: str = "external", vlan: int = 0) -> Network:
        """A router:external provider network with one subnet (gateway .1: the upstream router), no DHCP."""
        net = Network(
            id=f"net-{name}",
            tag=next(self._tags),
            name=name,
            network_type="vlan" if vlan else "flat",
            segmentation_id=vlan,
            physical_network=physnet,
            mtu=1500,
            router_external=True,
        )
        self.topo.put(net)
        self.topo.put(
            Subnet(id=f"sub-{name}", tag=next(self._tags), network_id=net.id, cidr=cidr, gateway_ip=_nth(cidr, 1))
        )
        return net

    def router(
        self,
        name: str,
        gateway: Network | None = None,
        external_ip: str = "",
        snat: bool = True,
        routes: tuple[tuple[str, str], ...] = (),
        active: str = "",
    ) -> Router:
        tag = next(self._tags)
        router = Router(
            id=f"router-{name}",
            tag=tag,
            name=name,
            zone=ROUTER_ZONE_MIN + 2 * tag,
            enable_snat=snat,
            routes=tuple(HostRoute(d, n) for d, n in routes),
            active_gateway=active,
        )
        if gateway is not None:
            port = Port(
                id=f"gw-{name}",
                tag=next(self._tags),
                network_id=gateway.id,
                mac_address=f"fa:16:3e:ee:00:{tag:02x}",
                fixed_ips=(FixedIP(f"sub-{gateway.name}", external_ip),),
                device_owner=OWNER_ROUTER_GATEWAY,
                device_id=router.id,
            )
            self.topo.put(port)
            router = replace(router, gateway_network_id=gateway.id, gateway_port_id=port.id)
        self.topo.put(router)
        return router

    def interface(self, router: Router, net: Network) -> Port:
        subnet = self.topo.subnets[f"sub-{net.name}"]
        assert subnet.gateway_ip
        port = Port(
            id=f"ri-{router.name}-{net.name}",
            tag=next(self._tags),
            network_id=net.id,
            mac_address=f"fa:16:3e:aa:{router.tag:02x}:{net.tag:02x}",
            fixed_ips=(FixedIP(subnet.id, subnet.gateway_ip),),
            device_owner=OWNER_ROUTER_INTERFACE,
            device_id=router.id,
        )
        self.topo.put(port)
        return port

    def floating_ip(self, name: str, router: Router, ext: Network, address: str, port: Port | None) -> FloatingIP:
        tag = next(self._tags)
        holder = Port(
            id=f"fipport-{name}",
            tag=next(self._tags),
            network_id=ext.id,
            mac_address=f"fa:16:3e:ff:00:{tag:02x}",
            fixed_ips=(FixedIP(f"sub-{ext.name}", address),),
            device_owner=OWNER_FLOATINGIP,
            device_id=f"fip-{name}",
        )
        self.topo.put(holder)
        fip = FloatingIP(
            id=f"fip-{name}",
            tag=tag,
            floating_network_id=ext.id,
            floating_ip_address=address,
            floating_port_id=holder.id,
            port_id=port.id if port else "",
            fixed_ip_address=port.ips[0] if port else "",
            router_id=router.id if port else "",
        )
        self.topo.put(fip)
        return fip

    def flows(self, host: str) -> list[Flow]:
        """Everything br-int on ``host`` holds: compiled flows plus the agent's binding flows."""
        state = compile_host(self.topo, host)
        flows = state.flows()
        # The external next hops the agent resolved (every one answers with the upstream router's MAC here).
        rendered = set()
        for ext in state.l3.externals:
            for hop in ext.next_hops:
                if (ext.tag, hop) not in rendered:
                    rendered.add((ext.tag, hop))
                    flows.append(external_neighbor_flow(ext.tag, hop, UPSTREAM_MAC))
        for spec in state.ports.values():
            if spec.admin_state_up:
                flows.extend(vif_binding_flows(spec.tag, spec.network_tag, spec.ofport))
        for net in state.networks.values():
            flows.extend(localport_binding_flows(net.localport_tag, net.tag, self.localport_ofport(net.network_id)))
        return flows

    def localport_ofport(self, network_id: str) -> int:
        """Where the test puts a network's DHCP/metadata namespace port (same number on every host)."""
        return LOCALPORT_OFPORT_MIN + self.topo.networks[network_id].tag

    def fabric(self, down: frozenset[tuple[str, str]] = frozenset()) -> Fabric:
        """Every host's tables, joined by tunnels; gateway tunnels live unless (host, peer) is in ``down``."""
        fabric = Fabric(separate_udp_port=True)  # gateway tunnels have a UDP port of their own
        for host, agent in self.topo.agents.items():
            state = compile_host(self.topo, host)
            tunnels = {t.ofport: t.remote_ip for t in state.l3.gateway_tunnels}
            peers = {t.ofport: t.host for t in state.l3.gateway_tunnels}
            ports = {ofport: (host, peers[ofport]) not in down for ofport in tunnels}
            fabric.add_host(host, agent.tunnel_ip, self.flows(host), tunnel_ports=tunnels, ports=ports)
        return fabric

    def send(self, port: Port, packet: Packet) -> set[tuple[str, int]]:
        return {(d.host, d.port) for d in self.send_full(port, packet)}

    def send_full(self, port: Port, packet: Packet) -> list[Delivery]:
        return self.fabric().send(port.binding_host_id, port.binding_ofport, packet)


def at(port: Port) -> tuple[str, int]:
    """Where a port's VIF sits: (host, OpenFlow port)."""
    return (port.binding_host_id, port.binding_ofport)


def _nth(cidr: str, n: int) -> str:
    import ipaddress

    return str(ipaddress.ip_network(cidr)[n])
