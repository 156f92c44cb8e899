"""The metadata path with real parts: VM namespaces call http://169.254.169.254 with curl and cloud-init's own
reader; the proxy process (started by MetadataProxyManager) listens in the localport namespace and forwards,
signed, to the metadata service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.metadata.server import MetadataServer
from controller.metadata.source import DictMetadataSource
from controller.model import FixedIP, Instance, Network, Port, Subnet
from dataplane.common.supervise import find_processes, is_running
from dhcp.manager import DhcpManager
from dhcp.model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig
from metadata_proxy.manager import MetadataProxyManager
from metadata_proxy.model import MetadataIdentity, MetadataNetwork

from .netlab import Lab, Vm, netns_exec, run

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")

SECRET = "lm-test-secret"
USER_DATA = os.urandom(64 * 1024)
METADATA = "http://169.254.169.254"


def source() -> DictMetadataSource:
    src = DictMetadataSource().add(
        Network(id="net-1", mtu=1450),
        Subnet(
            id="sub-1", network_id="net-1", cidr="10.0.0.0/24", gateway_ip="10.0.0.1", dns_nameservers=("10.0.0.53",)
        ),
        Instance(
            id="inst-a",
            name="alpha",
            hostname="alpha",
            project_id="proj-a",
            user_data=USER_DATA,
            public_keys=(("k", "ssh-ed25519 AAAA k"),),
            availability_zone="az-1",
        ),
        Instance(id="inst-b", name="beta", hostname="beta", project_id="proj-b", user_data=b"#cloud-config\n{}\n"),
    )
    for port_id, ip, instance in (("port-a", "10.0.0.10", "inst-a"), ("port-b", "10.0.0.11", "inst-b")):
        src.add(
            Port(
                id=port_id,
                network_id="net-1",
                mac_address=f"fa:16:3e:00:00:{ip.rsplit('.', 1)[1]}",
                fixed_ips=(FixedIP("sub-1", ip),),
                device_id=instance,
                device_owner="compute:nova",
            )
        )
    return src


IDENTITIES = (
    MetadataIdentity("10.0.0.10", "port-a", "inst-a", "proj-a"),
    MetadataIdentity("10.0.0.11", "port-b", "inst-b", "proj-b"),
)


@dataclass(slots=True)
class Setup:
    lab: Lab
    localport: str
    service: MetadataServer
    proxy: MetadataProxyManager
    vm_a: Vm
    vm_b: Vm
    stranger: Vm

    def network(self, identities: tuple[MetadataIdentity, ...] = IDENTITIES) -> MetadataNetwork:
        return MetadataNetwork(
            network_id="net-1",
            namespace=self.localport,
            identities=identities,
            port_ids=tuple({i.port_id for i in identities} | {"router-port"}),
        )


def curl(vm: Vm, path: str, *extra: str, output: Path | None = None) -> tuple[int, bytes]:
    args = ["curl", "-s", "--max-time", "10", "-w", "%{http_code}", *extra]
    if output is not None:
        args += ["-o", str(output)]
    result = subprocess.run(
        ["ip", "netns", "exec", vm.namespace, *args, METADATA + path], capture_output=True, timeout=20, check=False
    )
    if output is not None:
        return int(result.stdout), output.read_bytes() if output.exists() else b""
    return int(result.stdout[-3:]), result.stdout[:-3]


def static_vm(lab: Lab, mac: str, ip: str) -> Vm:
    vm = lab.add_vm(mac)
    run("ip", "-n", vm.namespace, "addr", "add", f"{ip}/24", "dev", "eth0")
    run("ip", "-n", vm.namespace, "route", "add", "169.254.169.254/32", "via", "10.0.0.2")
    return vm


def kill_proxies(state_dir: Path) -> None:
    for pid in find_processes(lambda argv: "metadata_proxy" in argv and str(state_dir) in argv):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def setup() -> Iterator[Setup]:
    lab = Lab("lm")
    service = MetadataServer(source(), SECRET)
    proxy: MetadataProxyManager | None = None
    s: Setup | None = None
    state_dir = lab.workdir / "proxy"
    try:
        localport = lab.add_localport("fa:16:3e:aa:00:02", ["10.0.0.2/24", "169.254.169.254/32"])
        service.start()
        proxy = MetadataProxyManager(state_dir, service.url, SECRET)
        proxy.start()
        s = Setup(
            lab,
            localport,
            service,
            proxy,
            static_vm(lab, "fa:16:3e:00:00:10", "10.0.0.10"),
            static_vm(lab, "fa:16:3e:00:00:11", "10.0.0.11"),
            static_vm(lab, "fa:16:3e:00:00:12", "10.0.0.12"),
        )
        proxy.sync([s.network()])
        yield s
    finally:
        current = s.proxy if s is not None else proxy  # a test may have replaced the manager
        if current is not None:
            current.close(stop_proxy=True)
        kill_proxies(state_dir)
        service.stop()
        lab.destroy()


def test_each_vm_reads_its_own_instance_id(setup: Setup) -> None:
    assert setup.proxy.metadata_ready("port-a") and setup.proxy.metadata_ready("port-b")
    assert setup.proxy.metadata_ready("router-port")  # no instance behind it
    assert not setup.proxy.metadata_ready("port-unknown")
    assert curl(setup.vm_a, "/latest/meta-data/instance-id") == (200, b"inst-a")
    assert curl(setup.vm_b, "/latest/meta-data/instance-id") == (200, b"inst-b")
    assert curl(setup.vm_a, "/latest/meta-data/local-ipv4") == (200, b"10.0.0.10")
    assert curl(setup.vm_b, "/openstack/latest/meta_data.json")[1].startswith(b"{")


def test_user_data_round_trips_byte_for_byte(setup: Setup) -> None:
    status, body = curl(setup.vm_a, "/latest/user-data", output=setup.lab.workdir / "ud-ec2")
    assert status == 200 and body == USER_DATA
    status, body = curl(setup.vm_a, "/openstack/latest/user_data", output=setup.lab.workdir / "ud-os")
    assert status == 200 and body == USER_DATA
    assert curl(setup.vm_b, "/latest/user-data") == (200, b"#cloud-config\n{}\n")


def test_unknown_caller_gets_404_and_nothing_else(setup: Setup) -> None:
    before = setup.proxy.status()["requests"]
    status, body = curl(setup.stranger, "/latest/meta-data/instance-id")
    assert status == 404
    assert b"inst-" not in body
    assert setup.proxy.status()["requests"] == before + 1


def test_headers_a_guest_makes_up_are_ignored(setup: Setup) -> None:
    forged = [
        "-H",
        "X-Instance-ID: inst-b",
        "-H",
        "X-Forwarded-For: 10.0.0.11",
        "-H",
        "X-Tenant-ID: proj-b",
        "-H",
        "X-Instance-ID-Signature: 00",
    ]
    assert curl(setup.vm_a, "/latest/meta-data/instance-id", *forged) == (200, b"inst-a")
    assert curl(setup.stranger, "/latest/meta-data/instance-id", *forged)[0] == 404


def test_service_refuses_unsigned_and_badly_signed_requests(setup: Setup) -> None:
    url = setup.service.url + "/latest/meta-data/instance-id"

    def status(*headers: str) -> str:
        args = [arg for h in headers for arg in ("-H", h)]
        return run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url).stdout

    assert status() == "403"
    assert status("X-Instance-ID: inst-a", "X-Forwarded-For: 10.0.0.10", "X-Tenant-ID: proj-a") == "403"
    assert (
        status("X-Instance-ID: inst-a", "X-Forwarded-For: 10.0.0.10", "X-Instance-ID-Signature: " + "0" * 64) == "403"
    )


def test_cloud_init_openstack_reader_reads_meta_data(setup: Setup) -> None:
    script = (
        "import json\n"
        "from cloudinit.sources.helpers import openstack\n"
        "reader = openstack.MetadataReader('http://169.254.169.254', retries=0)\n"
        "data = reader.read_v2()\n"
        "print(json.dumps({'metadata': data['metadata'], 'userdata_len': len(data.get('userdata') or b''),"
        " 'networkdata': data.get('networkdata'), 'version': data.get('version')}, default=repr))\n"
    )
    result = netns_exec(setup.vm_a.namespace, "/usr/bin/python3", "-c", script, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["metadata"]["uuid"] == "inst-a"
    assert data["metadata"]["hostname"] == "alpha"
    assert data["metadata"]["public_keys"] == {"k": "ssh-ed25519 AAAA k"}
    assert data["userdata_len"] == len(USER_DATA)
    assert data["networkdata"]["networks"][0]["ip_address"] == "10.0.0.10"
    assert data["version"] == 2


def test_identity_changes_apply_without_restart(setup: Setup) -> None:
    pid = setup.proxy.pid
    stranger = MetadataIdentity("10.0.0.12", "port-c", "inst-b", "proj-b")
    setup.proxy.sync([setup.network((*IDENTITIES, stranger))])
    assert setup.proxy.metadata_ready("port-c")
    # The service checks the address against the instance's ports: 10.0.0.12 is not inst-b's.
    assert curl(setup.stranger, "/latest/meta-data/instance-id")[0] == 403
    setup.proxy.sync([setup.network(IDENTITIES[:1])])
    assert not setup.proxy.metadata_ready("port-b")
    assert curl(setup.vm_b, "/latest/meta-data/instance-id")[0] == 404
    assert curl(setup.vm_a, "/latest/meta-data/instance-id") == (200, b"inst-a")
    assert setup.proxy.pid == pid


def test_killed_proxy_is_restarted(setup: Setup) -> None:
    old_pid = setup.proxy.pid
    assert old_pid is not None
    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)
    while time.monotonic() - killed_at < 5:
        if setup.proxy.pid not in (None, old_pid) and setup.proxy.metadata_ready("port-a"):
            break
        time.sleep(0.02)
    assert setup.proxy.pid not in (None, old_pid)
    assert setup.proxy.metadata_ready("port-a")
    assert curl(setup.vm_a, "/latest/meta-data/instance-id") == (200, b"inst-a")
    assert not is_running(old_pid)


def test_agent_restart_adopts_the_running_proxy(setup: Setup) -> None:
    pid = setup.proxy.pid
    setup.proxy.close()  # the agent goes away, the proxy keeps serving
    assert pid is not None and is_running(pid)
    assert curl(setup.vm_a, "/latest/meta-data/instance-id") == (200, b"inst-a")
    again = MetadataProxyManager(setup.proxy.state_dir, setup.service.url, SECRET)
    setup.proxy = again  # the fixture stops this one
    again.start()
    assert again.pid == pid
    assert again.metadata_ready("port-a")  # from the files the previous agent left, confirmed by the proxy
    again.sync([setup.network()])
    assert curl(setup.vm_b, "/latest/meta-data/instance-id") == (200, b"inst-b")


def test_recreated_namespace_gets_a_new_listener(setup: Setup) -> None:
    lab = setup.lab
    # The agent deletes and re-creates the localport namespace (e.g. after a host reboot of OVS state).
    run("ip", "netns", "del", setup.localport)
    run("ip", "netns", "add", setup.localport)
    lab._plug(setup.localport, "lp0", "fa:16:3e:aa:00:02")
    for address in ("10.0.0.2/24", "169.254.169.254/32"):
        run("ip", "-n", setup.localport, "addr", "add", address, "dev", "lp0")
    # The old namespace lives on while the proxy's socket holds it (with its veth end): a request can
    # still reach the old listener until the proxy's recheck moves to the new namespace. Wait for that.
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and setup.proxy.log_file.read_text().count("metadata listener up") < 2:
        time.sleep(0.1)
    assert setup.proxy.log_file.read_text().count("metadata listener up") == 2, "no listener in the new namespace"
    assert curl(setup.vm_a, "/latest/meta-data/instance-id") == (200, b"inst-a")


def test_guest_configured_by_dhcp_reads_metadata(setup: Setup) -> None:
    """The whole localport: dnsmasq hands out the address and the 169.254.169.254 route, the proxy answers."""
    lab = setup.lab
    dhcp = DhcpManager(lab.workdir / "dhcp")
    dhcp.start()
    try:
        subnet = DhcpSubnetConfig(subnet_id="sub-1", cidr="10.0.0.0/24", server_ip="10.0.0.2", gateway_ip="10.0.0.1")
        config = DhcpNetworkConfig(
            network_id="net-1", namespace=setup.localport, interface="lp0", subnets=(subnet,), mtu=1450
        )
        guest = lab.add_vm("fa:16:3e:00:00:20")
        dhcp.sync([config], {"net-1": [DhcpHostEntry("port-a2", "fa:16:3e:00:00:20", ("10.0.0.10",), "alpha")]})
        # The same instance's address moves to this guest (vm_a stays down for the test).
        run("ip", "-n", setup.vm_a.namespace, "link", "set", "eth0", "down")
        lease, _ = guest.udhcpc(lab.record("guest"), "-O", "staticroutes", apply=True)
        assert lease is not None and lease["ip"] == "10.0.0.10"
        assert curl(guest, "/latest/meta-data/instance-id") == (200, b"inst-a")
        assert curl(guest, "/latest/meta-data/hostname") == (200, b"alpha")
    finally:
        dhcp.sync([], {})
        dhcp.close(stop_dnsmasq=True)


def test_keep_alive_and_head_through_the_proxy(setup: Setup) -> None:
    # curl reuses one connection for both URLs: two answers, one connect.
    result = netns_exec(
        setup.vm_a.namespace,
        "curl", "-s", "-w", "|%{num_connects}\n",
        f"{METADATA}/latest/meta-data/instance-id", f"{METADATA}/latest/meta-data/local-ipv4",
    )  # fmt: skip
    assert result.stdout.splitlines() == ["inst-a|1", "10.0.0.10|0"]
    head = netns_exec(setup.vm_a.namespace, "curl", "-s", "-I", f"{METADATA}/latest/user-data").stdout
    assert head.startswith("HTTP/1.1 200") and f"content-length: {len(USER_DATA)}" in head.lower()


def test_service_down_gives_502_to_known_callers_and_404_to_unknown(setup: Setup) -> None:
    setup.service.stop()
    assert curl(setup.vm_a, "/latest/meta-data/instance-id")[0] == 502
    assert curl(setup.stranger, "/latest/meta-data/instance-id")[0] == 404
