"""DHCP and metadata end to end on the Loom lab: real clients in VM namespaces, served on their own hypervisor."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from dataplane.common.supervise import read_pid_file
from lab.mininet import guest, probes
from lab.mininet.guest import Capture, send_frames
from lab.mininet.lab import Vm
from lab.mininet.loom import METADATA_PORT, LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2
from tests.lab.scenario import Scenario

pytestmark = pytest.mark.lab

META = "http://169.254.169.254"
BCAST = "ff:ff:ff:ff:ff:ff"


def dhcp_network(scenario: Scenario, name: str = "dhcp") -> LabNetwork:
    return scenario.network(
        name,
        "10.0.0.0/24",
        dns_nameservers=["198.51.100.53"],
        host_routes=[resources_pb2.HostRoute(destination="192.168.50.0/24", nexthop="10.0.0.7")],
    )


def localport_netns(loom: LoomLab, hv: str, net: LabNetwork) -> str:
    """The namespace hv's agent made for the network's DHCP server and metadata proxy."""
    return f"{loom.config.prefix}{hv}-{net.id[:13]}"


def dnsmasq_pid_file(loom: LoomLab, hv: str, net: LabNetwork) -> Path:
    return Path(loom.state_dir, hv, "run", "dhcp", net.id, "pid")


def dnsmasq_pid(loom: LoomLab, hv: str, net: LabNetwork) -> int:
    return int(dnsmasq_pid_file(loom, hv, net).read_text().strip())


def booted(scenario: Scenario, hv: str, net: LabNetwork, name: str = "vm", **instance: object) -> tuple[Vm, str]:
    """A VM of a new instance, configured by DHCP the way a cloud image does it; returns it and its instance id."""
    inst = scenario.instance(name, hostname=name, **instance)
    vm = scenario.vm(hv, net, name, dhcp=True, instance=inst)
    lease = scenario.udhcpc(vm, "-O", "staticroutes", "-O", "mtu")
    assert lease is not None, f"{vm.name} got no lease"
    return vm, inst.id


def test_udhcpc_and_dhclient_get_address_gateway_mtu_and_routes(scenario: Scenario) -> None:
    net = dhcp_network(scenario)
    inst = scenario.instance("web", hostname="web")
    vm = scenario.vm("hv2", net, "web", dhcp=True, instance=inst)
    ip = scenario.ip_of(vm)
    lease = scenario.udhcpc(vm, "-O", "staticroutes", "-O", "mtu", apply=False)
    assert lease is not None
    assert lease["ip"] == ip
    assert lease["mask"] == "24"
    assert lease["router"] == "10.0.0.1"
    assert lease["mtu"] == "1450"  # the underlay's 1500 minus VXLAN's 50, computed by the controller
    assert lease["dns"] == "198.51.100.53"
    assert lease["hostname"] == "web"
    assert lease["staticroutes"] == "192.168.50.0/24 10.0.0.7 169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1"

    other = scenario.vm("hv3", net, "db", dhcp=True)
    record = scenario.workdir / "dhclient"
    dh = guest.dhclient(other.netns, "eth0", record)
    assert dh is not None, "ISC dhclient got no lease"
    assert dh["new_ip_address"] == scenario.ip_of(other)
    assert dh["new_routers"] == "10.0.0.1"
    assert dh["new_interface_mtu"] == "1450"
    assert dh["new_rfc3442_classless_static_routes"] == (
        "24 192 168 50 10 0 0 7 32 169 254 169 254 10 0 0 2 0 10 0 0 1"
    )


def test_metadata_answers_each_vm_with_its_own_instance_on_every_hypervisor(scenario: Scenario) -> None:
    net = dhcp_network(scenario, "meta")
    vms = [booted(scenario, hv, net, f"m{hv}") for hv in ("hv1", "hv2", "hv3")]
    for vm, instance_id in vms:
        status, body = guest.http_get(vm.netns, f"{META}/latest/meta-data/instance-id")
        assert (status, body.decode()) == (200, instance_id), vm.name
        status, body = guest.http_get(vm.netns, f"{META}/latest/meta-data/local-ipv4")
        assert (status, body.decode()) == (200, scenario.ip_of(vm))


def test_user_data_round_trips_byte_for_byte(scenario: Scenario) -> None:
    net = dhcp_network(scenario, "ud")
    binary = bytes(range(256)) * 4 + b"\x00\r\n\xff"
    big = os.urandom(64 * 1024)
    for data in (binary, big):
        vm, _ = booted(scenario, "hv1", net, "ud", user_data=data)
        for path in ("/latest/user-data", "/openstack/latest/user_data"):
            status, body = guest.http_get(vm.netns, META + path)
            assert status == 200 and body == data, f"{path}: {len(body)} bytes back of {len(data)}"


def test_cloud_inits_own_openstack_reader_reads_the_metadata(scenario: Scenario) -> None:
    net = dhcp_network(scenario, "ci")
    vm, instance_id = booted(
        scenario, "hv3", net, "ci", public_keys={"mykey": "ssh-ed25519 AAAAC3Nza mykey"}, metadata={"role": "db"}
    )
    script = (
        "import json\n"
        "from cloudinit.sources.helpers import openstack\n"
        f"data = openstack.MetadataReader({META!r}, retries=0).read_v2()\n"
        "print(json.dumps({'metadata': data['metadata'], 'networkdata': data.get('networkdata')}, default=repr))\n"
    )
    # Debian's cloud-init lives with Debian's python, as in a real image.
    result = guest.netns_exec(vm.netns, "/usr/bin/python3", "-c", script, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["metadata"]["uuid"] == instance_id
    assert data["metadata"]["public_keys"] == {"mykey": "ssh-ed25519 AAAAC3Nza mykey"}
    assert data["metadata"]["meta"] == {"role": "db"}
    assert data["networkdata"]["networks"][0]["ip_address"] == scenario.ip_of(vm)


def test_a_vm_forging_another_vms_address_gets_neither_metadata_nor_dhcp(scenario: Scenario) -> None:
    loom = scenario.loom
    net = dhcp_network(scenario, "forge")
    victim, _ = booted(scenario, "hv1", net, "victim")
    attacker, _ = booted(scenario, "hv1", net, "attacker")
    victim_ip, attacker_ip = scenario.ip_of(victim), scenario.ip_of(attacker)
    dhcp_port = loom.network.ListPorts(
        network_pb2.ListPortsRequest(network_id=net.id, device_owner="network:dhcp"), timeout=10
    ).ports[0]
    server_mac, server_ip = dhcp_port.mac_address, dhcp_port.fixed_ips[0].ip_address
    syn = Ether(src=attacker.mac, dst=server_mac) / IP(src=victim_ip, dst="169.254.169.254") / TCP(dport=80, flags="S")
    renew = (
        Ether(src=attacker.mac, dst=server_mac)
        / IP(src=victim_ip, dst=server_ip)
        / UDP(sport=68, dport=67)
        / BOOTP(ciaddr=victim_ip, chaddr=bytes.fromhex(victim.mac.replace(":", "")))
        / DHCP(options=[("message-type", "request"), "end"])
    )
    lp = localport_netns(loom, "hv1", net)
    with Capture(lp, "tcp port 80 or udp port 67", interface="lp0") as at_server:
        send_frames(attacker.netns, "eth0", [bytes(syn), bytes(renew)] * 3)
        # control: the attacker's own, honest request reaches the proxy and is answered with its own id
        status, _ = guest.http_get(attacker.netns, f"{META}/latest/meta-data/instance-id")
    assert status == 200
    sources = {Ether(f)[IP].src for f in at_server.frames if IP in Ether(f)}
    assert attacker_ip in sources, "the honest request must reach the localport"
    assert victim_ip not in sources, "a forged source address reached the DHCP server or metadata proxy"


def test_an_unsigned_request_to_the_metadata_service_is_refused(scenario: Scenario) -> None:
    loom = scenario.loom
    net = dhcp_network(scenario, "sig")
    _, instance_id = booted(scenario, "hv2", net, "sig")
    url = f"http://{loom.config.controller_ip}:{METADATA_PORT}/latest/meta-data/instance-id"
    for headers in (
        {"X-Instance-ID": instance_id, "X-Tenant-ID": "", "X-Forwarded-For": "10.0.0.3"},
        {"X-Instance-ID": instance_id, "X-Instance-ID-Signature": "00" * 32, "X-Forwarded-For": "10.0.0.3"},
    ):
        request = urllib.request.Request(url, headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 403


def test_a_vm_acting_as_a_dhcp_server_reaches_no_one(scenario: Scenario) -> None:
    net = dhcp_network(scenario, "rogue")
    rogue = scenario.vm("hv1", net, "rogue")
    same_host = scenario.vm("hv1", net, "neighbour", dhcp=True)
    other_host = scenario.vm("hv2", net, "remote", dhcp=True)
    offer = (
        Ether(src=rogue.mac, dst=BCAST)
        / IP(src=rogue.address, dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr="10.0.0.200", siaddr=rogue.address)
        / DHCP(options=[("message-type", "offer"), ("server_id", rogue.address), "end"])
    )
    with Capture(same_host.netns, "udp port 68") as near, Capture(other_host.netns, "udp port 68") as far:
        send_frames(rogue.netns, "eth0", [bytes(offer)] * 5)
        lease = scenario.udhcpc(same_host, apply=False)  # control: the real server still answers
    assert lease is not None and lease["serverid"] == "10.0.0.2"
    for seen in (near, far):
        assert not [f for f in seen.frames if Ether(f).src == rogue.mac], "a rogue DHCP offer got through"
    assert any(Ether(f)[IP].src == "10.0.0.2" for f in near.frames), "the real server's answer must be seen"


def test_dnsmasq_killed_is_serving_again(scenario: Scenario) -> None:
    """How fast is a benchmark's business (bench/dhcp_metadata.py, ``dnsmasq_restart_5000_hosts_ms``);
    here: the agent's supervisor brings it back and the first DISCOVER gets the lease."""
    loom = scenario.loom
    net = dhcp_network(scenario, "kill")
    vm = scenario.vm("hv2", net, "k", dhcp=True)
    first = scenario.udhcpc(vm, apply=False)
    assert first is not None
    pid = dnsmasq_pid(loom, "hv2", net)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    pid_file = dnsmasq_pid_file(loom, "hv2", net)  # read_pid_file: None while the supervisor rewrites it
    back_after = probes.wait_restarted_on_udp(lambda: read_pid_file(pid_file), pid, 67, since=killed, give_up=10.0)
    # The first DISCOVER to the new dnsmasq gets the lease.
    lease, _ = guest.udhcpc(vm.netns, "eth0", scenario.workdir / "again", tries=1)
    assert lease is not None, f"the restarted dnsmasq gave no lease ({back_after:.2f} s after the kill)"
    assert lease["ip"] == first["ip"] == loom.get_port(vm.port_id).fixed_ips[0].ip_address


def test_two_hundred_new_ports_never_restart_dnsmasq(scenario: Scenario) -> None:
    loom = scenario.loom
    net = dhcp_network(scenario, "many")
    first = scenario.vm("hv3", net, "first", dhcp=True)
    assert scenario.udhcpc(first, apply=False) is not None
    pid = dnsmasq_pid(loom, "hv3", net)
    ports = [scenario.port(net, "hv3", "bulk") for _ in range(200)]
    last = ports[-1]
    deadline = time.monotonic() + 30
    while not any(s.name == "dhcp_ready" and s.done for s in loom.get_port(last.id).stages):
        assert time.monotonic() < deadline, "the 200th port's DHCP entry never became ready"
        time.sleep(0.1)
    assert dnsmasq_pid(loom, "hv3", net) == pid, "dnsmasq was restarted"
    # The 200th port really gets its lease from that same dnsmasq.
    vm = loom.plug("bulk-last", last, static_ip=False)
    scenario.vms.append(vm)
    loom.wait_port(last.id)
    lease = scenario.udhcpc(vm, apply=False)
    assert lease is not None and lease["ip"] == last.fixed_ips[0].ip_address
    assert dnsmasq_pid(loom, "hv3", net) == pid
