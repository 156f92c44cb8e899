"""Benchmark: port creates over gRPC against a controller in its own process.

Each round starts a fresh ``loom-controller`` (a subprocess on a new SQLite
file), creates a network with a /16 subnet, then has 8 concurrent clients
create 10k ports (no fixed IPs requested: each is allocated from the /16 pool,
and a MAC is generated). It reports creates/s (wall clock over the whole
batch), p50/p99 latency of one CreatePort as the client sees it, and the
controller's resident memory (VmRSS) with the 10k ports in it. Rounds are
repeated and the median kept; the machine is shared and noisy.

    .venv/bin/python bench/api.py [--ports 10000] [--clients 8] [--rounds 3]

Prints a table; writes ``bench/results/api.json``. Goals: >= 1000 creates/s,
p99 < 50 ms, < 100 MB RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from controller.ready_file import ControllerNotReady, wait_ready_file  # noqa: E402
from protos.loom.v1 import network_pb2, network_pb2_grpc, resources_pb2  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api.json"


def start_controller(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    ready = os.path.join(workdir, "ready")
    # The whole controller, as `loom-controller` runs it: API, distributor, status tracker, metadata.
    cmd = [
        sys.executable,
        "-m",
        "controller.app",
        "--listen",
        "127.0.0.1:0",
        "--db",
        os.path.join(workdir, "controller.db"),
        "--ready-file",
        ready,
        "--log-level",
        "WARNING",
    ]
    log_path = os.path.join(workdir, "controller.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=log)
    try:
        return proc, wait_ready_file(proc, ready, 30, log_path)
    except ControllerNotReady:
        proc.kill()
        raise


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def one_round(ports: int, clients: int) -> dict[str, float]:
    workdir = tempfile.mkdtemp(prefix="lf-bench-")
    proc, port = start_controller(workdir)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = network_pb2_grpc.NetworkServiceStub(channel)
        net = stub.CreateNetwork(network_pb2.CreateNetworkRequest(network=resources_pb2.Network(name="bench")))
        stub.CreateSubnet(
            network_pb2.CreateSubnetRequest(subnet=resources_pb2.Subnet(network_id=net.id, cidr="10.20.0.0/16"))
        )
        rss_before = rss_mb(proc.pid)
        latencies: list[list[float]] = [[] for _ in range(clients)]
        errors: list[BaseException] = []
        start_gate = threading.Barrier(clients + 1)

        def client(i: int) -> None:
            # One channel per client, as separate orchestrator workers would have.
            with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                s = network_pb2_grpc.NetworkServiceStub(ch)
                s.GetNetwork(network_pb2.GetRequest(id=net.id))  # connect before the clock starts
                start_gate.wait()
                mine = latencies[i]
                count = ports // clients + (1 if i < ports % clients else 0)
                try:
                    for n in range(count):
                        req = network_pb2.CreatePortRequest(
                            port=resources_pb2.Port(network_id=net.id, name=f"c{i}-{n}", device_owner="compute:nova")
                        )
                        t0 = time.perf_counter()
                        s.CreatePort(req)
                        mine.append(time.perf_counter() - t0)
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        start_gate.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise RuntimeError(f"client failed: {errors[0]!r}")
        listed = stub.ListPorts(network_pb2.ListPortsRequest(network_id=net.id))
        if len(listed.ports) != ports + 1:  # + the DHCP port
            raise RuntimeError(f"expected {ports + 1} ports, found {len(listed.ports)}")
        ips = {p.fixed_ips[0].ip_address for p in listed.ports}
        macs = {p.mac_address for p in listed.ports}
        if len(ips) != ports + 1 or len(macs) != ports + 1:
            raise RuntimeError("duplicate IP or MAC allocated")
        all_lat = [x for lst in latencies for x in lst]
        channel.close()
        return {
            "creates_per_s": ports / elapsed,
            "p50_ms": percentile(all_lat, 0.50) * 1000,
            "p99_ms": percentile(all_lat, 0.99) * 1000,
            "max_ms": max(all_lat) * 1000,
            "rss_mb": rss_mb(proc.pid),
            "rss_empty_mb": rss_before,
            "elapsed_s": elapsed,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    rounds = []
    for r in range(args.rounds):
        result = one_round(args.ports, args.clients)
        rounds.append(result)
        print(
            f"round {r + 1}: {result['creates_per_s']:.0f} creates/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, rss {result['rss_mb']:.1f} MB",
            flush=True,
        )
    summary = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    summary.update(ports=args.ports, clients=args.clients, rounds=args.rounds)
    goals = {"creates_per_s": (">=", 1000), "p50_ms": None, "p99_ms": ("<", 50), "max_ms": None, "rss_mb": ("<", 100)}
    print(f"\n{'metric':<16} {'median':>10}  goal")
    for key, goal in goals.items():
        goal_text = f"{goal[0]} {goal[1]}" if goal else ""
        print(f"{key:<16} {summary[key]:>10.2f}  {goal_text}")
    print(f"{'rss_empty_mb':<16} {summary['rss_empty_mb']:>10.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
