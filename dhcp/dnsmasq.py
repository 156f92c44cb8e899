"""Starting, recognising and stopping one network's dnsmasq inside its namespace.

dnsmasq daemonizes itself: the process ``ip netns exec NS dnsmasq ...`` starts exits only once the daemon has
bound its DHCP socket, written its pid file and dropped privileges (or exits non-zero with the reason on
stderr), so a successful ``start`` means DHCP is being served.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass

from dataplane.common.logs import get_logger
from dataplane.common.supervise import is_running, named_netns, process_netns, read_cmdline, read_pid_file, rotate_log

from .paths import NetworkPaths

log = get_logger(__name__)

START_TIMEOUT = 10.0


class DnsmasqError(RuntimeError):
    """dnsmasq could not be started."""


def dnsmasq_binary() -> str:
    return shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


@dataclass(frozen=True, slots=True)
class RunningDnsmasq:
    pid: int
    argv: tuple[str, ...]


def running_instance(paths: NetworkPaths, argv: list[str], namespace: str) -> RunningDnsmasq | None:
    """The dnsmasq that already serves this network exactly as ``argv`` says, in ``namespace``, if any.

    It must be the pid in the pid file, be alive, have this very command line and live in the namespace.
    """
    pid = read_pid_file(paths.pid_file)
    if pid is None or not is_running(pid):
        return None
    if read_cmdline(pid) != argv:
        return None
    expected_ns = named_netns(namespace)
    if expected_ns is None or process_netns(pid) != expected_ns:
        return None
    return RunningDnsmasq(pid, tuple(argv))


def start(paths: NetworkPaths, argv: list[str], namespace: str) -> RunningDnsmasq:
    """Start dnsmasq for a network inside ``namespace``; returns once it serves DHCP."""
    paths.pid_file.unlink(missing_ok=True)
    rotate_log(paths.log_file)
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DnsmasqError(f"dnsmasq did not start within {START_TIMEOUT}s") from exc
    if result.returncode != 0:
        raise DnsmasqError(f"dnsmasq exited {result.returncode}: {result.stderr.decode(errors='replace').strip()}")
    pid = read_pid_file(paths.pid_file)
    if pid is None or not is_running(pid):
        raise DnsmasqError("dnsmasq started but its pid file names no live process")
    log.info("dnsmasq started", namespace=namespace, pid=pid, ms=round((time.monotonic() - started) * 1000, 1))
    return RunningDnsmasq(pid, tuple(argv))
