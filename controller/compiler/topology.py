"""An indexed, in-memory view of the logical model, kept up to date by events.

The compiler reads it (never writes it); the distributor applies every store
event to it. The indexes answer the compiler's questions in O(1): which ports a
host has, which hosts a network spans, a network's DHCP port, an agent's
tunnel IP.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from controller.compiler.l3index import L3Index
from controller.compiler.sg_index import SecGroupIndex
from controller.model import (
    OWNER_DHCP,
    Agent,
    FloatingIP,
    Instance,
    Network,
    Port,
    Resource,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from dataplane.common.constants import PATCH_OFPORT_MIN

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What the compiler needs to know about a hypervisor."""

    host: str
    tunnel_ip: str
    datapath_type: str = "netdev"
    tag: int = 0  # the agent's store tag: names its gateway tunnel port on every other host
    physical_networks: tuple[str, ...] = ()  # its bridge mappings, in registration order
    gateway_priority: int = 0  # above 0: a gateway host


def is_vif_port(port: Port) -> bool:
    """A port plugged as a VIF on one host (not the distributed DHCP/router ports)."""
    return bool(port.binding_host_id) and not port.device_owner.startswith("network:")


class Topology:
    """The model, indexed for the compiler. Mutate only through put/delete."""

    def __init__(
        self, dns_domain: str = "loom.internal", metadata_url: str = "", gateway_preempt: bool = False
    ) -> None:
        self.dns_domain = dns_domain
        self.metadata_url = metadata_url
        # A gateway host that comes back takes its routers back (True), or stays a backup (False, the default).
        self.gateway_preempt = gateway_preempt
        self.networks: dict[str, Network] = {}
        self.subnets: dict[str, Subnet] = {}
        self.ports: dict[str, Port] = {}
        self.instances: dict[str, Instance] = {}
        self.agents: dict[str, AgentInfo] = {}
        self.subnets_by_network: dict[str, dict[str, Subnet]] = defaultdict(dict)
        self.ports_by_network: dict[str, dict[str, Port]] = defaultdict(dict)
        self.ports_by_device: dict[str, dict[str, Port]] = defaultdict(dict)
        self.vif_ports_by_host: dict[str, dict[str, Port]] = defaultdict(dict)
        # (host, network id) -> that network's VIF ports on that host (a host's flooding lists them)
        self.vif_ports_by_host_network: dict[tuple[str, str], dict[str, Port]] = defaultdict(dict)
        # network id -> host -> number of VIF ports of that network on that host
        self.network_hosts: dict[str, dict[str, int]] = defaultdict(dict)
        # the same counts by host -> network: networks_of_host runs on every port event and recompile
        self.host_networks: dict[str, dict[str, int]] = defaultdict(dict)
        self.dhcp_ports: dict[str, Port] = {}
        self.secgroups = SecGroupIndex()  # security groups, their rules, members and references
        # Routers, their interfaces and gateways, floating IPs (controller.compiler.l3index).
        self.l3 = L3Index()
        # (host, network) pairs whose membership flipped (the host's first port on the network came,
        # or its last went) since the last ``take_membership_changes``: features react to them.
        self._membership_changes: list[tuple[str, str]] = []
        # host -> other host -> number of networks they share; a host's tunnel peers (asked for at
        # every recompile) are cached and dropped only when its peer set or an agent changes.
        self._shared: dict[str, dict[str, int]] = defaultdict(dict)
        self._peers: dict[str, tuple[str, ...]] = {}
        self._derived: dict[Hashable, Any] = {}  # see derived()

    # ------------------------------------------------------------ mutation

    def put(self, obj: Resource) -> None:
        self._derived.clear()
        if isinstance(obj, Network):
            self.networks[obj.id] = obj
        elif isinstance(obj, Subnet):
            self.subnets[obj.id] = obj
            self.subnets_by_network[obj.network_id][obj.id] = obj
        elif isinstance(obj, Port):
            self._remove_port(obj.id)
            self._add_port(obj)
        elif isinstance(obj, Instance):
            self.instances[obj.id] = obj
        elif isinstance(obj, Agent):
            self.set_agent(
                AgentInfo(
                    obj.id, obj.tunnel_ip, obj.datapath_type, obj.tag, obj.physical_networks, obj.gateway_priority
                )
            )
        elif isinstance(obj, Router):
            self.l3.put_router(obj)
        elif isinstance(obj, FloatingIP):
            self.l3.put_floating_ip(obj)
        elif isinstance(obj, SecurityGroup):
            self.secgroups.put_group(obj)
        elif isinstance(obj, SecurityGroupRule):
            self.secgroups.put_rule(obj)

    def apply(self, kind: str, obj_id: str, obj: Resource | None) -> None:
        """Make the topology hold ``obj`` as ``kind`` ``obj_id`` (None: delete it)."""
        if obj is None:
            self.delete(kind, obj_id)
        else:
            self.put(obj)

    def delete(self, kind: str, obj_id: str) -> None:
        self._derived.clear()
        if kind == "network":
            self.networks.pop(obj_id, None)
        elif kind == "subnet":
            subnet = self.subnets.pop(obj_id, None)
            if subnet is not None:
                by_net = self.subnets_by_network.get(subnet.network_id, {})
                by_net.pop(obj_id, None)
                if not by_net:
                    self.subnets_by_network.pop(subnet.network_id, None)
        elif kind == "port":
            self._remove_port(obj_id)
        elif kind == "instance":
            self.instances.pop(obj_id, None)
        elif kind == "agent":
            self.agents.pop(obj_id, None)
            self._peers.clear()
        elif kind == "security_group":
            self.secgroups.delete_group(obj_id)
        elif kind == "security_group_rule":
            self.secgroups.delete_rule(obj_id)
        elif kind == "router":
            self.l3.delete_router(obj_id)
        elif kind == "floatingip":
            self.l3.delete_floating_ip(obj_id)

    def set_agent(self, agent: AgentInfo) -> None:
        self._derived.clear()
        self.agents[agent.host] = agent
        self._peers.clear()

    def _add_port(self, port: Port) -> None:
        self.ports[port.id] = port
        self.ports_by_network[port.network_id][port.id] = port
        if port.device_id:
            self.ports_by_device[port.device_id][port.id] = port
        if port.device_owner == OWNER_DHCP:
            self.dhcp_ports[port.network_id] = port
        self.l3.put_port(port)
        if is_vif_port(port):
            host = port.binding_host_id
            self.vif_ports_by_host[host][port.id] = port
            self.vif_ports_by_host_network[(host, port.network_id)][port.id] = port
            self.secgroups.add_port(port)
            if _count(self.network_hosts, port.network_id, host, +1) == 1:
                self._membership_changes.append((host, port.network_id))
                self._share(host, port.network_id, +1)
            _count(self.host_networks, host, port.network_id, +1)

    def _remove_port(self, port_id: str) -> None:
        port = self.ports.pop(port_id, None)
        if port is None:
            return
        by_net = self.ports_by_network.get(port.network_id)
        if by_net is not None:
            by_net.pop(port_id, None)
            if not by_net:
                del self.ports_by_network[port.network_id]
        by_device = self.ports_by_device.get(port.device_id)
        if by_device is not None:
            by_device.pop(port_id, None)
            if not by_device:
                del self.ports_by_device[port.device_id]
        if self.dhcp_ports.get(port.network_id) is port:
            del self.dhcp_ports[port.network_id]
        self.l3.remove_port(port)
        if is_vif_port(port):
            host = port.binding_host_id
            self.secgroups.remove_port(port)
            local = self.vif_ports_by_host.get(host)
            if local is not None:
                local.pop(port_id, None)
                if not local:
                    del self.vif_ports_by_host[host]
            on_net = self.vif_ports_by_host_network.get((host, port.network_id))
            if on_net is not None:
                on_net.pop(port_id, None)
                if not on_net:
                    del self.vif_ports_by_host_network[(host, port.network_id)]
            if _count(self.network_hosts, port.network_id, host, -1) == 0:
                self._membership_changes.append((host, port.network_id))
                self._share(host, port.network_id, -1)
            _count(self.host_networks, host, port.network_id, -1)

    def _share(self, host: str, network_id: str, step: int) -> None:
        """``host`` joined (+1) or left (-1) ``network_id``: count the networks it shares with each other host."""
        for other in self.network_hosts.get(network_id, ()):
            if other == host:
                continue
            for a, b in ((host, other), (other, host)):
                if _count(self._shared, a, b, step) in (0, 1):  # b became or stopped being a's peer
                    self._peers.pop(a, None)

    def take_membership_changes(self) -> list[tuple[str, str]]:
        """The (host, network) pairs that joined or left since the last call (a pair may flip back)."""
        changes, self._membership_changes = self._membership_changes, []
        return changes

    # ------------------------------------------------------------ queries

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A value computed from the topology as it is now, kept until the next change.

        For what many hosts' compiles read alike within one pass (e.g. a network's
        tunnel outputs to every host it spans): computed once, not once per host.
        """
        try:
            return cast(T, self._derived[key])
        except KeyError:
            value = self._derived[key] = compute()
            return value

    def hosts_of_network(self, network_id: str) -> set[str]:
        return set(self.network_hosts.get(network_id, ()))

    def networks_of_host(self, host: str) -> set[str]:
        return set(self.host_networks.get(host, ()))

    def host_has_network(self, host: str, network_id: str) -> bool:
        return host in self.network_hosts.get(network_id, ())

    def tunnel_peers(self, host: str) -> tuple[str, ...]:
        """Tunnel IPs of the other registered hosts that share a network with ``host``."""
        cached = self._peers.get(host)
        if cached is None:
            peers = {ip for other in self._shared.get(host, ()) if (ip := self.tunnel_ip(other)) is not None}
            cached = self._peers[host] = tuple(sorted(peers))
        return cached

    def physnet_ofport(self, host: str, physical_network: str) -> int | None:
        """The OpenFlow port of ``host``'s patch to the bridge mapped to ``physical_network`` (None: unmapped)."""
        agent = self.agents.get(host)
        if agent is None or physical_network not in agent.physical_networks:
            return None
        return PATCH_OFPORT_MIN + agent.physical_networks.index(physical_network)

    def tunnel_ip(self, host: str) -> str | None:
        agent = self.agents.get(host)
        return agent.tunnel_ip if agent else None

    def instance_of(self, port: Port) -> Instance | None:
        return self.instances.get(port.device_id) if port.device_id else None


def _count(counts: dict[str, dict[str, int]], outer: str, inner: str, step: int) -> int:
    """Add ``step`` to ``counts[outer][inner]``, dropping entries that reach zero; returns the new count."""
    by_outer = counts[outer]
    n = by_outer.get(inner, 0) + step
    if n > 0:
        by_outer[inner] = n
    else:
        by_outer.pop(inner, None)
    if not by_outer:
        del counts[outer]
    return max(n, 0)
