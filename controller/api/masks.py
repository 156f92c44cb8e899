"""Which fields an update may change, per resource kind.

Updates carry ``changes``: field name -> new value, built from the request's
``update_mask``. A field outside the mask is never touched; a mask naming an
immutable or output-only field is refused with INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.api.errors import invalid

COMMON_OUTPUT_ONLY = frozenset({"id", "tag", "revision_number", "created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class UpdateRules:
    kind: str
    mutable: frozenset[str]
    immutable: frozenset[str]
    output_only: frozenset[str]

    def check(self, changes: Mapping[str, object]) -> None:
        if not changes:
            raise invalid("update_mask", "is required: name the fields to change")
        for name in changes:
            field = f"{self.kind}.{name}"
            if name in self.immutable:
                raise invalid(field, "cannot be changed after creation")
            if name in self.output_only or name in COMMON_OUTPUT_ONLY:
                raise invalid(field, "is output only")
            if name not in self.mutable:
                raise invalid("update_mask", f"unknown field {name!r} of {self.kind}")


NETWORK_RULES = UpdateRules(
    "network",
    mutable=frozenset({"name", "admin_state_up", "mtu", "port_security_enabled", "router_external"}),
    immutable=frozenset({"project_id", "network_type", "segmentation_id", "physical_network"}),
    output_only=frozenset({"status", "subnets"}),
)
SUBNET_RULES = UpdateRules(
    "subnet",
    mutable=frozenset({"name", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp"}),
    immutable=frozenset({"network_id", "project_id", "ip_version", "cidr"}),
    output_only=frozenset(),
)
PORT_RULES = UpdateRules(
    "port",
    mutable=frozenset(
        {
            "name",
            "mac_address",
            "fixed_ips",
            "device_id",
            "device_owner",
            "binding_host_id",
            "admin_state_up",
            "port_security_enabled",
            "security_groups",
            "allowed_address_pairs",
        }
    ),
    immutable=frozenset({"network_id", "project_id"}),
    output_only=frozenset({"status", "stages", "binding_vif_details", "binding_vif_type", "binding_failure_reason"}),
)
INSTANCE_RULES = UpdateRules(
    "instance",
    mutable=frozenset({"name", "hostname", "user_data", "public_keys", "metadata", "availability_zone", "host"}),
    immutable=frozenset({"project_id"}),
    output_only=frozenset({"status", "ports"}),
)
ROUTER_RULES = UpdateRules(
    "router",
    mutable=frozenset({"name", "admin_state_up", "external_gateway_info", "routes"}),
    immutable=frozenset({"project_id"}),
    output_only=frozenset(
        {"status", "interfaces", "gateway_port_id", "dnat_zone", "snat_zone", "gateway_hosts", "active_gateway_host"}
    ),
)
FLOATINGIP_RULES = UpdateRules(
    "floating_ip",
    mutable=frozenset({"description", "port_id", "fixed_ip_address"}),
    immutable=frozenset({"project_id", "floating_network_id", "floating_ip_address"}),
    output_only=frozenset({"router_id", "status", "host", "floating_port_id", "mac_address"}),
)
