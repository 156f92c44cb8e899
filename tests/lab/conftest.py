"""The lab fixture: one started 3-hypervisor lab per test session, always torn down.

``lab`` is session-scoped (starting takes well under a second, but tests
share it); tests that add VMs or flows use ``lab_vms`` or remove them
themselves. Set LOOM_LAB_PREFIX / LOOM_LAB_MGMT_CIDR to run a second lab
session at the same time as another one (different names and management
range are needed; see lab/mininet/config.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lab.mininet import Lab, LabConfig
from lab.mininet.loom import LoomLab
from tests.lab.scenario import Scenario


def lab_config_from_env(hypervisors: int = 3) -> LabConfig:
    overrides = {}
    if prefix := os.environ.get("LOOM_LAB_PREFIX"):
        overrides["prefix"] = prefix
    if mgmt := os.environ.get("LOOM_LAB_MGMT_CIDR"):
        overrides["mgmt_cidr"] = mgmt
    return LabConfig(hypervisors=hypervisors, **overrides)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, OVS)")
    instance = Lab(config=lab_config_from_env())
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def lab_vms(lab: Lab) -> Iterator[Lab]:
    """The lab; VMs the test adds are removed afterwards."""
    before = set(lab.vms)
    try:
        yield lab
    finally:
        for name in set(lab.vms) - before:
            lab.remove_vm(name)


# ---------------------------------------------------------------- Loom on the lab

LOOM_LAB = LabConfig(hypervisors=3, prefix="labl", mgmt_cidr="198.18.1.0/24")


@pytest.fixture(scope="session")
def loom() -> Iterator[LoomLab]:
    """Loom running on its own 3-hypervisor lab: controller, agents, DHCP, metadata."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, OVS)")
    instance = LoomLab(config=LOOM_LAB)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def scenario(loom: LoomLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """What a test builds on the Loom lab; all of it is removed afterwards."""
    s = Scenario(loom, tmp_path_factory.mktemp("guest"))
    try:
        yield s
    finally:
        s.cleanup()
