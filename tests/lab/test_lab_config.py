"""The lab's names and address plan (no lab started)."""

from __future__ import annotations

import pytest

from lab.mininet.config import LabConfig
from lab.mininet.state import LabState


def test_names_carry_the_prefix_and_fit_linux_limits() -> None:
    config = LabConfig(hypervisors=99, prefix="labz9")
    names = [config.hv_netns(99), *config.linux_bridges, f"{config.mgmt_bridge}-eth99", config.vm_netns("vm1")]
    assert all(n.startswith("labz9") for n in names)
    assert all(len(n) <= 15 for n in names[:-1])  # device names; namespace names may be longer
    assert config.state_dir == "/tmp/loom-labz9"


def test_address_plan() -> None:
    config = LabConfig()
    assert (config.mgmt_ip(1), config.tunnel_ip(3), config.controller_ip) == (
        "198.18.0.1",
        "198.51.100.3",
        "198.18.0.254",
    )
    assert config.vm_mtu == 1450  # 1500-byte underlay minus VXLAN's 50


@pytest.mark.parametrize("bad", ["", "lv", "labXY", "lab123", "mylab"])
def test_prefix_must_be_lab_plus_two(bad: str) -> None:
    with pytest.raises(ValueError, match="lab prefix"):
        LabConfig(prefix=bad)


def test_state_knows_its_links_and_owner(tmp_path) -> None:  # type: ignore[no-untyped-def]
    state = LabState.for_this_process("lab", str(tmp_path / "loom-lab"))
    state.linux_bridges = ["labmgmt", "labul"]
    state.save()
    loaded = LabState.load(state.path)
    assert loaded == state and loaded.owner_alive()
    assert loaded.owns_link("labmgmt-eth3") and loaded.owns_link("labul")
    assert not loaded.owns_link("lab2mgmt-eth1") and not loaded.owns_link("labext")
    dead = LabState(prefix="lab", state_dir=state.state_dir, owner_pid=state.owner_pid, owner_start=1)
    assert not dead.owner_alive()  # same pid, different start time: a reused pid


def test_state_owns_its_agents_namespaces_but_not_another_labs() -> None:
    state = LabState(prefix="lab", state_dir="/tmp/loom-lab", owner_pid=1, owner_start=1)
    state.hypervisor_netns, state.vm_netns = ["labhv1", "labhv2"], ["lab-vm1"]
    assert state.owns_netns("labhv1") and state.owns_netns("lab-vm1")
    assert state.owns_netns("labhv2-4a88e7fb-123e")  # a localport the hv2 agent made
    assert state.owns_netns("lab-vm2"), "a VM plugged by hand (docs/lab.md): <prefix>-* is the lab's"
    assert not state.owns_netns("labghv1-4a88e7fb-123e") and not state.owns_netns("labg-vm2")
