"""Controller compile cost at scale: 1,000 hosts, 10,000 VM ports, 500 networks.

Measures, on the real SQLite store and the real distributor:

- host_compile_ms: compiling one host's full desired state and encoding it to
  OpenFlow (cold encoder cache), median over sample hosts;
- port_change_ms_per_host: controller CPU (distributor thread time) for one
  port change divided by the hosts it touched, median over creates, updates
  and deletes;
- flows_per_port: flows a host gains per extra VM port on a network it already
  has, counting the two binding flows its agent renders;
- rss_mb: resident memory of this process holding the store, the topology and
  every host's compiled state;
- bound_create_pass_ms: the distributor's CPU time per bound port create in
  ``bench/api.py``'s bound workload (100 registered hosts, 500 networks with a
  /24 and DHCP, 10k ports created through the real API bound to random hosts,
  20 per network, so nearly every create puts its host on its network), in
  passes of 100 creates, about what that benchmark's distributor sees; each
  host's deltas queued to a stream as for a connected agent. No gRPC, no other
  thread: the least noisy figure for the distributor's share of a bound create.

Prints a table and writes bench/results/compile.json.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stats import percentile
from controller.api.network_api import NetworkApi
from controller.compiler.host import compile_host
from controller.compiler.topology import Topology
from controller.distributor.distributor import Distributor
from controller.model import OWNER_DHCP, Agent, FixedIP, Network, Port, Subnet
from controller.store.sqlite import SqliteStore
from dataplane.contract import encode

HOSTS = 1000
NETWORKS = 500
PORTS = 10_000
PORTS_PER_NETWORK = PORTS // NETWORKS
SAMPLES = 40

BOUND_HOSTS = 100  # bench/api.py's bound case
BOUND_NETWORKS = 500
BOUND_PORTS = 10_000
BOUND_PASS = 100


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build(store: SqliteStore, rng: random.Random) -> dict[str, list[str]]:
    """The model; returns network id -> hosts that have it."""
    store.commit(puts=[Agent(id=f"hv{h:04d}", tunnel_ip=f"10.{h // 250}.{h % 250}.10") for h in range(HOSTS)])
    spans: dict[str, list[str]] = {}
    ofport = dict.fromkeys((f"hv{h:04d}" for h in range(HOSTS)), 100)
    for n in range(NETWORKS):
        net = Network(id=f"net{n:04d}", name=f"net{n}", segmentation_id=1000 + n, mtu=1450)
        sub = Subnet(id=f"sub{n:04d}", network_id=net.id, cidr="10.0.0.0/16", gateway_ip="10.0.0.1")
        puts: list = [
            net,
            sub,
            Port(
                id=f"dhcp{n:04d}",
                network_id=net.id,
                mac_address="fa:16:3e:ff:00:01",
                fixed_ips=(FixedIP(sub.id, "10.0.0.2"),),
                device_owner=OWNER_DHCP,
            ),
        ]
        hosts = rng.sample(range(HOSTS), PORTS_PER_NETWORK)
        spans[net.id] = [f"hv{h:04d}" for h in hosts]
        for i, h in enumerate(hosts):
            host = f"hv{h:04d}"
            ofport[host] += 1
            puts.append(
                Port(
                    id=f"p{n:04d}-{i:03d}",
                    network_id=net.id,
                    mac_address=f"fa:16:3e:{n >> 8:02x}:{n & 255:02x}:{i:02x}",
                    fixed_ips=(FixedIP(sub.id, f"10.0.{i // 250 + 1}.{i % 250 + 3}"),),
                    device_owner="compute:nova",
                    binding_host_id=host,
                    binding_ofport=ofport[host],
                )
            )
        store.commit(puts=puts)
    return spans


def bound_create_pass_ms(tmp: str) -> float:
    """Distributor CPU (ms) per bound create, in passes of BOUND_PASS creates (see the module docstring)."""
    store = SqliteStore(str(Path(tmp) / "bound.db"))
    api = NetworkApi(store)
    networks = []
    for n in range(BOUND_NETWORKS):
        net = api.networks.create({"name": f"n{n}"})
        api.subnets.create({"network_id": net.id, "cidr": f"10.{n // 250}.{n % 250}.0/24"})
        networks.append(net.id)
    store.commit(
        puts=[Agent(id=f"b{h:03d}", tunnel_ip=f"198.51.{100 + h // 250}.{h % 250 + 1}") for h in range(BOUND_HOSTS)]
    )
    dist = Distributor(store, Topology())
    dist.start()
    dist.stop()  # passes are run below, one per BOUND_PASS creates, not by its thread
    events: list = []
    store.subscribe(events.extend)
    streams = [dist.open_stream(f"b{h:03d}", 0, "")[0] for h in range(BOUND_HOSTS)]
    rng = random.Random(11)
    placement = [(i // (BOUND_PORTS // BOUND_NETWORKS), rng.randrange(BOUND_HOSTS)) for i in range(BOUND_PORTS)]
    rng.shuffle(placement)
    cpu = 0.0
    for start in range(0, BOUND_PORTS, BOUND_PASS):
        for net, host in placement[start : start + BOUND_PASS]:
            api.ports.create(
                {"network_id": networks[net], "device_owner": "compute:nova", "binding_host_id": f"b{host:03d}"}
            )
        batch, events[:] = list(events), []
        t0 = time.thread_time()
        dist._process(batch)  # what the distributor's thread does with a pass's events
        cpu += time.thread_time() - t0
        for stream in streams:
            while not stream.empty():
                stream.get_nowait()
    store.close()
    return cpu / BOUND_PORTS * 1000


def main() -> int:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="loom-bench-") as tmp:
        store = SqliteStore(str(Path(tmp) / "loom.db"))
        t0 = time.perf_counter()
        spans = build(store, rng)
        load_s = time.perf_counter() - t0
        dist = Distributor(store, Topology())
        t0 = time.perf_counter()
        dist.start()
        start_s = time.perf_counter() - t0
        topo = dist.topo

        # One host's full state, compiled and encoded with a cold cache.
        compile_ms, compile_encode_ms, host_flows = [], [], []
        for host in rng.sample(sorted(topo.vif_ports_by_host), SAMPLES):
            encode.clear_caches()
            t0 = time.perf_counter()
            state = compile_host(topo, host)
            t1 = time.perf_counter()
            wires = [encode.to_wire(f) for f in state.flows()]
            t2 = time.perf_counter()
            compile_ms.append((t1 - t0) * 1000)
            compile_encode_ms.append((t2 - t0) * 1000)
            host_flows.append(len(wires))

        # Port changes through the store and the distributor: creates, updates, deletes.
        per_host_ms: list[float] = []
        hosts_touched: list[int] = []
        nets = rng.sample(sorted(spans), SAMPLES)
        for k, net_id in enumerate(nets):
            host = spans[net_id][0]
            port = Port(
                id=f"new{k:03d}",
                network_id=net_id,
                mac_address=f"fa:16:3e:aa:bb:{k:02x}",
                fixed_ips=(FixedIP("sub" + net_id[3:], f"10.0.200.{k + 3}"),),
                device_owner="compute:nova",
                binding_host_id=host,
                binding_ofport=30000 + k,
            )
            for change in ("create", "update", "delete"):
                if change == "create":
                    rev = store.commit(puts=[port])
                elif change == "update":
                    port = store.get("port", port.id)  # type: ignore[assignment]
                    ips = (FixedIP("sub" + net_id[3:], f"10.0.201.{k + 3}"),)
                    rev = store.commit(puts=[replace(port, fixed_ips=ips)])
                else:
                    rev = store.commit(deletes=[("port", port.id)])
                if not dist.wait_for(rev, timeout=30):
                    raise RuntimeError("distributor did not catch up")
                st = dist.stats
                hosts_touched.append(st.last_batch_hosts)
                per_host_ms.append(st.last_batch_cpu_seconds * 1000 / max(1, st.last_batch_hosts))

        # Flows a host gains per extra VM port on a network it already has.
        net_id = nets[0]
        host = spans[net_id][1]
        before = len(compile_host(topo, host).flows())
        extra = Port(
            id="extra",
            network_id=net_id,
            mac_address="fa:16:3e:ee:ee:01",
            fixed_ips=(FixedIP("sub" + net_id[3:], "10.0.202.3"),),
            device_owner="compute:nova",
            binding_host_id=host,
            binding_ofport=32000,
        )
        dist.wait_for(store.commit(puts=[extra]), timeout=30)
        after = len(compile_host(topo, host).flows())
        binding_flows = 2  # classify + deliver, rendered by the agent (dataplane/contract/bindings.py)
        flows_per_port = after - before + binding_flows

        rss = rss_mb()
        dist.stop()
        store.close()
        bound_ms = bound_create_pass_ms(tmp)

    results = {
        "host_compile_ms": round(statistics.median(compile_encode_ms), 3),
        "host_compile_only_ms": round(statistics.median(compile_ms), 3),
        "host_flows": statistics.median(host_flows),
        "port_change_ms_per_host": round(statistics.median(per_host_ms), 4),
        "port_change_ms_per_host_p99": round(percentile(per_host_ms, 0.99), 4),
        "hosts_per_port_change": statistics.median(hosts_touched),
        "flows_per_port": flows_per_port,
        "rss_mb": round(rss, 1),
        "bound_create_pass_ms": round(bound_ms, 3),
        "startup_compile_s": round(start_s, 2),
        "model_load_s": round(load_s, 2),
        "hosts": HOSTS,
        "ports": PORTS,
        "networks": NETWORKS,
    }
    width = max(len(k) for k in results)
    print(f"compile benchmark: {HOSTS} hosts, {PORTS} ports, {NETWORKS} networks")
    for key, value in results.items():
        print(f"  {key:<{width}}  {value}")
    out = Path(__file__).resolve().parent / "results" / "compile.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
