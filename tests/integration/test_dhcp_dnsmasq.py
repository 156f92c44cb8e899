"""DhcpManager with real dnsmasq in a localport namespace and real DHCP clients (busybox udhcpc, ISC dhclient)
in VM namespaces: leases, options, supervision, hitless port changes, agent restarts."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplane.common.supervise import find_processes, is_running
from dhcp.manager import DhcpManager
from dhcp.model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig, Route
from lab.mininet.probes import wait_restarted_on_udp

from .netlab import Lab, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

LOCALPORT_MAC = "fa:16:3e:aa:00:02"


def vm_mac(i: int) -> str:
    return f"fa:16:3e:10:{i >> 8:02x}:{i & 0xFF:02x}"


def network(namespace: str, **changes: object) -> DhcpNetworkConfig:
    subnet = DhcpSubnetConfig(
        subnet_id="sub-a",
        cidr="10.0.0.0/16",
        server_ip="10.0.0.2",
        gateway_ip="10.0.0.1",
        dns_nameservers=("10.0.0.53",),
        host_routes=(Route("192.168.50.0/24", "10.0.0.7"),),
    )
    fields: dict[str, object] = dict(
        network_id="net-a", namespace=namespace, interface="lp0", subnets=(subnet,), mtu=1450, dns_domain="loom.test"
    )
    fields.update(changes)
    return DhcpNetworkConfig(**fields)  # type: ignore[arg-type]


def host(i: int, ip: str | None = None, hostname: str | None = None) -> DhcpHostEntry:
    return DhcpHostEntry(
        port_id=f"port-{i}",
        mac=vm_mac(i),
        ips=(ip or f"10.0.{10 + (i >> 8)}.{i & 0xFF}",),
        hostname=hostname or f"vm-{i}",
    )


def reloads(manager: DhcpManager, network_id: str = "net-a", at_least: int = 0, settle: float = 0.3) -> int:
    """How many times dnsmasq re-read its options file (once at start, once per SIGHUP).

    A SIGHUP is handled asynchronously: wait up to a second for ``at_least``, then ``settle`` seconds more so
    that an unexpected extra reload would be counted too.
    """
    log = manager.state_dir / network_id / "dnsmasq.log"
    opts = f"read {manager.state_dir}/{network_id}/opts"

    def count() -> int:
        return sum(1 for line in log.read_text().splitlines() if line.endswith(opts))

    deadline = time.monotonic() + 1.0
    while count() < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(settle)
    return count()


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab("ld")
    try:
        yield lab
    finally:
        lab.destroy()


@pytest.fixture
def state_dir(lab: Lab) -> Iterator[Path]:
    path = lab.workdir / "dhcp"
    try:
        yield path
    finally:
        # Whatever a test left: no dnsmasq may outlive it.
        marker = f"--pid-file={path}/"
        for pid in find_processes(lambda argv: any(a.startswith(marker) for a in argv)):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def manager(state_dir: Path) -> Iterator[DhcpManager]:
    manager = DhcpManager(state_dir)
    manager.start()
    try:
        yield manager
    finally:
        manager.sync([], {})
        manager.close(stop_dnsmasq=True)


@pytest.fixture
def localport(lab: Lab) -> str:
    return lab.add_localport(LOCALPORT_MAC, ["10.0.0.2/16"])


def test_udhcpc_gets_address_gateway_mtu_routes_dns_and_hostname(
    lab: Lab, manager: DhcpManager, localport: str
) -> None:
    vm = lab.add_vm(vm_mac(1))
    manager.sync([network(localport)], {"net-a": [host(1, "10.0.3.4", "Web-1")]})
    assert manager.dhcp_ready("port-1")

    # Default request list: MTU still arrives (forced), routes are not asked for.
    lease, _ = vm.udhcpc(lab.record("plain"))
    assert lease is not None
    assert (lease["ip"], lease["mask"], lease["router"], lease["mtu"]) == ("10.0.3.4", "16", "10.0.0.1", "1450")
    assert (lease["hostname"], lease["domain"], lease["dns"]) == ("web-1", "loom.test", "10.0.0.53")

    # A client asking for option 121, as a guest's udhcpc -O staticroutes does.
    lease, _ = vm.udhcpc(lab.record("routes"), "-O", "staticroutes", apply=True)
    assert lease is not None
    assert lease["staticroutes"] == "192.168.50.0/24 10.0.0.7 169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1"
    # The script applied the lease as a guest would: the metadata route goes to the localport.
    routes = run("ip", "-n", vm.namespace, "route", "show").stdout
    assert "169.254.169.254 via 10.0.0.2" in routes
    assert "default via 10.0.0.1" in routes
    assert "mtu 1450" in run("ip", "-n", vm.namespace, "link", "show", "eth0").stdout
    run("ip", "netns", "exec", vm.namespace, "ping", "-c1", "-W2", "10.0.0.2")


def test_dhclient_gets_address_gateway_mtu_routes_and_hostname(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(2))
    manager.sync([network(localport)], {"net-a": [host(2, "10.0.7.9", "db")]})
    lease = vm.dhclient(lab.record("dhclient"))
    assert lease is not None
    assert lease["new_ip_address"] == "10.0.7.9"
    assert lease["new_subnet_mask"] == "255.255.0.0"
    assert lease["new_routers"] == "10.0.0.1"
    assert lease["new_interface_mtu"] == "1450"
    assert lease["new_host_name"] == "db"
    assert lease["new_domain_name"] == "loom.test"
    # RFC 3442 encoding: prefix length, significant octets of the destination, router.
    assert lease["new_rfc3442_classless_static_routes"] == (
        "24 192 168 50 10 0 0 7 32 169 254 169 254 10 0 0 2 0 10 0 0 1"
    )


def test_unknown_mac_gets_no_lease(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(3))
    known = lab.add_vm(vm_mac(4))
    manager.sync([network(localport)], {"net-a": [host(4)]})  # a different port: static leases only
    # Positive control: the same server, at the same moment, leases to the MAC it knows.
    lease, _ = known.udhcpc(lab.record("known"), tries=1)
    assert lease is not None and lease["ip"] == host(4).ips[0]
    lease, _ = vm.udhcpc(lab.record("unknown"), tries=1)
    assert lease is None
    assert not manager.dhcp_ready("port-3")
    assert manager.dhcp_ready("port-4")


def test_sigkill_dnsmasq_leases_work_again(lab: Lab, manager: DhcpManager, localport: str) -> None:
    """The supervisor restarts a killed dnsmasq, which leases again. How fast is bench/dhcp_metadata.py's
    ``dnsmasq_restart_5000_hosts_ms``; here only a bound no healthy machine comes near."""
    vm = lab.add_vm(vm_mac(5))
    manager.sync([network(localport)], {"net-a": [host(5)]})
    old_pid = manager.pid("net-a")
    assert old_pid is not None
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    back_after = wait_restarted_on_udp(lambda: manager.pid("net-a"), old_pid, 67, since=killed_at, give_up=10.0)
    lease, _ = vm.udhcpc(lab.record("after-kill"), tries=1)  # the first DISCOVER to the new dnsmasq
    assert lease is not None and lease["ip"] == "10.0.10.5", f"no lease {back_after:.3f} s after the kill"
    assert manager.dhcp_ready("port-5")


def test_adding_200_ports_never_restarts_or_reloads_dnsmasq(lab: Lab, manager: DhcpManager, localport: str) -> None:
    config = network(localport)
    hosts = [host(0)]
    manager.sync([config], {"net-a": hosts})
    pid = manager.pid("net-a")
    assert pid is not None
    reloads_before = reloads(manager)
    for i in range(1, 201):
        hosts.append(host(i))
        manager.sync([config], {"net-a": hosts})
        assert manager.pid("net-a") == pid
        assert manager.dhcp_ready(f"port-{i}")
    assert reloads(manager) == reloads_before, "a port addition caused a SIGHUP"

    # Every new port gets its lease: four VMs take turns wearing the 200 MACs.
    vms = [lab.add_vm(vm_mac(1000 + k)) for k in range(4)]
    failures: list[str] = []

    def lease_all(k: int) -> None:
        for i in range(1 + k, 201, len(vms)):
            vms[k].set_mac(vm_mac(i))
            lease, _ = vms[k].udhcpc(lab.record(f"vm{k}"), tries=2)
            if lease is None or lease["ip"] != host(i).ips[0]:
                failures.append(f"port-{i}: {lease}")

    threads = [threading.Thread(target=lease_all, args=(k,)) for k in range(len(vms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert manager.pid("net-a") == pid and is_running(pid)


def test_removing_a_port_reloads_and_stops_its_lease(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(7))
    config = network(localport)
    manager.sync([config], {"net-a": [host(6), host(7)]})
    pid = manager.pid("net-a")
    lease, _ = vm.udhcpc(lab.record("before"))
    assert lease is not None and lease["ip"] == "10.0.10.7"
    reloads_before = reloads(manager)

    manager.sync([config], {"net-a": [host(6)]})
    assert reloads(manager, at_least=reloads_before + 1) == reloads_before + 1  # exactly one SIGHUP
    assert manager.pid("net-a") == pid
    assert not manager.dhcp_ready("port-7")
    lease, _ = vm.udhcpc(lab.record("removed"), "-r", "10.0.10.7", tries=1)
    assert lease is None
    vm.set_mac(vm_mac(6))
    lease, _ = vm.udhcpc(lab.record("other"))
    assert lease is not None and lease["ip"] == "10.0.10.6"


def test_changing_a_port_or_the_options_reloads_without_restart(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(8))
    config = network(localport)
    manager.sync([config], {"net-a": [host(8)]})
    pid = manager.pid("net-a")

    manager.sync([config], {"net-a": [host(8, "10.0.99.8", "renamed")]})
    lease, _ = vm.udhcpc(lab.record("changed"))
    assert lease is not None and (lease["ip"], lease["hostname"]) == ("10.0.99.8", "renamed")

    subnet = config.subnets[0]
    new_subnet = DhcpSubnetConfig(
        subnet_id=subnet.subnet_id,
        cidr=subnet.cidr,
        server_ip=subnet.server_ip,
        gateway_ip="10.0.0.254",
        dns_nameservers=("10.0.0.54", "10.0.0.55"),
    )
    manager.sync([network(localport, subnets=(new_subnet,))], {"net-a": [host(8, "10.0.99.8", "renamed")]})
    lease, _ = vm.udhcpc(lab.record("opts"), "-O", "staticroutes")
    assert lease is not None
    assert (lease["router"], lease["dns"]) == ("10.0.0.254", "10.0.0.54 10.0.0.55")
    assert lease["staticroutes"] == "169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.254"
    assert manager.pid("net-a") == pid


def test_mtu_change_restarts_dnsmasq(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(9))
    manager.sync([network(localport)], {"net-a": [host(9)]})
    pid = manager.pid("net-a")
    manager.sync([network(localport, mtu=1400)], {"net-a": [host(9)]})
    new_pid = manager.pid("net-a")
    assert new_pid not in (None, pid)
    assert not is_running(pid)  # type: ignore[arg-type]
    lease, _ = vm.udhcpc(lab.record("mtu"))
    assert lease is not None and lease["mtu"] == "1400"


def test_network_leaving_the_host_leaves_no_dnsmasq(lab: Lab, manager: DhcpManager, localport: str) -> None:
    other = lab.add_localport("fa:16:3e:bb:00:02", ["10.0.0.2/16"], segment="br1")
    manager.sync([network(localport), network(other, network_id="net-b")], {"net-a": [host(1)], "net-b": [host(2)]})
    pid_b = manager.pid("net-b")
    assert pid_b is not None and is_running(pid_b)
    manager.sync([network(localport)], {"net-a": [host(1)]})
    assert not is_running(pid_b)
    assert not (manager.state_dir / "net-b").exists()
    assert manager.status("net-b") is None
    assert not manager.dhcp_ready("port-2")
    assert manager.dhcp_ready("port-1")


def test_network_without_dhcp_subnets_runs_no_dnsmasq(manager: DhcpManager, localport: str) -> None:
    manager.sync([network(localport, subnets=())], {"net-a": [host(1)]})
    status = manager.status("net-a")
    assert status is not None and status.pid is None
    assert manager.dhcp_ready("port-1")  # DHCP is off for it: nothing to wait for


def test_agent_restart_adopts_matching_dnsmasq_and_kills_strays(lab: Lab, state_dir: Path, localport: str) -> None:
    vm = lab.add_vm(vm_mac(1))
    other = lab.add_localport("fa:16:3e:bb:00:02", ["10.0.0.2/16"], segment="br1")
    first = DhcpManager(state_dir)
    first.start()
    first.sync([network(localport), network(other, network_id="net-b")], {"net-a": [host(1)], "net-b": []})
    pid_a, pid_b = first.pid("net-a"), first.pid("net-b")
    first.close()  # the agent goes away; dnsmasq keeps serving
    assert pid_a is not None and pid_b is not None and is_running(pid_a) and is_running(pid_b)
    lease, _ = vm.udhcpc(lab.record("agent-down"))
    assert lease is not None

    second = DhcpManager(state_dir)
    second.start()
    try:
        # net-b is no longer desired; net-a is, unchanged but with one more port.
        second.sync([network(localport)], {"net-a": [host(1), host(2)]})
        assert second.pid("net-a") == pid_a, "a matching dnsmasq must be adopted, not restarted"
        assert not is_running(pid_b), "dnsmasq of a network no longer desired must be killed"
        assert not (state_dir / "net-b").exists()
        assert second.dhcp_ready("port-2")
        vm.set_mac(vm_mac(2))
        lease, _ = vm.udhcpc(lab.record("adopted"))
        assert lease is not None and lease["ip"] == "10.0.10.2"
        # The adopted dnsmasq is supervised like one started here.
        os.kill(pid_a, signal.SIGKILL)
        deadline = time.monotonic() + 1.0
        while second.pid("net-a") in (None, pid_a) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second.pid("net-a") not in (None, pid_a)
    finally:
        second.sync([], {})
        second.close(stop_dnsmasq=True)


def test_agent_restart_with_changed_config_replaces_dnsmasq(lab: Lab, state_dir: Path, localport: str) -> None:
    first = DhcpManager(state_dir)
    first.start()
    first.sync([network(localport)], {"net-a": [host(1)]})
    old_pid = first.pid("net-a")
    first.close()
    second = DhcpManager(state_dir)
    second.start()
    try:
        second.sync([network(localport, mtu=1300)], {"net-a": [host(1)]})
        assert second.pid("net-a") not in (None, old_pid)
        assert not is_running(old_pid)  # type: ignore[arg-type]
        marker = f"--pid-file={state_dir}/"
        running = find_processes(lambda argv: any(a.startswith(marker) for a in argv))
        assert list(running) == [second.pid("net-a")]
    finally:
        second.sync([], {})
        second.close(stop_dnsmasq=True)


def test_dnsmasq_starts_once_its_namespace_appears(lab: Lab, manager: DhcpManager) -> None:
    namespace = f"{lab.prefix}-late"
    vm = lab.add_vm(vm_mac(3))
    manager.sync([network(namespace)], {"net-a": [host(3)]})
    status = manager.status("net-a")
    assert status is not None and status.pid is None and status.error
    assert not manager.dhcp_ready("port-3")
    # The agent creates the namespace a moment later; the supervisor retries on its own.
    run("ip", "netns", "add", namespace)
    lab.localports.append(namespace)
    lab._plug(namespace, "lp0", LOCALPORT_MAC)
    run("ip", "-n", namespace, "addr", "add", "10.0.0.2/16", "dev", "lp0")
    deadline = time.monotonic() + 3.0
    while not manager.dhcp_ready("port-3") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.dhcp_ready("port-3")
    lease, _ = vm.udhcpc(lab.record("late"))
    assert lease is not None and lease["ip"] == "10.0.10.3"


def test_recreated_namespace_gets_a_new_dnsmasq(lab: Lab, manager: DhcpManager, localport: str) -> None:
    vm = lab.add_vm(vm_mac(4))
    manager.sync([network(localport)], {"net-a": [host(4)]})
    old_pid = manager.pid("net-a")
    # The agent deletes and re-creates the localport namespace; no sync in between.
    run("ip", "netns", "del", localport)
    run("ip", "netns", "add", localport)
    lab._plug(localport, "lp0", LOCALPORT_MAC)
    run("ip", "-n", localport, "addr", "add", "10.0.0.2/16", "dev", "lp0")
    deadline = time.monotonic() + 3.0
    while manager.pid("net-a") in (None, old_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert manager.pid("net-a") not in (None, old_pid)
    assert not is_running(old_pid)  # type: ignore[arg-type]
    lease, _ = vm.udhcpc(lab.record("recreated"))
    assert lease is not None and lease["ip"] == "10.0.10.4"
