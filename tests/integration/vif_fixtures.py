"""Fixtures and helpers shared by the vif and OVSDB integration tests (imported by them; no tests here).

Everything a test creates is named with the ``lv`` prefix and removed in the
fixture's finally, even when the test fails. Checks go through independent
tools (ovs-vsctl, ip, ethtool) rather than the code under test.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from dataplane.common import netns as ns
from dataplane.ovs.driver import OvsDriver
from lab.mininet.ovs_instance import OvsInstance
from lab.mininet.probes import tcp_transfer

__all__ = ["tcp_transfer"]  # re-exported for the tests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*argv: str, check: bool = True, netns: str | None = None, env: dict[str, str] | None = None) -> str:
    cmd = list(argv) if netns is None else ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


def vsctl(*args: str, env: dict[str, str] | None = None) -> str:
    return sh("ovs-vsctl", "--timeout=10", *args, env=env)


def unique(prefix: str = "lv") -> str:
    return prefix + uuid.uuid4().hex[:8]


def port_id() -> str:
    """A port id whose device name (tap + 11 chars) is unique and carries the lv prefix."""
    return "lv" + uuid.uuid4().hex


def link_exists(ifname: str, netns: str | None = None) -> bool:
    cmd = ["ip", "link", "show", ifname] if netns is None else ["ip", "-n", netns, "link", "show", ifname]
    return subprocess.run(cmd, capture_output=True, check=False).returncode == 0


def tx_checksum(ifname: str, netns: str | None = None) -> str:
    for line in sh("ethtool", "-k", ifname, netns=netns).splitlines():
        if line.startswith("tx-checksumming:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"ethtool -k {ifname} printed no tx-checksumming line")


@pytest.fixture(scope="session")
def system_ovs() -> None:
    """The system Open vSwitch, started if needed (scripts/start-ovs.sh)."""
    if subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True, check=False).returncode != 0:
        subprocess.run(["bash", os.path.join(REPO, "scripts", "start-ovs.sh")], check=True)


@pytest.fixture
def driver(system_ovs: None) -> Iterator[OvsDriver]:
    with OvsDriver() as d:
        yield d


@pytest.fixture
def bridge(system_ovs: None) -> Iterator[str]:
    """A netdev bridge lv-XXXXXXXX on the system OVS with a NORMAL flow (secure mode, so nothing else)."""
    name = "lv-" + uuid.uuid4().hex[:8]
    vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev", "fail_mode=secure")
    sh("ovs-ofctl", "add-flow", name, "actions=NORMAL")
    try:
        yield name
    finally:
        vsctl("--if-exists", "del-br", name)


class Janitor:
    """Remembers namespaces, devices and OVS ports a test made, and removes them."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.devices: list[str] = []
        self.ports: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def netns(self, name: str | None = None) -> str:
        name = name or unique("lv-ns")
        self.namespaces.append(name)
        return name

    def cleanup(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for port in self.ports:
            subprocess.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-port", port], check=False)
        for dev in self.devices:
            subprocess.run(["ip", "link", "del", dev], capture_output=True, check=False)
        for name in self.namespaces:
            ns.delete(name)


@pytest.fixture
def janitor() -> Iterator[Janitor]:
    j = Janitor()
    try:
        yield j
    finally:
        j.cleanup()


@pytest.fixture
def sandbox_ovs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, OvsInstance]]:
    """A private ovsdb-server + ovs-vswitchd running inside namespace lv-sbXXXXXX (for tests that
    need their own OVS: underlay IP moves, ovsdb-server restarts)."""
    name = unique("lv-sb")
    ns.create(name)
    root = str(tmp_path_factory.mktemp(name))
    instance = OvsInstance(root, name, name)
    try:
        instance.start()
        yield name, instance
    finally:
        instance.stop()
        for pid in ns.pids(name):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        ns.delete(name)
