"""`python -m lab.mininet demo`: Loom on three emulated hypervisors, end to end.

Two tenant networks share one CIDR; one VM on the second network even has the
same MAC and IP as a VM on the first. Every VM gets its address from its own
hypervisor's dnsmasq (a real udhcpc), reads its instance id from
169.254.169.254, and then every VM probes every other by ping and by TCP. A
cell counts as reached only if the *intended* VM answered: its own ICMP
counters moved, or the TCP bytes arrived intact at a server running in its
namespace. The demo exits non-zero if any cell differs from "reachable exactly
within a network".
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lab.mininet import guest, probes
from lab.mininet.config import DEFAULT_MGMT_CIDR, LabConfig
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import resources_pb2


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
    with (
        LoomLab(config=LabConfig(hypervisors=hypervisors, prefix=prefix, mgmt_cidr=mgmt_cidr)) as loom,
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
            f"\n{len(pairs) - wrong_cells}/{len(pairs)} cells as expected (reachable exactly within a network); "
            f"{time.monotonic() - t0:.1f} s in all",
            flush=True,
        )
    if failures:
        print(f"DEMO FAILED: {failures} wrong result(s)")
        return 1
    print("demo passed")
    return 0
