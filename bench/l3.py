"""L3 speed: first routed ping, floating IP reachability, SNAT failover, routed TCP, router flows per host.

Loom runs on a four-hypervisor lab (prefix "labq", management 198.18.61.0/24):
hv1 and hv2 run the VMs, hv3 (priority 20) and hv4 (10) are gateway hosts,
every agent maps "external" to br-ext on ext0, and the external network has an
upstream router and a server "on the internet" (``lab.mininet.external``).

* ``routed_first_ping``: case (b) of bench/time_to_ping.py across a router:
  a port on network red is created bound to hv1 (its flows go in before any
  VIF exists), then its VIF is attached; the clock runs from the start of the
  attach to the first echo reply from a VM on network blue (same host), the
  guest's ARP for its gateway answered by the router. 1 ms prober.
* ``fip_reachable``: a VM on hv1 has no floating IP; the server's 1 ms prober
  aims at a fresh floating IP (allocated, not associated); the clock runs
  from the association call to the prober's first reply. The upstream router
  learns the address only from what Loom does (answering its ARP, the
  gratuitous ARP on association). A new address every round.
* ``snat_failover_ms``: a VM without a floating IP pings the server every
  10 ms through SNAT; the active gateway's ovs-vswitchd is killed; the
  longest gap between answered probes. Median of 5 (each round kills the host
  active at that moment, then restarts it and lets BFD settle).
* ``routed_tcp_ratio``: iperf3 hv1 -> hv2 across the router, divided by
  iperf3 between the same hosts within one network, rounds interleaved.
* ``router_flows_per_host``: compiled, no lab: the flows one router with N
  interfaces and M ports adds to a host, as local ports, total ports and
  hosts vary.

OVN 23.03 (installed by ``bootstrap.sh --bench``) is measured in the same run
on a one-chassis lab of its own (prefix "labp", management 198.18.62.0/24; as bench/ovn_baseline.py builds it):
a logical router between two switches for the routed first ping, a
distributed gateway port on a localnet switch with the same upstream router
and server for the floating IP (``lr-nat-add dnat_and_snat`` with
``logical_port`` and ``external_mac``: distributed, on the VM's chassis; the
router's port on the external switch has ``nat-addresses=router``, as
Neutron's ML2/OVN sets it, so OVN announces NAT addresses by gratuitous ARP).
Like for like, neither side runs a firewall: OVN's switches have no ACLs, and
Loom's VM ports have port security off (no security group; the project's
default group would refuse the server's probes; bench/secgroups.py measures
what groups cost).

Prints a table, writes bench/results/l3.json.

    .venv/bin/python bench/l3.py [--rounds 20] [--no-ovn]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.first_ping import (
    claimed_netns,
    fire,
    forget_neighbor,
    ms_to_first_reply,
    prepare_vif,
    prober,
)
from bench.ovn_baseline import OvnChassis, ovn_version, quiet_ovsdbapp
from bench.stats import percentile
from lab.mininet.config import LabConfig
from lab.mininet.external import ExternalWorld
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2
from tests.lab.l3_scenario import GATEWAYS, fast_ping, wait_until
from vif import link
from vif.names import vif_device_name
from vif.plug import plug_veth, unplug

LOOM_CONFIG = LabConfig(hypervisors=4, prefix="labq", mgmt_cidr="198.18.61.0/24")
# Not bench/ovn_baseline.py's own lab ("labo"): that one may run at the same time for time_to_ping.
OVN_LAB_CONFIG = LabConfig(hypervisors=1, prefix="labp", mgmt_cidr="198.18.62.0/24", integration_bridge=False)
RESULTS = Path(__file__).resolve().parent / "results" / "l3.json"


@dataclass
class Results:
    routed: list[float] = field(default_factory=list)
    fip: list[float] = field(default_factory=list)
    failover: list[float] = field(default_factory=list)
    routed_tcp: list[float] = field(default_factory=list)
    switched_tcp: list[float] = field(default_factory=list)
    ovn_routed: list[float] = field(default_factory=list)
    ovn_fip: list[float] = field(default_factory=list)
    ovn_version: str = ""


# ---------------------------------------------------------------- Loom


def _network(loom: LoomLab, name: str, cidr: str) -> LabNetwork:
    return loom.create_network(name, cidr)


def _router(loom: LoomLab, external: LabNetwork, *nets: LabNetwork) -> resources_pb2.Router:
    r = resources_pb2.Router(name="bench")
    r.external_gateway_info.network_id = external.id
    router = loom.routers.CreateRouter(router_pb2.CreateRouterRequest(router=r), timeout=10)
    for net in nets:
        loom.routers.AddRouterInterface(
            router_pb2.RouterInterfaceRequest(router_id=router.id, subnet_id=net.subnet.id), timeout=10
        )
    return router


def _external(loom: LoomLab, world: ExternalWorld) -> LabNetwork:
    net = loom.network.CreateNetwork(
        network_pb2.CreateNetworkRequest(
            network=resources_pb2.Network(
                name="public", network_type="flat", physical_network="external", router_external=True
            )
        ),
        timeout=10,
    )
    sub = loom.network.CreateSubnet(
        network_pb2.CreateSubnetRequest(
            subnet=resources_pb2.Subnet(
                network_id=net.id,
                cidr=world.external_cidr,
                gateway_ip=world.gateway_ip,
                enable_dhcp=False,
                allocation_pools=[resources_pb2.AllocationPool(start="203.0.113.100", end="203.0.113.250")],
            )
        ),
        timeout=10,
    )
    return LabNetwork(net, sub)


def loom_routed_first_ping(loom: LoomLab, red: LabNetwork, target: Vm, rounds: int) -> list[float]:
    times = []
    hv = loom.lab.hv("hv1")
    for i in range(rounds):
        port = loom.create_port(red, "hv1", f"rp{i}", port_security=False)
        loom.wait_port_stage(port.id, "flows_installed")
        ip = port.fixed_ips[0].ip_address
        vm_ns, device = loom.config.vm_netns(f"rp{i}"), vif_device_name(port.id)
        with claimed_netns(loom.lab, vm_ns):
            loom.lab.call(hv, prepare_vif, vm_ns, device, port.mac_address, f"{ip}/24", 1450)
            link.set_default_route(red.subnet.gateway_ip, netns=vm_ns)
            forget_neighbor(target.netns, ip)
            with prober(vm_ns, target.address or "") as probe:
                t0 = time.time()
                loom.lab.call(
                    hv,
                    plug_veth,
                    port.id,
                    port.mac_address,
                    1450,
                    vm_ns,
                    ofport=int(port.binding_vif_details["ofport"]),
                    ovsdb=loom.lab.driver(hv),
                )
                fire(probe)
                times.append(ms_to_first_reply(probe, t0, f"routed rp{i}"))
            loom.lab.call(hv, lambda d=device: (link.delete_link(d), loom.lab.driver(hv).delete_port(d)))
        loom.network.DeletePort(network_pb2.DeleteRequest(id=port.id), timeout=10)
    return times


def loom_fip_reachable(loom: LoomLab, world: ExternalWorld, external: LabNetwork, vm: Vm, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        fip = loom.routers.CreateFloatingIp(
            router_pb2.CreateFloatingIpRequest(floating_ip=resources_pb2.FloatingIp(floating_network_id=external.id)),
            timeout=10,
        )
        with prober(world.server_netns, fip.floating_ip_address) as probe:
            fire(probe)
            time.sleep(0.05)  # probing, unanswered: nobody has the address yet
            t0 = time.time()
            loom.routers.AssociateFloatingIp(
                router_pb2.AssociateFloatingIpRequest(id=fip.id, port_id=vm.port_id), timeout=10
            )
            times.append(ms_to_first_reply(probe, t0, f"floating IP round {i}"))
        loom.routers.DeleteFloatingIp(network_pb2.DeleteRequest(id=fip.id), timeout=10)
        world.forget(fip.floating_ip_address)
        time.sleep(0.3)  # its flows and conntrack flush are done before the next round
    return times


def bfd_settled(loom: LoomLab, hv: str) -> bool:
    out = loom.lab.run(hv, ["ovs-appctl", "bfd/show"], check=False).stdout
    sessions = [s for s in out.split("---- ") if s.startswith("gw-")]
    return bool(sessions) and all("Forwarding: true" in s and "RX Interval: Approx 100ms" in s for s in sessions)


def loom_snat_failover(loom: LoomLab, world: ExternalWorld, router_id: str, vm: Vm, rounds: int) -> list[float]:
    gaps = []
    for i in range(rounds):
        for hv in ("hv2", "hv3", "hv4"):
            assert wait_until(lambda h=hv: bfd_settled(loom, h), 30) is not None, f"BFD on {hv} did not settle"
        time.sleep(4.0)  # the agents' start-up grace for new BFD sessions is over
        router = loom.routers.GetRouter(network_pb2.GetRequest(id=router_id), timeout=10)
        active = router.active_gateway_host
        assert active in GATEWAYS, f"round {i}: no active gateway reported ({active!r})"
        with fast_ping(vm.netns, world.server_ip) as outage:
            loom.lab.stop_vswitchd(active)
            assert wait_until(lambda: subprocess_ping(vm.netns, world.server_ip), 15) is not None
            time.sleep(1.0)
        gaps.append(outage.longest_gap_ms)
        loom.lab.start_vswitchd(active)
        loom.wait_agents(timeout=60)
    return gaps


def subprocess_ping(netns: str, ip: str) -> bool:
    from lab.mininet import probes

    return probes.ping(netns, ip, timeout=0.2)


def iperf(server: Vm, client: Vm, address: str, seconds: int = 4) -> float:
    """Gbit/s of one TCP stream from ``client`` to ``server`` (at ``address``)."""
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server.netns, "iperf3", "-s", "-1", "-B", server.address or ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        out = subprocess.run(
            ["ip", "netns", "exec", client.netns, "iperf3", "-c", address, "-t", str(seconds), "-J"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
        srv.wait(10)


def run_loom(args: argparse.Namespace, res: Results) -> None:
    loom = LoomLab(config=LOOM_CONFIG, external=True, gateways=GATEWAYS)
    loom.start()
    try:
        assert loom.external is not None
        world = loom.external
        external = _external(loom, world)
        red, blue = _network(loom, "red", "10.0.0.0/24"), _network(loom, "blue", "10.0.1.0/24")
        router = _router(loom, external, red, blue)
        target = loom.boot_vm("target", "hv1", blue, routed=True, port_security=False)
        res.routed = loom_routed_first_ping(loom, red, target, args.rounds)
        a = loom.boot_vm("a", "hv1", red, routed=True, port_security=False)
        assert wait_until(lambda: subprocess_ping(a.netns, world.server_ip), 30) is not None, "no SNAT"
        res.fip = loom_fip_reachable(loom, world, external, a, args.rounds)
        # TCP: across the router (red hv1 -> blue hv2) and within blue (hv1 -> hv2), interleaved.
        b = loom.boot_vm("b", "hv2", blue, routed=True, port_security=False)
        c = loom.boot_vm("c", "hv1", blue, routed=True, port_security=False)
        for _ in range(args.tcp_rounds):
            res.routed_tcp.append(iperf(b, a, b.address or ""))
            res.switched_tcp.append(iperf(b, c, b.address or ""))
        snat_vm = loom.boot_vm("s", "hv2", red, routed=True, port_security=False)
        assert wait_until(lambda: subprocess_ping(snat_vm.netns, world.server_ip), 30) is not None
        res.failover = loom_snat_failover(loom, world, router.id, snat_vm, args.failovers)
    finally:
        loom.stop()


# ---------------------------------------------------------------- OVN


def _nbctl(ovn: OvnChassis, *args: str) -> str:
    return ovn._run(["ovn-nbctl", f"--db={ovn.paths.nb_remote}", *args])


def run_ovn(args: argparse.Namespace, res: Results) -> None:
    with OvnChassis(OVN_LAB_CONFIG) as ovn:
        res.ovn_version = ovn.version
        world = ExternalWorld(ovn.lab).start()
        hv = ovn.hv
        ovn._run(["ovs-vsctl", f"--db=unix:{hv.ovsdb_socket}", "--may-exist", "add-br", "br-ext"])
        ovn._run(
            [
                "ovs-vsctl",
                f"--db=unix:{hv.ovsdb_socket}",
                "set",
                "bridge",
                "br-ext",
                "datapath_type=netdev",
                "--",
                "--may-exist",
                "add-port",
                "br-ext",
                "ext0",
                "--",
                "set",
                "open",
                ".",
                "external_ids:ovn-bridge-mappings=external:br-ext",
            ]
        )
        ovn.lab.call(hv, _no_offload, "ext0")
        ovn.lab.call(hv, link.set_link, "br-ext", up=True)
        # Router lr: lrp-a 10.0.0.1/24 (ls-a), lrp-b 10.0.1.1/24 (ls-b), lrp-ext 203.0.113.2/24 on ls-ext
        # (localnet "external"), a distributed gateway port on hv1; default route via the upstream router.
        for sw in ("ls-a", "ls-b", "ls-ext"):
            _nbctl(ovn, "ls-add", sw)
        _nbctl(ovn, "lr-add", "lr")
        for name, sw, mac, cidr in (
            ("lrp-a", "ls-a", "00:00:00:00:0a:01", "10.0.0.1/24"),
            ("lrp-b", "ls-b", "00:00:00:00:0b:01", "10.0.1.1/24"),
            ("lrp-ext", "ls-ext", "00:00:00:00:ee:01", "203.0.113.2/24"),
        ):
            _nbctl(ovn, "lrp-add", "lr", name, mac, cidr)
            _nbctl(ovn, "lsp-add", sw, f"rp-{name}")
            _nbctl(ovn, "lsp-set-type", f"rp-{name}", "router")
            _nbctl(ovn, "lsp-set-addresses", f"rp-{name}", "router")
            # As Neutron's ML2/OVN sets it on the external network's router port: OVN announces the router's
            # NAT addresses (its gratuitous ARPs for floating IPs come from nat-addresses=router).
            extra = ["nat-addresses=router"] if name == "lrp-ext" else []
            _nbctl(ovn, "lsp-set-options", f"rp-{name}", f"router-port={name}", *extra)
        _nbctl(ovn, "lrp-set-gateway-chassis", "lrp-ext", "hv1", "20")
        _nbctl(ovn, "lsp-add", "ls-ext", "ln-ext")
        _nbctl(ovn, "lsp-set-type", "ln-ext", "localnet")
        _nbctl(ovn, "lsp-set-addresses", "ln-ext", "unknown")
        _nbctl(ovn, "lsp-set-options", "ln-ext", "network_name=external")
        _nbctl(ovn, "lr-route-add", "lr", "0.0.0.0/0", world.gateway_ip)
        _nbctl(ovn, "lr-nat-add", "lr", "snat", "203.0.113.2", "10.0.0.0/16")
        ovn.sync()
        target = _ovn_vm(ovn, "ls-b", "target", "10.0.1.10", "00:00:00:00:0b:10", "10.0.1.1")
        res.ovn_routed = ovn_routed_first_ping(ovn, target, args.rounds)
        a = _ovn_vm(ovn, "ls-a", "a", "10.0.0.10", "00:00:00:00:0a:10", "10.0.0.1")
        assert wait_until(lambda: subprocess_ping(a.netns, world.server_ip), 30) is not None, "OVN: no SNAT"
        res.ovn_fip = ovn_fip_reachable(ovn, world, a, args.rounds)
        world.stop()


def _no_offload(ifname: str) -> None:
    from vif.offload import disable_tx_checksum

    disable_tx_checksum(ifname)


def _ovn_vm(ovn: OvnChassis, switch: str, name: str, ip: str, mac: str, gateway: str) -> Vm:
    ovn.nb.lsp_add(switch, name, addresses=[f"{mac} {ip}"], port_security=[f"{mac} {ip}"]).execute(check_error=True)
    vm = ovn.lab.add_vm("hv1", name, name, mac, mtu=1442, ip=f"{ip}/24", gateway=gateway)
    ovn.wait_up(name)
    return vm


def ovn_routed_first_ping(ovn: OvnChassis, target: Vm, rounds: int) -> list[float]:
    times = []
    driver = ovn.lab.driver("hv1")
    net = ipaddress.ip_network("10.0.0.0/24")
    for i in range(rounds):
        name, ip = f"orp{i}", str(net.network_address + 100 + i)
        mac = f"00:00:00:00:0a:{100 + i:02x}"
        ovn.nb.lsp_add("ls-a", name, addresses=[f"{mac} {ip}"], port_security=[f"{mac} {ip}"]).execute(check_error=True)
        ovn.sync()
        vm_ns, device = ovn.config.vm_netns(name), vif_device_name(name)
        try:
            with claimed_netns(ovn.lab, vm_ns):
                ovn.lab.call(ovn.hv, prepare_vif, vm_ns, device, mac, f"{ip}/24", 1442)
                link.set_default_route("10.0.0.1", netns=vm_ns)
                with prober(vm_ns, target.address or "") as probe:
                    t0 = time.time()
                    ovn.lab.call(ovn.hv, plug_veth, name, mac, 1442, vm_ns, ovsdb=driver)
                    fire(probe)
                    times.append(ms_to_first_reply(probe, t0, f"ovn routed {name}"))
        finally:
            forget_neighbor(target.netns, ip)
            ovn.lab.call(ovn.hv, unplug, name, ovsdb=driver)
            ovn.nb.lsp_del(name, "ls-a", if_exists=True).execute(check_error=True)
        ovn.sync()
    return times


def ovn_fip_reachable(ovn: OvnChassis, world: ExternalWorld, vm: Vm, rounds: int) -> list[float]:
    times = []
    for i in range(rounds):
        fip = f"203.0.113.{150 + i}"
        with prober(world.server_netns, fip) as probe:
            fire(probe)
            time.sleep(0.05)
            t0 = time.time()
            ovn.nb.lr_nat_add(
                "lr", "dnat_and_snat", fip, vm.address, logical_port=vm.port_id, external_mac="00:00:00:00:ff:01"
            ).execute(check_error=True)
            times.append(ms_to_first_reply(probe, t0, f"ovn floating IP {fip}"))
        _nbctl(ovn, "lr-nat-del", "lr", "dnat_and_snat", fip)
        ovn.sync()
        world.forget(fip)
        time.sleep(0.3)
    return times


# ---------------------------------------------------------------- router flows per host (compiled)


def router_flows_per_host() -> dict[str, object]:
    """Flows one router adds to a host, by what varies: local ports, ports on its networks, hosts."""
    from controller.compiler.host import compile_host
    from dataplane.contract.cookie import CookieKind, split_cookie
    from tests.unit.compiler_world import World

    router_kinds = {CookieKind.ROUTER, CookieKind.NEIGHBOR, CookieKind.ROUTER_GATEWAY}

    def measure(interfaces: int, ports: int, hosts: int, local: int) -> tuple[int, int]:
        w = World()
        for h in range(hosts):
            w.host(f"h{h}", f"198.51.100.{h + 1}", physnets=("external",), gateway=10 if h == hosts - 1 else 0)
        ext = w.external("ext")
        router = w.router("r", gateway=ext, external_ip="203.0.113.2")
        nets = []
        for n in range(interfaces):
            net = w.network(f"n{n}", vni=100 + n, cidr=f"10.{n}.0.0/16")
            w.interface(router, net)
            nets.append(net)
        others = [f"h{h}" for h in range(1, hosts - 1)] or ["h0"]
        for p in range(ports):
            host = "h0" if p < local else others[p % len(others)]
            net = nets[p % interfaces]
            w.port(
                f"p{p}",
                net,
                host,
                f"fa:16:3e:{p >> 16 & 255:02x}:{p >> 8 & 255:02x}:{p & 255:02x}",
                str(ipaddress.ip_network(f"10.{p % interfaces}.0.0/16").network_address + 10 + p),
            )
        flows = compile_host(w.topo, "h0").flows()
        count = sum(1 for f in flows if split_cookie(f.cookie)[0] in router_kinds)
        # Controller memory: distinct flow objects for the router's groups across all hosts.
        # Every host's flows stay referenced while counting, so no id() is reused by a freed object.
        every = [f for h in w.topo.agents for f in compile_host(w.topo, h).flows()]
        distinct = {id(f) for f in every if split_cookie(f.cookie)[0] in router_kinds}
        return count, len(distinct)

    rows = []
    for interfaces, ports, hosts, local in (
        (2, 100, 10, 1),
        (2, 100, 10, 10),
        (2, 100, 10, 50),
        (2, 100, 40, 10),
        (2, 400, 10, 10),
        (8, 400, 10, 10),
    ):
        per_host, distinct = measure(interfaces, ports, hosts, local)
        rows.append(
            {
                "interfaces": interfaces,
                "ports": ports,
                "hosts": hosts,
                "local_ports": local,
                "router_flows_on_host": per_host,
                "distinct_flow_objects_all_hosts": distinct,
            }
        )
    return {"rows": rows}


# ---------------------------------------------------------------- main


def _p(values: list[float], q: float | None) -> float:
    return round(statistics.median(values) if q is None else percentile(values, q), 2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20, help="rounds of first ping and floating IP, each side")
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--tcp-rounds", type=int, default=5)
    parser.add_argument("--no-ovn", action="store_true")
    args = parser.parse_args()
    if not args.no_ovn:
        ovn_version()
    res = Results()
    flows = router_flows_per_host()
    run_loom(args, res)
    print(
        f"Loom: routed first ping p50 {_p(res.routed, None)} ms, floating IP reachable p50 {_p(res.fip, None)} ms,"
        f" SNAT failover {[round(g) for g in res.failover]} ms, TCP {res.routed_tcp} / {res.switched_tcp} Gbit/s",
        flush=True,
    )
    if not args.no_ovn:
        with quiet_ovsdbapp():
            run_ovn(args, res)
    out: dict[str, object] = {
        "routed_first_ping_p50_ms": _p(res.routed, None),
        "routed_first_ping_p99_ms": _p(res.routed, 0.99),
        "fip_reachable_p50_ms": _p(res.fip, None),
        "fip_reachable_p99_ms": _p(res.fip, 0.99),
        "snat_failover_ms": round(statistics.median(res.failover), 1),
        "snat_failover_rounds_ms": [round(g, 1) for g in res.failover],
        "routed_tcp_gbps": round(statistics.median(res.routed_tcp), 3),
        "switched_tcp_gbps": round(statistics.median(res.switched_tcp), 3),
        "routed_tcp_ratio": round(statistics.median(res.routed_tcp) / statistics.median(res.switched_tcp), 3),
        "router_flows_per_host": flows,
        "rounds": args.rounds,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if res.ovn_routed:
        out |= {
            "ovn_version": res.ovn_version,
            "ovn_routed_first_ping_p50_ms": _p(res.ovn_routed, None),
            "ovn_routed_first_ping_p99_ms": _p(res.ovn_routed, 0.99),
            "ovn_fip_reachable_p50_ms": _p(res.ovn_fip, None),
            "ovn_fip_reachable_p99_ms": _p(res.ovn_fip, 0.99),
            "routed_first_ping_ratio_to_ovn": round(
                statistics.median(res.routed) / statistics.median(res.ovn_routed), 3
            ),
            "fip_reachable_ratio_to_ovn": round(statistics.median(res.fip) / statistics.median(res.ovn_fip), 3),
        }
    print("L3 (Loom" + (f", then OVN {res.ovn_version}" if res.ovn_routed else "") + ", this run)")
    print(f"  {'metric':<36} {'Loom p50':>9} {'Loom p99':>9} {'OVN p50':>9} {'OVN p99':>9}")
    for label, loom_v, ovn_v in (
        ("routed first ping (ms)", res.routed, res.ovn_routed),
        ("floating IP reachable (ms)", res.fip, res.ovn_fip),
    ):
        cells = [_p(loom_v, None), _p(loom_v, 0.99)] + ([_p(ovn_v, None), _p(ovn_v, 0.99)] if ovn_v else ["-", "-"])
        print(f"  {label:<36} " + " ".join(f"{c!s:>9}" for c in cells))
    rounds = out["snat_failover_rounds_ms"]
    print(f"  SNAT failover (ms, median of {len(res.failover)}): {out['snat_failover_ms']}  {rounds}")
    tcp = f"{out['routed_tcp_gbps']} / {out['switched_tcp_gbps']} Gbit/s = {out['routed_tcp_ratio']}"
    print(f"  routed / switched TCP: {tcp}")
    print("  router flows on one host (interfaces, ports, hosts, local ports -> flows; distinct objects, all hosts):")
    for row in flows["rows"]:  # type: ignore[index]
        print(
            f"    {row['interfaces']:>2} {row['ports']:>4} {row['hosts']:>3} {row['local_ports']:>3} -> "
            f"{row['router_flows_on_host']:>5}; {row['distinct_flow_objects_all_hosts']}"
        )
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
