"""Fixtures shared by the integration tests: the system OVS, scratch bridges, cleanup of what tests make,
and a live controller per test module."""

from collections.abc import Iterator

import pytest

from tests.integration.controller_harness import LiveController, check_db_invariants, live_controller, scratch_dir
from tests.integration.vif_fixtures import bridge, driver, janitor, sandbox_ovs, system_ovs

__all__ = ["bridge", "driver", "janitor", "sandbox_ovs", "system_ovs"]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveController]:
    """A controller serving the module's tests; its database must satisfy the invariants afterwards."""
    with scratch_dir() as workdir, live_controller(workdir) as live:
        yield live
        check_db_invariants(live.db_path)
