"""Benchmark: real guests through the compute API — create to running, boot to ping, volumes, ten at once.

What runs: Loom on a 2-hypervisor lab with a libvirtd per hypervisor
(``LoomLab(compute=True)``), the tiny guest image (Debian's kernel and a
busybox initramfs, AMI-style, qcow2 root disk) under TCG, and a namespace VM
on hv2 as the peer that pings guests across the VXLAN tunnel.

Metrics:

- ``create_to_running_p50_ms`` / ``_p99_ms``: the CreateInstance call until
  Watch shows the instance ACTIVE, i.e. its host reported the domain running
  (the agent starts it only once the port's flows are installed; checked:
  the port's ``flows_installed`` stage is done by then). Not the guest's boot.
- ``boot_to_ping_p50_s``: the CreateInstance call until the guest answers
  ping from the namespace VM on the other hypervisor (the guest boots, asks
  DHCP, applies the lease: TCG).
- ``image_cached_boot_ms``: building an instance's root disk (the qcow2
  overlay) on an image already in the hypervisor's cache: the agent's own
  function (``storage.build_root_disk``), on that cache.
- ``volume_attach_p50_ms``: the AttachVolume call until the guest sees the
  disk (a loop inside the guest prints a marker on its console when
  /sys/block/vdb appears; the marker's arrival in the console log is timed).
- ``boot_10_concurrent_s``: ten instances created at once (the scheduler
  spreads them) until every one answers ping.

Run as root: ``.venv/bin/python bench/compute.py [--creates 20] [--pings 5] [--attaches 10]``.
Prints a table and writes ``bench/results/compute.json``. LOOM_BENCH_LAB_PREFIX /
LOOM_BENCH_LAB_MGMT_CIDR choose the lab's names and range (default labk, 198.18.12.0/24).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from dataplane.compute.storage import build_root_disk  # noqa: E402
from lab.mininet import compute as c  # noqa: E402
from lab.mininet import probes  # noqa: E402
from lab.mininet.config import LabConfig  # noqa: E402
from lab.mininet.loom import LabNetwork, LoomLab  # noqa: E402
from protos.loom.v1 import hypervisor_pb2, network_pb2, resources_pb2, volume_pb2  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "compute.json"


class InstanceWatch:
    """One Watch on instances for the whole benchmark: status changes arrive as they happen."""

    def __init__(self, loom: LoomLab) -> None:
        self.stream = loom.network.Watch(network_pb2.WatchRequest(kinds=["instance"]))
        self.events: dict[str, queue.SimpleQueue[tuple[float, resources_pb2.Instance]]] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _queue(self, instance_id: str) -> queue.SimpleQueue[tuple[float, resources_pb2.Instance]]:
        with self.lock:
            return self.events.setdefault(instance_id, queue.SimpleQueue())

    def _run(self) -> None:
        try:
            for ev in self.stream:
                self._queue(ev.id).put((time.monotonic(), ev.instance))
        except Exception:
            return

    def until(self, instance_id: str, status: str, timeout: float = 120.0) -> float:
        """The time (monotonic) the instance reached ``status``."""
        q = self._queue(instance_id)
        deadline = time.monotonic() + timeout
        while True:
            at, inst = q.get(timeout=max(0.01, deadline - time.monotonic()))
            if inst.status == status:
                return at
            if inst.status == "ERROR":
                raise RuntimeError(f"instance {instance_id} ERROR: {inst.fault}")

    def close(self) -> None:
        self.stream.cancel()


def wait_ping(peer_netns: str, ip: str, timeout: float = 180.0) -> float:
    deadline = time.monotonic() + timeout
    while not probes.ping(peer_netns, ip, count=1, timeout=1.0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{ip} never answered ping")
    return time.monotonic()


def guest_ip(loom: LoomLab, inst: resources_pb2.Instance) -> str:
    return loom.get_port(inst.ports[0]).fixed_ips[0].ip_address


def delete_and_wait(loom: LoomLab, inst: resources_pb2.Instance) -> None:
    c.delete_instance(loom, inst.id)
    directory = c.instance_dir(loom, inst.host, inst.id)
    deadline = time.monotonic() + 30
    while directory.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def create_to_running(
    loom: LoomLab, watch: InstanceWatch, image: resources_pb2.Image, net: LabNetwork, n: int
) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.monotonic()
        inst = c.create_instance(loom, f"ctr{i}", image.id, [net.id], host="hv1")
        active = watch.until(inst.id, "ACTIVE")
        out.append((active - t0) * 1000)
        port = loom.get_port(inst.ports[0])
        if not any(s.name == "flows_installed" and s.done for s in port.stages):
            raise RuntimeError(f"instance {inst.id} ACTIVE before its port's flows were installed")
        delete_and_wait(loom, inst)
    return out


def boot_to_ping(
    loom: LoomLab, watch: InstanceWatch, image: resources_pb2.Image, net: LabNetwork, peer: str, n: int
) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.monotonic()
        inst = c.create_instance(loom, f"btp{i}", image.id, [net.id], host="hv1")
        out.append(wait_ping(peer, guest_ip(loom, inst)) - t0)
        delete_and_wait(loom, inst)
    return out


def image_cached_boot(loom: LoomLab, image: resources_pb2.Image, n: int) -> list[float]:
    """The agent's root-disk step on hv1's cache, which holds the image after the boots above."""
    cache = Path(loom.state_dir) / "hv1" / "image-cache" / image.sha256
    if not cache.exists():
        raise RuntimeError(f"{cache} is not cached")
    ref = hypervisor_pb2.ImageRef(
        image_id=image.id, sha256=image.sha256, size=image.size, disk_format=image.disk_format
    )
    out = []
    with tempfile.TemporaryDirectory(prefix="loom-bench-disk-", dir=Path(loom.state_dir) / "hv1") as tmp:
        for i in range(n):
            disk = Path(tmp) / str(i) / "disk"
            t0 = time.perf_counter()
            build_root_disk(disk, cache, ref, 1 << 30)
            out.append((time.perf_counter() - t0) * 1000)
    return out


def volume_attach(loom: LoomLab, image: resources_pb2.Image, net: LabNetwork, n: int) -> list[float]:
    inst = c.create_instance(loom, "volbench", image.id, [net.id], host="hv1")
    c.wait_instance(loom, inst.id, "ACTIVE")
    inst = c.get_instance(loom, inst.id)
    guest = c.console(loom, inst)
    guest.wait_ready(180)
    vol = c.create_volume(loom, "bench", 1)
    vols = c.volumes(loom)
    out = []
    try:
        for i in range(n):
            marker = f"LOOM-VDB-SEEN-{i}"
            guest.check(f"(while [ ! -e /sys/block/vdb ]; do usleep 5000; done; echo {marker}) >/dev/ttyS0 2>&1 &")
            mark = guest.mark()
            t0 = time.monotonic()
            vols.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=inst.id), timeout=10)
            deadline = t0 + 30
            while marker not in guest.console(mark):
                if time.monotonic() > deadline:
                    raise RuntimeError("the guest never saw vdb")
                time.sleep(0.002)
            out.append((time.monotonic() - t0) * 1000)
            c.wait_volume(loom, vol.id, "in-use")
            vols.DetachVolume(volume_pb2.DetachVolumeRequest(volume_id=vol.id), timeout=10)
            c.wait_volume(loom, vol.id, "available")
            while guest.run("test -e /sys/block/vdb")[0] == 0:
                time.sleep(0.05)
    finally:
        delete_and_wait(loom, inst)
        c.wait_volume(loom, vol.id, "available")
        vols.DeleteVolume(network_pb2.DeleteRequest(id=vol.id), timeout=10)
    return out


def boot_concurrently(loom: LoomLab, image: resources_pb2.Image, net: LabNetwork, peer: str, n: int) -> float:
    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        insts = list(pool.map(lambda i: c.create_instance(loom, f"many{i}", image.id, [net.id]), range(n)))
        list(pool.map(lambda inst: wait_ping(peer, guest_ip(loom, inst), timeout=600), insts))
    seconds = time.monotonic() - t0
    hosts = sorted(i.host for i in insts)
    print(f"  ten at once placed on {', '.join(f'{h}: {hosts.count(h)}' for h in sorted(set(hosts)))}", flush=True)
    for inst in insts:
        c.delete_instance(loom, inst.id)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--pings", type=int, default=5)
    parser.add_argument("--attaches", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=10)
    args = parser.parse_args()
    config = LabConfig(
        hypervisors=2,
        prefix=os.environ.get("LOOM_BENCH_LAB_PREFIX", "labk"),
        mgmt_cidr=os.environ.get("LOOM_BENCH_LAB_MGMT_CIDR", "198.18.12.0/24"),
    )
    load_before = os.getloadavg()
    with LoomLab(config=config, compute=True) as loom:
        net = loom.create_network("bench", "10.50.0.0/24")
        peer = loom.boot_vm("peer", "hv2", net, ip="10.50.0.250").netns
        image = c.tiny_image(loom)
        watch = InstanceWatch(loom)
        try:
            # A first boot per host fetches the image into its cache: not what the metrics are about.
            for host in ("hv1", "hv2"):
                warm = c.create_instance(loom, f"warm-{host}", image.id, [net.id], host=host)
                watch.until(warm.id, "ACTIVE")
                delete_and_wait(loom, c.get_instance(loom, warm.id))
            print("create to running ...", flush=True)
            ctr = create_to_running(loom, watch, image, net, args.creates)
            print("boot to ping ...", flush=True)
            btp = boot_to_ping(loom, watch, image, net, peer, args.pings)
            cached = image_cached_boot(loom, image, 20)
            print("volume attach ...", flush=True)
            attach = volume_attach(loom, image, net, args.attaches)
            print(f"{args.concurrent} at once ...", flush=True)
            many = boot_concurrently(loom, image, net, peer, args.concurrent)
        finally:
            watch.close()
    load_after = os.getloadavg()
    results = {
        "create_to_running_p50_ms": round(percentile(ctr, 0.5), 1),
        "create_to_running_p99_ms": round(percentile(ctr, 0.99), 1),
        "create_to_running_runs": len(ctr),
        "boot_to_ping_p50_s": round(percentile(btp, 0.5), 2),
        "boot_to_ping_runs": len(btp),
        "image_cached_boot_ms": round(percentile(cached, 0.5), 1),
        "volume_attach_p50_ms": round(percentile(attach, 0.5), 1),
        "volume_attach_runs": len(attach),
        "boot_10_concurrent_s": round(many, 1),
        "concurrent_instances": args.concurrent,
        "virt_type": "qemu (TCG)",
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(load_after[0], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"\n{'metric':<28} value")
    for key in (
        "create_to_running_p50_ms",
        "create_to_running_p99_ms",
        "boot_to_ping_p50_s",
        "image_cached_boot_ms",
        "volume_attach_p50_ms",
        "boot_10_concurrent_s",
    ):
        print(f"{key:<28} {results[key]}")
    print(f"(load average {results['load_average_before']} before, {results['load_average_after']} after)")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
