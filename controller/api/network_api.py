"""The NetworkService's business logic without gRPC: one resource class per kind over a shared core.

``NetworkApi`` only assembles them; see ``controller.api.core`` for what they
share and how writes are serialised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.api.core import ApiCore, NetworkSettings
from controller.api.errors import ApiError
from controller.api.floating_ips import FloatingIpResource
from controller.api.networks import NetworkResource
from controller.api.paging import Page
from controller.api.ports import PortResource
from controller.api.routers import RouterResource
from controller.api.security_groups import PortSecurity, SecurityGroupResource, SecurityGroupRuleResource
from controller.api.subnets import SubnetResource
from controller.model import Agent, FixedIP, FloatingIP, Network, Port, Router, SecurityGroupRule
from controller.store.base import Store


@dataclass(frozen=True, slots=True)
class GatewayHostView:
    host: str
    priority: int
    alive: bool
    active: bool


@dataclass(frozen=True, slots=True)
class RouterDetails:
    """What presenting a router needs besides the router itself."""

    interfaces: tuple[str, ...]
    external_fixed_ips: tuple[FixedIP, ...]
    gateway_hosts: tuple[GatewayHostView, ...]


@dataclass(frozen=True, slots=True)
class FloatingIpDetails:
    host: str
    mac_address: str


class NetworkApi:
    """Networks, subnets, ports, security groups, routers and floating IPs over one store."""

    def __init__(self, store: Store, settings: NetworkSettings | None = None) -> None:
        self.core = ApiCore(store, settings)
        self.store = store
        self.index = self.core.index
        self.networks = NetworkResource(self.core)
        self.subnets = SubnetResource(self.core)
        self.security_groups = SecurityGroupResource(self.core)
        self.security_group_rules = SecurityGroupRuleResource(self.core)
        self.ports = PortResource(self.core, PortSecurity(self.core, self.security_groups))
        self.routers = RouterResource(self.core)
        self.floating_ips = FloatingIpResource(self.core)
        # Whether a host's agent is connected (set by the dataplane wiring; unknown: False).
        self.agent_alive: Callable[[str], bool] = lambda host: False

    def close(self) -> None:
        self.core.close()

    # What presenting an object needs to know about the others (convert.Lookups).

    def subnet_ids(self, network_id: str) -> list[str]:
        return self.index.subnet_ids(network_id)

    def device_port_ids(self, device_id: str) -> list[str]:
        return self.index.device_port_ids(device_id)

    def vif_details(self, port: Port) -> dict[str, str]:
        return self.ports.vif_details(port)

    def binding(self, port: Port) -> tuple[str, str]:
        return self.ports.binding(port)

    def security_group_rules_of(self, group_id: str) -> list[SecurityGroupRule]:
        return self.security_groups.rules_of(group_id)

    def router_details(self, router: Router) -> RouterDetails:
        gw = self.routers.gateway_port(router)
        return RouterDetails(
            interfaces=tuple(p.id for p in self.routers.interface_ports(router.id)),
            external_fixed_ips=gw.fixed_ips if gw is not None else (),
            gateway_hosts=self._gateway_hosts(router),
        )

    def _gateway_hosts(self, router: Router) -> tuple[GatewayHostView, ...]:
        """The router's gateway hosts in the order hosts try them (as the compiler orders them)."""
        net = self.store.get("network", router.gateway_network_id) if router.gateway_network_id else None
        if not isinstance(net, Network) or not net.physical_network:
            return ()
        agents = [
            a
            for a in self.store.list("agent")
            if isinstance(a, Agent) and a.gateway_priority > 0 and net.physical_network in a.physical_networks
        ]
        agents.sort(key=lambda a: (-a.gateway_priority, a.id))
        if not self.core.settings.gateway_preempt:
            agents.sort(key=lambda a: a.id != router.active_gateway)  # stable: the active one first
        return tuple(
            GatewayHostView(a.id, a.gateway_priority, self.agent_alive(a.id), a.id == router.active_gateway)
            for a in agents
        )

    def fip_details(self, fip: FloatingIP) -> FloatingIpDetails:
        port = self.store.get("port", fip.port_id) if fip.port_id else None
        floating = self.floating_ips.floating_port(fip)
        return FloatingIpDetails(
            host=port.binding_host_id if isinstance(port, Port) else "",
            mac_address=floating.mac_address if floating is not None else "",
        )


__all__ = ["ApiError", "NetworkApi", "NetworkSettings", "Page"]
