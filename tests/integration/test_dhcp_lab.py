"""Helpers (no tests) shared by the DHCP and metadata integration tests: a localport namespace and "VM"
namespaces on one Linux bridge, and real DHCP clients that record what they got.

No OVS is involved: the bridge lives in its own "switch" namespace, so removing the namespaces removes every
interface the lab made. Everything is named with the caller's prefix (``ld``: DHCP tests, ``lm``: metadata).
(It lives under a ``test_dhcp`` name only because that is the file pattern these tests own.)
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with the event as $1 and the lease as environment variables.
env | grep -E '^(ip|mask|router|dns|domain|hostname|mtu|staticroutes|msstaticroutes|lease|serverid|subnet)=' \
    > "$LAB_RECORD.$1.tmp"; mv "$LAB_RECORD.$1.tmp" "$LAB_RECORD.$1"
if [ "$1" = bound ] && [ -n "$LAB_APPLY" ]; then
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    set -- $staticroutes
    while [ $# -ge 2 ]; do
        if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface"; else ip route replace "$1" via "$2"; fi
        shift 2
    done
fi
exit 0
"""

# dhclient runs its script with an environment of its own making: the record path is written into the script.
DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient calls this with $reason and the lease as new_* variables; it must not touch the host's files.
env | grep -E '^(reason|new_)' > "{record}.$reason.tmp"; mv "{record}.$reason.tmp" "{record}.$reason"
exit 0
"""


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def netns_exec(namespace: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", namespace, *args, **kwargs)  # type: ignore[arg-type]


def read_record(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value.strip("'")
    return values


@dataclass(slots=True)
class Vm:
    """A namespace standing in for a guest: one interface (``eth0``) on the lab bridge."""

    namespace: str
    mac: str
    interface: str = "eth0"

    def set_mac(self, mac: str) -> None:
        run("ip", "-n", self.namespace, "link", "set", self.interface, "address", mac)
        self.mac = mac

    def udhcpc(
        self, record: Path, *extra: str, tries: int = 2, apply: bool = False
    ) -> tuple[dict[str, str] | None, float]:
        """Run busybox udhcpc once; the lease it got (None: none) and how long it took."""
        for event in ("bound", "leasefail"):
            record.with_name(f"{record.name}.{event}").unlink(missing_ok=True)
        started = time.monotonic()
        env = ["env", f"LAB_RECORD={record}"] + (["LAB_APPLY=1"] if apply else [])
        script = str(record.parent / "udhcpc.sh")
        udhcpc = [
            "udhcpc",
            "-f",
            "-q",
            "-n",
            "-i",
            self.interface,
            "-s",
            script,
            "-t",
            str(tries),
            "-T",
            "1",
            "-A",
            "1",
        ]
        netns_exec(self.namespace, *env, *udhcpc, *extra, check=False, timeout=30)
        elapsed = time.monotonic() - started
        bound = record.with_name(f"{record.name}.bound")
        return (read_record(bound) if bound.exists() else None), elapsed

    def dhclient(self, record: Path) -> dict[str, str] | None:
        """Run ISC dhclient once (it would daemonize once bound: it is stopped right after)."""
        workdir = record.parent
        bound = record.with_name(f"{record.name}.BOUND")
        bound.unlink(missing_ok=True)
        pid_file = workdir / f"{record.name}.dhclient.pid"
        script = workdir / f"{record.name}.dhclient.sh"
        script.write_text(DHCLIENT_SCRIPT.format(record=record))
        script.chmod(0o755)
        try:
            leases = str(workdir / f"{record.name}.leases")
            dhclient = ["dhclient", "-1", "-sf", str(script), "-lf", leases, "-pf", str(pid_file), self.interface]
            netns_exec(self.namespace, *dhclient, check=False, timeout=60)
        finally:
            _kill_pid_file(pid_file)
        return read_record(bound) if bound.exists() else None


@dataclass(slots=True)
class Lab:
    """A switch namespace with a bridge, localport namespaces and VM namespaces plugged into it."""

    prefix: str
    workdir: Path = field(init=False)
    switch: str = field(init=False)
    localports: list[str] = field(default_factory=list)
    vms: list[Vm] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    _links: int = 0

    def __post_init__(self) -> None:
        self.prefix = self.prefix + secrets.token_hex(2)  # concurrent runs never collide
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-", dir="/tmp"))
        self.workdir.chmod(0o755)  # dnsmasq drops to an unprivileged user and must reach its files
        (self.workdir / "udhcpc.sh").write_text(UDHCPC_SCRIPT)
        os.chmod(self.workdir / "udhcpc.sh", 0o755)
        self.switch = f"{self.prefix}-sw"
        run("ip", "netns", "add", self.switch)

    def _plug(self, namespace: str, inner_name: str, mac: str, segment: str = "br0") -> None:
        """A veth from bridge ``segment`` into ``namespace``, named ``inner_name`` there, up, checksum offload off.

        One bridge is one L2 segment, i.e. one network: two networks' DHCP servers must not share one.
        """
        if segment not in self.segments:
            run("ip", "-n", self.switch, "link", "add", segment, "type", "bridge")
            run("ip", "-n", self.switch, "link", "set", segment, "up")
            self.segments.append(segment)
        self._links += 1
        outer, inner = f"{self.prefix}o{self._links}", f"{self.prefix}i{self._links}"
        run("ip", "-n", self.switch, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", namespace)
        run("ip", "-n", self.switch, "link", "set", outer, "master", segment, "up")
        run("ip", "-n", namespace, "link", "set", inner, "name", inner_name)
        run("ip", "-n", namespace, "link", "set", inner_name, "address", mac, "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        netns_exec(namespace, "ethtool", "-K", inner_name, "tx", "off", check=False)

    def add_localport(self, mac: str, addresses: list[str], interface: str = "lp0", segment: str = "br0") -> str:
        """A localport namespace like the agent's, with its addresses (``10.0.0.2/24``) on ``interface``."""
        namespace = f"{self.prefix}-lp{len(self.localports)}"
        run("ip", "netns", "add", namespace)
        self.localports.append(namespace)
        self._plug(namespace, interface, mac, segment)
        for address in addresses:
            run("ip", "-n", namespace, "addr", "add", address, "dev", interface)
        return namespace

    def add_vm(self, mac: str, segment: str = "br0") -> Vm:
        namespace = f"{self.prefix}-vm{len(self.vms)}"
        run("ip", "netns", "add", namespace)
        vm = Vm(namespace, mac)
        self.vms.append(vm)
        self._plug(namespace, vm.interface, mac, segment)
        return vm

    def record(self, name: str) -> Path:
        return self.workdir / name

    def destroy(self) -> None:
        # Processes first: any dhclient/udhcpc/curl left in a namespace, then the namespaces and files.
        for namespace in [*(vm.namespace for vm in self.vms), *self.localports, self.switch]:
            pids = run("ip", "netns", "pids", namespace, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            run("ip", "netns", "del", namespace, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _kill_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass
