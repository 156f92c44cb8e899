"""The agent's compute planner: the next step for an instance, from its spec and what was observed."""

from __future__ import annotations

from dataclasses import replace

from dataplane.compute.domain import Applied, DomainView
from dataplane.compute.planner import (
    REASON_CRASHED,
    REASON_DESTROYED,
    REASON_SHUTDOWN,
    DomainState,
    Observed,
    Step,
    guest_stopped,
    plan,
    plan_removal,
)
from protos.loom.v1 import hypervisor_pb2

HASH = "h" * 32
TIMEOUT = 60.0
DETACH = 30.0


def spec(**fields: object) -> hypervisor_pb2.InstanceSpec:
    s = hypervisor_pb2.InstanceSpec(instance_id="i1", vcpus=1, memory_mb=128, **{"running": True, **fields})  # type: ignore[arg-type]
    s.nics.add(port_id="p1", mac_address="fa:16:3e:00:00:01", mtu=1450, ofport=100)
    return s


def dom(state: str = "running", reason: str = "", boot: int = 0, power: int = 0, live: frozenset[str] = frozenset()):
    view = DomainView("i1", "loom-i1", Applied(HASH, boot, power), ("tapp1",), {})
    return DomainState(view, state, reason, live)


def obs(domain: DomainState | None = None, **fields: object) -> Observed:
    return Observed(domain=domain, rendered_hash=HASH, **fields)  # type: ignore[arg-type]


def step(s: hypervisor_pb2.InstanceSpec, o: Observed, now: float = 100.0) -> Step:
    return plan(s, o, now, TIMEOUT, DETACH).step


def test_a_new_instance_goes_images_disk_taps_define_start() -> None:
    s = spec()
    assert step(s, obs(images_ready=False, disk_exists=False, taps_ready=False)) == Step.FETCH
    assert step(s, obs(disk_exists=False, taps_ready=False)) == Step.BUILD_DISK
    assert step(s, obs(taps_ready=False)) == Step.PLUG
    assert step(s, obs()) == Step.DEFINE
    assert step(s, obs(dom("shutdown"))) == Step.START
    assert step(s, obs(dom("running"))) == Step.DONE


def test_flows_first_taps_and_start_wait_for_the_ports_flows() -> None:
    s = spec()
    a = plan(s, obs(taps_ready=False, flows_ready=False), 0, TIMEOUT, DETACH)
    assert (a.step, a.reason) == (Step.WAIT, "the ports' flows")
    assert step(s, obs(dom("shutdown"), flows_ready=False)) == Step.WAIT


def test_a_provisioned_instance_whose_disk_vanished_is_an_error_not_a_fresh_disk() -> None:
    a = plan(spec(provisioned=True), obs(dom("running"), disk_exists=False), 0, TIMEOUT, DETACH)
    assert a.step == Step.FAIL and "root disk is missing" in a.reason


def test_a_missing_domain_over_an_existing_disk_is_defined_again() -> None:
    assert step(spec(provisioned=True), obs(None)) == Step.DEFINE


def test_a_changed_spec_redefines_but_never_restarts_a_running_guest() -> None:
    running = dom("running")
    assert step(spec(), replace(obs(running), rendered_hash="other")) == Step.DEFINE
    assert step(spec(), obs(running)) == Step.DONE  # after the define: nothing else


def test_stop_is_graceful_then_forced_after_the_timeout() -> None:
    s = spec(running=False, power_generation=1)
    assert step(s, obs(dom("running"))) == Step.SHUTDOWN
    waiting = plan(s, obs(dom("running"), shutdown_at=100.0), 110.0, TIMEOUT, DETACH)
    assert (waiting.step, waiting.until) == (Step.WAIT, 160.0)
    assert step(s, obs(dom("running"), shutdown_at=100.0), now=161.0) == Step.DESTROY
    assert step(s, obs(dom("shutdown", REASON_SHUTDOWN))) == Step.DONE


def test_soft_reboot_shuts_down_then_starts_hard_reboot_destroys_at_once() -> None:
    soft = spec(boot_generation=1)
    assert step(soft, obs(dom("running"))) == Step.SHUTDOWN
    assert step(soft, obs(dom("shutdown", REASON_SHUTDOWN))) == Step.START  # not "the guest stopped itself"
    hard = spec(boot_generation=1, hard_reboot=True)
    assert step(hard, obs(dom("running"))) == Step.DESTROY
    assert step(hard, obs(dom("shutdown", REASON_DESTROYED))) == Step.START
    assert step(hard, obs(dom("running", boot=1))) == Step.DONE


def test_a_reboot_request_for_a_stopped_guest_is_recorded_not_carried_out() -> None:
    assert step(spec(running=False, boot_generation=2), obs(dom("shutdown"))) == Step.MARK_APPLIED


def test_a_guest_that_powered_itself_off_stays_off_until_the_next_start() -> None:
    s = spec(power_generation=3)
    off = dom("shutdown", REASON_SHUTDOWN, power=3)
    assert guest_stopped(s, obs(off))
    assert step(s, obs(off)) == Step.DONE
    crashed = dom("crashed", REASON_CRASHED, power=3)
    assert step(s, obs(crashed)) == Step.DONE
    assert step(spec(power_generation=4), obs(off)) == Step.START  # a new start request
    assert not guest_stopped(s, obs(dom("shutdown", REASON_DESTROYED, power=3)))  # we did it (hard reboot)


def test_a_new_domain_never_started_is_started() -> None:
    assert step(spec(power_generation=0), obs(dom("shutdown", "", power=0))) == Step.START


def test_volumes_hot_plug_and_unplug_on_a_running_guest() -> None:
    s = spec()
    s.volumes.add(volume_id="v" * 36, device="vdb", serial="v" * 20, driver="file", path="/x")
    a = plan(s, obs(dom("running")), 0, TIMEOUT, DETACH)
    assert (a.step, a.volume) == (Step.ATTACH, "v" * 36)
    assert step(s, obs(dom("running", live=frozenset({"v" * 20})))) == Step.DONE
    gone = spec()
    a = plan(gone, obs(dom("running", live=frozenset({"v" * 20}))), 0, TIMEOUT, DETACH)
    assert (a.step, a.volume) == (Step.DETACH, "v" * 20)
    detaching = obs(dom("running", live=frozenset({"v" * 20})), detaching={"v" * 20: 100.0})
    assert step(gone, detaching, now=110.0) == Step.WAIT
    a = plan(gone, detaching, 131.0, TIMEOUT, DETACH)
    assert (a.step, a.volume) == (Step.FAIL, "v" * 20) and "did not release" in a.reason


def test_a_failed_hot_plug_is_not_retried_until_the_controller_undoes_it() -> None:
    s = spec()
    s.volumes.add(volume_id="v" * 36, device="vdb", serial="v" * 20, driver="file", path="/x")
    assert step(s, obs(dom("running"), attach_failed=frozenset({"v" * 20}))) == Step.DONE


def test_migration_source_exports_the_target_imports() -> None:
    source = spec(running=False)
    source.migration.migration_id = "m1"
    source.migration.export_disk = True
    assert step(source, obs(dom("shutdown"))) == Step.EXPORT
    assert step(source, obs(dom("shutdown"), exported="m1")) == Step.DONE
    target = spec(running=False)
    target.migration.migration_id = "m1"
    target.migration.import_disk = True
    assert step(target, obs(None, disk_exists=False, taps_ready=False)) == Step.IMPORT
    assert step(target, obs(None, taps_ready=False)) == Step.PLUG
    assert step(target, obs(None)) == Step.DEFINE
    assert step(target, obs(dom("shutdown"))) == Step.DONE


def test_removal_destroys_then_removes_everything() -> None:
    assert plan_removal(dom("running"), True).step == Step.DESTROY
    assert plan_removal(dom("shutdown"), True).step == Step.REMOVE
    assert plan_removal(None, True).step == Step.REMOVE
    assert plan_removal(None, False).step == Step.DONE
