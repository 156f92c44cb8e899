"""`python -m lab.mininet demo`: Loom on three emulated hypervisors, end to end.

Two tenant networks share one CIDR; one VM on the second network even has the
same MAC and IP as a VM on the first. Five "VMs" are namespaces; two more are
real qemu guests booted through the compute API (libvirt on their
hypervisors, the tiny guest image uploaded to the ImageService), one on each
network. Every VM gets its address from its own hypervisor's dnsmasq (a real
udhcpc), reads its instance id from 169.254.169.254, and then every VM
probes every other by ping and by TCP. A cell counts as reached only if the
*intended* VM answered: its own ICMP counters moved, or the TCP bytes arrived
intact at a server running in it. The demo exits non-zero if any cell differs
from "reachable exactly within a network".

Then L3: a router joins red to a third network (green) and has its gateway on
the lab's external network, where an upstream router leads to a server "on
the internet". A red VM and a green VM talk across the router (TTL 63), the
red VM gets a floating IP the internet server reaches it by (once a security
group lets the internet in), and the green VM, without one, goes out through
SNAT on the active gateway host (the server sees the router's external IP).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from google.protobuf.field_mask_pb2 import FieldMask

from lab.mininet import compute, guest, probes
from lab.mininet.config import DEFAULT_MGMT_CIDR, LabConfig
from lab.mininet.external import ExternalWorld
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from lab.mininet.qemu_guest import SerialConsole
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2, security_pb2

TCP_BYTES = 200_000
# Seconds a TCP probe waits (for the connection, then for data). Starting a probe's Python in a namespace
# takes a second or more while qemu guests boot under TCG on two cores: less would count slow as unreachable.
TCP_TIMEOUT = 3.0


class Endpoint(Protocol):
    """A VM of the matrix: a namespace or a real guest."""

    name: str
    kind: str
    network: LabNetwork
    instance: resources_pb2.Instance
    ip: str

    def ping(self, ip: str) -> bool: ...

    def echo_replies(self) -> int: ...

    def listen(self, port: int) -> TcpSink: ...

    def send(self, ip: str, port: int, nbytes: int) -> str: ...

    def metadata(self, path: str) -> tuple[int, str]: ...


class TcpSink(Protocol):
    def digest(self) -> str:
        """The SHA-256 of what one connection delivered ('' if none came)."""
        ...


@dataclass
class DemoVm:
    """A namespace VM plugged by the lab, with the port and instance the demo made for it."""

    vm: Vm
    network: LabNetwork
    instance: resources_pb2.Instance
    ip: str = ""
    kind: str = "netns"

    @property
    def name(self) -> str:
        return self.vm.name

    def ping(self, ip: str) -> bool:
        return probes.ping(self.vm.netns, ip, count=1, timeout=0.5)

    def echo_replies(self) -> int:
        return guest.icmp_counters(self.vm.netns)["OutEchoReps"]

    def listen(self, port: int) -> TcpSink:
        return _NetnsSink(self.vm.netns, self.ip, port)

    def send(self, ip: str, port: int, nbytes: int) -> str:
        return _netns_send(self.vm.netns, ip, port, nbytes)

    def metadata(self, path: str) -> tuple[int, str]:
        status, body = guest.http_get(self.vm.netns, f"http://169.254.169.254{path}")
        return status, body.decode(errors="replace")


class _NetnsSink:
    def __init__(self, netns: str, ip: str, port: int, timeout: float = TCP_TIMEOUT) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-c", probes._TCP_SINK, ip, str(port), str(timeout)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline().strip() == "ready"

    def digest(self) -> str:
        try:
            assert self.proc.stdout is not None
            return self.proc.stdout.readline().strip() if self.ready else ""
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)


def _netns_send(netns: str, ip: str, port: int, nbytes: int, timeout: float = TCP_TIMEOUT) -> str:
    import subprocess
    import sys

    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-c",
            probes._TCP_SOURCE,
            ip,
            str(port),
            str(nbytes),
            str(timeout),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout * 4 + 10,
    )
    return proc.stdout.strip() if proc.returncode == 0 else ""


@dataclass
class GuestVm:
    """A real qemu guest (the tiny guest image) booted through the compute API; driven over its serial port."""

    name: str
    network: LabNetwork
    instance: resources_pb2.Instance
    console: SerialConsole
    ip: str = ""
    kind: str = "qemu"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, command: str, timeout: float = 30.0) -> tuple[int, str]:
        with self.lock:  # one serial port: one command at a time
            return self.console.run(command, timeout)

    def ping(self, ip: str) -> bool:
        return self.run(f"ping -c 1 -W 1 {ip} >/dev/null 2>&1")[0] == 0

    def echo_replies(self) -> int:
        out = self.run("cat /proc/net/snmp")[1]
        rows = [line.split() for line in out.splitlines() if line.startswith("Icmp:")]
        return int(dict(zip(rows[0][1:], rows[1][1:], strict=False))["OutEchoReps"])

    def listen(self, port: int) -> TcpSink:
        rx = f"/tmp/rx.{port}"
        # busybox nc serves one connection; timeout bounds the wait when none comes.
        self.run(f"rm -f {rx} {rx}.done; (timeout 6 nc -l -p {port} > {rx}; touch {rx}.done) >/dev/null 2>&1 &")
        return _GuestSink(self, rx)

    def send(self, ip: str, port: int, nbytes: int) -> str:
        tx = f"/tmp/tx.{port}"
        status, out = self.run(
            f"head -c {nbytes} /dev/urandom > {tx} && nc -w 2 {ip} {port} < {tx} && sha256sum {tx}", timeout=20
        )
        m = re.search(r"\b([0-9a-f]{64})\b", out)
        return m.group(1) if status == 0 and m else ""

    def metadata(self, path: str) -> tuple[int, str]:
        with self.lock:
            reply = self.console.http_get(path, connect_timeout=3)
        return reply.status, reply.body


@dataclass
class _GuestSink:
    vm: GuestVm
    path: str

    def digest(self) -> str:
        deadline = time.monotonic() + 8
        while self.vm.run(f"test -e {self.path}.done")[0] != 0:
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.2)
        m = re.search(r"\b([0-9a-f]{64})\b", self.vm.run(f"sha256sum {self.path}")[1])
        empty = hashlib.sha256(b"").hexdigest()
        return m.group(1) if m and m.group(1) != empty else ""


def ping_reaches(src: Endpoint, dst: Endpoint) -> bool:
    """src's ping to dst's IP got an answer, and it was dst that answered.

    Twins share an IP across networks, so "a reply came" is not enough: dst's
    own ICMP counters must have moved. Run one ping at a time for that to hold.
    """
    before = dst.echo_replies()
    answered = src.ping(dst.ip)
    return answered and dst.echo_replies() > before


def tcp_reaches(src: Endpoint, dst: Endpoint, port: int) -> bool:
    """Bytes sent from src to dst's IP all arrived at a server in dst.

    Each destination gets its own TCP port, so a probe that lands on dst's twin
    can never be mistaken for one that reached dst, even when run in parallel.
    """
    sink = dst.listen(port)
    sent = src.send(dst.ip, port, TCP_BYTES)
    got = sink.digest()
    return bool(sent) and sent == got


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


def boot_guests(loom: LoomLab, image: resources_pb2.Image, wanted: list[tuple[str, str, LabNetwork]]) -> list[GuestVm]:
    """Real guests through the compute API, created side by side; returns once each has its lease."""
    t0 = time.monotonic()
    created = [(compute.create_instance(loom, name, image.id, [net.id], host=host), net) for name, host, net in wanted]
    running = {}
    for inst, _ in created:
        compute.wait_instance(loom, inst.id, "ACTIVE", timeout=60)
        running[inst.id] = time.monotonic() - t0
    out = []
    for inst, net in created:
        active = compute.get_instance(loom, inst.id)
        console = compute.console(loom, active)
        lease = console.wait_lease(180)
        port = loom.get_port(active.ports[0])
        print(
            f"  {inst.name:<6} on {active.host}: {net.name:<5} mac {port.mac_address}  DHCP {lease.ip}/{lease.mask} "
            f"mtu {lease.mtu}  (qemu guest: running {running[inst.id]:.1f} s after create, lease at "
            f"{time.monotonic() - t0:.1f} s)",
            flush=True,
        )
        out.append(GuestVm(inst.name, net, active, console, lease.ip))
    return out


def run_demo(hypervisors: int = 3, prefix: str = "lab", mgmt_cidr: str = DEFAULT_MGMT_CIDR, guests: bool = True) -> int:
    t0 = time.monotonic()
    config = LabConfig(hypervisors=hypervisors, prefix=prefix, mgmt_cidr=mgmt_cidr)
    # The last hypervisor is a gateway host (and the one before it a backup, when there is one).
    names = [f"hv{i}" for i in range(1, hypervisors + 1)]
    gateways = {names[-1]: 20, **({names[-2]: 10} if hypervisors > 2 else {})}
    with (
        LoomLab(config=config, external=True, gateways=gateways, compute=guests) as loom,
        tempfile.TemporaryDirectory(prefix="loom-demo-") as tmp,
    ):
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        what = "hypervisors (each with its own OVS and libvirtd)" if guests else "hypervisors"
        print(f"Loom lab: {hypervisors} {what} up in {time.monotonic() - t0:.1f} s", flush=True)
        red = loom.create_network("red", "10.0.0.0/24")
        blue = loom.create_network("blue", "10.0.0.0/24")
        print(
            f"networks red (VNI {red.network.segmentation_id}) and blue (VNI {blue.network.segmentation_id}), "
            "both 10.0.0.0/24",
            flush=True,
        )
        hosts = [hv.name for hv in loom.hypervisors]
        vms: list[Endpoint] = []
        pending: ThreadPoolExecutor | None = None
        future = None
        if guests:
            image = compute.tiny_image(loom)
            print(f"image {image.name} uploaded (kernel + initramfs + qcow2 root disk, AMI-style)", flush=True)
            # The guests boot (TCG: seconds) while the namespace VMs are made.
            pending = ThreadPoolExecutor(1)
            wanted = [("redq", hosts[1 % len(hosts)], red), ("blueq", hosts[2 % len(hosts)], blue)]
            future = pending.submit(boot_guests, loom, image, wanted)
        demo_vms = [boot(loom, f"red{i + 1}", hosts[i % len(hosts)], red, workdir) for i in range(3)]
        demo_vms.append(boot(loom, "blue1", hosts[0], blue, workdir))
        twin = demo_vms[1]
        # blue2 is red2's twin: same MAC, same IP, on the other network and another hypervisor.
        demo_vms.append(
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
        vms.extend(demo_vms)
        if future is not None and pending is not None:
            vms.extend(future.result())
            pending.shutdown()

        print("\nmetadata (http://169.254.169.254/latest/meta-data/instance-id from each VM):", flush=True)
        failures = 0
        for v in vms:
            status, body = v.metadata("/latest/meta-data/instance-id")
            ok = status == 200 and body == v.instance.id
            failures += not ok
            print(f"  {v.name:<6} -> {status} {body[:36]:<36} {'ok' if ok else 'WRONG'}", flush=True)

        print("\nconnectivity (P: ping answered by that VM, T: TCP bytes arrived at that VM, .: not reached)")
        pairs = [(s, d) for s in vms for d in vms if s is not d]
        pinged = {(s.name, d.name): ping_reaches(s, d) for s, d in pairs}
        tcp: dict[tuple[str, str], bool] = {}

        def tcp_to(index: int) -> None:
            dst = vms[index]
            for src in vms:
                if src is not dst:
                    tcp[(src.name, dst.name)] = tcp_reaches(src, dst, 5201 + index)

        with ThreadPoolExecutor(len(vms)) as pool:
            list(pool.map(tcp_to, range(len(vms))))
        results = {pair: (pinged[pair], tcp[pair]) for pair in pinged}
        names = [v.name for v in vms]
        print("  from \\ to " + "".join(f"{n:>8}" for n in names))
        wrong_cells = 0
        for src in vms:
            row = []
            for dst in vms:
                if src is dst:
                    row.append(f"{'-':>8}")
                    continue
                p, t = results[(src.name, dst.name)]
                want = src.network.id == dst.network.id
                cell = ("P" if p else ".") + ("T" if t else ".")
                wrong = (p, t) != (want, want)
                wrong_cells += wrong
                row.append(f"{cell + ('!' if wrong else ''):>8}")
            label = f"{src.name}{'*' if src.kind == 'qemu' else ''}"
            print(f"  {label:<10}" + "".join(row), flush=True)
        failures += wrong_cells
        if guests:
            print("  (* a real qemu guest booted through the compute API; the others are namespaces)")
        print(
            f"\n{len(pairs) - wrong_cells}/{len(pairs)} cells as expected (reachable exactly within a network)",
            flush=True,
        )
        failures += l3_section(loom, red, demo_vms[0], workdir)
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
    # The default group lets in only its own members: open red1 to the internet, as its user would.
    sec = loom.security
    web = sec.CreateSecurityGroup(
        security_pb2.CreateSecurityGroupRequest(security_group=resources_pb2.SecurityGroup(name="internet-in")),
        timeout=10,
    )
    for proto in ("icmp", "tcp"):
        rule = resources_pb2.SecurityGroupRule(
            security_group_id=web.id, direction="ingress", protocol=proto, remote_ip_prefix="0.0.0.0/0"
        )
        sec.CreateSecurityGroupRule(security_pb2.CreateSecurityGroupRuleRequest(security_group_rule=rule), timeout=10)
    port = loom.get_port(red_vm.vm.port_id)
    loom.network.UpdatePort(
        network_pb2.UpdatePortRequest(
            port=resources_pb2.Port(id=port.id, security_groups=[*port.security_groups, web.id]),
            update_mask=FieldMask(paths=["security_groups"]),
        ),
        timeout=10,
    )
    print("  red1 joins security group internet-in (ingress ICMP and TCP from anywhere)", flush=True)
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
