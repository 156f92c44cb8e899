"""The next step for one instance, from its spec and what the agent observed. Pure (tests/unit/test_compute_planner.py).

The agent calls ``plan`` again after every step, so each rule only has to
name the first thing that is not right yet:

1. the images (root disk base, kernel, ramdisk) are in the cache;
2. the root disk exists. A new instance gets a fresh overlay; the target of
   a cold migration downloads its disk; an instance whose disk was built here
   before (``spec.provisioned``) and has gone is an error, never a reason to
   build a blank one over what its guest wrote;
3. a migration's source uploads the disk (the guest is stopped);
4. the taps are plugged, once the ports' flows are installed (flow-first:
   the guest's first packet finds its flows);
5. the domain is defined with the current spec (a digest in its metadata
   says whether it is; an unchanged spec is never redefined);
6. power: start when it should run (flows installed), graceful shutdown when
   it should not or a soft reboot is due (forced after the timeout), destroy
   at once for a hard reboot. A guest that powered itself off stays off
   until the next start request (its power generation moves on);
7. volumes of a running guest: hot-plug what the spec adds, unplug what it
   drops (the guest must release it; after a timeout that is an error). A
   failed hot-plug is the volume's fault, reported for the controller to undo
   the attachment, not the instance's.

Nothing here ever stops or restarts a running guest whose spec is satisfied:
an agent that restarts, or finds libvirtd restarted, adopts what runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dataplane.compute.domain import DomainView
from protos.loom.v1 import hypervisor_pb2

RUNNING = "running"
SHUTOFF = "shutdown"
CRASHED = "crashed"
# Why a domain is off, as libvirt says (virDomainShutoffReason), the ones that matter here.
REASON_SHUTDOWN = "shutdown"  # the guest powered off
REASON_CRASHED = "crashed"
REASON_DESTROYED = "destroyed"


class Step(enum.Enum):
    FETCH = "fetch images"
    BUILD_DISK = "build root disk"
    IMPORT = "import root disk"
    EXPORT = "export root disk"
    PLUG = "plug taps"
    DEFINE = "define domain"
    START = "start"
    SHUTDOWN = "shut down"
    DESTROY = "destroy"
    ATTACH = "attach volume"
    DETACH = "detach volume"
    MARK_APPLIED = "record reboot"
    REMOVE = "remove"
    FAIL = "fail"
    WAIT = "wait"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Action:
    step: Step
    volume: str = ""  # ATTACH: volume id; DETACH: virtio serial
    reason: str = ""  # FAIL: what is wrong; WAIT: what for
    until: float | None = None  # WAIT: re-plan by then


@dataclass(frozen=True, slots=True)
class DomainState:
    view: DomainView  # the persistent definition
    state: str  # running, shutdown, paused, crashed, ...
    reason: str = ""  # why it is off
    live_volumes: frozenset[str] = frozenset()  # serials attached to the running guest


@dataclass(frozen=True, slots=True)
class Observed:
    domain: DomainState | None
    rendered_hash: str  # the digest of the domain the spec renders to now
    images_ready: bool = True
    disk_exists: bool = True
    taps_ready: bool = True
    flows_ready: bool = True
    exported: str = ""  # the migration whose disk this host uploaded
    shutdown_at: float | None = None  # when this agent asked the guest to shut down
    detaching: dict[str, float] = field(default_factory=dict)  # serial -> when this agent asked to unplug it
    attach_failed: frozenset[str] = frozenset()  # serials whose hot-plug failed (reported; not retried)


def guest_stopped(spec: hypervisor_pb2.InstanceSpec, obs: Observed) -> bool:
    """The guest powered itself off (or crashed) after this agent started it for the current start request."""
    d = obs.domain
    return (
        d is not None
        and d.state != RUNNING
        and d.reason in (REASON_SHUTDOWN, REASON_CRASHED)
        and obs.shutdown_at is None
        and d.view.applied.power_generation == spec.power_generation
        and d.view.applied.boot_generation >= spec.boot_generation
    )


def plan(
    spec: hypervisor_pb2.InstanceSpec,
    obs: Observed,
    now: float,
    shutdown_timeout: float,
    detach_timeout: float,
) -> Action:
    if not obs.images_ready:
        return Action(Step.FETCH)
    migration = spec.migration if spec.HasField("migration") else None
    if not obs.disk_exists:
        if migration is not None and migration.import_disk:
            return Action(Step.IMPORT)
        if spec.provisioned:
            return Action(Step.FAIL, reason="its root disk is missing on this host; a new one is not built over it")
        return Action(Step.BUILD_DISK)
    d = obs.domain
    if migration is not None and migration.export_disk and obs.exported != migration.migration_id:
        if d is not None and d.state == RUNNING:
            return _shutdown(obs, now, shutdown_timeout)
        return Action(Step.EXPORT)
    if spec.nics and not obs.taps_ready:
        if not obs.flows_ready:
            return Action(Step.WAIT, reason="the ports' flows")
        return Action(Step.PLUG)
    if d is None or d.view.applied.spec_hash != obs.rendered_hash:
        return Action(Step.DEFINE)
    reboot_due = spec.boot_generation > d.view.applied.boot_generation
    want_running = spec.running and not guest_stopped(spec, obs)
    if d.state == RUNNING:
        if want_running and reboot_due and spec.hard_reboot:
            return Action(Step.DESTROY)
        if not want_running or reboot_due:
            return _shutdown(obs, now, shutdown_timeout)
        return _volumes(spec, d, obs, now, detach_timeout)
    if want_running:
        if not obs.flows_ready:
            return Action(Step.WAIT, reason="the ports' flows")
        return Action(Step.START)
    if reboot_due:
        return Action(Step.MARK_APPLIED)  # nothing to reboot while it is off
    return Action(Step.DONE)


def _shutdown(obs: Observed, now: float, timeout: float) -> Action:
    if obs.shutdown_at is None:
        return Action(Step.SHUTDOWN)
    if now - obs.shutdown_at >= timeout:
        return Action(Step.DESTROY)
    return Action(Step.WAIT, reason="the guest to shut down", until=obs.shutdown_at + timeout)


def _volumes(spec: hypervisor_pb2.InstanceSpec, d: DomainState, obs: Observed, now: float, timeout: float) -> Action:
    wanted = {v.serial or v.volume_id[:20]: v.volume_id for v in spec.volumes}
    for serial, volume_id in wanted.items():
        if serial not in d.live_volumes and serial not in obs.attach_failed:
            return Action(Step.ATTACH, volume=volume_id)
    for serial in sorted(d.live_volumes - wanted.keys()):
        started = obs.detaching.get(serial)
        if started is None:
            return Action(Step.DETACH, volume=serial)
        if now - started >= timeout:
            return Action(Step.FAIL, volume=serial, reason=f"the guest did not release the disk in {timeout:.0f} s")
        return Action(Step.WAIT, reason=f"the guest to release volume {serial}", until=started + timeout)
    return Action(Step.DONE)


def plan_removal(domain: DomainState | None, leftovers: bool) -> Action:
    """The next step for an instance this host must no longer run: destroy, then remove everything."""
    if domain is not None and domain.state == RUNNING:
        return Action(Step.DESTROY)
    if domain is not None or leftovers:
        return Action(Step.REMOVE)
    return Action(Step.DONE)
