"""Remove what earlier lab runs left behind: processes, namespaces, Linux bridges, veths, state dirs.

Only names that start with the lab prefix are considered, and among them
only those no *running* lab claims (a lab whose owner process is alive; see
state.py), unless ``force``. Order matters: processes first (daemons by their
pidfiles, then anything still inside a lab namespace, including Mininet's
host shells), then namespaces, then root-namespace links, then directories.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from dataclasses import dataclass, field

from dataplane.common import netns as ns
from dataplane.common.logs import get_logger
from lab.mininet.config import STATE_ROOT
from lab.mininet.ovs_instance import DAEMONS, OvsPaths, kill_daemon
from lab.mininet.state import LabState, find_states
from vif import link

log = get_logger(__name__)

_MININET_SHELL = re.compile(rb"mininet:(lab[a-z0-9]*)")


@dataclass
class CleanReport:
    killed: list[int] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    state_dirs: list[str] = field(default_factory=list)
    skipped_live: list[str] = field(default_factory=list)  # state dirs of labs still running


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _kill(pid: int, report: CleanReport) -> None:
    if pid == os.getpid():
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if pid not in report.killed:  # a daemon killed by its pidfile may linger a moment
        report.killed.append(pid)


def clean(prefix: str = "lab", force: bool = False, state_root: str = STATE_ROOT) -> CleanReport:
    """Remove leftovers of labs whose prefix starts with ``prefix`` (default: every lab)."""
    if not prefix.startswith("lab"):
        raise ValueError(f"refusing to clean names without the lab prefix: {prefix!r}")
    report = CleanReport()
    live: list[LabState] = []
    stale_dirs: list[str] = []
    for path, state in find_states(state_root, prefix):
        if state is not None and state.owner_alive() and not force:
            live.append(state)
            report.skipped_live.append(path)
        else:
            stale_dirs.append(path)
    # Mininet names its nodes' shells "mininet:<node>": hypervisors and Linux bridges.
    live_nodes = {n for s in live for n in (*s.hypervisor_netns, *s.linux_bridges)}

    # 1. OVS daemons of stale labs, by pidfile (checked against their command line).
    for path in stale_dirs:
        for hv_dir in sorted(os.listdir(path)):
            paths = OvsPaths(os.path.join(path, hv_dir))
            for daemon in DAEMONS:
                pidfile = paths.pidfile(daemon)
                if os.path.exists(pidfile) and (pid := kill_daemon(pidfile, paths.root, timeout=1.0)) is not None:
                    report.killed.append(pid)
    # 2. Anything else still running from a stale state dir, or inside a stale lab namespace,
    #    and Mininet host shells of labs not running (their namespaces may have no name yet).
    stale_netns = [n for n in ns.list_names(prefix) if not any(s.owns_netns(n) for s in live)]
    in_stale_netns = {pid for name in stale_netns for pid in ns.pids(name)}
    for pid in _all_pids():
        cmd = _cmdline(pid)
        shell = _MININET_SHELL.search(cmd)
        node = shell.group(1).decode() if shell else ""
        stale_shell = node.startswith(prefix) and node not in live_nodes
        if pid in in_stale_netns or any((d + "/").encode() in cmd for d in stale_dirs) or stale_shell:
            _kill(pid, report)
    # 3. Namespaces.
    for name in stale_netns:
        if ns.delete(name):
            report.netns.append(name)
    # 4. Links in this namespace: Linux bridges first, then the veths Mininet left.
    for info in sorted(link.list_links(), key=lambda i: (i.kind != "bridge", i.name)):
        if not info.name.startswith(prefix) or any(s.owns_link(info.name) for s in live):
            continue
        if link.delete_link(info.name):
            report.links.append(info.name)
    # 5. State directories.
    for path in stale_dirs:
        shutil.rmtree(path, ignore_errors=True)
        report.state_dirs.append(path)
    if report.killed or report.netns or report.links:
        log.info(
            "lab leftovers removed",
            prefix=prefix,
            processes=len(report.killed),
            netns=",".join(report.netns),
            links=",".join(report.links),
            state_dirs=",".join(report.state_dirs),
        )
    return report
