"""Driving the 1 ms prober (lab.mininet.prober) from a benchmark: start, fire, read, and ARP helpers.

Shared by bench/time_to_ping.py (Loom) and bench/ovn_baseline.py (OVN), so both
sides are timed by exactly the same code: the prober is started early in the VM
namespace (its Python start-up is never inside a measurement), fired at a chosen
moment, and reports ``time.time()`` of its first echo reply.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dataplane.common import netns as ns
from lab.mininet.lab import Lab
from vif import link

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A guest whose first ARP request was dropped retries after 1 s (Linux's retrans_time): a first
# reply this late means the first ARP was lost.
ARP_LOST_MS = 900.0


def arp_lost(times: list[float]) -> int:
    """How many rounds' first reply came so late that the guest's first ARP must have been lost."""
    return sum(1 for t in times if t >= ARP_LOST_MS)


def start_prober(netns: str, dest: str) -> subprocess.Popen[str]:
    """A prober in ``netns`` aiming at ``dest``, socket open, waiting for ``fire``."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "lab.mininet.prober", dest, "--wait-go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(PROJECT_ROOT),
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"prober in {netns} did not start")
    return proc


@contextmanager
def prober(netns: str, dest: str) -> Iterator[subprocess.Popen[str]]:
    """``start_prober``, and the prober is killed on the way out if it still runs (a round failed)."""
    proc = start_prober(netns, dest)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def fire(proc: subprocess.Popen[str]) -> None:
    """Start probing now (one echo request per millisecond)."""
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def result(proc: subprocess.Popen[str]) -> dict:
    """The prober's report: ``started``, ``first_reply`` (None if none within its timeout), ``sent``."""
    assert proc.stdout is not None
    out = json.loads(proc.stdout.readline())
    proc.wait(10)
    return out


def ms_to_first_reply(proc: subprocess.Popen[str], t0: float, what: str) -> float:
    """Milliseconds from ``t0`` (``time.time()``) to the prober's first reply; raises if none came."""
    out = result(proc)
    if out["first_reply"] is None:
        raise RuntimeError(f"{what}: no reply")
    return (out["first_reply"] - t0) * 1000


def static_arp(netns: str, ip: str, mac: str, dev: str = "eth0") -> None:
    """A permanent neighbour entry, so no ARP is needed for ``ip``."""
    subprocess.run(
        ["ip", "netns", "exec", netns, "ip", "neigh", "replace", ip, "lladdr", mac, "nud", "permanent", "dev", dev],
        check=True,
    )


def forget_neighbor(netns: str, ip: str, dev: str = "eth0") -> None:
    """Drop ``netns``'s neighbour entry for ``ip`` (static or learnt), if any."""
    subprocess.run(
        ["ip", "netns", "exec", netns, "ip", "neigh", "del", ip, "dev", dev], check=False, capture_output=True
    )


def prepare_vif(netns: str, device: str, mac: str, cidr: str, mtu: int) -> None:
    """A VM namespace ``netns`` (made if missing) with eth0 (``mac``, ``cidr``) paired to ``device`` here.

    Run it inside the hypervisor (``Lab.call``): ``device`` is left there, not yet attached to any bridge.
    """
    link.ensure_veth_pair(device, netns, "eth0", peer_mac=mac, mtu=mtu)  # creates the namespace too
    link.set_addresses("eth0", [cidr], netns=netns)


@contextmanager
def claimed_netns(lab: Lab, netns: str) -> Iterator[str]:
    """A VM namespace made outside ``Lab.add_vm``, recorded in the lab's state while it exists, deleted after.

    Unrecorded, it would look like a leftover to any other lab starting meanwhile whose prefix it
    matches (a lab with the default prefix "lab" sweeps every "lab*" namespace no running lab claims),
    and its prober would be killed mid-round.
    """
    lab.claim_netns(netns)
    try:
        yield netns
    finally:
        ns.delete(netns)
        lab.release_netns(netns)
