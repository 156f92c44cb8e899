"""A private Open vSwitch (ovsdb-server + ovs-vswitchd) inside one network namespace.

Each emulated hypervisor gets its own run/db/log/sysconf directories (the
OVS_* environment variables point every OVS tool at them) and daemons started
inside its namespace, as OVS's own sandbox does. ovs-vswitchd --detach returns
once it has applied the initial configuration, so the instance is usable when
``start()`` returns. ``stop()`` kills by pidfile, after checking the pid still
belongs to this instance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

from dataplane.common.logs import get_logger

log = get_logger(__name__)

VSWITCH_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DAEMONS = ("ovs-vswitchd", "ovsdb-server")  # stop order
DAEMON_ARGS = ("--detach", "--no-chdir", "-vconsole:off", "-vfile:info")  # every OVS-style daemon we start


class OvsInstanceError(RuntimeError):
    """An OVS daemon failed to start or stop; the message names the instance and the log to read."""


@dataclass(frozen=True, slots=True)
class DaemonDirs:
    """The run/db/log tree under ``root`` that OVS-style daemons (OVS, OVN) keep their files in."""

    root: str

    @property
    def rundir(self) -> str:
        return os.path.join(self.root, "run")

    @property
    def dbdir(self) -> str:
        return os.path.join(self.root, "db")

    @property
    def logdir(self) -> str:
        return os.path.join(self.root, "log")

    def pidfile(self, daemon: str) -> str:
        return os.path.join(self.rundir, f"{daemon}.pid")

    def logfile(self, daemon: str) -> str:
        return os.path.join(self.logdir, f"{daemon}.log")


@dataclass(frozen=True, slots=True)
class OvsPaths(DaemonDirs):
    """Where one OVS instance keeps its files."""

    @property
    def sysconfdir(self) -> str:
        return os.path.join(self.root, "etc")

    @property
    def db_file(self) -> str:
        return os.path.join(self.dbdir, "conf.db")

    @property
    def db_socket(self) -> str:
        return os.path.join(self.rundir, "db.sock")

    def mgmt_socket(self, bridge: str) -> str:
        """The OpenFlow management socket ovs-vswitchd opens for every bridge."""
        return os.path.join(self.rundir, f"{bridge}.mgmt")

    @property
    def env(self) -> dict[str, str]:
        """Environment that points ovs-vsctl, ovs-ofctl, ovs-appctl at this instance."""
        return {
            "OVS_RUNDIR": self.rundir,
            "OVS_DBDIR": self.dbdir,
            "OVS_LOGDIR": self.logdir,
            "OVS_SYSCONFDIR": self.sysconfdir,
            "OVS_PKGDATADIR": "/usr/share/openvswitch",
        }


def _pid_of(pidfile: str) -> int | None:
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_daemon(pidfile: str, marker: str, timeout: float = 3.0) -> int | None:
    """SIGTERM (then SIGKILL) the pid in ``pidfile`` if its command line contains ``marker``.

    Returns the pid it signalled, or None if there was no such process.
    """
    pid = _pid_of(pidfile)
    if pid is None or marker not in _cmdline(pid):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _is_zombie(pid):
            return pid
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


class OvsInstance:
    """ovsdb-server and ovs-vswitchd for one namespace, files under ``root``."""

    def __init__(self, root: str, netns: str, system_id: str) -> None:
        self.paths = OvsPaths(root)
        self.netns = netns
        self.system_id = system_id

    def _run(self, argv: list[str], in_netns: bool = True) -> None:
        cmd = ["ip", "netns", "exec", self.netns, *argv] if in_netns else argv
        proc = subprocess.run(cmd, env={**os.environ, **self.paths.env}, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise OvsInstanceError(
                f"{self.system_id}: {' '.join(argv[:2])} failed ({proc.returncode}): {proc.stderr.strip()} "
                f"(logs in {self.paths.logdir})"
            )

    def start(self) -> None:
        """Create the database if needed, start both daemons; returns when ovs-vswitchd is configured."""
        p = self.paths
        for d in (p.rundir, p.dbdir, p.logdir, p.sysconfdir):
            os.makedirs(d, exist_ok=True)
        if not os.path.exists(p.db_file):
            self._run(["ovsdb-tool", "create", p.db_file, VSWITCH_SCHEMA], in_netns=False)
        self.start_ovsdb_server()
        self._run(
            [
                "ovs-vsctl",
                f"--db=unix:{p.db_socket}",
                "--no-wait",
                "--",
                "init",
                "--",
                "set",
                "Open_vSwitch",
                ".",
                f"external_ids:system-id={self.system_id}",
                f"external_ids:hostname={self.system_id}",
            ],
            in_netns=False,
        )
        self.start_vswitchd()
        log.debug("ovs started", system_id=self.system_id, netns=self.netns, root=p.root)

    def start_ovsdb_server(self) -> None:
        p = self.paths
        self._run(
            [
                "ovsdb-server",
                p.db_file,
                f"--remote=punix:{p.db_socket}",
                f"--pidfile={p.pidfile('ovsdb-server')}",
                f"--log-file={p.logfile('ovsdb-server')}",
                *DAEMON_ARGS,
            ]
        )

    def start_vswitchd(self) -> None:
        p = self.paths
        self._run(
            [
                "ovs-vswitchd",
                f"unix:{p.db_socket}",
                f"--pidfile={p.pidfile('ovs-vswitchd')}",
                f"--log-file={p.logfile('ovs-vswitchd')}",
                *DAEMON_ARGS,
            ]
        )

    def stop_daemon(self, daemon: str) -> bool:
        """Stop one daemon ("ovsdb-server" or "ovs-vswitchd"); True if it was running."""
        return kill_daemon(self.paths.pidfile(daemon), self.paths.root) is not None

    def stop(self) -> None:
        for daemon in DAEMONS:
            self.stop_daemon(daemon)
        log.debug("ovs stopped", system_id=self.system_id)
