"""Security groups: how fast changes take effect, what a port costs in flows, throughput, and OVN side by side.

Measured on a two-hypervisor Loom lab (prefix "labs", management 198.18.50.0/24), then on a one-chassis
OVN 23.03 lab (bench/ovn_baseline.py; prefix "labso", 198.18.51.0/24), never at the same time:

- member_add_p50_ms / _p99_ms: a client on hv1 probes a server on hv2 every millisecond (lab.mininet.prober);
  the server's group admits ICMP from members of group M only. The clock runs from the UpdatePort call
  that puts the client into M until the first echo reply: store -> distributor -> hv2's agent installs the
  new member-address flow (one bundle). Between rounds the client leaves M again.
- rule_add_p50_ms / _p99_ms: the same prober; the server's group has no ingress rule; the clock runs from
  CreateSecurityGroupRule (ICMP from the client's /32) to the first reply. The rule is deleted between rounds.
- first_ping_sg_p50_ms / _p99_ms: case (b) of bench/time_to_ping.py (port bound first, its flows in place,
  then the VIF attached; dynamic ARP) with the project's default group on every port, target on the same
  hypervisor. ``first_ping_nosg_p50_ms``: the same with ports without port security (no conntrack at all).
- first_ping_sg_ratio_to_ovn: Loom's first_ping_sg_p50_ms over OVN's, measured in this run the same way on
  OVN with Neutron's default group as OVN sees it: one port group holding every port, two allow-related ACLs
  (all IPv4 out; in from the group's address set). ``ovn_first_ping_p50_ms`` is OVN without the group.
- flows_per_port_default_sg: OpenFlow flows on hv1's br-int (ovs-ofctl dump-flows) with 10, 50 and 100 ports
  of the default group bound to it (flows in place before any VIF, as in (b)); the least-squares slope,
  and the flows at each step to show it is linear. Includes the two binding flows the agent renders.
- tcp_throughput_ratio: iperf3 (5 s, one stream) between VMs on hv1 and hv2, default group on both, divided
  by the same between two VMs without port security; three rounds each, alternating, medians.
- compile_ms_1000_members: controller only (no lab): 50 local ports on one host reference a group of 1,000
  members on 20 other hosts; one more member joins (a port created with the group). The distributor's time
  for that event (every host it touches), and ``compile_ms_1000_members_host`` for the referencing host alone
  (what affected() names there, recompiled); ``host_full_compile_ms`` compiles that host from scratch.

The machine's load average is recorded with the figures (this machine is shared; the lead re-runs on a quiet
one). Prints a table, writes bench/results/secgroups.json.

    .venv/bin/python bench/secgroups.py [--rounds 30] [--no-ovn]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.first_ping import fire, ms_to_first_reply, prober
from bench.ovn_baseline import OvnChassis, ovn_version, quiet_ovsdbapp
from bench.ovn_baseline import plug_case as ovn_plug_case
from bench.stats import percentile
from bench.time_to_ping import plug_case
from controller.api.network_api import NetworkApi
from controller.compiler.host import FEATURES, compile_host
from controller.compiler.topology import Topology
from controller.distributor.distributor import Distributor
from controller.model import Agent
from controller.store.sqlite import SqliteStore
from lab.mininet.config import LabConfig
from lab.mininet.guest import in_netns
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2, security_pb2

LAB = LabConfig(hypervisors=2, prefix="labs", mgmt_cidr="198.18.50.0/24")
# OVN's lab: its own names and range, so time_to_ping's OVN baseline ("labo") may run at the same time.
OVN_LAB = LabConfig(hypervisors=1, prefix="labso", mgmt_cidr="198.18.51.0/24", integration_bridge=False)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# ---------------------------------------------------------------- controller: 1,000 members


def compile_members(members: int = 1000, referrers: int = 50, samples: int = 15) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="loom-bench-sg-") as tmp:
        store = SqliteStore(str(Path(tmp) / "loom.db"))
        api = NetworkApi(store)
        hosts = ["h0", *(f"m{i}" for i in range(20))]
        store.commit(puts=[Agent(id=h, tunnel_ip=f"198.51.100.{i + 1}") for i, h in enumerate(hosts)])
        net = api.networks.create({"name": "big", "project_id": "p"})
        api.subnets.create({"network_id": net.id, "cidr": "10.0.0.0/16"})
        group = api.security_groups.create({"name": "members", "project_id": "p"})
        web = api.security_groups.create({"name": "web", "project_id": "p"})
        api.security_group_rules.create(
            {"security_group_id": web.id, "direction": "ingress", "protocol": "tcp", "remote_group_id": group.id}
        )
        for i in range(members):
            api.ports.create(
                {"network_id": net.id, "binding_host_id": hosts[1 + i % 20], "security_groups": [group.id]}
            )
        for _ in range(referrers):
            api.ports.create({"network_id": net.id, "binding_host_id": "h0", "security_groups": [web.id]})
        dist = Distributor(store, Topology())
        dist.start()
        batch_ms, host_ms, full_ms = [], [], []
        for k in range(samples):
            rev_before = store.revision
            port = api.ports.create(
                {"network_id": net.id, "binding_host_id": hosts[1 + k % 20], "security_groups": [group.id]}
            )
            if not dist.wait_for(store.revision, timeout=30) or store.revision == rev_before:
                raise RuntimeError("the distributor did not catch up")
            batch_ms.append(dist.stats.last_batch_seconds * 1000)
            # The referencing host alone: what the change names there, recompiled (the distributor's own steps).
            topo = dist.topo
            stored = store.get("port", port.id)
            t0 = time.perf_counter()
            keys = FEATURES.affected(topo, None, stored).get("h0", set())
            for key in keys:
                FEATURES.compile(topo, key, "h0")
            host_ms.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            compile_host(topo, "h0")
            full_ms.append((time.perf_counter() - t0) * 1000)
        dist.stop()
        api.close()
        store.close()
    return {
        "compile_ms_1000_members": round(statistics.median(batch_ms), 2),
        "compile_ms_1000_members_p99": round(percentile(batch_ms, 0.99), 2),
        "compile_ms_1000_members_host": round(statistics.median(host_ms), 3),
        "host_full_compile_ms": round(statistics.median(full_ms), 1),
    }


# ---------------------------------------------------------------- the Loom lab


def group(loom: LoomLab, name: str) -> resources_pb2.SecurityGroup:
    sg = resources_pb2.SecurityGroup(name=name)
    return loom.security.CreateSecurityGroup(security_pb2.CreateSecurityGroupRequest(security_group=sg), timeout=10)


def rule(loom: LoomLab, group_id: str, **fields: object) -> resources_pb2.SecurityGroupRule:
    r = resources_pb2.SecurityGroupRule(security_group_id=group_id, direction="ingress", **fields)
    request = security_pb2.CreateSecurityGroupRuleRequest(security_group_rule=r)
    return loom.security.CreateSecurityGroupRule(request, timeout=10)


def set_groups(loom: LoomLab, port_id: str, groups: list[str]) -> None:
    request = network_pb2.UpdatePortRequest(port=resources_pb2.Port(id=port_id, security_groups=groups))
    request.update_mask.paths.append("security_groups")
    loom.network.UpdatePort(request, timeout=10)


def timed_rounds(client: Vm, server: Vm, n: int, make: object, undo: object, what: str, loom: LoomLab) -> list[float]:
    """Per round: probe server from client, call ``make()`` (the clock starts), wait for the first reply, ``undo()``."""
    times = []
    for i in range(n):
        with prober(client.netns, server.address or "") as probe:
            fire(probe)
            time.sleep(0.02)  # probing, unanswered
            t0 = time.time()
            made = make()  # type: ignore[operator]
            times.append(ms_to_first_reply(probe, t0, f"{what} {i}"))
        undo(made)  # type: ignore[operator]
        loom.wait_agents(timeout=30)
        time.sleep(0.05)
    return times


def flows_on(loom: LoomLab, hv: str) -> int:
    out = loom.lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "br-int"]).stdout
    return sum(1 for line in out.splitlines() if "actions=" in line)


def flows_per_port(loom: LoomLab, net: LabNetwork) -> tuple[float, dict[int, int]]:
    counts: dict[int, int] = {}
    ports: list[str] = []
    for target in (10, 50, 100):
        while len(ports) < target:
            port = resources_pb2.Port(network_id=net.id, binding_host_id="hv1", device_owner="compute:bench")
            ports.append(loom.network.CreatePort(network_pb2.CreatePortRequest(port=port), timeout=10).id)
        loom.wait_agents(timeout=60)
        counts[target] = flows_on(loom, "hv1")
    for pid in ports:
        loom.network.DeletePort(network_pb2.DeleteRequest(id=pid), timeout=10)
    xs, ys = list(counts), list(counts.values())
    mx, my = statistics.mean(xs), statistics.mean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope, counts


def iperf(client: Vm, server: Vm, seconds: int = 5) -> float:
    """Gbit/s of one iperf3 TCP stream client -> server."""
    srv = subprocess.Popen(in_netns(server.netns, ["iperf3", "-s", "-1"]), stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(
            in_netns(client.netns, ["iperf3", "-c", server.address or "", "-t", str(seconds), "-J"]),
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        srv.wait(10)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def loom_lab(rounds: int) -> dict[str, object]:
    out: dict[str, object] = {}
    with LoomLab(config=LAB) as loom:
        net = loom.create_network("sg", "10.0.0.0/22")
        # Remote group membership and a new rule, probed across hosts.
        members, outsider, srv_m, srv_r = (group(loom, n) for n in ("members", "outsider", "srv-m", "srv-r"))
        rule(loom, srv_m.id, protocol="icmp", remote_group_id=members.id)
        client = loom.boot_vm("client", "hv1", net, security_groups=[outsider.id])
        server_m = loom.boot_vm("server-m", "hv2", net, security_groups=[srv_m.id])
        server_r = loom.boot_vm("server-r", "hv2", net, security_groups=[srv_r.id])
        member = timed_rounds(
            client,
            server_m,
            rounds,
            lambda: set_groups(loom, client.port_id, [outsider.id, members.id]),
            lambda _: set_groups(loom, client.port_id, [outsider.id]),
            "member add",
            loom,
        )
        added = timed_rounds(
            client,
            server_r,
            rounds,
            lambda: rule(loom, srv_r.id, protocol="icmp", remote_ip_prefix=f"{client.address}/32"),
            lambda r: loom.security.DeleteSecurityGroupRule(network_pb2.DeleteRequest(id=r.id), timeout=10),
            "rule add",
            loom,
        )
        out |= {
            "member_add_p50_ms": round(statistics.median(member), 2),
            "member_add_p99_ms": round(percentile(member, 0.99), 2),
            "rule_add_p50_ms": round(statistics.median(added), 2),
            "rule_add_p99_ms": round(percentile(added, 0.99), 2),
        }
        # First ping, (b): default group everywhere; then without port security.
        target = loom.boot_vm("target", "hv1", net)
        plug_sg, _ = plug_case(loom, net, target, rounds)
        bare_target = loom.boot_vm("bare-target", "hv1", net, security_groups=[], port_security=False)
        plug_bare, _ = plug_case(loom, net, bare_target, rounds, port_security=False)
        out |= {
            "first_ping_sg_p50_ms": round(statistics.median(plug_sg), 2),
            "first_ping_sg_p99_ms": round(percentile(plug_sg, 0.99), 2),
            "first_ping_nosg_p50_ms": round(statistics.median(plug_bare), 2),
        }
        slope, counts = flows_per_port(loom, net)
        out["flows_per_port_default_sg"] = round(slope, 2)
        out["flows_on_hv1_at"] = {str(k): v for k, v in counts.items()}
        # Throughput, default group vs no port security, alternating.
        a, b = loom.boot_vm("tput-a", "hv1", net), loom.boot_vm("tput-b", "hv2", net)
        c = loom.boot_vm("bare-a", "hv1", net, security_groups=[], port_security=False)
        d = loom.boot_vm("bare-b", "hv2", net, security_groups=[], port_security=False)
        with_sg, without = [], []
        for _ in range(3):
            with_sg.append(iperf(a, b))
            without.append(iperf(c, d))
        out |= {
            "tcp_throughput_sg_gbps": round(statistics.median(with_sg), 3),
            "tcp_throughput_nosg_gbps": round(statistics.median(without), 3),
            "tcp_throughput_ratio": round(statistics.median(with_sg) / statistics.median(without), 3),
        }
    return out


# ---------------------------------------------------------------- OVN, side by side


def ovn_first_ping(rounds: int) -> dict[str, object]:
    with quiet_ovsdbapp(), OvnChassis(OVN_LAB) as ovn:
        target = ovn.new_port("target")
        target_vm = ovn.boot_vm(target)
        plain, _ = ovn_plug_case(ovn, target_vm, rounds, "plain")
        ovn.enable_port_group([target.name])
        with_group, _ = ovn_plug_case(ovn, target_vm, rounds, "pg")
        # The ACLs were in force: the target's pings went through conntrack.
        tracked = ovn.lab.run("hv1", ["ovs-appctl", "dpctl/dump-conntrack"]).stdout.count("icmp")
        if not tracked:
            raise RuntimeError("OVN: no conntrack entry after the port-group rounds; were the ACLs applied?")
        return {
            "ovn_version": ovn.version,
            "ovn_first_ping_p50_ms": round(statistics.median(plain), 2),
            "ovn_first_ping_sg_p50_ms": round(statistics.median(with_group), 2),
            "ovn_first_ping_sg_p99_ms": round(percentile(with_group, 0.99), 2),
        }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30, help="rounds per timed case (default 30)")
    parser.add_argument("--no-ovn", action="store_true", help="skip the OVN baseline")
    args = parser.parse_args()
    if not args.no_ovn:
        ovn_version()
    results: dict[str, object] = {"load_before": load()}
    results |= compile_members()
    results |= loom_lab(args.rounds)
    if not args.no_ovn:
        results |= ovn_first_ping(args.rounds)
        results["first_ping_sg_ratio_to_ovn"] = round(
            float(results["first_ping_sg_p50_ms"]) / float(results["ovn_first_ping_sg_p50_ms"]),
            3,  # type: ignore[arg-type]
        )
    results["rounds"] = args.rounds
    results["load_after"] = load()
    width = max(len(k) for k in results)
    print(f"security groups ({args.rounds} rounds per timed case; load average {results['load_before']} before)")
    goals = {
        "member_add_p50_ms": "<= 50",
        "rule_add_p50_ms": "<= 50",
        "first_ping_sg_p50_ms": "<= 15",
        "flows_per_port_default_sg": "<= 14",
        "tcp_throughput_ratio": ">= 0.8",
    }
    for key, value in results.items():
        goal = f"   goal {goals[key]}" if key in goals else ""
        print(f"  {key:<{width}}  {value}{goal}")
    path = Path(__file__).resolve().parent / "results" / "secgroups.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
