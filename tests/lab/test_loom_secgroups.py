"""Security groups end to end on the Loom lab: real OVS (userspace conntrack), three hypervisors, VMs in namespaces.

Every negative check has a positive control next to it (the same path, allowed, works), so a broken lab
cannot pass for a working firewall. Time bounds are generous: speed is measured by bench/secgroups.py.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.l2 import Ether

from lab.mininet import probes
from lab.mininet.guest import Capture, in_netns, send_frames
from lab.mininet.lab import Vm
from lab.mininet.loom import LoomLab
from protos.loom.v1 import network_pb2
from tests.lab.scenario import Scenario
from tests.lab.streams import PacedStream
from tests.lab.test_loom_restart import pinging, synced

pytestmark = pytest.mark.lab


def tcp_ok(client: Vm, server: Vm, port: int, timeout: float = 3.0) -> bool:
    """A TCP transfer client -> server:port completes (the server listens on ``port``)."""
    return probes.tcp_transfer(
        server.netns, client.netns, server.address or "", nbytes=20_000, port=port, timeout=timeout
    )


def refused(client: Vm, server: Vm, port: int) -> bool:
    return not tcp_ok(client, server, port, timeout=1.0)


def dump_flows(loom: LoomLab, hv: str) -> list[str]:
    out = loom.lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "br-int"]).stdout
    return [line.strip() for line in out.splitlines() if "actions=" in line]


def conntrack(loom: LoomLab, hv: str) -> list[str]:
    return loom.lab.run(hv, ["ovs-appctl", "dpctl/dump-conntrack"]).stdout.splitlines()


def ofport(loom: LoomLab, vm: Vm) -> int:
    return int(loom.get_port(vm.port_id).binding_vif_details["ofport"])


def settle(loom: LoomLab) -> None:
    """Until every agent has applied the controller's current state (a rule change is in the switches)."""
    loom.wait_agents(timeout=30)


# ---------------------------------------------------------------- the default group


def test_default_group_members_reach_each_other_a_non_member_is_refused_egress_is_open(scenario: Scenario) -> None:
    net = scenario.network("sgdef")
    a, b = scenario.vm("hv1", net), scenario.vm("hv2", net)  # the project's default group
    outsider_group = scenario.security_group("outsider")
    scenario.rule(outsider_group.id, "ingress")  # it takes anything in
    c = scenario.vm("hv3", net, groups=[outsider_group.id])
    assert probes.ping(a.netns, b.address) and probes.ping(b.netns, a.address), "members reach each other"
    assert tcp_ok(a, b, 5301) and tcp_ok(b, a, 5302)
    assert not probes.ping(c.netns, a.address, timeout=0.5), "a non-member reached a member"
    assert refused(c, b, 5303)
    assert probes.ping(a.netns, c.address) and tcp_ok(a, c, 5304), "egress is open (and the reply comes back)"


# ---------------------------------------------------------------- rule changes under a live stream


def test_a_tcp_stream_survives_rule_changes_until_its_last_allowing_rule_goes(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("sgstream")
    server_group = scenario.security_group("stream-srv")
    client = scenario.vm("hv1", net)
    default = scenario.default_group()  # the client's (created with the project's first port)
    server = scenario.vm("hv2", net, groups=[server_group.id])
    allow = scenario.rule(server_group.id, protocol="tcp", port_range_min=5201, port_range_max=5201)
    settle(loom)
    phases: list[tuple[str, float, float]] = []
    with PacedStream(client, server, port=5201) as stream:
        time.sleep(0.5)

        def phase(name: str, change: object) -> None:
            start = time.time()
            change()  # type: ignore[operator]
            settle(loom)
            time.sleep(0.7)
            phases.append((name, start, time.time()))

        def unrelated() -> None:
            r = scenario.rule(server_group.id, protocol="udp", port_range_min=9999, port_range_max=9999)
            scenario.rule(default.id, protocol="tcp", port_range_min=2222, port_range_max=2222)
            scenario.delete_rule(r.id)

        phase("unrelated rules change", unrelated)
        equivalent = None

        def replace() -> None:
            nonlocal equivalent
            equivalent = scenario.rule(
                server_group.id,
                protocol="tcp",
                port_range_min=5200,
                port_range_max=5202,
                remote_ip_prefix="10.0.0.0/24",
            )
            scenario.delete_rule(allow.id)

        phase("its rule replaced by an equivalent one", replace)

        def overlap() -> None:
            scenario.rule(
                server_group.id, protocol="tcp", port_range_min=5201, port_range_max=5201, remote_group_id=default.id
            )
            assert equivalent is not None
            scenario.delete_rule(equivalent.id)

        phase("one of two overlapping rules removed", overlap)
        last = [r for r in _rules(scenario, server_group.id) if r.direction == "ingress"]
        assert len(last) == 1
        cut_at = stream.mark("cut")
        scenario.delete_rule(last[0].id)
        settle(loom)
        time.sleep(1.5)
    for name, start, end in phases:
        at_server, at_client = stream.gaps(start, end)
        assert at_server < 0.1 and at_client < 0.1, f"{name}: gaps {at_server:.3f} s / {at_client:.3f} s"
        assert not stream.resets(start, end), f"{name}: a reset"
    assert "error" not in stream.client_output, stream.client_output
    # The positive control of the gap measurement: the cut is a gap, and it comes within a second both ways.
    server_last, client_last = stream.last_seen()
    assert server_last - cut_at < 1.0, f"the server still got segments {server_last - cut_at:.3f} s after the cut"
    assert client_last - cut_at < 1.0, f"the client still got replies {client_last - cut_at:.3f} s after the cut"
    assert stream.gaps(cut_at + 1.0, stream.marks["stop"])[0] > 1.0
    print("phases:", [(n, round(max(stream.gaps(s, e)) * 1000, 1)) for n, s, e in phases], "ms max gap")
    print(f"cut: last segment at the server {1000 * (server_last - cut_at):.0f} ms after the delete call")


def _rules(scenario: Scenario, group_id: str) -> list:
    return list(scenario.loom.security.GetSecurityGroup(network_pb2.GetRequest(id=group_id), timeout=10).rules)


# ---------------------------------------------------------------- remote groups: the conjunction merge


def test_overlapping_port_ranges_from_two_remote_groups_both_work(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("sgconj")
    ra, rb, srv = (scenario.security_group(n) for n in ("ra", "rb", "conjsrv"))
    # 2000-2100 and 2048-2100 decompose into the same masked flows for 2048-2100: one flow, two conjunctions.
    scenario.rule(srv.id, protocol="tcp", port_range_min=2000, port_range_max=2100, remote_group_id=ra.id)
    scenario.rule(srv.id, protocol="tcp", port_range_min=2048, port_range_max=2100, remote_group_id=rb.id)
    server = scenario.vm("hv1", net, groups=[srv.id])
    a = scenario.vm("hv2", net, groups=[ra.id])
    b = scenario.vm("hv3", net, groups=[rb.id])
    both = scenario.vm("hv2", net, groups=[ra.id, rb.id])
    settle(loom)
    for client in (a, b, both):
        assert tcp_ok(client, server, 2050), f"{client.name} (in the overlap)"
    assert tcp_ok(a, server, 2010), "ra's own range"
    assert refused(b, server, 2010), "2010 is not rb's"
    reg = f"reg7={hex(loom.get_port(server.port_id).tag)}"
    merged = [f for f in dump_flows(loom, "hv1") if reg in f and f.count("conjunction(") == 2]
    assert merged, "no flow carries both conjunctions"
    both_ip = [f for f in dump_flows(loom, "hv1") if f"nw_src={both.address} " in f + " " and "conjunction" in f]
    assert len(both_ip) == 1 and both_ip[0].count("conjunction(") == 2, both_ip


# ---------------------------------------------------------------- same host; same 5-tuple twice


def test_two_vms_on_one_host_and_network_the_destinations_ingress_rules_hold(scenario: Scenario) -> None:
    net = scenario.network("sglocal")
    only_5201 = scenario.security_group("only5201")
    scenario.rule(only_5201.id, protocol="tcp", port_range_min=5201, port_range_max=5201)
    a = scenario.vm("hv1", net)
    b = scenario.vm("hv1", net, groups=[only_5201.id])
    settle(scenario.loom)
    assert tcp_ok(a, b, 5201)
    assert refused(a, b, 5202)
    assert not probes.ping(a.netns, b.address, timeout=0.5)
    assert not probes.ping(b.netns, a.address, timeout=0.5), "a's default group lets in its members only"


_FIXED_SPORT_CLIENT = """
import hashlib, os, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[3]))); s.settimeout(float(sys.argv[4]))
s.connect((sys.argv[1], int(sys.argv[2])))
data = os.urandom(200_000); s.sendall(data); s.close(); print(hashlib.sha256(data).hexdigest())
"""


def test_the_same_five_tuple_on_two_networks_on_one_host_side_by_side(scenario: Scenario) -> None:
    loom = scenario.loom
    red, blue = scenario.network("red5"), scenario.network("blue5")  # both 10.0.0.0/24
    red_srv, blue_srv = scenario.security_group("redsrv"), scenario.security_group("bluesrv")
    scenario.rule(red_srv.id, protocol="tcp", port_range_min=5201, port_range_max=5201)
    r1 = scenario.vm("hv1", red, ip="10.0.0.50")
    b1 = scenario.vm("hv1", blue, ip="10.0.0.50")
    r2 = scenario.vm("hv1", red, ip="10.0.0.60", groups=[red_srv.id])
    b2 = scenario.vm("hv1", blue, ip="10.0.0.60", groups=[blue_srv.id])
    settle(loom)

    def both() -> tuple[bool, bool]:
        sinks = [_sink(vm) for vm in (r2, b2)]
        clients = [
            subprocess.Popen(
                in_netns(vm.netns, [sys.executable, "-c", _FIXED_SPORT_CLIENT, "10.0.0.60", "5201", "40123", "2"]),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for vm in (r1, b1)
        ]
        results = []
        for client, sink in zip(clients, sinks, strict=True):
            sent = client.communicate(timeout=30)[0].strip()
            got = sink.communicate(timeout=30)[0].strip().splitlines()
            results.append(bool(sent) and got[-1:] == [sent])
        return results[0], results[1]

    assert both() == (True, False), "red's server allows 5201, blue's does not"
    scenario.rule(blue_srv.id, protocol="tcp", port_range_min=5201, port_range_max=5201)
    settle(loom)
    time.sleep(1.0)  # the first pair's TIME_WAIT entries stay; the same tuple is reused on purpose
    assert both() == (True, True), "the same 5-tuple on both networks, at once"
    zones = {
        int(m.group(1))
        for line in conntrack(loom, "hv1")
        if "sport=40123,dport=5201" in line and (m := re.search(r"zone=(\d+)", line))
    }
    assert zones >= {ofport(loom, vm) for vm in (r1, b1, r2, b2)}, zones


_SINK = """
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("", int(sys.argv[1]))); srv.listen(1); print("ready", flush=True); srv.settimeout(3)
conn, _ = srv.accept(); h = hashlib.sha256()
while chunk := conn.recv(65536):
    h.update(chunk)
print(h.hexdigest(), flush=True)
"""


def _sink(vm: Vm, port: int = 5201) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        in_netns(vm.netns, [sys.executable, "-c", _SINK, str(port)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # a refused client leaves it to time out, which is the point
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


# ---------------------------------------------------------------- no port security


def test_a_port_without_port_security_passes_everything_and_sees_no_conntrack(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("sgnops")
    open_group = scenario.security_group("openin")
    scenario.rule(open_group.id, "ingress")
    bare = scenario.vm("hv1", net, groups=[], port_security=False)
    member = scenario.vm("hv1", net)  # default group: only members get in
    anyone = scenario.vm("hv2", net, groups=[open_group.id])
    assert probes.ping(member.netns, bare.address) and tcp_ok(member, bare, 5401), "anything reaches it"
    assert tcp_ok(anyone, bare, 5402)
    assert not probes.ping(bare.netns, member.address, timeout=0.5), "the member's own rules still hold"
    # No anti-spoofing: a forged source reaches a port that lets anything in (a filtered sender's would not).
    forged = Ether(src=bare.mac, dst=anyone.mac) / IP(src="10.0.0.222", dst=anyone.address) / UDP(dport=7777)
    with Capture(anyone.netns, "udp port 7777") as seen:
        send_frames(bare.netns, "eth0", [bytes(forged)] * 3)
    assert any(Ether(f)[IP].src == "10.0.0.222" for f in seen.frames)
    zones = {int(m.group(1)) for e in conntrack(loom, "hv1") if (m := re.search(r"zone=(\d+)", e))}
    assert ofport(loom, bare) not in zones, "the unfiltered port's zone holds connections"
    assert ofport(loom, member) in zones, "positive control: the member's zone"


# ---------------------------------------------------------------- an attacker's packets


@pytest.fixture
def arena(scenario: Scenario) -> dict[str, Vm]:
    """A victim that lets in SSH from one client and ICMP from the attacker; the attacker; the client."""
    net = scenario.network("sgattack")
    victim_group = scenario.security_group("victim")
    attacker = scenario.vm("hv1", net, ip="10.0.0.66")
    client = scenario.vm("hv2", net, ip="10.0.0.77")
    scenario.rule(victim_group.id, protocol="tcp", port_range_min=22, port_range_max=22, remote_ip_prefix="10.0.0.77")
    scenario.rule(victim_group.id, protocol="icmp", remote_ip_prefix="10.0.0.66")
    victim = scenario.vm("hv3", net, ip="10.0.0.88", groups=[victim_group.id])
    settle(scenario.loom)
    return {"attacker": attacker, "client": client, "victim": victim}


def _control(attacker: Vm, victim: Vm) -> bytes:
    """An echo request the victim allows: must arrive, proving the capture saw the attacker's path."""
    return bytes(Ether(src=attacker.mac, dst=victim.mac) / IP(src=attacker.address, dst=victim.address) / ICMP(id=4242))


def _attack(arena: dict[str, Vm], frames: list[bytes], bpf: str = "") -> list[Ether]:
    attacker, victim = arena["attacker"], arena["victim"]
    with Capture(victim.netns, bpf or f"not arp and host {victim.address}") as seen:
        send_frames(attacker.netns, "eth0", [*frames, _control(attacker, victim)])
    received = [Ether(f) for f in seen.frames]
    assert any(ICMP in p and p[ICMP].id == 4242 for p in received), "the positive control did not arrive"
    return [p for p in received if not (ICMP in p and p[ICMP].type in (0, 8) and p[ICMP].id == 4242)]


def test_attack_spoofed_source_ip_and_mac(arena: dict[str, Vm]) -> None:
    attacker, client, victim = arena["attacker"], arena["client"], arena["victim"]
    frames = [
        Ether(src=attacker.mac, dst=victim.mac) / IP(src=client.address, dst=victim.address) / TCP(dport=22, flags="S"),
        Ether(src=client.mac, dst=victim.mac) / IP(src=client.address, dst=victim.address) / TCP(dport=22, flags="S"),
        Ether(src=client.mac, dst=victim.mac) / IP(src=attacker.address, dst=victim.address) / ICMP(id=1),
    ]
    got = _attack(arena, [bytes(f) for f in frames])
    assert not got, [p.summary() for p in got]


def test_attack_tcp_without_a_handshake(arena: dict[str, Vm]) -> None:
    attacker, victim = arena["attacker"], arena["victim"]
    frames = [
        Ether(src=attacker.mac, dst=victim.mac)
        / IP(src=attacker.address, dst=victim.address)
        / TCP(sport=40000 + i, dport=dport, flags=flags, seq=1000, ack=2000 if "A" in flags else 0)
        for i, (dport, flags) in enumerate(
            (d, f) for d in (22, 80) for f in ("A", "R", "F", "FA", "RA", "SA", "", "FPU")
        )
    ]
    got = _attack(arena, [bytes(f) for f in frames])
    assert not got, [p.summary() for p in got]


def test_attack_fragments(arena: dict[str, Vm]) -> None:
    attacker, victim = arena["attacker"], arena["victim"]
    head = Ether(src=attacker.mac, dst=victim.mac)
    # OVS reassembles fragments before conntrack (and drops non-final ones under 1200 bytes): a real VM's
    # fragments of a forbidden datagram, tiny ones, and a fragment whose first never came.
    blocked = IP(src=attacker.address, dst=victim.address, id=777) / UDP(sport=5000, dport=53) / (b"q" * 3000)
    tiny = IP(src=attacker.address, dst=victim.address, id=780) / UDP(sport=5001, dport=22) / (b"t" * 300)
    orphan = IP(src=attacker.address, dst=victim.address, id=778, frag=100, flags=0) / (b"z" * 200)  # no first
    frames = [bytes(head / f) for f in [*fragment(blocked, fragsize=1400), *fragment(tiny, fragsize=64), orphan]]
    got = _attack(arena, frames)
    assert not got, [p.summary() for p in got]
    # Positive control for fragments: an allowed echo request in fragments is delivered.
    big = IP(src=attacker.address, dst=victim.address, id=779) / ICMP(id=4343) / (b"p" * 3000)
    with Capture(victim.netns, "icmp") as seen:
        send_frames(attacker.netns, "eth0", [bytes(head / f) for f in fragment(big, fragsize=1400)])
    assert seen.frames, "fragments of an allowed packet never arrived"


def test_attack_out_of_window_segments_of_an_allowed_connection(arena: dict[str, Vm]) -> None:
    client, victim = arena["client"], arena["victim"]
    sink = subprocess.Popen(
        in_netns(victim.netns, [sys.executable, "-c", _SINK, "22"]), stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    opener = subprocess.Popen(
        in_netns(
            client.netns,
            [
                sys.executable,
                "-c",
                "import socket,time,sys; s=socket.create_connection((sys.argv[1],22)); "
                "s.send(b'hello'); time.sleep(4); s.close()",
                victim.address or "",
            ],
        )
    )
    try:
        with Capture(victim.netns, f"tcp and src host {client.address}") as learned:
            time.sleep(0.8)
        syn = next(Ether(f)[TCP] for f in learned.frames if Ether(f)[TCP].flags & 0x02)
        sport, isn = syn.sport, syn.seq
        base = Ether(src=client.mac, dst=victim.mac) / IP(src=client.address, dst=victim.address)
        frames = [
            base / TCP(sport=sport, dport=22, flags="A", seq=(isn + 1 + 2**30) % 2**32, ack=1),
            base / TCP(sport=sport, dport=22, flags="R", seq=(isn + 1 + 2**31) % 2**32),
            base / TCP(sport=sport, dport=22, flags="PA", seq=(isn - 2**29) % 2**32, ack=1) / b"evil",
        ]
        with Capture(victim.netns, f"tcp and src host {client.address} and port {sport}") as seen:
            send_frames(client.netns, "eth0", [bytes(f) for f in frames])
        crafted = {f[TCP].seq for f in frames}
        leaked = [Ether(f) for f in seen.frames if Ether(f)[TCP].seq in crafted]
        assert not leaked, [p.summary() for p in leaked]
    finally:
        opener.wait(10)
        out = sink.communicate(timeout=10)[0]
    hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256(b"hello")
    assert out.strip().splitlines() == [hello], "positive control: the connection itself worked, not reset"


def test_attack_icmp_errors_about_no_connection(arena: dict[str, Vm]) -> None:
    attacker, victim = arena["attacker"], arena["victim"]
    quoted = IP(src=victim.address, dst=attacker.address) / UDP(sport=33333, dport=9999)
    frames = [
        Ether(src=attacker.mac, dst=victim.mac)
        / IP(src=attacker.address, dst=victim.address)
        / ICMP(type=t, code=c)
        / bytes(quoted)[:28]
        for t, c in ((3, 3), (3, 4), (11, 0), (12, 0))
    ]
    got = _attack(arena, [bytes(f) for f in frames], bpf=f"icmp and host {victim.address}")
    assert not [p for p in got if p[ICMP].type in (3, 11, 12)], [p.summary() for p in got]


_FLOOD = """
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("eth0", 0))
frame = bytearray(bytes.fromhex(sys.argv[1]))
src, dst = bytes(frame[26:30]), bytes(frame[30:34])

def checksum(data):
    if len(data) % 2:
        data += b"\\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

for i in range(20000):
    f = bytearray(frame)
    f[34:36] = (1024 + i % 60000).to_bytes(2, "big")  # TCP source port: a new connection each time
    f[50:52] = b"\\0\\0"
    tcp = bytes(f[34:])
    f[50:52] = checksum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp).to_bytes(2, "big")
    s.send(bytes(f))
    if i % 100 == 99:
        time.sleep(0.005)  # paced a little, so the switch takes most of them rather than the socket dropping them
"""


def test_attack_a_flood_of_new_connections_leaves_agent_and_switch_serving(
    arena: dict[str, Vm], scenario: Scenario
) -> None:
    attacker, client, victim = arena["attacker"], arena["client"], arena["victim"]
    syn = (
        Ether(src=attacker.mac, dst=victim.mac)
        / IP(src=attacker.address, dst=victim.address)
        / TCP(dport=22, flags="S")
    )
    with Capture(victim.netns, f"tcp and src host {attacker.address}") as seen:
        started = time.monotonic()
        subprocess.run(
            in_netns(attacker.netns, [sys.executable, "-c", _FLOOD, bytes(syn).hex()]), check=True, timeout=120
        )
        flood_seconds = time.monotonic() - started
        # Meanwhile and after: the allowed client still gets in, and the agents still apply changes.
        assert tcp_ok(client, victim, 22), "the allowed client was shut out"
        late = scenario.vm("hv1", scenario.network("sglate"))  # a port made now, on the flooded host, becomes ACTIVE
        assert late.address
    assert not seen.frames, f"{len(seen.frames)} flood segments reached the victim"
    print(f"20000 SYNs in {flood_seconds:.1f} s; conntrack entries on hv1: {len(conntrack(scenario.loom, 'hv1'))}")


# ---------------------------------------------------------------- restarts


def test_restarts_with_security_groups_lose_no_allowed_packet_and_admit_no_forbidden_one(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("sgrestart")
    a, b = scenario.vm("hv1", net), scenario.vm("hv2", net)  # default group: members
    stranger_group = scenario.security_group("stranger")
    c = scenario.vm("hv1", net, groups=[stranger_group.id])
    forbidden = subprocess.Popen(
        ["ip", "netns", "exec", c.netns, "ping", "-n", "-i", "0.02", b.address or ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # IP only: the agents' gratuitous ARPs for c (after each restart) are ARP, which no group filters.
        with Capture(b.netns, f"ip and src host {c.address}") as at_b:
            with pinging(a, b) as tally:
                loom.stop_agent("hv2", signal.SIGKILL)
                time.sleep(0.5)
                loom.start_agent("hv2")
                synced(loom, ["hv2"])
                time.sleep(0.5)
                loom.stop_controller(signal.SIGKILL)
                time.sleep(0.5)
                loom.start_controller()
                synced(loom, ["hv1", "hv2", "hv3"])
                time.sleep(0.5)
            assert tally.sent >= 100 and tally.received == tally.sent, f"lost {tally.lost}"
            # vswitchd restarts: its flows and its connection table are gone until the agent reprograms it.
            restarted_at = time.time()
            loom.lab.restart_vswitchd("hv2")
            deadline = time.monotonic() + 15
            while not probes.ping(a.netns, b.address or "", timeout=0.3):
                assert time.monotonic() < deadline, "b unreachable 15 s after its vswitchd restarted"
            recovered = time.time() - restarted_at
            with pinging(a, b) as after:
                time.sleep(2)
            assert after.received == after.sent, "allowed traffic after the vswitchd restart"
    finally:
        forbidden.kill()
        forbidden.wait(5)
    assert not at_b.frames, f"{len(at_b.frames)} packets from a forbidden source reached b"
    print(f"vswitchd restart: b reachable again {recovered:.2f} s after it")
