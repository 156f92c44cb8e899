"""L2 end to end on the Loom lab: real controller, real agents, three hypervisors, VMs in namespaces."""

from __future__ import annotations

import itertools
import subprocess
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from dataplane.agent_core import ANNOUNCE_AT
from lab.mininet import probes
from lab.mininet.guest import Capture, send_frames
from protos.loom.v1 import network_pb2
from tests.lab.scenario import Scenario

pytestmark = pytest.mark.lab

BCAST = "ff:ff:ff:ff:ff:ff"


def test_same_network_vms_reach_each_other_across_hypervisors(scenario: Scenario) -> None:
    net = scenario.network("l2")
    vms = [scenario.vm(hv, net) for hv in ("hv1", "hv2", "hv3")]
    for src, dst in itertools.permutations(vms, 2):
        assert probes.ping(src.netns, dst.address), f"{src.name} -> {dst.name}"
    for src, dst in zip(vms, [*vms[1:], vms[0]], strict=True):
        assert probes.tcp_transfer(dst.netns, src.netns, dst.address, nbytes=2_000_000), f"{src.name} -> {dst.name}"


def test_networks_with_the_same_cidr_and_mac_never_meet(scenario: Scenario) -> None:
    red, blue = scenario.network("red"), scenario.network("blue")
    r1, r2 = scenario.vm("hv1", red), scenario.vm("hv2", red)
    # blue's b2 is r2's twin: same MAC, same IP, on the other network and another hypervisor.
    b2 = scenario.vm("hv3", blue, mac=r2.mac, ip=r2.address)
    b1 = scenario.vm("hv1", blue, ip="10.0.0.99")
    sources = f"ether src {r1.mac} or ether src {b1.mac}"
    with Capture(b2.netns, sources) as at_b2, Capture(r2.netns, sources) as at_r2:
        assert probes.ping(r1.netns, r2.address, count=3)
        assert probes.tcp_transfer(r2.netns, r1.netns, r2.address)
        assert probes.ping(b1.netns, b2.address, count=3)
        assert probes.tcp_transfer(b2.netns, b1.netns, b2.address)
    seen_by_b2 = {Ether(f).src for f in at_b2.frames}
    seen_by_r2 = {Ether(f).src for f in at_r2.frames}
    assert b1.mac in seen_by_b2 and r1.mac in seen_by_r2, "each twin hears its own network"
    assert r1.mac not in seen_by_b2, "a red VM's frames reached the blue twin"
    assert b1.mac not in seen_by_r2, "a blue VM's frames reached the red twin"
    # An address only blue has is unreachable from red, and the other way round.
    assert not probes.ping(r1.netns, b1.address, timeout=0.5)
    assert not probes.ping(b1.netns, r1.address, timeout=0.5)


def _tunnel_rx(scenario: Scenario, hv: str) -> int:
    out = scenario.loom.lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", "br-int", "65200"]).stdout
    return int(out.split("rx pkts=")[1].split(",")[0])


def test_broadcast_reaches_only_its_networks_hosts(scenario: Scenario) -> None:
    red, blue = scenario.network("red"), scenario.network("blue")
    r1, r2 = scenario.vm("hv1", red), scenario.vm("hv2", red)
    b1, b3 = scenario.vm("hv1", blue), scenario.vm("hv3", blue)
    unknown = "10.0.0.77"  # nobody owns it: the request is flooded, not answered on the spot
    who_has = Ether(src=r1.mac, dst=BCAST) / ARP(op=1, hwsrc=r1.mac, psrc=r1.address, pdst=unknown)
    # The agents announce each new VM's address (gratuitous ARPs, broadcast like ours): let them finish,
    # or they would count below as traffic tunnelled to hv3.
    time.sleep(ANNOUNCE_AT[-1] + 0.5)
    hv3_rx = _tunnel_rx(scenario, "hv3")
    blue_who_has = Ether(src=b1.mac, dst=BCAST) / ARP(op=1, hwsrc=b1.mac, psrc=b1.address, pdst=unknown)
    with (
        Capture(r2.netns, f"arp and host {unknown}") as at_r2,
        Capture(b1.netns, f"arp and host {unknown}") as at_b1,
        Capture(b3.netns, f"arp and host {unknown}") as at_b3,
    ):
        send_frames(r1.netns, "eth0", [bytes(who_has)] * 5)
        send_frames(b1.netns, "eth0", [bytes(blue_who_has)])  # control: blue's own broadcast
    assert len(at_r2.frames) == 5, "red's VM on another hypervisor gets every broadcast"
    assert [Ether(f).src for f in at_b3.frames] == [b1.mac], "blue hears blue's broadcast"
    assert not [f for f in at_b1.frames + at_b3.frames if Ether(f).src == r1.mac], "blue never sees red's broadcasts"
    # hv3 has no red port: of all those broadcasts, only blue's one is tunnelled to it.
    assert _tunnel_rx(scenario, "hv3") - hv3_rx == 1


def test_a_deleted_port_loses_connectivity(scenario: Scenario) -> None:
    """A deleted port's traffic stops while its neighbours' goes on. How fast it stops is a benchmark's
    business; the bound here only catches a port that is never cut off."""
    net = scenario.network("del")
    a, b = scenario.vm("hv1", net), scenario.vm("hv2", net)
    c = scenario.vm("hv2", net)  # control: on the deleted port's hypervisor and network, and stays
    assert probes.ping(a.netns, b.address)
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", a.netns, "ping", "-n", "-D", "-i", "0.01", "-w", "4", b.address],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    scenario.loom.network.DeletePort(network_pb2.DeleteRequest(id=b.port_id), timeout=10)
    deleted_at = time.time()
    out, _ = pinger.communicate(timeout=10)
    replies = [
        float(line[1 : line.index("]")]) for line in out.splitlines() if line.startswith("[") and "bytes from" in line
    ]
    assert [t for t in replies if t < deleted_at], "the ping never worked before the delete"
    assert replies[-1] - deleted_at < 2.0, f"replies went on {replies[-1] - deleted_at:.3f} s after the delete"
    assert not probes.ping(a.netns, b.address, timeout=0.5)
    assert probes.ping(a.netns, c.address), "the path to the deleted port's neighbour broke too"


@pytest.mark.parametrize("spoof", ["source_ip", "source_mac", "arp_claim", "arp_sender_mac"])
def test_a_spoofing_vm_gets_nothing_through(scenario: Scenario, spoof: str) -> None:
    net = scenario.network("spoof")
    attacker = scenario.vm("hv1", net)
    victim = scenario.vm("hv1", net)  # its addresses are the ones forged
    target = scenario.vm("hv2", net)
    fake_mac = "fa:16:3e:66:66:66"
    legit = Ether(src=attacker.mac, dst=target.mac) / IP(src=attacker.address, dst=target.address) / UDP(dport=7777)
    forged = {
        "source_ip": Ether(src=attacker.mac, dst=target.mac)
        / IP(src=victim.address, dst=target.address)
        / UDP(dport=7777),
        "source_mac": Ether(src=fake_mac, dst=target.mac)
        / IP(src=attacker.address, dst=target.address)
        / UDP(dport=7777),
        "arp_claim": Ether(src=attacker.mac, dst=BCAST)
        / ARP(op=2, hwsrc=attacker.mac, psrc=victim.address, hwdst=BCAST, pdst=victim.address),
        "arp_sender_mac": Ether(src=attacker.mac, dst=BCAST)
        / ARP(op=1, hwsrc=fake_mac, psrc=attacker.address, pdst="10.0.0.77"),
    }[spoof]
    legit_to_victim = (
        Ether(src=attacker.mac, dst=victim.mac) / IP(src=attacker.address, dst=victim.address) / UDP(dport=7777)
    )
    with (
        Capture(target.netns, "udp port 7777 or arp") as at_target,
        Capture(victim.netns, "udp port 7777 or arp") as at_victim,
    ):
        send_frames(attacker.netns, "eth0", [bytes(forged)] * 3 + [bytes(legit), bytes(legit_to_victim)])
    for seen in (at_target, at_victim):
        received = [Ether(f) for f in seen.frames]
        assert any(UDP in p and p[IP].src == attacker.address for p in received), "legitimate packets must arrive"
        assert not any(UDP in p and p[IP].src == victim.address for p in received), "forged source IP got through"
        assert not any(p.src == fake_mac or (ARP in p and p[ARP].hwsrc == fake_mac) for p in received)
        assert not any(ARP in p and p[ARP].psrc == victim.address and p.src == attacker.mac for p in received)


def _neighbour_mac(netns: str, ip: str) -> str | None:
    out = subprocess.run(["ip", "-n", netns, "neigh", "show", ip], capture_output=True, text=True).stdout
    fields = out.split()
    return fields[fields.index("lladdr") + 1] if "lladdr" in fields else None


def test_a_reused_address_is_announced_so_peers_follow_at_once(scenario: Scenario) -> None:
    """A VM rebuilt with its old IP and a new MAC: its hypervisor's gratuitous ARP fixes the peers' caches."""
    net = scenario.network("reuse")
    peer, old = scenario.vm("hv1", net), scenario.vm("hv2", net)
    address = old.address
    assert probes.ping(peer.netns, address)
    # Positive control: the peer caches the old MAC, which would keep it away for its ARP
    # cache's lifetime (5-10 s) without an announcement.
    assert _neighbour_mac(peer.netns, address) == old.mac
    scenario.remove_vm(old)
    scenario.loom.network.DeletePort(network_pb2.DeleteRequest(id=old.port_id), timeout=10)
    pinger = subprocess.Popen(
        ["ip", "netns", "exec", peer.netns, "ping", "-n", "-D", "-i", "0.01", "-w", "4", address],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.2)
        assert _neighbour_mac(peer.netns, address) == old.mac, "the peer forgot the old MAC on its own"
        new = scenario.vm("hv3", net, ip=address, wait=False)
        plugged_at = time.time()
        assert new.mac != old.mac
        out, _ = pinger.communicate(timeout=10)
    finally:
        pinger.kill()
    replies = [
        float(line[1 : line.index("]")]) for line in out.splitlines() if line.startswith("[") and "bytes from" in line
    ]
    assert replies, "the peer never reached the new VM"
    delay = replies[0] - plugged_at
    print(f"reused address reachable {delay * 1000:.0f} ms after the new VM was plugged")
    # Generous bound (the agent announces when the VIF's flows are in, tens of ms): far below the
    # seconds a stale ARP entry would cost.
    assert delay < 1.0, f"first reply {delay:.3f} s after plugging"
    assert _neighbour_mac(peer.netns, address) == new.mac
