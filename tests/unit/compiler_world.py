"""A small logical world for compiler tests: builds a Topology and a simulated fabric."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from controller.compiler.host import compile_host
from controller.compiler.simulator import Delivery, Fabric, Packet
from controller.compiler.topology import AgentInfo, Topology
from controller.model import OWNER_DHCP, FixedIP, Network, Port, SecurityGroup, SecurityGroupRule, Subnet
from dataplane.common.constants import LOCALPORT_OFPORT_MIN
from dataplane.contract.bindings import localport_binding_flows, vif_binding_flows
from dataplane.contract.flow import Flow

# Every port of a World is in this group unless told otherwise: it allows everything, both ways, so tests
# of other features see their packets pass (through conntrack, as with any filtered port).
OPEN_GROUP = "sg-open"


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

    def host(self, name: str, tunnel_ip: str) -> None:
        self.topo.set_agent(AgentInfo(name, tunnel_ip))

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

    def flows(self, host: str) -> list[Flow]:
        """Everything br-int on ``host`` holds: compiled flows plus the agent's binding flows."""
        state = compile_host(self.topo, host)
        flows = state.flows()
        for spec in state.ports.values():
            if spec.admin_state_up:
                flows.extend(vif_binding_flows(spec.tag, spec.network_tag, spec.ofport))
        for net in state.networks.values():
            flows.extend(localport_binding_flows(net.localport_tag, net.tag, self.localport_ofport(net.network_id)))
        return flows

    def localport_ofport(self, network_id: str) -> int:
        """Where the test puts a network's DHCP/metadata namespace port (same number on every host)."""
        return LOCALPORT_OFPORT_MIN + self.topo.networks[network_id].tag

    def fabric(self) -> Fabric:
        fabric = Fabric()
        for host, agent in self.topo.agents.items():
            fabric.add_host(host, agent.tunnel_ip, self.flows(host))
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
