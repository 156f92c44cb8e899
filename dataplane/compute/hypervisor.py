"""The host's libvirtd, through libvirt-python: Loom's domains, their state, and the calls that change them.

One connection, shared by the compute manager's threads (libvirt's client is
thread-safe), opened on first use and again after libvirtd went away: any
call that finds the daemon gone raises :class:`HypervisorDown` and the next
call reconnects (at most once a second). Errors about one domain raise
:class:`DomainError`. Neither ever stops a guest: qemu outlives libvirtd,
and a restarted libvirtd finds its domains again.

A domain is Loom's if its XML carries Loom's metadata element
(``dataplane/compute/domain.py``); others on the same libvirtd are left alone.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass

import libvirt

from dataplane.common.logs import get_logger
from dataplane.compute import domain as dx
from dataplane.compute.planner import DomainState

log = get_logger(__name__)

RECONNECT_INTERVAL = 1.0

_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "running",  # shutting down: still running until it is off
    libvirt.VIR_DOMAIN_SHUTOFF: "shutdown",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_SHUTOFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED: "destroyed",
    libvirt.VIR_DOMAIN_SHUTOFF_CRASHED: "crashed",
}
# Errors that mean the daemon, not the request, is the problem.
_CONNECTION_ERRORS = {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_AUTH_FAILED,
}


class HypervisorDown(RuntimeError):
    """libvirtd does not answer; the message says where it was looked for and what failed."""


class DomainError(RuntimeError):
    """libvirt refused a request about one domain."""


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; they are raised (and logged) here instead."""


libvirt.registerErrorHandler(_quiet, None)

# KVM ioctls (linux/kvm.h) for the probe below.
_KVM_GET_API_VERSION = 0xAE00
_KVM_CREATE_VM = 0xAE01


def kvm_usable() -> bool:
    """/dev/kvm opens and creates a VM. (Not proof that a guest boots: on these nested machines one hung.)"""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, _KVM_GET_API_VERSION) != 12:
            return False
        vm = fcntl.ioctl(fd, _KVM_CREATE_VM, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def resolve_virt_type(virt_type: str) -> str:
    """``auto``: KVM where it works, TCG (libvirt's domain type ``qemu``) elsewhere."""
    if virt_type == "auto":
        return "kvm" if kvm_usable() else "qemu"
    return virt_type


@dataclass(frozen=True, slots=True)
class Capacity:
    vcpus: int
    memory_mb: int


class LibvirtHost:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._lock = threading.Lock()
        self._conn: libvirt.virConnect | None = None
        self._last_attempt = 0.0
        self._last_error = ""

    # ------------------------------------------------------------ connection

    def connection(self) -> libvirt.virConnect:
        with self._lock:
            conn = self._conn
            if conn is not None:
                try:
                    if conn.isAlive():
                        return conn
                except libvirt.libvirtError:
                    pass
                self._drop_locked()
            wait = self._last_attempt + RECONNECT_INTERVAL - time.monotonic()
            if wait > 0 and self._last_error:
                raise HypervisorDown(self._last_error)
            self._last_attempt = time.monotonic()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                self._last_error = f"libvirtd at {self.uri} does not answer: {exc.get_error_message()}"
                raise HypervisorDown(self._last_error) from exc
            if self._last_error:
                log.info("libvirtd reachable again", uri=self.uri)
            self._last_error = ""
            return self._conn

    def _drop_locked(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    @property
    def error(self) -> str:
        return self._last_error

    def check(self) -> str:
        """'' when libvirtd answers, else why not."""
        try:
            self.connection().getLibVersion()
            return ""
        except HypervisorDown as exc:
            return str(exc)
        except libvirt.libvirtError as exc:
            self._failed(exc)
            return self._last_error

    def _failed(self, exc: libvirt.libvirtError, what: str = "") -> None:
        """Turn a libvirt error into HypervisorDown (dropping the connection) or DomainError."""
        if exc.get_error_code() in _CONNECTION_ERRORS or exc.get_error_domain() == libvirt.VIR_FROM_RPC:
            with self._lock:
                self._drop_locked()
                self._last_error = f"libvirtd at {self.uri} went away: {exc.get_error_message()}"
                self._last_attempt = time.monotonic()
            raise HypervisorDown(self._last_error) from exc
        raise DomainError(f"{what}: {exc.get_error_message()}" if what else exc.get_error_message()) from exc

    def close(self) -> None:
        with self._lock:
            self._drop_locked()

    # ------------------------------------------------------------ reads

    def capacity(self) -> Capacity:
        try:
            info = self.connection().getInfo()
        except libvirt.libvirtError as exc:
            self._failed(exc, "host info")
            raise  # unreachable: _failed raises
        return Capacity(vcpus=int(info[2]), memory_mb=int(info[1]))

    def lookup(self, instance_id: str) -> libvirt.virDomain | None:
        conn = self.connection()
        try:
            return conn.lookupByUUIDString(instance_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            self._failed(exc, f"domain {instance_id}")
            raise

    def loom_domains(self) -> dict[str, libvirt.virDomain]:
        """instance id -> domain, for every domain carrying Loom's metadata."""
        try:
            domains = self.connection().listAllDomains(0)
        except libvirt.libvirtError as exc:
            self._failed(exc, "list domains")
            raise
        out = {}
        for dom in domains:
            try:
                view = dx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue  # removed meanwhile
                self._failed(exc, "domain XML")
                raise
            if view is not None:
                out[view.instance_id] = dom
        return out

    def state(self, dom: libvirt.virDomain) -> DomainState | None:
        """The domain's definition, state and live volumes; None if it is gone."""
        try:
            view = dx.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            state, reason = dom.state()
            live: frozenset[str] = frozenset()
            if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED):
                live_view = dx.parse(dom.XMLDesc(0))
                live = frozenset(live_view.volumes) if live_view is not None else frozenset()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            self._failed(exc, "domain state")
            raise
        if view is None:
            return None
        why = _SHUTOFF_REASONS.get(reason, "") if state == libvirt.VIR_DOMAIN_SHUTOFF else ""
        if state == libvirt.VIR_DOMAIN_CRASHED:
            why = "crashed"
        return DomainState(view, _STATES.get(state, "nostate"), why, live)

    def live_disk(self, dom: libvirt.virDomain, serial: str) -> str | None:
        """The XML of the running guest's disk with ``serial`` (what a detach needs), None if not attached."""
        try:
            view = dx.parse(dom.XMLDesc(0))
        except libvirt.libvirtError as exc:
            self._failed(exc, "domain XML")
            raise
        el = view.volumes.get(serial) if view is not None else None
        return dx.device_xml(el) if el is not None else None

    # ------------------------------------------------------------ changes

    def _call(self, what: str, fn, *args):  # type: ignore[no-untyped-def]
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            self._failed(exc, what)
            raise

    def define(self, xml: str) -> libvirt.virDomain:
        return self._call("define", self.connection().defineXML, xml)

    def start(self, dom: libvirt.virDomain) -> None:
        self._call("start", dom.create)

    def shutdown(self, dom: libvirt.virDomain) -> None:
        """Press the (ACPI) power button: the guest shuts down if it cares to."""
        try:
            dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return  # not running any more
            self._failed(exc, "shutdown")

    def destroy(self, dom: libvirt.virDomain) -> None:
        try:
            dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_DEFAULT)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
                return  # not running
            self._failed(exc, "destroy")

    def undefine(self, dom: libvirt.virDomain) -> None:
        try:
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            self._failed(exc, "undefine")

    def attach(self, dom: libvirt.virDomain, device_xml: str) -> None:
        self._call("attach", dom.attachDeviceFlags, device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def detach(self, dom: libvirt.virDomain, device_xml: str) -> None:
        """Ask the guest to release the device; it is gone once the live XML no longer has it."""
        self._call("detach", dom.detachDeviceFlags, device_xml, libvirt.VIR_DOMAIN_AFFECT_LIVE)

    def set_applied(self, dom: libvirt.virDomain, applied: dx.Applied, live: bool) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if live else 0)
        self._call(
            "metadata",
            dom.setMetadata,
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            dx.metadata_xml(applied),
            dx.PREFIX,
            dx.NAMESPACE,
            flags,
        )
