"""Benchmark: port creates over gRPC against the shipped ``loom-controller``, unbound and bound.

Each round starts a fresh ``loom-controller`` (``python -m controller.app``, the
entry point the package installs, on a new SQLite file) and has 8 concurrent
clients (threads of this process, one channel each) create 10k ports with no
fixed IPs requested (each address comes from its subnet's pool, each MAC is
generated). Two cases, each its own controller:

* **unbound** (``unbound_*``): one network with a /16 subnet, no agent
  connected, ports created without a host. The distributor has nothing to do
  for such ports; this is the API and store alone (Nova creates a port like
  this before it schedules the VM).
* **bound** (``bound_*``): 100 hosts, each with an agent that registered and
  holds a real ``AgentService.Sync`` stream, and ports created bound to hosts
  (``binding_host_id``), as an orchestrator that already placed the VM does.
  Every create is compiled for the hosts of its network and streamed to
  them. The ports go to 500 networks (/24 each, 20 ports per network, ports
  placed on random hosts): each network ends up on ~18 hosts, so a create
  reaches ``bound_fanout_mean`` hosts on average (measured from the
  placement). The agents are light: a separate process holding one channel
  and one Sync stream per host, applying every message to the real agent's
  ``DesiredState``, reporting each new local port once as a real agent does
  after installing its flows (flows, DHCP and metadata ready; no VIF), and
  sending heartbeats. No OVS: the switch is not what this measures. As with
  real agents, a bound create costs the controller more than its own commit:
  the deltas to every host of the network, and two status commits (the port
  compiled, then its agent's report).

Reported per case: creates/s (wall clock over the whole batch), p50/p99/max
latency of one CreatePort as the client sees it, the controller's resident
memory (VmRSS) with the ports in it, and the controller's CPU time per create
(``*_controller_cpu_ms_per_create``, user + system over the run; for bound
ports until the agents hold the final state): the figure least moved by the
neighbours' load on a shared machine. ``*_clients_cpu_ms_per_create`` is this
process's CPU over the same span (the 8 clients; the light agents have their
own process, ``bound_agents_cpu_ms_per_create``), ``*_total_cpu_ms_per_create``
the sum over every process taking part, and ``*_cpu_ceiling_creates_per_s``
what that total allows on this machine's cores if all of them did nothing
else: the rate no change confined to scheduling or locking can pass.
``bound_controller_cores`` is the controller's CPU over the wall-clock span
from the first create to the agents' last message: near 1.0, the controller
is bound by its one interpreter lock, not by the machine. For bound ports also
``bound_propagation_p50_ms``/``_p99_ms``: from a create being sent to its
port's own host's agent holding it (clocks: CLOCK_MONOTONIC, shared by the
processes). After each bound round every agent's state, built from the deltas
alone, is compared with a fresh snapshot of its host (flows, ports, networks,
peers): a fast wrong answer cannot pass.

Rounds are repeated and the median kept; the machine is shared and noisy (the
load average before each round is recorded).

    .venv/bin/python bench/api.py [--ports 10000] [--clients 8] [--rounds 3] [--cases unbound,bound]
        [--hosts 100] [--networks 500]

Prints a table; writes ``bench/results/api.json``. Goals, both cases: >= 1000
creates/s, p99 < 50 ms; < 100 MB RSS unbound.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.stats import percentile  # noqa: E402
from controller.ready_file import ControllerNotReady, wait_ready_file  # noqa: E402
from dataplane.common.supervise import stop_child  # noqa: E402
from dataplane.desired import DesiredState  # noqa: E402
from protos.loom.v1 import agent_pb2, agent_pb2_grpc, network_pb2, network_pb2_grpc, resources_pb2  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api.json"
HOST_PREFIX = "bench-hv"
QUIET = 0.5  # seconds without a message after which the agents count as caught up

# --------------------------------------------------------------------------- controller


def start_controller(workdir: str) -> tuple[subprocess.Popen[bytes], int]:
    """``loom-controller`` as installed (``controller.app``): API, distributor, status tracker, agent service."""
    ready = os.path.join(workdir, "ready")
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    """The 1-minute load average: how busy the shared machine was when a round started."""
    return os.getloadavg()[0]


# --------------------------------------------------------------------------- clients


@dataclass
class ClientRun:
    """What the clients measured: wall clock, per-call latencies, and when each port's create was sent."""

    elapsed: float
    latencies: list[float]
    sent_at: dict[str, float]  # port id -> time.monotonic() just before its CreatePort


def run_clients(port: int, work: Sequence[Sequence[network_pb2.CreatePortRequest]]) -> ClientRun:
    """Each client sends its requests one after the other on its own channel; all start together."""
    clients = len(work)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sent: list[list[tuple[str, float]]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start_gate = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        # One channel per client, as separate orchestrator workers would have.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = network_pb2_grpc.NetworkServiceStub(ch)
            stub.ListNetworks(network_pb2.ListNetworksRequest(limit=1))  # connect before the clock starts
            start_gate.wait()
            mine, my_sent = latencies[i], sent[i]
            try:
                for req in work[i]:
                    t0 = time.monotonic()
                    created = stub.CreatePort(req)
                    mine.append(time.monotonic() - t0)
                    my_sent.append((created.id, t0))
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
    return ClientRun(elapsed, [x for lst in latencies for x in lst], dict(pair for lst in sent for pair in lst))


def deal(requests: list[network_pb2.CreatePortRequest], clients: int) -> list[list[network_pb2.CreatePortRequest]]:
    """Request i goes to client i % clients: every client's work spreads over the whole run."""
    return [requests[i::clients] for i in range(clients)]


def latency_metrics(prefix: str, run: ClientRun, ports: int) -> dict[str, float]:
    return {
        f"{prefix}creates_per_s": ports / run.elapsed,
        f"{prefix}p50_ms": percentile(run.latencies, 0.50) * 1000,
        f"{prefix}p99_ms": percentile(run.latencies, 0.99) * 1000,
        f"{prefix}max_ms": max(run.latencies) * 1000,
        f"{prefix}elapsed_s": run.elapsed,
    }


def cpu_budget(prefix: str, ports: int, total_cpu: float, clients_cpu: float) -> dict[str, float]:
    """The clients' and every process's CPU per create, and the rate that total allows on this machine."""
    total_ms = total_cpu / ports * 1000
    return {
        f"{prefix}clients_cpu_ms_per_create": clients_cpu / ports * 1000,
        f"{prefix}total_cpu_ms_per_create": total_ms,
        f"{prefix}cpu_ceiling_creates_per_s": (os.cpu_count() or 1) * 1000 / total_ms,
    }


def check_ports(stub: network_pb2_grpc.NetworkServiceStub, expected: int) -> list[resources_pb2.Port]:
    """Every port is there, and no IP or MAC was handed out twice on a network."""
    ports: list[resources_pb2.Port] = []
    token = ""
    while True:
        page = stub.ListPorts(network_pb2.ListPortsRequest(limit=1000, page_token=token))
        ports.extend(page.ports)
        token = page.next_page_token
        if not token:
            break
    if len(ports) != expected:
        raise RuntimeError(f"expected {expected} ports, found {len(ports)}")
    ips = {(p.network_id, p.fixed_ips[0].ip_address) for p in ports}
    macs = {(p.network_id, p.mac_address) for p in ports}
    if len(ips) != expected or len(macs) != expected:
        raise RuntimeError("duplicate IP or MAC allocated")
    return ports


# --------------------------------------------------------------------------- unbound


def unbound_round(ports: int, clients: int) -> dict[str, float]:
    workdir = tempfile.mkdtemp(prefix="lf-bench-")
    proc, port = start_controller(workdir)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = network_pb2_grpc.NetworkServiceStub(channel)
            net = stub.CreateNetwork(network_pb2.CreateNetworkRequest(network=resources_pb2.Network(name="bench")))
            stub.CreateSubnet(
                network_pb2.CreateSubnetRequest(subnet=resources_pb2.Subnet(network_id=net.id, cidr="10.20.0.0/16"))
            )
            rss_before = rss_mb(proc.pid)
            requests = [
                network_pb2.CreatePortRequest(
                    port=resources_pb2.Port(network_id=net.id, name=f"p{n}", device_owner="compute:nova")
                )
                for n in range(ports)
            ]
            load = load_average()
            cpu_before, clients_cpu_before = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
            run = run_clients(port, deal(requests, clients))
            cpu = cpu_seconds(proc.pid) - cpu_before
            clients_cpu = cpu_seconds(os.getpid()) - clients_cpu_before
            check_ports(stub, ports + 1)  # + the network's DHCP port
            return {
                **latency_metrics("unbound_", run, ports),
                "unbound_controller_cpu_ms_per_create": cpu / ports * 1000,
                **cpu_budget("unbound_", ports, cpu + clients_cpu, clients_cpu),
                "unbound_rss_mb": rss_mb(proc.pid),
                "unbound_rss_empty_mb": rss_before,
                "unbound_load_before": load,
            }
    finally:
        stop_child(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- light agents


@dataclass
class LightAgent:
    """One host's agent, minus the switch: registers, follows Sync, reports its new local ports.

    The stream is read on its own thread; every message is applied to the real
    agent's ``DesiredState`` (so a delta the agent cannot apply fails the run).
    """

    host: str
    channel: grpc.Channel
    state: DesiredState = field(default_factory=DesiredState)
    arrivals: dict[str, float] = field(default_factory=dict)  # local port id -> when it first arrived
    messages: int = 0
    last_message: float = 0.0  # time.monotonic() of the last message
    error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    opened: threading.Event = field(default_factory=threading.Event)
    call: grpc.Future | None = None

    @property
    def stub(self) -> agent_pb2_grpc.AgentServiceStub:
        return agent_pb2_grpc.AgentServiceStub(self.channel)

    def register(self, index: int) -> None:
        tunnel_ip = f"198.51.{100 + index // 250}.{index % 250 + 1}"
        self.stub.Register(agent_pb2.RegisterRequest(host=self.host, tunnel_ip=tunnel_ip, datapath_type="netdev"))

    def follow(self) -> None:
        stub = self.stub
        try:
            self.call = stub.Sync(agent_pb2.SyncRequest(host=self.host))
            for msg in self.call:
                now = time.monotonic()
                with self.lock:
                    known = set(self.state.ports)
                    self.state.apply(msg)
                    self.messages += 1
                    self.last_message = now
                    new = [pid for pid in self.state.ports if pid not in known]
                    for pid in new:
                        self.arrivals.setdefault(pid, now)
                self.opened.set()
                if new:
                    # What a real agent reports once the port's flows are in (see dataplane.agent.port_states).
                    states = [
                        agent_pb2.PortState(
                            port_id=pid,
                            flows_installed=True,
                            dhcp_ready=True,
                            metadata_ready=True,
                            revision=msg.revision,
                        )
                        for pid in new
                    ]
                    stub.ReportPortStatus(agent_pb2.PortStatusReport(host=self.host, ports=states), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = f"{exc.code()}: {exc.details()}"
        except Exception as exc:
            self.error = repr(exc)
        finally:
            self.opened.set()

    def snapshot(self) -> agent_pb2.SyncMessage:
        """A fresh snapshot of this host (a second stream with no position), then that stream is closed."""
        call = self.stub.Sync(agent_pb2.SyncRequest(host=self.host))
        try:
            return next(call)
        finally:
            call.cancel()


def _state_key(state: DesiredState) -> tuple:
    return (
        {cookie: tuple(flows) for cookie, flows in state.groups.items()},
        {g: (s.ingress_conj_id, s.egress_conj_id, frozenset(s.addresses)) for g, s in state.address_sets.items()},
        {pid: p.SerializeToString(deterministic=True) for pid, p in state.ports.items()},
        {nid: n.SerializeToString(deterministic=True) for nid, n in state.networks.items()},
        state.peers,
    )


def verify(agent: LightAgent, timeout: float) -> str:
    """Empty when the agent's delta-built state equals a fresh snapshot of its host; else what differs."""
    deadline = time.monotonic() + timeout
    while True:
        snap = agent.snapshot()
        fresh = DesiredState()
        fresh.apply(snap)
        with agent.lock:
            revision = agent.state.revision
            same = revision == fresh.revision and _state_key(agent.state) == _state_key(fresh)
        if same:
            return ""
        if time.monotonic() > deadline:
            return f"{agent.host}: agent at revision {revision}, snapshot at {fresh.revision}, states differ"
        time.sleep(0.1)


def run_agents(target: str, hosts: int) -> None:
    """(The agents' process.) Commands on stdin, one JSON answer per line on stdout.

    ``{"ready": true}`` once every host registered and its stream delivered the
    first snapshot; then ``settle`` -> {"last_message": t} once no message came
    for ``QUIET`` s, and ``verify`` -> {"errors": [...], "arrivals": {port: t}, "messages": n}.
    """
    # A connection per agent, as separate hosts have (channels to one target would otherwise share one).
    options = [("grpc.use_local_subchannel_pool", 1)]
    agents = [LightAgent(f"{HOST_PREFIX}{i:03d}", grpc.insecure_channel(target, options=options)) for i in range(hosts)]
    for i, agent in enumerate(agents):
        agent.register(i)
    for agent in agents:
        threading.Thread(target=agent.follow, name=agent.host, daemon=True).start()
    for agent in agents:
        agent.opened.wait(30)
    stopping = threading.Event()

    def heartbeats() -> None:
        # Every agent heartbeats every 2 s (the controller's interval), spread over the period.
        while not stopping.is_set():
            for agent in agents:
                with agent.lock:
                    revision = agent.state.revision
                try:
                    agent.stub.Heartbeat(agent_pb2.HeartbeatRequest(host=agent.host, applied_revision=revision))
                except grpc.RpcError:
                    pass
                if stopping.wait(2.0 / len(agents)):
                    return

    threading.Thread(target=heartbeats, name="heartbeats", daemon=True).start()
    errors = [f"{a.host}: {a.error or 'no snapshot'}" for a in agents if a.error or not a.state.complete]
    print(json.dumps({"ready": True, "errors": errors}), flush=True)
    for line in sys.stdin:
        if line.strip() == "settle":
            # Quiet for QUIET seconds: every delta the creates caused has arrived.
            count, last_change = -1, time.monotonic()
            while time.monotonic() - last_change < QUIET:
                now_count = sum(a.messages for a in agents)
                if now_count != count:
                    count, last_change = now_count, time.monotonic()
                time.sleep(0.01)
            last = max(a.last_message for a in agents)
            print(json.dumps({"errors": [], "last_message": last}), flush=True)
            continue
        if line.strip() != "verify":
            continue
        errors = [f"{a.host}: {a.error}" for a in agents if a.error]
        errors += [e for e in (verify(a, 60) for a in agents) if e]
        arrivals = {pid: t for a in agents for pid, t in a.arrivals.items()}
        print(
            json.dumps({"errors": errors, "arrivals": arrivals, "messages": sum(a.messages for a in agents)}),
            flush=True,
        )
    stopping.set()
    for agent in agents:
        if agent.call is not None:
            agent.call.cancel()
        agent.channel.close()


class AgentsProcess:
    """The light agents, in a process of their own (they must not share the clients' interpreter)."""

    def __init__(self, port: int, hosts: int) -> None:
        cmd = [sys.executable, __file__, "--agents-for", f"127.0.0.1:{port}", "--hosts", str(hosts)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect("ready")

    def _expect(self, what: str) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the agents' process exited before {what!r} (code {self.proc.wait()})")
        answer = json.loads(line)
        if answer["errors"]:
            raise RuntimeError(f"agents: {answer['errors'][:5]}")
        return answer

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._expect(command)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            stop_child(self.proc)


# --------------------------------------------------------------------------- bound


def place(ports: int, networks: int, hosts: int, seed: int = 11) -> tuple[list[tuple[int, int]], float]:
    """(network, host) of every port in creation order, and the mean number of hosts a create reaches.

    Port i is on network i % networks, on a random host; a create reaches every
    host that already has a port of its network, and its own.
    """
    rng = random.Random(seed)
    placement = [(i % networks, rng.randrange(hosts)) for i in range(ports)]
    spans: list[set[int]] = [set() for _ in range(networks)]
    reached = 0
    for net, host in placement:
        spans[net].add(host)
        reached += len(spans[net])
    return placement, reached / ports


def bound_round(ports: int, clients: int, hosts: int, networks: int) -> dict[str, float]:
    if networks > 250:
        subnet_of: Callable[[int], str] = lambda n: f"10.{n // 250}.{n % 250}.0/24"  # noqa: E731
    else:
        subnet_of = lambda n: f"10.{n}.0.0/16"  # noqa: E731
    workdir = tempfile.mkdtemp(prefix="lf-bench-")
    proc, port = start_controller(workdir)
    agents: AgentsProcess | None = None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = network_pb2_grpc.NetworkServiceStub(channel)
            net_ids = []
            for n in range(networks):
                net = stub.CreateNetwork(network_pb2.CreateNetworkRequest(network=resources_pb2.Network(name=f"n{n}")))
                stub.CreateSubnet(
                    network_pb2.CreateSubnetRequest(subnet=resources_pb2.Subnet(network_id=net.id, cidr=subnet_of(n)))
                )
                net_ids.append(net.id)
            agents = AgentsProcess(port, hosts)
            rss_before = rss_mb(proc.pid)
            placement, fanout = place(ports, networks, hosts)
            requests = [
                network_pb2.CreatePortRequest(
                    port=resources_pb2.Port(
                        network_id=net_ids[net],
                        name=f"p{i}",
                        device_owner="compute:nova",
                        binding_host_id=f"{HOST_PREFIX}{host:03d}",
                    )
                )
                for i, (net, host) in enumerate(placement)
            ]
            load = load_average()
            cpu_before, agents_cpu_before = cpu_seconds(proc.pid), cpu_seconds(agents.proc.pid)
            clients_cpu_before = cpu_seconds(os.getpid())
            run = run_clients(port, deal(requests, clients))
            clients_done = time.monotonic()
            settled = agents.ask("settle")
            # Until every agent holds its host's final state: the work a create causes, wherever it lands.
            cpu = cpu_seconds(proc.pid) - cpu_before
            agents_cpu = cpu_seconds(agents.proc.pid) - agents_cpu_before
            clients_cpu = cpu_seconds(os.getpid()) - clients_cpu_before
            busy_span = settled["last_message"] - min(run.sent_at.values())
            created = check_ports(stub, ports + networks)  # + a DHCP port per network
            seen = agents.ask("verify")
            rss = rss_mb(proc.pid)
            bound = {p.id for p in created if p.binding_host_id}
            missing = bound - set(seen["arrivals"])
            if missing:
                raise RuntimeError(f"{len(missing)} bound ports never reached their host, e.g. {sorted(missing)[:3]}")
            propagation = [seen["arrivals"][pid] - t0 for pid, t0 in run.sent_at.items()]
            return {
                **latency_metrics("bound_", run, ports),
                "bound_controller_cpu_ms_per_create": cpu / ports * 1000,
                "bound_agents_cpu_ms_per_create": agents_cpu / ports * 1000,
                **cpu_budget("bound_", ports, cpu + agents_cpu + clients_cpu, clients_cpu),
                "bound_controller_cores": cpu / busy_span,
                "bound_drain_ms": max(0.0, settled["last_message"] - clients_done) * 1000,
                "bound_propagation_p50_ms": percentile(propagation, 0.50) * 1000,
                "bound_propagation_p99_ms": percentile(propagation, 0.99) * 1000,
                "bound_fanout_mean": fanout,
                "bound_agent_messages": seen["messages"],
                "bound_rss_mb": rss,
                "bound_rss_empty_mb": rss_before,
                "bound_load_before": load,
            }
    finally:
        if agents is not None:
            agents.close()
        stop_child(proc)
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------- main

GOALS: dict[str, tuple[str, float] | None] = {
    "unbound_creates_per_s": (">=", 1000),
    "unbound_p50_ms": None,
    "unbound_p99_ms": ("<", 50),
    "unbound_max_ms": None,
    "unbound_rss_mb": ("<", 100),
    "unbound_controller_cpu_ms_per_create": None,
    "unbound_total_cpu_ms_per_create": None,
    "unbound_cpu_ceiling_creates_per_s": None,
    "bound_creates_per_s": (">=", 1000),
    "bound_p50_ms": None,
    "bound_p99_ms": ("<", 50),
    "bound_max_ms": None,
    "bound_drain_ms": None,
    "bound_propagation_p50_ms": None,
    "bound_propagation_p99_ms": None,
    "bound_rss_mb": None,
    "bound_controller_cpu_ms_per_create": None,
    "bound_agents_cpu_ms_per_create": None,
    "bound_clients_cpu_ms_per_create": None,
    "bound_total_cpu_ms_per_create": None,
    "bound_cpu_ceiling_creates_per_s": None,
    "bound_controller_cores": None,
    "bound_fanout_mean": None,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", default="unbound,bound")
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--networks", type=int, default=500)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--agents-for", default="", help=argparse.SUPPRESS)  # the light agents' process
    args = parser.parse_args()
    if args.agents_for:
        run_agents(args.agents_for, args.hosts)
        return

    cases: dict[str, Callable[[], dict[str, float]]] = {
        "unbound": lambda: unbound_round(args.ports, args.clients),
        "bound": lambda: bound_round(args.ports, args.clients, args.hosts, args.networks),
    }
    chosen = [c.strip() for c in args.cases.split(",") if c.strip()]
    summary: dict[str, float] = {}
    for case in chosen:
        rounds = []
        for r in range(args.rounds):
            result = cases[case]()
            rounds.append(result)
            print(
                f"{case} round {r + 1}: {result[f'{case}_creates_per_s']:.0f} creates/s, "
                f"p50 {result[f'{case}_p50_ms']:.2f} ms, p99 {result[f'{case}_p99_ms']:.2f} ms, "
                f"rss {result[f'{case}_rss_mb']:.1f} MB (load average before: {result[f'{case}_load_before']:.2f})",
                flush=True,
            )
        summary.update({key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]})
        summary[f"{case}_load_before_max"] = round(max(r[f"{case}_load_before"] for r in rounds), 3)
    summary.update(ports=args.ports, clients=args.clients, rounds=args.rounds)
    if "bound" in chosen:
        summary.update(hosts=args.hosts, networks=args.networks)
    width = max(len(key) for key in GOALS)
    print(f"\n{'metric':<{width}} {'median':>10}  goal")
    for key, goal in GOALS.items():
        if key in summary:
            goal_text = f"{goal[0]} {goal[1]:g}" if goal else ""
            print(f"{key:<{width}} {summary[key]:>10.2f}  {goal_text}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
