"""Time to first packet on the lab: how soon a new port answers pings.

(a) bind: the VIF is plugged first (its port exists but is not bound to any
    host), then the port is bound to the VIF's host (UpdatePort
    binding_host_id); the clock runs from that call to the first echo reply.
    Static ARP entries on both sides, so only the control path is timed:
    API -> store -> distributor -> agent -> one OpenFlow bundle.
(b) plug: the port is created bound to its host first (its flows are installed
    before any VIF exists, on the OpenFlow port number the controller
    allocated); then the VIF is attached to br-int; the clock runs from the
    start of that attach to the first echo reply, with the guest's normal
    dynamic ARP (the guest starts sending as soon as its NIC is attached).

A prober in the VM namespace sends an echo every 1 ms. The target is an ACTIVE
VM on the same hypervisor, in a one-hypervisor lab (as OVN's one chassis); (a)
is also measured towards a VM on another hypervisor, in a two-hypervisor lab.

Then, in the same run with the same number of ports per case, the same prober
and the same VIF plugging code, OVN 23.03 is measured on a one-chassis lab of
its own (bench/ovn_baseline.py says exactly what is timed there): (a) VIF
first, then one NB transaction creating the port; (b) port first, then the
attach, with dynamic ARP (and how often the guest's first ARP is lost) and with
static ARP. The two labs never run at the same time. ``ratio_p50`` and
``ratio_plug_p50`` are Loom's p50 over OVN's ((b): dynamic ARP). ``--no-ovn``
skips the baseline (the JSON then has Loom's keys only).

Prints a table, writes bench/results/time_to_ping.json.

    .venv/bin/python bench/time_to_ping.py --ports 40 [--no-ovn]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.first_ping import (
    ARP_LOST_MS,
    arp_lost,
    claimed_netns,
    fire,
    forget_neighbor,
    ms_to_first_reply,
    prepare_vif,
    prober,
    static_arp,
)
from bench.ovn_baseline import OvnResults, ovn_version, quiet_ovsdbapp, run_baseline
from bench.stats import percentile
from lab.mininet.config import LabConfig
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2
from vif import link
from vif.names import vif_device_name
from vif.plug import plug_veth


def new_port(
    loom: LoomLab, net: LabNetwork, name: str, host: str = "", port_security: bool = True
) -> resources_pb2.Port:
    """A port of the project's default security group (every port gets it), or one without port security."""
    port = resources_pb2.Port(
        network_id=net.id,
        name=name,
        binding_host_id=host,
        device_owner="compute:bench",
        port_security_enabled=port_security,
    )
    return loom.network.CreatePort(network_pb2.CreatePortRequest(port=port), timeout=10)


def drop(loom: LoomLab, vm: Vm | None, port_id: str) -> None:
    if vm is not None:
        loom.lab.remove_vm(vm.name)
    loom.network.DeletePort(network_pb2.DeleteRequest(id=port_id), timeout=10)


def bind_case(loom: LoomLab, net: LabNetwork, target: Vm, n: int, tag: str) -> list[float]:
    """(a): VIF first, then bind the port to its host."""
    times = []
    for i in range(n):
        port = new_port(loom, net, f"{tag}{i}")
        ip = port.fixed_ips[0].ip_address
        vm = loom.lab.add_vm("hv1", f"{tag}{i}", port.id, port.mac_address, mtu=1450, ip=f"{ip}/24")
        static_arp(vm.netns, target.address or "", target.mac)
        static_arp(target.netns, ip, port.mac_address)
        update = resources_pb2.Port(id=port.id, binding_host_id="hv1")
        mask = network_pb2.UpdatePortRequest(port=update)
        mask.update_mask.paths.append("binding_host_id")
        with prober(vm.netns, target.address or "") as probe:
            fire(probe)
            time.sleep(0.02)  # probing, unanswered: the port is not bound anywhere yet
            t0 = time.time()
            loom.network.UpdatePort(mask, timeout=10)
            times.append(ms_to_first_reply(probe, t0, f"{tag}{i}"))
        forget_neighbor(target.netns, ip)
        drop(loom, vm, port.id)
    return times


def plug_case(
    loom: LoomLab, net: LabNetwork, target: Vm, n: int, port_security: bool = True
) -> tuple[list[float], list[float]]:
    """(b): port bound first (flows in place), then the VIF is attached; dynamic ARP."""
    times, attach = [], []
    hv = loom.lab.hv("hv1")
    for i in range(n):
        port = new_port(loom, net, f"plug{i}", host="hv1", port_security=port_security)
        loom.wait_port_stage(port.id, "flows_installed")
        ip = port.fixed_ips[0].ip_address
        name = f"plug{i}"
        vm_ns = loom.config.vm_netns(name)
        device = vif_device_name(port.id)
        with claimed_netns(loom.lab, vm_ns):
            loom.lab.call(hv, prepare_vif, vm_ns, device, port.mac_address, f"{ip}/24", 1450)
            # IPAM reuses the address the previous round freed: the target must not still map it to the
            # previous VM's MAC (a real guest's gratuitous ARP would fix that; the prober sends none).
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
                t_attached = time.time()
                fire(probe)  # the guest starts sending once its NIC is attached
                times.append(ms_to_first_reply(probe, t0, name))
            attach.append((t_attached - t0) * 1000)
            loom.lab.call(hv, lambda d=device: (link.delete_link(d), loom.lab.driver(hv).delete_port(d)))
        loom.network.DeletePort(network_pb2.DeleteRequest(id=port.id), timeout=10)
    return times, attach


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: a case, Loom's times and OVN's (None: not measured on that side)."""

    case: str
    loom: list[float] | None
    ovn: list[float] | None = None


def _cell(values: list[float] | None, q: float | None) -> str:
    if not values:
        return "-"
    return f"{(statistics.median(values) if q is None else percentile(values, q)):.2f}"


def print_table(rows: list[Row], ports: int, ovn_release: str) -> None:
    against = f"; Loom, then OVN {ovn_release}, measured in this run" if ovn_release else "; Loom only"
    print(f"time to first ping ({ports} ports per case{against})")
    print(f"  {'case':<44} {'Loom p50':>9} {'Loom p99':>9} {'OVN p50':>9} {'OVN p99':>9} {'Loom/OVN':>9}")
    for row in rows:
        ratio = "-"
        if row.loom and row.ovn:
            ratio = f"{statistics.median(row.loom) / statistics.median(row.ovn):.2f}"
        print(
            f"  {row.case:<44} {_cell(row.loom, None):>9} {_cell(row.loom, 0.99):>9} "
            f"{_cell(row.ovn, None):>9} {_cell(row.ovn, 0.99):>9} {ratio:>9}"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=40, help="ports per case, Loom and OVN alike (default 40)")
    parser.add_argument("--no-ovn", action="store_true", help="Loom only: skip the OVN baseline (a quick run)")
    args = parser.parse_args()
    if not args.no_ovn:
        ovn_version()  # fail now, not after Loom's cases, if OVN is not installed
    # Same-host cases on one hypervisor, as OVN's one chassis; the cross-host case on two.
    with LoomLab(config=LabConfig(hypervisors=1, prefix="labb", mgmt_cidr="198.18.3.0/24")) as loom:
        net = loom.create_network("ttp", "10.0.0.0/22")
        target = loom.boot_vm("target", "hv1", net)
        bind = bind_case(loom, net, target, args.ports, "bind")
        plug, attach = plug_case(loom, net, target, args.ports)
    with LoomLab(config=LabConfig(hypervisors=2, prefix="labb", mgmt_cidr="198.18.3.0/24")) as loom:
        net = loom.create_network("ttp", "10.0.0.0/22")
        remote = loom.boot_vm("remote", "hv2", net)
        bind_remote = bind_case(loom, net, remote, max(10, args.ports // 2), "bindx")
    ovn: OvnResults | None = None
    if not args.no_ovn:
        with quiet_ovsdbapp():
            ovn = run_baseline(args.ports)
    results: dict[str, float | int] = {
        "p50_ms": round(statistics.median(bind), 2),
        "p99_ms": round(percentile(bind, 0.99), 2),
        "plug_p50_ms": round(statistics.median(plug), 2),
        "plug_p99_ms": round(percentile(plug, 0.99), 2),
        "plug_attach_p50_ms": round(statistics.median(attach), 2),
        "plug_arp_lost": arp_lost(plug),
        "bind_cross_host_p50_ms": round(statistics.median(bind_remote), 2),
        "bind_cross_host_p99_ms": round(percentile(bind_remote, 0.99), 2),
        "ports_per_case": args.ports,
    }
    if ovn is not None:
        results |= ovn.metrics()
        results["ratio_p50"] = round(statistics.median(bind) / statistics.median(ovn.bind), 3)
        results["ratio_plug_p50"] = round(statistics.median(plug) / statistics.median(ovn.plug), 3)
    print_table(
        [
            Row("(a) VIF first, then bind (static ARP)", bind, ovn.bind if ovn else None),
            Row("(a) same, target on another hypervisor", bind_remote),
            Row("(b) port first, then plug (dynamic ARP)", plug, ovn.plug if ovn else None),
            Row("    of which attaching the VIF to br-int", attach, ovn.plug_attach if ovn else None),
            Row("(b) same, static ARP", None, ovn.plug_static_arp if ovn else None),
        ],
        args.ports,
        ovn.version if ovn else "",
    )
    lost = f"Loom {arp_lost(plug)}/{len(plug)}" + (f", OVN {ovn.plug_arp_lost}/{len(ovn.plug)}" if ovn else "")
    print(f"  (b) first ARP lost (first reply >= {ARP_LOST_MS:.0f} ms): {lost}")
    if ovn is None:
        print("  OVN baseline skipped (--no-ovn): the JSON has Loom's keys only")
    out = Path(__file__).resolve().parent / "results" / "time_to_ping.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
