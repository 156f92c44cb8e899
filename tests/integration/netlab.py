"""Helpers (no tests) shared by the DHCP and metadata integration tests: a localport namespace and "VM"
namespaces on one Linux bridge, and real DHCP clients that record what they got.

No OVS is involved: the bridge lives in its own "switch" namespace, so removing the namespaces removes every
interface the lab made. Everything is named with the caller's prefix (``ld``: DHCP tests, ``lm``: metadata).
The DHCP clients themselves are the lab's guest tools (``lab.mininet.guest``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lab.mininet import guest


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def netns_exec(namespace: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", namespace, *args, **kwargs)  # type: ignore[arg-type]


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
        return guest.udhcpc(self.namespace, self.interface, record, *extra, tries=tries, apply=apply)

    def dhclient(self, record: Path) -> dict[str, str] | None:
        """Run ISC dhclient once (it would daemonize once bound: it is stopped right after)."""
        return guest.dhclient(self.namespace, self.interface, record)


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
