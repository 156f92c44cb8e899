"""The lab fixture: one started 3-hypervisor lab per test session, always torn down.

``lab`` is session-scoped (starting takes well under a second, but tests
share it); tests that add VMs or flows use ``lab_vms`` or remove them
themselves.

Two test sessions on one machine need different lab names and management
ranges (see lab/mininet/config.py): set LOOM_TEST_SLOT to 1..9 and every lab
the tests start (the plain lab, Loom's lab, the clean test's lab) gets names
and a range of that slot (``slot_config``). LOOM_LAB_PREFIX /
LOOM_LAB_MGMT_CIDR still override the plain lab alone, LOOM_LOOMLAB_PREFIX /
LOOM_LOOMLAB_MGMT_CIDR Loom's lab alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from lab.mininet import Lab, LabConfig
from lab.mininet.loom import LoomLab
from tests.lab.compute_scenario import Cloud
from tests.lab.scenario import Scenario


def slot_config(role: str, hypervisors: int) -> LabConfig:
    """The lab a test session starts for ``role`` in its LOOM_TEST_SLOT.

    Roles: "s" plain, "l" Loom, "z" clean test, "u" the lab `make lab` starts (tests/lab/test_readme_commands.py),
    "c" compute (a libvirtd per hypervisor), "r" routers (tests/lab/l3_scenario.py, with an external world).
    Slot 0 (the default) keeps the historical names: lab/198.18.0, labl/198.18.1, labz/198.18.7, labu/198.18.8,
    labc/198.18.9 and labr/198.18.140. Slot k uses lab<k><role> and 198.18.(20 + 3k + i).0/24 for the first three
    roles, 198.18.(100 + k).0/24 for "u", 198.18.(120 + k).0/24 for "c" and 198.18.(140 + k).0/24 for "r".
    """
    slot = int(os.environ.get("LOOM_TEST_SLOT", "0") or 0)
    roles = "slz"
    if slot == 0:
        prefix, third = {
            "s": ("lab", 0),
            "l": ("labl", 1),
            "z": ("labz", 7),
            "u": ("labu", 8),
            "c": ("labc", 9),
            "r": ("labr", 140),
        }[role]
    elif role == "r":  # the routers' lab: its own range, clear of the others'
        prefix, third = f"lab{slot}r", 140 + slot
    elif role == "u":
        prefix, third = f"lab{slot}u", 100 + slot
    elif role == "c":  # compute's lab (libvirtd per hypervisor): its own range, clear of the others'
        prefix, third = f"lab{slot}c", 120 + slot
    else:
        prefix, third = f"lab{slot}{role}", 20 + 3 * slot + roles.index(role)
    return LabConfig(hypervisors=hypervisors, prefix=prefix, mgmt_cidr=f"198.18.{third}.0/24")


def lab_config_from_env(hypervisors: int = 3) -> LabConfig:
    base = slot_config("s", hypervisors)
    overrides = {"prefix": base.prefix, "mgmt_cidr": base.mgmt_cidr}
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

_LOOM_SLOT = slot_config("l", hypervisors=3)
# As LOOM_LAB_PREFIX / LOOM_LAB_MGMT_CIDR do for the plain lab, these override Loom's lab alone.
LOOM_LAB = LabConfig(
    hypervisors=3,
    prefix=os.environ.get("LOOM_LOOMLAB_PREFIX") or _LOOM_SLOT.prefix,
    mgmt_cidr=os.environ.get("LOOM_LOOMLAB_MGMT_CIDR") or _LOOM_SLOT.mgmt_cidr,
)


@pytest.fixture(scope="session")
def loom() -> Iterator[LoomLab]:
    """Loom running on its own 3-hypervisor lab: controller, agents, DHCP, metadata (LOOM_LAB)."""
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


# ---------------------------------------------------------------- compute: Loom with a libvirtd per hypervisor

COMPUTE_LAB = slot_config("c", hypervisors=2)


@pytest.fixture(scope="session")
def compute_lab() -> Iterator[LoomLab]:
    """Loom on a 2-hypervisor lab whose agents boot real guests through their own libvirtd (COMPUTE_LAB)."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (namespaces, OVS, libvirtd)")
    if shutil.which("libvirtd") is None or shutil.which("qemu-system-x86_64") is None:
        pytest.skip("libvirtd or qemu is not installed (make bootstrap installs them)")
    instance = LoomLab(config=COMPUTE_LAB, compute=True)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def cloud(compute_lab: LoomLab) -> Iterator[Cloud]:
    """What a compute test creates through the API; all of it is deleted afterwards, even on failure."""
    c = Cloud(compute_lab)
    try:
        yield c
    finally:
        c.cleanup()
