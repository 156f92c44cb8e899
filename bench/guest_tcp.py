"""Benchmark: TCP throughput of a real qemu guest on a Loom tap, with the fix and with the workarounds.

What runs: Loom on a 2-hypervisor lab (controller, agents, DHCP); on hv1 one
guest per mode below (Debian kernel + busybox initramfs under TCG, virtio-net,
``lab/mininet/guest_image.py``), all booted at once; on hv2 a VM namespace as
the peer, so every byte crosses the VXLAN tunnel of the userspace datapath.
Transfers are busybox ``nc`` from/to a tmpfs file in the guest, checked by
SHA-256, timed as ``lab/mininet/transfer.py`` says; the modes take turns
(one transfer each, round after round) so background load hits all alike.

Modes:

- ``guest``: the fix. ``vif.plug_tap`` (what ``loomctl vif plug --kind tap``
  does) and qemu's default tap options (vnet_hdr on: the guest leaves
  checksums and segmentation to the host, which finishes them on the veth).
- ``vnet_hdr_off``: the issue's workaround, the baseline: the tap itself on
  br-int (``--direct``, as before the fix), qemu ``-netdev tap,...,vnet_hdr=off``.
- ``csum_off``: the tap itself on br-int, virtio-net ``csum=off`` (the guest
  computes checksums and cannot use TSO).

Besides Mbit/s (which the other work on a shared 2-core machine moves a lot),
it records CPU time per MiB moved: of the guest's qemu process (the emulated
guest and its NIC, plus what the kernel does in qemu's system calls), and of
hv1's ovs-vswitchd. Those depend much less on what else the machine runs.

Run as root: ``.venv/bin/python bench/guest_tcp.py [--mib 16] [--repeats 5]``.
Prints a table and writes ``bench/results/guest_tcp.json`` (metric -> number).
LOOM_BENCH_LAB_PREFIX / LOOM_BENCH_LAB_MGMT_CIDR choose the lab's names and
management range (default labq, 198.18.11.0/24).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.mininet import guest_image  # noqa: E402
from lab.mininet.config import LabConfig  # noqa: E402
from lab.mininet.loom import LabNetwork, LoomLab  # noqa: E402
from lab.mininet.qemu_guest import QemuGuest  # noqa: E402
from lab.mininet.transfer import Transfer, guest_to_peer, make_guest_file, peer_to_guest  # noqa: E402
from protos.loom.v1 import resources_pb2  # noqa: E402
from vif.plug import plug_tap, unplug  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "guest_tcp.json"
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Mode:
    """How one guest's NIC is set up: the plug (redirected or direct) and qemu's tap/device options."""

    name: str  # metric prefix
    direct: bool
    vnet_hdr: bool | None = None  # None: qemu's default (on)
    device_options: str = ""


MODES = (
    Mode("guest", direct=False),
    Mode("vnet_hdr_off", direct=True, vnet_hdr=False),
    Mode("csum_off", direct=True, device_options="csum=off"),
)


@dataclass
class Subject:
    """A booted guest in one mode, and its results."""

    mode: Mode
    port: resources_pb2.Port
    vm: QemuGuest
    digest: str = ""
    boot_s: float = 0.0
    tx: list[Transfer] = field(default_factory=list)
    rx: list[Transfer] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # "tx_qemu" -> CPU seconds per transfer, ...


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14 and 15 of stat(5))


def vswitchd_pid(loom: LoomLab, hv: str) -> int:
    with open(loom.lab.hv(hv).ovs.pidfile("ovs-vswitchd")) as f:
        return int(f.read().strip())


@dataclass
class CpuMeter:
    """CPU seconds qemu and hv1's vswitchd spend between a transfer's "start" and "end" phases."""

    qemu: int
    vswitchd: int
    spent: dict[str, list[float]]
    key: str = ""
    _start: tuple[float, float] = (0.0, 0.0)

    def __call__(self, phase: str) -> None:
        now = cpu_seconds(self.qemu), cpu_seconds(self.vswitchd)
        if phase == "start":
            self._start = now
            return
        self.spent.setdefault(f"{self.key}_qemu", []).append(now[0] - self._start[0])
        self.spent.setdefault(f"{self.key}_vswitchd", []).append(now[1] - self._start[1])

    def of(self, key: str) -> CpuMeter:
        self.key = key
        return self


@contextmanager
def guest_in_mode(
    loom: LoomLab, net: LabNetwork, mode: Mode, image: guest_image.GuestImage, workdir: Path
) -> Iterator[Subject]:
    port = loom.create_port(net, "hv1", f"g-{mode.name}")
    hv = loom.lab.hv("hv1")
    details = port.binding_vif_details
    vif = loom.lab.call(
        hv,
        plug_tap,
        port.id,
        port.mac_address,
        int(details["mtu"]),
        ofport=int(details["ofport"]),
        ovsdb=loom.lab.driver(hv),
        direct=mode.direct,
    )
    try:
        vm = QemuGuest.start(
            image,
            netns=hv.netns,
            tap=vif.device,
            mac=port.mac_address,
            workdir=workdir,
            name=mode.name,
            vnet_hdr=mode.vnet_hdr,
            device_options=mode.device_options,
        )
        with vm:
            yield Subject(mode, port, vm)
    finally:
        loom.lab.call(hv, unplug, port.id, ovsdb=loom.lab.driver(hv))


def median_mbps(transfers: list[Transfer]) -> float:
    return round(statistics.median(t.mbps for t in transfers), 1) if transfers else 0.0


def measure(mib: int, repeats: int) -> dict[str, float]:
    config = LabConfig(
        hypervisors=2,
        prefix=os.environ.get("LOOM_BENCH_LAB_PREFIX") or "labq",
        mgmt_cidr=os.environ.get("LOOM_BENCH_LAB_MGMT_CIDR") or "198.18.11.0/24",
    )
    image = guest_image.build()
    nbytes = mib * MIB
    with LoomLab(config=config) as loom, tempfile.TemporaryDirectory(prefix="lg-bench-") as tmp, ExitStack() as stack:
        net = loom.create_network("guesttcp", "10.0.0.0/24")
        peer = loom.boot_vm("peer", "hv2", net)
        assert peer.address is not None
        started = time.monotonic()
        subjects = [stack.enter_context(guest_in_mode(loom, net, m, image, Path(tmp))) for m in MODES]
        for s in subjects:
            lease = s.vm.wait_lease(120)
            s.boot_s = time.monotonic() - started
            if lease.mtu != "1450":
                raise RuntimeError(f"{s.mode.name}: lease without MTU 1450: {lease}")
            s.digest = make_guest_file(s.vm, nbytes)
            # Warm-up: ARP, the first flows through the datapath, TCP's caches.
            warm = guest_to_peer(s.vm, peer.netns, peer.address, nbytes, sent_sha256=s.digest)
            if not warm.intact:
                raise RuntimeError(f"{s.mode.name}: TCP does not work: {warm}")
        vswitchd = vswitchd_pid(loom, "hv1")
        meters = {s.mode.name: CpuMeter(s.vm.proc.pid, vswitchd, s.cpu) for s in subjects}
        for _ in range(repeats):
            for s in subjects:
                meter = meters[s.mode.name].of("tx")
                s.tx.append(guest_to_peer(s.vm, peer.netns, peer.address, nbytes, sent_sha256=s.digest, phase=meter))
            for s in subjects:
                meter = meters[s.mode.name].of("rx")
                s.rx.append(peer_to_guest(s.vm, peer.netns, peer.address, nbytes, phase=meter))
        broken = [t for s in subjects for t in (*s.tx, *s.rx) if not t.intact]
        if broken:
            raise RuntimeError(f"{len(broken)} transfers lost bytes, e.g. {broken[0]}")
        by_mode = {s.mode.name: s for s in subjects}
        results: dict[str, float] = {}
        for s in subjects:
            results[f"{s.mode.name}_tx_mbps"] = median_mbps(s.tx)
            results[f"{s.mode.name}_rx_mbps"] = median_mbps(s.rx)
            for key, values in sorted(s.cpu.items()):
                results[f"{s.mode.name}_{key}_cpu_ms_per_mib"] = round(statistics.median(values) * 1000 / mib, 2)
        fix, base = by_mode["guest"], by_mode["vnet_hdr_off"]
        for direction in ("tx", "rx"):
            ratio = results[f"guest_{direction}_mbps"] / max(results[f"vnet_hdr_off_{direction}_mbps"], 1e-9)
            results[f"guest_vs_vnet_hdr_off_{direction}_ratio"] = round(ratio, 2)
        results["guest_tx_mbps_min"] = round(min(t.mbps for t in fix.tx), 1)
        results["guest_rx_mbps_min"] = round(min(t.mbps for t in fix.rx), 1)
        results["vnet_hdr_off_tx_mbps_min"] = round(min(t.mbps for t in base.tx), 1)
        results["vnet_hdr_off_rx_mbps_min"] = round(min(t.mbps for t in base.rx), 1)
        results["guest_boot_to_lease_s"] = round(fix.boot_s, 2)
        results["transfer_mib"] = mib
        results["repeats"] = repeats
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=16, help="MiB per transfer (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="transfers per mode and direction (default 5)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/guest_tcp.py needs root (namespaces, OVS, taps)")
    started = time.monotonic()
    results = measure(args.mib, args.repeats)
    print(f"# guest_tcp: {time.monotonic() - started:.1f} s", file=sys.stderr)
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  value")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(RESULTS)


if __name__ == "__main__":
    main()
