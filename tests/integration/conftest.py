"""Fixtures shared by the integration tests: the system OVS, scratch bridges, cleanup of what tests make."""

from tests.integration.vif_fixtures import bridge, driver, janitor, sandbox_ovs, system_ovs

__all__ = ["bridge", "driver", "janitor", "sandbox_ovs", "system_ovs"]
