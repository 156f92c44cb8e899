"""`python -m lab.mininet demo`: Loom on three emulated hypervisors, end to end.

Two tenant networks share one CIDR; one VM on the second network even has the
same MAC and IP as a VM on the first. Every VM gets its address from its own
hypervisor's dnsmasq (a real udhcpc), reads its instance id from
169.254.169.254, and then every VM probes every other by ping and by TCP. A
cell counts as reached only if the *intended* VM answered: its own ICMP
counters moved, or the TCP bytes arrived intact at a server running in its
namespace. The demo exits non-zero if any cell differs from "reachable exactly
within a network".

Then L3: a router joins red to a third network (green) and has its gateway on
the lab's external network, where an upstream router leads to a server "on
the internet". A red VM and a green VM talk across the router (TTL 63), the
red VM gets a floating IP the internet server reaches it by, and the green VM,
without one, goes out through SNAT on the active gateway host (the server sees
the router's external IP).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.mininet import guest, probes
from lab.mininet.config import DEFAULT_MGMT_CIDR, LabConfig
from lab.mininet.external import ExternalWorld
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2


@dataclass
class DemoVm:
    vm: Vm
    network: LabNetwork
    instance: resources_pb2.Instance
    ip: str = ""


def ping_reaches(src: DemoVm, dst: DemoVm) -> bool:
    """src's ping to dst's IP got an answer, and it was dst that answered.

    Twins share an IP across networks, so "a reply came" is not enough: dst's
    own ICMP counters must have moved. Run one ping at a time for that to hold.
    """
    before = guest.icmp_counters(dst.vm.netns)["OutEchoReps"]
    answered = probes.ping(src.vm.netns, dst.ip, count=1, timeout=0.5)
    after = guest.icmp_counters(dst.vm.netns)["OutEchoReps"]
    return answered and after > before


def tcp_reaches(src: DemoVm, dst: DemoVm, port: int) -> bool:
    """Bytes sent from src to dst's IP all arrived at a server in dst's namespace.

    Each destination gets its own TCP port, so a probe that lands on dst's twin
    can never be mistaken for one that reached dst, even when run in parallel.
    """
    return probes.tcp_transfer(dst.vm.netns, src.vm.netns, dst.ip, nbytes=200_000, port=port, timeout=1.5)


def boot(loom: LoomLab, name: str, host: str, net: LabNetwork, workdir: Path, **port: str) -> DemoVm:
    instance = loom.create_instance(name, hostname=name, user_data=f"#!/bin/sh\necho hello from {name}\n".encode())
    vm = loom.boot_vm(name, host, net, dhcp=True, instance=instance, **port)
    lease, seconds = guest.udhcpc(
        vm.netns, "eth0", workdir / name, "-O", "staticroutes", "-O", "mtu", apply=True, tries=3
    )
    if lease is None:
        raise RuntimeError(f"{name}: no DHCP lease")
    print(
        f"  {name:<6} on {host}: {net.name:<5} mac {vm.mac}  DHCP {lease['ip']}/{lease['mask']} "
        f"mtu {lease.get('mtu', '?')} in {seconds * 1000:.0f} ms",
        flush=True,
    )
    return DemoVm(vm, net, instance, lease["ip"])


def run_demo(hypervisors: int = 3, prefix: str = "lab", mgmt_cidr: str = DEFAULT_MGMT_CIDR) -> int:
    t0 = time.monotonic()
    # The last hypervisor is a gateway host (and the one before it a backup, when there is one).
    names = [f"hv{i}" for i in range(1, hypervisors + 1)]
    gateways = {names[-1]: 20, **({names[-2]: 10} if hypervisors > 2 else {})}
    with (
        LoomLab(
            config=LabConfig(hypervisors=hypervisors, prefix=prefix, mgmt_cidr=mgmt_cidr),
            external=True,
            gateways=gateways,
        ) as loom,
        tempfile.TemporaryDirectory(prefix="loom-demo-") as tmp,
    ):
        workdir = Path(tmp)
        print(f"Loom lab: {hypervisors} hypervisors up in {time.monotonic() - t0:.1f} s", flush=True)
        red = loom.create_network("red", "10.0.0.0/24")
        blue = loom.create_network("blue", "10.0.0.0/24")
        print(
            f"networks red (VNI {red.network.segmentation_id}) and blue (VNI {blue.network.segmentation_id}), "
            "both 10.0.0.0/24",
            flush=True,
        )
        hosts = [hv.name for hv in loom.hypervisors]
        vms = [boot(loom, f"red{i + 1}", hosts[i % len(hosts)], red, workdir) for i in range(3)]
        vms.append(boot(loom, "blue1", hosts[0], blue, workdir))
        twin = vms[1]
        # blue2 is red2's twin: same MAC, same IP, on the other network and another hypervisor.
        vms.append(
            boot(
                loom,
                "blue2",
                hosts[2 % len(hosts)],
                blue,
                workdir,
                mac=loom.get_port(twin.vm.port_id).mac_address,
                ip=twin.ip,
            )
        )

        print("\nmetadata (curl http://169.254.169.254/latest/meta-data/instance-id from each VM):", flush=True)
        failures = 0
        for v in vms:
            status, body = guest.http_get(v.vm.netns, "http://169.254.169.254/latest/meta-data/instance-id")
            ok = status == 200 and body.decode() == v.instance.id
            failures += not ok
            print(f"  {v.vm.name:<6} -> {status} {body.decode()[:36]:<36} {'ok' if ok else 'WRONG'}", flush=True)

        print("\nconnectivity (P: ping answered by that VM, T: TCP bytes arrived at that VM, .: not reached)")
        pairs = [(s, d) for s in vms for d in vms if s is not d]
        pinged = {(s.vm.name, d.vm.name): ping_reaches(s, d) for s, d in pairs}
        tcp: dict[tuple[str, str], bool] = {}

        def tcp_to(index: int) -> None:
            dst = vms[index]
            for src in vms:
                if src is not dst:
                    tcp[(src.vm.name, dst.vm.name)] = tcp_reaches(src, dst, 5201 + index)

        with ThreadPoolExecutor(len(vms)) as pool:
            list(pool.map(tcp_to, range(len(vms))))
        results = {pair: (pinged[pair], tcp[pair]) for pair in pinged}
        names = [v.vm.name for v in vms]
        print("  from \\ to " + "".join(f"{n:>8}" for n in names))
        wrong_cells = 0
        for src in vms:
            row = []
            for dst in vms:
                if src is dst:
                    row.append(f"{'-':>8}")
                    continue
                p, t = results[(src.vm.name, dst.vm.name)]
                want = src.network.id == dst.network.id
                cell = ("P" if p else ".") + ("T" if t else ".")
                wrong = (p, t) != (want, want)
                wrong_cells += wrong
                row.append(f"{cell + ('!' if wrong else ''):>8}")
            print(f"  {src.vm.name:<10}" + "".join(row), flush=True)
        failures += wrong_cells
        print(
            f"\n{len(pairs) - wrong_cells}/{len(pairs)} cells as expected (reachable exactly within a network)",
            flush=True,
        )
        failures += l3_section(loom, red, vms[0], workdir)
        print(f"\n{time.monotonic() - t0:.1f} s in all", flush=True)
    if failures:
        print(f"DEMO FAILED: {failures} wrong result(s)")
        return 1
    print("demo passed")
    return 0


def _check(what: str, ok: bool) -> int:
    print(f"  {what:<72} {'ok' if ok else 'WRONG'}", flush=True)
    return 0 if ok else 1


def _server_sees(world: ExternalWorld, client: Vm, port: int = 7001) -> str:
    """The source address the internet server sees a TCP connection from ``client`` come from."""
    script = (
        "import socket\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('{world.server_ip}', {port})); s.listen(1); print('ready', flush=True)\n"
        "s.settimeout(10); c, peer = s.accept(); print(peer[0], flush=True)\n"
    )
    server = subprocess.Popen(
        ["ip", "netns", "exec", world.server_netns, sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()
        connect = f"import socket; socket.create_connection(('{world.server_ip}', {port}), timeout=5).close()"
        subprocess.run(["ip", "netns", "exec", client.netns, sys.executable, "-c", connect], timeout=20, check=False)
        return server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait(5)


def _until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def l3_section(loom: LoomLab, red: LabNetwork, red_vm: DemoVm, workdir: Path) -> int:
    """A router, a floating IP reachable from the internet, SNAT out; returns the number of failures."""
    world = loom.external
    assert world is not None
    api = loom.routers
    public = loom.network.CreateNetwork(
        network_pb2.CreateNetworkRequest(
            network=resources_pb2.Network(
                name="public", network_type="flat", physical_network="external", router_external=True
            )
        ),
        timeout=10,
    )
    loom.network.CreateSubnet(
        network_pb2.CreateSubnetRequest(
            subnet=resources_pb2.Subnet(
                network_id=public.id,
                cidr=world.external_cidr,
                gateway_ip=world.gateway_ip,
                enable_dhcp=False,
                allocation_pools=[resources_pb2.AllocationPool(start="203.0.113.100", end="203.0.113.200")],
            )
        ),
        timeout=10,
    )
    green = loom.create_network("green", "10.1.0.0/24")
    spec = resources_pb2.Router(name="demo-router")
    spec.external_gateway_info.network_id = public.id
    router = api.CreateRouter(router_pb2.CreateRouterRequest(router=spec), timeout=10)
    for net in (red, green):
        api.AddRouterInterface(
            router_pb2.RouterInterfaceRequest(router_id=router.id, subnet_id=net.subnet.id), timeout=10
        )
    router = api.GetRouter(network_pb2.GetRequest(id=router.id), timeout=10)
    external_ip = router.external_gateway_info.external_fixed_ips[0].ip_address
    print(
        f"\nL3: router demo-router joins red 10.0.0.0/24 and green 10.1.0.0/24, gateway {external_ip} on public "
        f"{world.external_cidr} (upstream router {world.gateway_ip}, internet server {world.server_ip})",
        flush=True,
    )
    hosts = [hv.name for hv in loom.hypervisors]
    green_vm = boot(loom, "green1", hosts[1 % len(hosts)], green, workdir)
    red_ip = red_vm.ip
    # red1 took its lease before the router existed: tell it about its gateway, as its next renewal would.
    subprocess.run(
        ["ip", "netns", "exec", red_vm.vm.netns, "ip", "route", "replace", "default", "via", "10.0.0.1"], check=False
    )
    failures = 0
    ttl = subprocess.run(
        ["ip", "netns", "exec", red_vm.vm.netns, "ping", "-n", "-c", "1", "-W", "2", green_vm.ip],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    failures += _check(f"red1 {red_ip} -> green1 {green_vm.ip} routed, TTL 63 in the guest", "ttl=63" in ttl)
    failures += _check(
        "green1 -> red1 TCP across the router", probes.tcp_transfer(red_vm.vm.netns, green_vm.vm.netns, red_ip)
    )
    fip = api.CreateFloatingIp(
        router_pb2.CreateFloatingIpRequest(
            floating_ip=resources_pb2.FloatingIp(floating_network_id=public.id, port_id=red_vm.vm.port_id)
        ),
        timeout=10,
    )
    address = fip.floating_ip_address
    reached = _until(lambda: probes.ping(world.server_netns, address, timeout=0.5), 15)
    failures += _check(f"internet server -> floating IP {address} (red1 on {fip.host}): ping", reached)
    failures += _check(
        f"internet server -> {address}: TCP into red1",
        probes.tcp_transfer(red_vm.vm.netns, world.server_netns, address, bind_ip="0.0.0.0"),
    )
    failures += _check(f"red1 -> internet leaves as {address}", _server_sees(world, red_vm.vm) == address)
    out = _until(lambda: probes.ping(green_vm.vm.netns, world.server_ip, timeout=0.5), 20)
    seen = _server_sees(world, green_vm.vm) if out else ""
    router = api.GetRouter(network_pb2.GetRequest(id=router.id), timeout=10)
    failures += _check(
        f"green1 (no floating IP) -> internet SNATed to {external_ip} on {router.active_gateway_host or '?'}",
        out and seen == external_ip,
    )
    gateways = ", ".join(
        f"{g.host} (priority {g.priority}{', ACTIVE' if g.active else ''})" for g in router.gateway_hosts
    )
    print(f"  gateway hosts: {gateways}", flush=True)
    return failures
