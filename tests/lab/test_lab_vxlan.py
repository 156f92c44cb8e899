"""Proof of the datapath: VMs on different hypervisors talk over flow-based VXLAN in userspace OVS.

Hand-written flows only (no controller, no agent): on each hypervisor, packets
from the local VM get ``tun_id`` (the VNI) and ``tun_ipv4_dst`` set and go out
of the one VXLAN port; packets from the tunnel are classified by ``tun_id``.
hv1 floods to hv2 and hv3 with VNI 5001, hv3's VM is on VNI 6001, so it must
never hear hv1's VM: the VNI alone separates networks. docs/lab.md explains
what it takes (br-phy, OVS's route table, tunnel ARP, MTU, offloads).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from dataplane.common.constants import BR_INT, BR_PHY, TUNNEL_OFPORT
from lab.mininet import Lab, Vm
from lab.mininet.probes import tcp_transfer

pytestmark = pytest.mark.lab

COOKIE = "0x10ab"  # this test's flows, removed afterwards
VM_OFPORT = 100
BLUE, RED = 5001, 6001


def flows(lab: Lab, hv: str, *specs: str) -> None:
    for spec in specs:
        lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "add-flow", BR_INT, f"cookie={COOKIE},{spec}"])


def to_tunnel(vni: int, *remotes: str) -> str:
    outputs = ",".join(f"set_field:{ip}->tun_dst,output:{TUNNEL_OFPORT}" for ip in remotes)
    return f"set_field:{vni}->tun_id,{outputs}"


def tunnel_packets(lab: Lab, hv: str, direction: str) -> int:
    """Packets the tunnel port sent ("tx") or received ("rx")."""
    out = lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", BR_INT, str(TUNNEL_OFPORT)]).stdout
    match = re.search(rf"{direction} pkts=(\d+)", out)
    assert match, out
    return int(match.group(1))


@dataclass(frozen=True)
class Overlay:
    lab: Lab
    blue1: Vm  # hv1, VNI 5001
    blue2: Vm  # hv2, VNI 5001
    red3: Vm  # hv3, VNI 6001, same subnet


@pytest.fixture
def overlay(lab_vms: Lab) -> Iterator[Overlay]:
    lab = lab_vms
    hv1, hv2, hv3 = lab.hypervisors[:3]
    tag = uuid.uuid4().hex[:6]

    def vm(hv: object, name: str, mac: str, ip: str) -> Vm:
        return lab.add_vm(hv, f"{name}-{tag}", "lab" + uuid.uuid4().hex, mac, ofport=VM_OFPORT, ip=ip)  # type: ignore[arg-type]

    overlay = Overlay(
        lab,
        vm(hv1, "blue1", "fa:16:3e:0b:00:01", "10.10.0.1/24"),
        vm(hv2, "blue2", "fa:16:3e:0b:00:02", "10.10.0.2/24"),
        vm(hv3, "red3", "fa:16:3e:0b:00:03", "10.10.0.3/24"),
    )
    flows(
        lab,
        "hv1",
        f"in_port={VM_OFPORT},actions={to_tunnel(BLUE, hv2.tunnel_ip, hv3.tunnel_ip)}",
        f"in_port={TUNNEL_OFPORT},tun_id={BLUE},actions=output:{VM_OFPORT}",
    )
    flows(
        lab,
        "hv2",
        f"in_port={VM_OFPORT},actions={to_tunnel(BLUE, hv1.tunnel_ip)}",
        f"in_port={TUNNEL_OFPORT},tun_id={BLUE},actions=output:{VM_OFPORT}",
    )
    flows(
        lab,
        "hv3",
        f"in_port={VM_OFPORT},actions={to_tunnel(RED, hv1.tunnel_ip)}",
        f"in_port={TUNNEL_OFPORT},tun_id={RED},actions=output:{VM_OFPORT}",
    )
    try:
        yield overlay
    finally:
        for hv in lab.hypervisors:
            lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "del-flows", BR_INT, f"cookie={COOKIE}/-1"], check=False)


def test_icmp_and_tcp_between_hypervisors_over_vxlan(overlay: Overlay) -> None:
    lab, blue1, blue2 = overlay.lab, overlay.blue1, overlay.blue2
    before = tunnel_packets(lab, "hv1", "tx")

    lab.vm_run(blue1, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.10.0.2"])
    # Full-size frames: 1450-byte packets + 50 bytes of VXLAN fill the 1500-byte underlay exactly.
    lab.vm_run(blue1, ["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1422", "10.10.0.2"])
    assert tcp_transfer(blue2.netns, blue1.netns, "10.10.0.2", nbytes=4_000_000)
    assert tunnel_packets(lab, "hv1", "tx") > before  # it really went through the tunnel port

    # ovs-vswitchd routes the underlay through br-phy and resolved the peer's MAC itself.
    hv2 = lab.hv("hv2")
    assert f"{lab.config.underlay_cidr} dev {BR_PHY}" in lab.run("hv1", ["ovs-appctl", "ovs/route/show"]).stdout
    hv2_mac = json.loads(lab.run("hv2", ["ip", "-j", "link", "show", BR_PHY]).stdout)[0]["address"]
    arp = lab.run("hv1", ["ovs-appctl", "tnl/arp/show"]).stdout
    assert re.search(rf"{re.escape(hv2.tunnel_ip)}\s+{hv2_mac}\s+{BR_PHY}", arp), arp
    # The datapath flow pushes a VXLAN header with hv2 as the outer destination.
    dp = lab.run("hv1", ["ovs-appctl", "dpctl/dump-flows"]).stdout
    assert "tnl_push" in dp and f"dst={hv2.tunnel_ip}" in dp


def test_the_vni_separates_networks(overlay: Overlay) -> None:
    lab, blue1, red3 = overlay.lab, overlay.blue1, overlay.red3
    # hv1 sends blue traffic to hv3 as well, but hv3 accepts only VNI 6001 for its red VM.
    received = tunnel_packets(lab, "hv3", "rx")
    assert lab.vm_run(blue1, ["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.10.0.3"], check=False).returncode != 0
    assert lab.vm_run(red3, ["ping", "-c", "2", "-i", "0.2", "-W", "1", "10.10.0.1"], check=False).returncode != 0
    red_in = lab.run(
        "hv3", ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", BR_INT, f"in_port={TUNNEL_OFPORT},tun_id={RED}"]
    ).stdout
    assert tunnel_packets(lab, "hv3", "rx") > received  # blue packets from hv1 did reach hv3...
    assert "n_packets=0" in red_in  # ...but none was taken for red
