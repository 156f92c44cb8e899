"""The scheduler's choice, and how hypervisor reports become instance and volume statuses."""

from __future__ import annotations

import pytest

from compute import instance_api as ia
from compute.scheduler import HostCandidate, NoValidHost, Ratios, Usage, judge, schedule
from compute.status import derive, volume_transition
from controller.model import Instance, Volume
from protos.loom.v1 import hypervisor_pb2

HOSTS = [
    HostCandidate("hv1", vcpus=2, memory_mb=4096, alive=True, up=True),
    HostCandidate("hv2", vcpus=2, memory_mb=4096, alive=True, up=True),
    HostCandidate("hv3", vcpus=2, memory_mb=4096, alive=False, up=True),
    HostCandidate("hv4", vcpus=2, memory_mb=4096, alive=True, up=False, error="libvirtd gone"),
]


def test_the_host_with_the_most_free_ram_wins_and_equal_hosts_are_picked_by_name() -> None:
    assert schedule(HOSTS, {}, 1, 512) == "hv1"
    assert schedule(HOSTS, {"hv1": Usage(1, 1024, 1)}, 1, 512) == "hv2"
    assert schedule(HOSTS, {}, 1, 512, exclude=["hv1"]) == "hv2"


def test_no_valid_host_names_every_hypervisor_and_why() -> None:
    full = {"hv1": Usage(32, 0, 1), "hv2": Usage(0, 5000, 1)}
    with pytest.raises(NoValidHost) as exc:
        schedule(HOSTS, full, 1, 512)
    text = str(exc.value)
    assert "hv1: 0 vCPUs free, 1 wanted" in text
    assert "hv2: 556 MiB free, 512 wanted" not in text  # it fits: (4096 - 512) * 1.5 - 5000 = 376
    assert "hv2: 376 MiB free, 512 wanted" in text
    assert "hv3: its agent has not reported recently" in text
    assert "hv4: its hypervisor is down (libvirtd gone)" in text


def test_allocation_ratios() -> None:
    v = judge(HOSTS[0], Usage(), 1, 1, Ratios(cpu=4.0, ram=1.0, reserved_memory_mb=0))
    assert (v.free_vcpus, v.free_memory_mb) == (8.0, 4096.0)


# ---------------------------------------------------------------- status


def booted(**fields: object) -> Instance:
    base = dict(id="i1", image_id="img", host="hv1", status=ia.BUILD, task_state=ia.SPAWNING, vcpus=1, ram_mb=128)
    return Instance(**{**base, **fields})  # type: ignore[arg-type]


def state(power: str = "running", **fields: object) -> hypervisor_pb2.InstanceState:
    return hypervisor_pb2.InstanceState(instance_id="i1", power_state=power, **{"disk_ready": True, **fields})  # type: ignore[arg-type]


def test_nothing_reported_keeps_what_the_api_set() -> None:
    assert derive(booted(), None, 1.0) == {}


def test_first_run_makes_it_active_and_launched() -> None:
    u = derive(booted(), state("running", settled=True), 5.0)
    assert (u["status"], u["task_state"], u["launched_at"], u["provisioned_host"]) == (ia.ACTIVE, "", 5.0, "hv1")


def test_not_run_yet_is_build() -> None:
    assert derive(booted(), state("nostate", disk_ready=False), 1.0)["status"] == ia.BUILD


def test_a_fault_is_error_with_the_reason_and_clears_when_the_host_recovers() -> None:
    u = derive(booted(), state("nostate", fault="hypervisor unavailable: libvirtd is gone"), 1.0)
    assert (u["status"], u["fault"]) == (ia.ERROR, "hypervisor unavailable: libvirtd is gone")
    u = derive(booted(status=ia.ERROR, fault="x", launched_at=1.0), state("running"), 2.0)
    assert (u["status"], u["fault"]) == (ia.ACTIVE, "")


def test_stopping_and_stopped() -> None:
    inst = booted(power_on=False, launched_at=1.0, status=ia.ACTIVE)
    assert derive(inst, state("running"), 2.0)["task_state"] == ia.POWERING_OFF
    u = derive(inst, state("shutdown"), 2.0)
    assert (u["status"], u["task_state"]) == (ia.SHUTOFF, "")


def test_reboot_pending_until_the_host_carried_it_out() -> None:
    inst = booted(boot_generation=2, hard_reboot=True, launched_at=1.0)
    assert derive(inst, state("running", boot_generation=1), 2.0)["status"] == ia.HARD_REBOOT
    assert derive(inst, state("shutdown", boot_generation=1), 2.0)["status"] == ia.HARD_REBOOT
    assert derive(inst, state("running", boot_generation=2), 2.0)["status"] == ia.ACTIVE


def test_a_guest_that_stopped_itself_is_recorded_as_stopped_like_nova_s_power_sync() -> None:
    inst = booted(launched_at=1.0, power_generation=4)
    u = derive(inst, state("shutdown", stopped_by_guest=True, power_generation=4), 2.0)
    assert (u["power_on"], u["power_generation"], u["status"]) == (False, 5, ia.SHUTOFF)
    # A report about an older start request changes nothing of the new one.
    stale = derive(inst, state("shutdown", stopped_by_guest=True, power_generation=3), 2.0)
    assert "power_on" not in stale and stale["status"] == ia.SHUTOFF


def test_migrating_while_the_disk_travels() -> None:
    inst = booted(migration_id="m", migration_phase="export", launched_at=1.0, power_on=False)
    assert derive(inst, state("shutdown"), 2.0)["status"] == ia.MIGRATING
    target = booted(migration_id="m", migration_phase="import", launched_at=1.0, power_on=False, host="hv2")
    assert "provisioned_host" not in derive(target, state("nostate"), 2.0)  # set when the migration completes


def test_volume_transitions() -> None:
    vid = "aab59a64-0a09-462b-8a38-fba30aa91e76"
    attaching = Volume(id=vid, status="attaching", instance_id="i1", device="vdb")
    assert volume_transition(attaching, state(volumes=[vid[:20]])).status == "in-use"  # type: ignore[union-attr]
    assert volume_transition(attaching, state()) is None  # not yet
    failed = volume_transition(attaching, state(volume_faults={vid[:20]: "no such file"}))
    assert failed is not None and (failed.status, failed.instance_id) == ("available", "")
    assert failed.fault == "attach: no such file"
    detaching = Volume(id=vid, status="detaching", instance_id="i1", device="vdb")
    assert volume_transition(detaching, state(volumes=[vid[:20]])) is None
    done = volume_transition(detaching, state())
    assert done is not None and (done.status, done.instance_id, done.device) == ("available", "", "")
    stuck = volume_transition(detaching, state(volumes=[vid[:20]], volume_faults={vid[:20]: "timeout"}))
    assert stuck is not None and stuck.status == "in-use" and stuck.fault == "detach: timeout"
