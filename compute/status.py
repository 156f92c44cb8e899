"""From hypervisor reports to what an orchestrator sees: instance status, volume status, migrations.

``derive`` is pure: an instance and what its host last said about it in,
the fields to change out. Its rules:

- Nothing heard yet about an instance: what the API set stands (BUILD).
- The host says it cannot reach the desired state: ERROR, with its reason as
  ``fault`` (libvirtd down, the root disk missing, a download failing). The
  host keeps trying; once it succeeds the status follows again.
- Otherwise the desired state and the domain's decide: desired running and
  running is ACTIVE (REBOOT / HARD_REBOOT while a reboot request is not
  carried out yet); never run yet is BUILD; desired off is SHUTOFF once the
  domain is off (ACTIVE, powering-off, until then).
- A guest that powered itself off (or crashed) while meant to run: the
  desired state becomes "off", as Nova's power-state sync does, so SHUTOFF is
  what the orchestrator sees and no restart surprises it.

``InstanceStatusTracker`` applies every report under the compute lock in one
commit: instance fields, volume transitions (attaching -> in-use, detaching
-> available; failures back, with a fault), and the two steps of a cold
migration: once the source has uploaded the disk, the instance and its ports
move to the target (rebound there, flows first); once the target has it, the
migration is over.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any

from compute import instance_api as ia
from compute.core import ComputeCore
from compute.transfers import DiskTransfers
from compute.volumes import ATTACHING, AVAILABLE, DETACHING, IN_USE
from controller.api.ports import Reservation
from controller.model import Instance, Port, Resource, Volume
from dataplane.common.logs import get_logger
from protos.loom.v1 import hypervisor_pb2

log = get_logger(__name__)

RUNNING = "running"
CONSOLE_KEEP = 64 * 1024


def derive(inst: Instance, st: hypervisor_pb2.InstanceState | None, now: float) -> dict[str, Any]:
    """The fields of ``inst`` to change given its host's report ``st`` (None: nothing reported yet)."""
    if st is None:
        return {}
    u: dict[str, Any] = {"power_state": st.power_state}
    running = st.power_state == RUNNING
    if running and not inst.launched_at:
        u["launched_at"] = now
    if st.disk_ready and inst.provisioned_host != inst.host and inst.migration_phase != "import":
        u["provisioned_host"] = inst.host
    if st.fault:
        u.update(status=ia.ERROR, fault=st.fault)
        return u
    u["fault"] = ""
    if inst.migration_id:
        u.update(status=ia.MIGRATING, task_state=ia.TASK_MIGRATING)
        return u
    launched = bool(inst.launched_at or u.get("launched_at"))
    if inst.power_on:
        if st.stopped_by_guest and not running and st.power_generation == inst.power_generation:
            u.update(power_on=False, power_generation=inst.power_generation + 1, status=ia.SHUTOFF, task_state="")
        elif st.boot_generation < inst.boot_generation:
            hard = inst.hard_reboot
            u.update(
                status=ia.HARD_REBOOT if hard else ia.REBOOT, task_state=ia.REBOOTING_HARD if hard else ia.REBOOTING
            )
        elif running:
            u.update(status=ia.ACTIVE, task_state="")
        elif not launched:
            u.update(status=ia.BUILD, task_state=ia.SPAWNING)
        else:
            u.update(status=ia.SHUTOFF, task_state=ia.POWERING_ON)
    elif running:
        u.update(status=ia.ACTIVE, task_state=ia.POWERING_OFF)
    else:
        u.update(status=ia.SHUTOFF, task_state="")
    return u


def volume_transition(vol: Volume, st: hypervisor_pb2.InstanceState) -> Volume | None:
    """``vol`` (attached to the instance ``st`` reports on) after the report, or None if unchanged."""
    serial = vol.id[:20]  # hosts name volumes by their virtio serial (compute/spec.py)
    fault = st.volume_faults.get(serial, "")
    attached = serial in st.volumes
    if vol.status == ATTACHING:
        if attached:
            return dataclasses.replace(vol, status=IN_USE, fault="")
        if fault:
            return dataclasses.replace(vol, status=AVAILABLE, instance_id="", device="", fault=f"attach: {fault}")
    elif vol.status == DETACHING:
        if fault and attached:
            return dataclasses.replace(vol, status=IN_USE, fault=f"detach: {fault}")
        if not attached:
            return dataclasses.replace(vol, status=AVAILABLE, instance_id="", device="", fault="")
    return None


@dataclass(frozen=True, slots=True)
class Console:
    output: bytes
    at: float


class InstanceStatusTracker:
    """Applies hypervisor reports; keeps each guest's newest console output (memory only)."""

    def __init__(self, core: ComputeCore, transfers: DiskTransfers) -> None:
        self.core = core
        self.store = core.store
        self.transfers = transfers
        self._lock = threading.Lock()
        self.present: dict[str, set[str]] = {}  # host -> instances it last reported having
        self.consoles: dict[str, Console] = {}

    def console(self, instance_id: str) -> Console | None:
        with self._lock:
            return self.consoles.get(instance_id)

    def report(self, report: hypervisor_pb2.HypervisorReport) -> None:
        host = report.host
        self.core.hypervisors.report(report)
        states = {s.instance_id: s for s in report.instances}
        now = time.time()
        with self._lock:
            self.present[host] = set(states)
            for st in report.instances:
                if st.console_changed:
                    self.consoles[st.instance_id] = Console(bytes(st.console[-CONSOLE_KEEP:]), now)
        with self.core.lock:
            puts: dict[tuple[str, str], Resource] = {}
            for inst in self.store.list("instance"):
                if isinstance(inst, Instance) and inst.booted and inst.host == host:
                    self._instance(inst, states.get(inst.id), now, puts)
            self._orphaned_volumes(puts)
            if puts:
                self.core.commit(list(puts.values()))

    def _instance(
        self,
        inst: Instance,
        st: hypervisor_pb2.InstanceState | None,
        now: float,
        puts: dict[tuple[str, str], Resource],
    ) -> None:
        if st is None:
            return
        changes = derive(inst, st, now)
        new = dataclasses.replace(inst, **changes)
        if inst.migration_id:
            new = self._migration(new, st, puts)
        if new != inst:
            puts[("instance", inst.id)] = new
            if new.status != inst.status:
                log.info(
                    "instance status",
                    instance_id=inst.id,
                    host=inst.host,
                    status=new.status,
                    task_state=new.task_state,
                    power_state=new.power_state,
                    fault=new.fault,
                )
        for vol in self.store.list("volume"):
            if isinstance(vol, Volume) and vol.instance_id == inst.id:
                changed = volume_transition(vol, st)
                if changed is not None:
                    puts[("volume", vol.id)] = changed
                    log.info("volume status", volume_id=vol.id, instance_id=inst.id, status=changed.status)

    def _migration(
        self, inst: Instance, st: hypervisor_pb2.InstanceState, puts: dict[tuple[str, str], Resource]
    ) -> Instance:
        if inst.migration_phase == "export":
            if st.fault:
                log.error("migration failed", instance_id=inst.id, source=inst.host, error=st.fault)
                self.transfers.discard(inst.id, inst.migration_id)
                return _end_migration(inst, fault=f"migration to {inst.migration_target} failed: {st.fault}")
            if st.exported == inst.migration_id and self.transfers.has(inst.id, inst.migration_id):
                return self._move(inst, puts)
        elif inst.migration_phase == "import" and st.disk_ready and not st.fault:
            self.transfers.discard(inst.id, inst.migration_id)
            log.info("migration done", instance_id=inst.id, host=inst.host)
            return dataclasses.replace(_end_migration(inst), provisioned_host=inst.host)
        return inst

    def _move(self, inst: Instance, puts: dict[tuple[str, str], Resource]) -> Instance:
        """The source has uploaded the disk: the instance and its ports go to the target."""
        target = inst.migration_target
        net = self.core.network
        reservation = Reservation()
        with net.core.lock:
            for pid in net.index.device_port_ids(inst.id):
                port = self.store.get("port", pid)
                if isinstance(port, Port) and port.binding_host_id == inst.host:
                    puts[("port", pid)] = net.ports.rebound(port, target, reservation)
        log.info("migration: disk exported, moving", instance_id=inst.id, source=inst.host, target=target)
        return dataclasses.replace(inst, host=target, migration_phase="import", provisioned_host="", power_state="")

    def _orphaned_volumes(self, puts: dict[tuple[str, str], Resource]) -> None:
        """Volumes of deleted instances become available once no host reports running the guest."""
        with self._lock:
            everywhere = set().union(*self.present.values()) if self.present else set()
        for vol in self.store.list("volume"):
            if not isinstance(vol, Volume) or vol.status != DETACHING or ("volume", vol.id) in puts:
                continue
            if isinstance(self.store.get("instance", vol.instance_id), Instance):
                continue
            if vol.instance_id not in everywhere:
                puts[("volume", vol.id)] = dataclasses.replace(vol, status=AVAILABLE, instance_id="", device="")
                log.info("volume status", volume_id=vol.id, status=AVAILABLE, reason="its instance is gone")

    def forget(self, instance_id: str) -> None:
        """The instance was deleted: its console output and any disk in transit go."""
        with self._lock:
            self.consoles.pop(instance_id, None)
        self.transfers.discard(instance_id)


def _end_migration(inst: Instance, fault: str = "") -> Instance:
    return dataclasses.replace(
        inst,
        migration_id="",
        migration_target="",
        migration_phase="",
        status=ia.ERROR if fault else ia.SHUTOFF,
        task_state="",
        fault=fault,
    )


def tail_lines(text: str, lines: int) -> str:
    if lines <= 0:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:])
