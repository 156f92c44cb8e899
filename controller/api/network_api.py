"""The NetworkService's business logic without gRPC: one resource class per kind over a shared core.

``NetworkApi`` only assembles them; see ``controller.api.core`` for what they
share and how writes are serialised.
"""

from __future__ import annotations

from controller.api.core import ApiCore, NetworkSettings
from controller.api.errors import ApiError
from controller.api.networks import NetworkResource
from controller.api.paging import Page
from controller.api.ports import PortResource
from controller.api.security_groups import PortSecurity, SecurityGroupResource, SecurityGroupRuleResource
from controller.api.subnets import SubnetResource
from controller.model import Port, SecurityGroupRule
from controller.store.base import Store


class NetworkApi:
    """Networks, subnets, ports and security groups over one store."""

    def __init__(self, store: Store, settings: NetworkSettings | None = None) -> None:
        self.core = ApiCore(store, settings)
        self.store = store
        self.index = self.core.index
        self.networks = NetworkResource(self.core)
        self.subnets = SubnetResource(self.core)
        self.security_groups = SecurityGroupResource(self.core)
        self.security_group_rules = SecurityGroupRuleResource(self.core)
        self.ports = PortResource(self.core, PortSecurity(self.core, self.security_groups))

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


__all__ = ["ApiError", "NetworkApi", "NetworkSettings", "Page"]
