"""The agent's compute manager: brings each instance of the host's desired state to its spec through libvirt.

Threads, none of them the agent's reconcile thread (flows never wait for a
guest):

- the **loop** wakes on a new desired state, on ports whose flows got
  installed or whose VIF appeared, on a finished step, and every few seconds
  (to notice a guest that powered itself off); it hands each instance that
  needs looking at to a worker, one worker per instance at a time;
- **workers** (a small pool: ten guests boot side by side) observe one
  instance, ask ``planner.plan`` for the next step, do it, and repeat until
  it is settled, must wait, or failed (then it is retried with a backoff,
  and the fault is reported so the instance shows ERROR with the reason);
- the **reporter** sends the HypervisorReport (capacity, libvirtd's health,
  every instance's state, console output that changed) when something
  changed, and every few seconds regardless.

Nothing happens before the controller's state arrived in this run: a
persisted desired state may be older than the domains (an instance created
just before a SIGKILL), and removing a domain on that basis would destroy a
guest. Stopping the agent touches no domain.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from dataplane.common import qemu_img
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.compute import domain as dx
from dataplane.compute import planner
from dataplane.compute.hypervisor import DomainError, HypervisorDown, LibvirtHost, resolve_virt_type
from dataplane.compute.planner import Action, DomainState, Observed, Step
from dataplane.compute.storage import DiskTransfer, ImageCache, StorageError, build_root_disk, remove_instance_dir
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.types import VM_ID
from protos.loom.v1 import hypervisor_pb2, hypervisor_pb2_grpc
from vif import link
from vif.names import vif_device_name
from vif.plug import PlugError, plug_tap, unplug

log = get_logger(__name__)

SCAN_INTERVAL = 2.0  # seconds between looks at every instance
REPORT_INTERVAL = 2.0  # seconds between reports when nothing changed
MAX_STEPS = 32  # per converge: a loop that never settles is a bug, not a reason to spin
RETRY_MIN, RETRY_MAX = 1.0, 10.0  # backoff after a failed step
CONSOLE_TAIL = 64 * 1024
WORKERS = 4
DEFAULT_MTU = 1500


@dataclass(frozen=True, slots=True)
class ComputeConfig:
    host: str
    libvirt_uri: str
    instances_dir: Path
    image_cache_dir: Path
    ovsdb: str
    virt_type: str = "auto"
    shutdown_timeout: float = 60.0  # a graceful shutdown, before the guest is powered off
    detach_timeout: float = 30.0  # a guest releasing a hot-unplugged volume
    vcpus: int = 0  # 0: what libvirt says the host has
    memory_mb: int = 0


@dataclass
class _Runtime:
    """What the manager remembers about one instance between steps (memory only)."""

    busy: bool = False
    dirty: bool = True
    retry_at: float = 0.0
    failures: int = 0
    shutdown_at: float | None = None
    detaching: dict[str, float] = field(default_factory=dict)
    plugged: set[str] = field(default_factory=set)
    exported: str = ""
    fault: str = ""
    volume_faults: dict[str, str] = field(default_factory=dict)  # serial -> why attaching or detaching it failed
    attach_failed: set[str] = field(default_factory=set)
    settled_spec: bytes = b""  # the spec it last settled on
    state: hypervisor_pb2.InstanceState | None = None
    wake_at: float | None = None


class ComputeManager:
    def __init__(self, config: ComputeConfig, channel: grpc.Channel) -> None:
        self.config = config
        self.log = log.bind(host=config.host)
        self.libvirt = LibvirtHost(config.libvirt_uri)
        self.virt_type = resolve_virt_type(config.virt_type)
        config.instances_dir.mkdir(parents=True, exist_ok=True)
        self.cache = ImageCache(config.image_cache_dir, channel)
        self.transfer = DiskTransfer(config.host, channel)
        self.stub = hypervisor_pb2_grpc.HypervisorServiceStub(channel)
        self.driver = OvsDriver(config.ovsdb)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._report_wake = threading.Event()
        self._stop = threading.Event()
        self._desired: dict[str, hypervisor_pb2.InstanceSpec] = {}
        self._ready = False  # the controller's state arrived in this run
        self._flows: frozenset[str] = frozenset()
        self._vifs: frozenset[str] = frozenset()
        self._rt: dict[str, _Runtime] = {}
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="compute")
        self._threads: list[threading.Thread] = []
        self._hv_error = ""
        self._consoles_sent: dict[str, tuple[int, int]] = {}  # instance -> (size, mtime) of the log last reported
        self._pending_consoles: dict[str, tuple[int, int]] = {}
        self._controller_epoch = ""
        self._capacity: tuple[int, int] | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        self.driver.start()
        for target, name in ((self._loop, "compute-loop"), (self._reporter, "compute-report")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.log.info("compute manager started", libvirt=self.config.libvirt_uri, virt_type=self.virt_type)

    def stop(self) -> None:
        """Stop working; every guest keeps running (and is adopted by the next agent)."""
        self._stop.set()
        self._wake.set()
        self._report_wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.libvirt.close()
        self.driver.close()

    # ------------------------------------------------------------ inputs (agent's reconcile thread)

    def update(self, desired: dict[str, hypervisor_pb2.InstanceSpec]) -> None:
        """The controller's current instance specs for this host."""
        with self._lock:
            old = self._desired
            self._desired = dict(desired)
            self._ready = True
            for iid in set(old) | set(desired):
                if old.get(iid) != desired.get(iid):
                    self._runtime(iid).dirty = True
        self._wake.set()

    def flows_installed(self, port_ids: set[str]) -> None:
        self._ports_changed(port_ids, flows=True)

    def vifs_present(self, port_ids: set[str]) -> None:
        self._ports_changed(port_ids, flows=False)

    def _ports_changed(self, port_ids: set[str], flows: bool) -> None:
        new = frozenset(port_ids)
        with self._lock:
            old = self._flows if flows else self._vifs
            if new == old:
                return
            if flows:
                self._flows = new
            else:
                self._vifs = new
            changed = new ^ old
            for iid, spec in self._desired.items():
                if any(n.port_id in changed for n in spec.nics):
                    self._runtime(iid).dirty = True
        self._wake.set()

    def _runtime(self, iid: str) -> _Runtime:
        rt = self._rt.get(iid)
        if rt is None:
            rt = self._rt[iid] = _Runtime()
        return rt

    # ------------------------------------------------------------ loop

    def _loop(self) -> None:
        next_scan = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                wakes = [t for rt in self._rt.values() if (t := rt.wake_at or (rt.retry_at if rt.dirty else 0))]
            deadline = min([next_scan, *(w for w in wakes if w > now)]) if wakes else next_scan
            self._wake.wait(timeout=max(0.0, deadline - now))
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            if now >= next_scan:
                next_scan = now + SCAN_INTERVAL
                if self._ready:
                    self._scan()
            self._dispatch(now)

    def _scan(self) -> None:
        """Every instance (desired, with a domain, or with files left) gets looked at."""
        try:
            domains = set(self.libvirt.loom_domains())
            self._hv_error = ""
        except HypervisorDown as exc:
            domains = set()
            self._hv_error = str(exc)
        dirs = {p.name for p in self.config.instances_dir.iterdir() if p.is_dir()}
        with self._lock:
            for iid in set(self._desired) | domains | dirs | set(self._rt):
                self._runtime(iid).dirty = True
        self._report_wake.set()

    def _dispatch(self, now: float) -> None:
        if not self._ready:
            return
        with self._lock:
            due = []
            for iid, rt in self._rt.items():
                if rt.wake_at is not None and now >= rt.wake_at:
                    rt.dirty, rt.wake_at = True, None
                if rt.dirty and not rt.busy and now >= rt.retry_at:
                    rt.dirty, rt.busy = False, True
                    due.append(iid)
        for iid in due:
            self._pool.submit(self._converge, iid)

    # ------------------------------------------------------------ one instance

    def _converge(self, iid: str) -> None:
        with self._lock:
            rt = self._rt[iid]
            spec = self._desired.get(iid)
        try:
            for _ in range(MAX_STEPS):
                if self._stop.is_set():
                    return
                with self._lock:
                    spec = self._desired.get(iid)
                if spec is None:
                    if self._remove_step(iid, rt):
                        break
                    continue
                action = self._step(iid, spec, rt)
                if action is None:
                    break
            rt.failures = 0
        except HypervisorDown as exc:
            self._hv_error = str(exc)
            settled = spec is not None and rt.settled_spec == spec.SerializeToString(deterministic=True)
            # Built here before, and not seen since this agent started (it restarted while libvirtd is
            # away): nothing is known, so nothing is reported, and its status stands.
            unseen = spec is not None and spec.provisioned and rt.state is None
            # A guest that runs as it should is not at fault because libvirtd is away; anything to do is.
            if spec is not None and not settled and not unseen:
                self._failed(iid, rt, f"hypervisor unavailable: {exc}")
            else:
                rt.retry_at = time.monotonic() + RETRY_MIN
                rt.dirty = True
        except (DomainError, StorageError, PlugError, qemu_img.QemuImgError, OSError) as exc:
            self._failed(iid, rt, str(exc))
        except Exception as exc:
            self.log.exception("instance step failed", instance_id=iid)
            self._failed(iid, rt, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                rt.busy = False
                if spec is None and rt.state is None and iid not in self._desired:
                    self._rt.pop(iid, None)
            self._wake.set()
            self._report_wake.set()

    def _failed(self, iid: str, rt: _Runtime, reason: str) -> None:
        if reason != rt.fault:
            self.log.error("instance cannot reach its spec", instance_id=iid, error=reason)
        rt.fault = reason
        rt.failures += 1
        rt.retry_at = time.monotonic() + min(RETRY_MAX, RETRY_MIN * 2 ** (rt.failures - 1))
        rt.dirty = True
        if rt.state is not None:
            rt.state.fault = reason
            rt.state.settled = False
        else:
            rt.state = hypervisor_pb2.InstanceState(instance_id=iid, power_state="nostate", fault=reason)

    def _paths(self, spec: hypervisor_pb2.InstanceSpec) -> dx.InstancePaths:
        return dx.InstancePaths(
            directory=self.config.instances_dir / spec.instance_id,
            image=self.cache.path(spec.image),
            kernel=self.cache.path(spec.kernel) if spec.HasField("kernel") else None,
            ramdisk=self.cache.path(spec.ramdisk) if spec.HasField("ramdisk") else None,
        )

    @staticmethod
    def _refs(spec: hypervisor_pb2.InstanceSpec) -> list[hypervisor_pb2.ImageRef]:
        refs = [spec.image]
        refs += [r for name, r in (("kernel", spec.kernel), ("ramdisk", spec.ramdisk)) if spec.HasField(name)]
        return refs

    def _step(self, iid: str, spec: hypervisor_pb2.InstanceSpec, rt: _Runtime) -> Action | None:
        """Observe, plan and do one step; None once settled, waiting or failed."""
        dom = self.libvirt.lookup(iid)
        dstate = self.libvirt.state(dom) if dom is not None else None
        if dstate is not None and dstate.state != planner.RUNNING:
            rt.shutdown_at = None
        if dstate is not None:
            rt.detaching = {s: t for s, t in rt.detaching.items() if s in dstate.live_volumes}
            self._prune_volume_faults(spec, rt, dstate.live_volumes)
        paths = self._paths(spec)
        taps = {n.port_id: vif_device_name(n.port_id) for n in spec.nics}
        applied = dstate.view.applied if dstate is not None else dx.Applied()
        xml, digest = dx.render(spec, paths, taps, self.virt_type, applied)
        with self._lock:
            flows, vifs = self._flows, self._vifs
        migration = spec.migration if spec.HasField("migration") else None
        exported = rt.exported or (
            migration.migration_id
            if migration is not None and (paths.directory / f"exported-{migration.migration_id}").exists()
            else ""
        )
        obs = Observed(
            domain=dstate,
            rendered_hash=digest,
            images_ready=all(self.cache.ready(r) for r in self._refs(spec)),
            disk_exists=paths.disk.exists(),
            taps_ready=all(
                pid in rt.plugged or (pid in vifs and link.get_link(tap) is not None) for pid, tap in taps.items()
            ),
            flows_ready=all(n.port_id in flows for n in spec.nics),
            exported=exported,
            shutdown_at=rt.shutdown_at,
            detaching=dict(rt.detaching),
            attach_failed=frozenset(rt.attach_failed),
        )
        now = time.monotonic()
        action = planner.plan(spec, obs, now, self.config.shutdown_timeout, self.config.detach_timeout)
        self._record(iid, spec, rt, obs, action)
        if action.step in (Step.DONE, Step.WAIT, Step.FAIL):
            rt.wake_at = action.until
            if action.step == Step.FAIL:
                if action.volume:
                    rt.volume_faults[action.volume] = action.reason
                    rt.detaching.pop(action.volume, None)
                else:
                    raise DomainError(action.reason)
            return None
        self.log.info("instance step", instance_id=iid, step=action.step.value, volume=action.volume)
        self._do(iid, spec, rt, action, dom, dstate, paths, xml, digest)
        return action

    def _do(
        self,
        iid: str,
        spec: hypervisor_pb2.InstanceSpec,
        rt: _Runtime,
        action: Action,
        dom: object,
        dstate: DomainState | None,
        paths: dx.InstancePaths,
        xml: str,
        digest: str,
    ) -> None:
        step = action.step
        if step == Step.FETCH:
            for ref in self._refs(spec):
                self.cache.fetch(ref)
        elif step == Step.BUILD_DISK:
            build_root_disk(paths.disk, paths.image, spec.image, spec.disk_bytes)
        elif step == Step.IMPORT:
            m = spec.migration
            base_ref = m.base if m.HasField("base") else spec.image
            self.transfer.import_(iid, m.migration_id, paths.disk, self.cache.path(base_ref), base_ref)
        elif step == Step.EXPORT:
            m = spec.migration
            self.transfer.export(iid, m.migration_id, paths.disk)
            (paths.directory / f"exported-{m.migration_id}").touch()
            rt.exported = m.migration_id
        elif step == Step.PLUG:
            for nic in spec.nics:
                plug_tap(
                    nic.port_id,
                    nic.mac_address,
                    nic.mtu or DEFAULT_MTU,
                    ofport=nic.ofport or None,
                    ovsdb=self.driver,
                    vm_id=iid,
                )
                rt.plugged.add(nic.port_id)
        elif step == Step.DEFINE:
            if dstate is None and spec.provisioned:
                self.log.warning("domain missing: defining it again over its existing disk", instance_id=iid)
            self.libvirt.define(xml)
        elif step == Step.START:
            assert dom is not None
            self.libvirt.start(dom)  # type: ignore[arg-type]
            applied = dx.Applied(digest, spec.boot_generation, spec.power_generation)
            self.libvirt.set_applied(dom, applied, live=True)  # type: ignore[arg-type]
            rt.shutdown_at = None
        elif step == Step.SHUTDOWN:
            self.libvirt.shutdown(dom)  # type: ignore[arg-type]
            rt.shutdown_at = time.monotonic()
        elif step == Step.DESTROY:
            self.libvirt.destroy(dom)  # type: ignore[arg-type]
            rt.shutdown_at = None
        elif step == Step.ATTACH:
            vol = next(v for v in spec.volumes if v.volume_id == action.volume)
            serial = vol.serial or dx.volume_serial(vol.volume_id)
            try:
                self.libvirt.attach(dom, dx.device_xml(dx.volume_disk(vol)))  # type: ignore[arg-type]
            except DomainError as exc:
                # The volume's failure, not the instance's: reported, and the controller undoes the attachment.
                self.log.error("volume attach failed", instance_id=iid, volume_id=vol.volume_id, error=str(exc))
                rt.volume_faults[serial] = str(exc)
                rt.attach_failed.add(serial)
                return
            rt.volume_faults.pop(serial, None)
        elif step == Step.DETACH:
            disk = self.libvirt.live_disk(dom, action.volume)  # type: ignore[arg-type]
            if disk is not None:
                self.libvirt.detach(dom, disk)  # type: ignore[arg-type]
            rt.detaching[action.volume] = time.monotonic()
            rt.volume_faults.pop(action.volume, None)
        elif step == Step.MARK_APPLIED:
            assert dstate is not None
            applied = dx.Applied(digest, spec.boot_generation, dstate.view.applied.power_generation)
            self.libvirt.set_applied(dom, applied, live=False)  # type: ignore[arg-type]

    @staticmethod
    def _prune_volume_faults(spec: hypervisor_pb2.InstanceSpec, rt: _Runtime, live: frozenset[str]) -> None:
        """A volume's fault stands while what caused it does: an attach failure while the spec still has the
        volume and the guest does not, a detach failure while the guest still has a volume the spec dropped.
        Once the controller has undone the request, a later one starts clean."""
        wanted = {v.serial or dx.volume_serial(v.volume_id) for v in spec.volumes}
        rt.attach_failed &= wanted - live
        rt.volume_faults = {
            s: why for s, why in rt.volume_faults.items() if (s in rt.attach_failed) or (s in live and s not in wanted)
        }

    def _record(self, iid: str, spec: hypervisor_pb2.InstanceSpec, rt: _Runtime, obs: Observed, action: Action) -> None:
        """The instance's state as the next report will tell it."""
        d = obs.domain
        settled = action.step == Step.DONE
        if settled:
            rt.settled_spec = spec.SerializeToString(deterministic=True)
        if action.step != Step.FAIL:
            rt.fault = ""  # it observes and makes progress again
        if d is None:
            volumes: frozenset[str] = frozenset()
        elif d.state == planner.RUNNING:
            volumes = d.live_volumes
        else:
            volumes = frozenset(d.view.volumes)
        rt.state = hypervisor_pb2.InstanceState(
            instance_id=iid,
            power_state=d.state if d is not None else "nostate",
            settled=settled,
            fault=rt.fault,
            boot_generation=d.view.applied.boot_generation if d is not None else 0,
            volumes=sorted(volumes),
            volume_faults=rt.volume_faults,
            disk_ready=obs.disk_exists,
            exported=obs.exported,
            stopped_by_guest=spec.running and planner.guest_stopped(spec, obs),
            power_generation=spec.power_generation,
        )
        self._report_wake.set()

    # ------------------------------------------------------------ removal

    def _remove_step(self, iid: str, rt: _Runtime) -> bool:
        """One step of removing an instance this host no longer runs; True once nothing is left."""
        dom = self.libvirt.lookup(iid)
        dstate = self.libvirt.state(dom) if dom is not None else None
        directory = self.config.instances_dir / iid
        action = planner.plan_removal(dstate, directory.exists())
        if action.step == Step.DONE:
            rt.state = None
            return True
        self.log.info("instance step", instance_id=iid, step=action.step.value, reason="no longer on this host")
        if action.step == Step.DESTROY:
            self.libvirt.destroy(dom)  # type: ignore[arg-type]
            rt.state = hypervisor_pb2.InstanceState(instance_id=iid, power_state="shutdown")
            return False
        taps = set(dstate.view.taps) if dstate is not None else set()
        if dom is not None:
            self.libvirt.undefine(dom)
        for tap in sorted(taps):
            unplug(ifname=tap, ovsdb=self.driver)
        # Taps plugged for a domain that never got defined (or whose XML is gone) carry the instance as vm-id.
        for port in self.driver.list_ports(BR_INT):
            if port.external_ids.get(VM_ID) == iid and port.iface_id:
                unplug(port.iface_id, ovsdb=self.driver)
        remove_instance_dir(directory)
        with self._lock:
            self._consoles_sent.pop(iid, None)
        rt.state = None
        return True

    # ------------------------------------------------------------ reports

    def _reporter(self) -> None:
        while not self._stop.is_set():
            self._report_wake.wait(timeout=REPORT_INTERVAL)
            self._report_wake.clear()
            if self._stop.is_set():
                return
            time.sleep(0.01)  # let a burst of step results land in one report
            self._report_once()

    def capacity(self) -> tuple[int, int]:
        if self._capacity is None:
            try:
                c = self.libvirt.capacity()
                self._capacity = (c.vcpus, c.memory_mb)
            except (HypervisorDown, DomainError):
                return self._os_capacity()
        return self._capacity

    @staticmethod
    def _os_capacity() -> tuple[int, int]:
        mem_kb = 0
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
        return os.cpu_count() or 1, mem_kb // 1024

    def report(self) -> hypervisor_pb2.HypervisorReport:
        vcpus, memory_mb = self.capacity()
        error = self._hv_error or self.libvirt.error
        report = hypervisor_pb2.HypervisorReport(
            host=self.config.host,
            vcpus=self.config.vcpus or vcpus,
            memory_mb=self.config.memory_mb or memory_mb,
            hypervisor_up=not error,
            error=error,
            virt_type=self.virt_type,
        )
        with self._lock:
            states = [(iid, rt.state) for iid, rt in self._rt.items() if rt.state is not None]
            sent = dict(self._consoles_sent)
        for iid, st in states:
            msg = report.instances.add()
            msg.CopyFrom(st)
            log_path = self.config.instances_dir / iid / "console.log"
            try:
                stat = log_path.stat()
            except OSError:
                continue
            mark = (stat.st_size, stat.st_mtime_ns)
            if sent.get(iid) != mark:
                with open(log_path, "rb") as f:
                    f.seek(max(0, stat.st_size - CONSOLE_TAIL))
                    msg.console = f.read(CONSOLE_TAIL)
                msg.console_changed = True
                sent[iid] = mark
        self._pending_consoles = sent
        return report

    def _report_once(self) -> None:
        if not self._ready:
            return
        report = self.report()
        try:
            ack = self.stub.Report(report, timeout=5)
        except grpc.RpcError as exc:
            self.log.warning("hypervisor report failed", error=str(exc.code()))
            return
        with self._lock:
            if ack.epoch != self._controller_epoch:
                # A controller that (re)started holds no console output: all of it goes again, at once.
                resend = bool(self._controller_epoch)
                self._controller_epoch = ack.epoch
                self._consoles_sent = {}
                if resend:
                    self._report_wake.set()
                return
            self._consoles_sent = self._pending_consoles
