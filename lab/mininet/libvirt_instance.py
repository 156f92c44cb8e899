"""A libvirtd of its own for each lab hypervisor, inside its network namespace.

libvirtd keeps its state under fixed paths (/run/libvirt, /var/lib/libvirt,
/etc/libvirt, ...): two of them on one machine would share their domains.
So each hypervisor's libvirtd runs in a *mount* namespace of its own
(``unshare --mount``), where the hypervisor's directories are bind-mounted
over those paths, and in the hypervisor's *network* namespace, so the taps
its qemus open are the ones the hypervisor's agent plugged into its br-int.
The same namespace gets a fresh sysfs, so libvirt sees the hypervisor's
devices, not the machine's. virtlogd (which writes the guests' console logs)
runs beside it. Everything lives in ``<hypervisor dir>/libvirt/``; the
agent reaches the daemon by its socket there:
``qemu+unix:///system?socket=<dir>/run/libvirt-sock``.

Without systemd, the QEMU driver still resolves the ``libvirt-qemu`` user
and the ``kvm`` group when it loads (scripts/bootstrap.sh creates them);
``qemu.conf`` then runs qemu as root, with no security driver, cgroups or
per-domain namespaces (a container offers none of them reliably).

A qemu started by this libvirtd outlives it (killing libvirtd is a test:
guests keep running, and a new libvirtd started the same way finds them).
``stop()`` destroys the guests and kills both daemons; ``lab.mininet.cleanup``
kills whatever a crashed run left (every process in a lab namespace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import libvirt

from dataplane.common.logs import get_logger

log = get_logger(__name__)

_DIRS = {"etc": "/etc/libvirt", "run": "/run/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt"}
_DIRS["cache"] = "/var/cache/libvirt"

LIBVIRTD_CONF = """\
# A lab hypervisor's libvirtd: local unix socket only, root only.
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

QEMU_CONF = """\
# qemu as root, without the confinement a container cannot provide.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""

VIRTLOGD_CONF = """\
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
"""


class LibvirtError(RuntimeError):
    """The hypervisor's libvirtd did not come up; the message points at its log."""


class LibvirtInstance:
    def __init__(self, root: str | os.PathLike[str], netns: str, name: str) -> None:
        self.root = Path(root) / "libvirt"
        self.netns = netns
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "libvirtd.log"

    def _script(self) -> str:
        mounts = "\n".join(f"mount --bind {self.root / d} {target}" for d, target in _DIRS.items())
        virtlogd_pid = "/run/libvirt/virtlogd.pid"
        return f"""set -e
{mounts}
mount -t sysfs sysfs /sys
if ! [ -f {virtlogd_pid} ] || ! kill -0 "$(cat {virtlogd_pid})" 2>/dev/null; then
    virtlogd -d -f /etc/libvirt/virtlogd.conf -p {virtlogd_pid}
fi
exec libvirtd -f /etc/libvirt/libvirtd.conf -p {self.root}/run/libvirtd.pid
"""

    def start(self, timeout: float = 30.0) -> None:
        """Start virtlogd (unless running) and libvirtd; return once libvirtd answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise LibvirtError(f"{self.name}: libvirtd is running already (pid {self.proc.pid})")
        for d in _DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "libvirtd.conf").write_text(LIBVIRTD_CONF)
        (self.root / "etc" / "qemu.conf").write_text(QEMU_CONF)
        (self.root / "etc" / "virtlogd.conf").write_text(VIRTLOGD_CONF)
        self.socket.unlink(missing_ok=True)
        out = open(self.root / "log" / "start.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{self.netns}",
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-c",
                    self._script(),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        finally:
            out.close()
        self._wait(timeout)
        log.info("libvirtd started", host=self.name, pid=self.proc.pid, uri=self.uri)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LibvirtError(f"{self.name}: libvirtd exited ({self.proc.returncode}); see {self.root}/log")
            if self.socket.exists():
                try:
                    conn = libvirt.open(self.uri)
                    # Probing qemu's capabilities takes seconds the first time: do it now, not at the first boot.
                    conn.getDomainCapabilities(None, "x86_64", None, "qemu", 0)
                    conn.close()
                    return
                except libvirt.libvirtError:
                    pass
            if time.monotonic() > deadline:
                raise LibvirtError(f"{self.name}: libvirtd did not answer in {timeout} s; see {self.log_file}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill libvirtd alone (its guests and virtlogd keep running): a crash, or the first half of a restart."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        proc.wait(10)
        log.info("libvirtd killed", host=self.name, pid=proc.pid, signal=sig)

    def domain_pids(self) -> list[int]:
        """The pids of this hypervisor's qemu processes (from libvirt's pid files, readable without libvirtd)."""
        pids = []
        for pidfile in (self.root / "run" / "qemu").glob("*.pid"):
            try:
                pids.append(int(pidfile.read_text().strip()))
            except (OSError, ValueError):
                continue
        return pids

    def stop(self) -> None:
        """Destroy every guest, then stop libvirtd and virtlogd. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                conn = libvirt.open(self.uri)
                for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                    try:
                        dom.destroy()
                    except libvirt.libvirtError:
                        pass
                conn.close()
            except libvirt.libvirtError as exc:
                log.warning("guests not destroyed through libvirtd", host=self.name, error=str(exc))
        for pid in self.domain_pids():  # whatever libvirtd could not destroy (or was not there to)
            _kill(pid, b"qemu")
        self.kill(signal.SIGTERM)
        pidfile = self.root / "run" / "virtlogd.pid"
        try:
            _kill(int(pidfile.read_text().strip()), b"virtlogd")
        except (OSError, ValueError):
            pass


def _kill(pid: int, expect: bytes) -> None:
    """SIGKILL ``pid`` if it still is the process a pid file named (pids are reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if expect not in f.read():
                return
    except OSError:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
