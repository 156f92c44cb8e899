"""Benchmark: the metadata path and dnsmasq, both as they ship.

* Metadata (``metadata_*``): requests/s and p99 at 16 concurrent clients in a "VM" namespace, through the
  agent's metadata proxy (``MetadataProxyManager``, as ``dataplane.agent`` runs it) to the metadata service
  inside ``loom-controller`` (``controller.app`` with ``--metadata-listen``; the instance and its port are
  created through the API). ``wrk`` is the load generator; it is first measured against a trivial server
  with the same connection pattern (``loadgen_trivial_*``), to show it is not the limit.
* dnsmasq at 5,000 hosts in one network, run by the agent's ``DhcpManager`` with the agent's options (every
  DHCP request logged): memory, adding a host, a SIGHUP reload (``dnsmasq_reload_stall_ms``: the longest a
  client is left unanswered), a crash (``dnsmasq_restart_5000_hosts_ms``: SIGKILL until the supervisor's
  new dnsmasq offers again), and ``dhcp_start_5000_hosts_ms``: an agent starting with such a network,
  from its sync until dnsmasq offers the last host (``*_sync_ms``: the agent's part alone).
* On the Loom lab with its controller and agents: ``dhcp_p50_ms``/``dhcp_p99_ms``, from a port turning
  ACTIVE to a completed lease of a real client.

Run as root: ``.venv/bin/python bench/dhcp_metadata.py [--only measure_dnsmasq,...] [--lab-prefix labh]``.
Prints a table and writes ``bench/results/dhcp_metadata.json`` (metric -> number). Needs ``wrk``.
Each measurement is a function returning ``{metric: value}``, listed in ``MEASUREMENTS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from bench.stats import percentile  # noqa: E402
from controller.ready_file import ControllerNotReady, wait_ready_file  # noqa: E402
from dataplane.common.supervise import find_processes, stop_child, terminate  # noqa: E402
from dhcp.manager import DhcpManager  # noqa: E402
from dhcp.model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig  # noqa: E402
from lab.mininet.prober import checksum  # noqa: E402
from metadata_proxy.manager import MetadataProxyManager  # noqa: E402
from metadata_proxy.model import MetadataIdentity, MetadataNetwork  # noqa: E402
from protos.loom.v1 import compute_pb2, compute_pb2_grpc, network_pb2, network_pb2_grpc, resources_pb2  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dhcp_metadata.json"
REPEATS = 3
WRK_SECONDS = 5
CONCURRENCY = 16
HOSTS = 5000
PYTHON = sys.executable

Metrics = dict[str, float]


# ---------------------------------------------------------------------- namespaces


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=120)


@dataclass(slots=True)
class Pair:
    """A "localport" namespace and a "VM" namespace joined by one veth pair."""

    localport: str
    vm: str
    localport_if: str = "lp0"
    vm_if: str = "eth0"


@contextlib.contextmanager
def namespace_pair(prefix: str, localport_addrs: list[str], vm_addrs: list[str], vm_mac: str) -> Iterator[Pair]:
    tag = prefix + secrets.token_hex(2)
    pair = Pair(f"{tag}-lp", f"{tag}-vm")
    try:
        for ns in (pair.localport, pair.vm):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        veth = ["link", "add", pair.localport_if, "type", "veth", "peer", "name", pair.vm_if, "netns", pair.vm]
        sh("ip", "-n", pair.localport, *veth)
        sh("ip", "-n", pair.vm, "link", "set", pair.vm_if, "address", vm_mac)
        for ns, ifname, addrs in (
            (pair.localport, pair.localport_if, localport_addrs),
            (pair.vm, pair.vm_if, vm_addrs),
        ):
            for addr in addrs:
                sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname)
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            sh("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off", check=False)
        yield pair
    finally:
        for ns in (pair.vm, pair.localport):
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)


# ---------------------------------------------------------------------- wrk


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    p99_ms: float
    errors: int
    requests: int


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(namespace: str, url: str, keep_alive: bool, seconds: int = WRK_SECONDS) -> WrkResult:
    args = ["ip", "netns", "exec", namespace, "wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency"]
    if not keep_alive:
        args += ["-H", "Connection: close"]  # a new TCP connection per request, like curl or cloud-init
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return WrkResult(rps, p99, errors + (int(non2xx.group(1)) if non2xx else 0), requests)


def median_wrk(namespace: str, url: str, keep_alive: bool) -> WrkResult:
    runs = [wrk(namespace, url, keep_alive) for _ in range(REPEATS)]
    return WrkResult(
        statistics.median(r.rps for r in runs),
        statistics.median(r.p99_ms for r in runs),
        sum(r.errors for r in runs),
        sum(r.requests for r in runs),
    )


def run_paced_client(host: str, port: int, path: str, rate: float, concurrency: int, seconds: float) -> None:
    """(Run inside the VM namespace.) ``concurrency`` clients sharing ``rate`` req/s, a connection per request;
    prints the latency percentiles as JSON. Latency counts from when a request was due, so a stall also
    counts for the requests it delayed."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    latencies: list[float] = []
    failures = 0

    async def worker(k: int, start: float) -> None:
        nonlocal failures
        interval = concurrency / rate
        n = 0
        while (due := start + k * interval / concurrency + n * interval) - start < seconds:
            n += 1
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                ok = (await reader.read()).startswith(b"HTTP/1.1 200")
                writer.close()
            except OSError:
                ok = False
            latencies.append(time.perf_counter() - due)
            failures += not ok

    async def main() -> None:
        start = time.perf_counter() + 0.1
        await asyncio.gather(*(worker(k, start) for k in range(concurrency)))

    asyncio.run(main())
    summary = {
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }
    print(json.dumps(summary))


def paced(namespace: str, host: str, port: int, path: str, rate: float, seconds: float = 5.0) -> dict[str, float]:
    """Latency at a fixed offered load (``rate`` req/s from ``CONCURRENCY`` clients, a connection per request)."""
    args = [host, str(port), path, str(rate), str(CONCURRENCY), str(seconds)]
    command = ["ip", "netns", "exec", namespace, PYTHON, __file__, "--paced-client", *args]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return json.loads(out)


def run_trivial_server(ip: str, port: int) -> None:
    """(Run inside the localport namespace.) A fixed-answer HTTP/1.1 server: the load generator's yardstick."""
    body = b"inst-0000"
    keep = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    close = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)

    class Trivial(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while b"\r\n\r\n" in self.buffer:
                head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
                if b"connection: close" in head.lower():
                    self.transport.write(close)
                    self.transport.close()
                    return
                self.transport.write(keep)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Trivial, ip, port, reuse_port=True, backlog=1024)
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def trivial_servers(namespace: str, ip: str, port: int, workers: int = 2) -> Iterator[None]:
    """A fixed-answer HTTP server (``workers`` processes on one SO_REUSEPORT port): the load generator's yardstick."""
    procs = [
        subprocess.Popen(
            ["ip", "netns", "exec", namespace, PYTHON, __file__, "--trivial-server", ip, str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- metadata


@dataclass
class MetadataController:
    """``loom-controller`` serving metadata, with one instance and its port stored through the API."""

    proc: subprocess.Popen[bytes]
    metadata_port: int
    network_id: str
    port_id: str
    instance_id: str
    project_id: str


@contextlib.contextmanager
def metadata_controller(workdir: Path, secret_file: Path) -> Iterator[MetadataController]:
    """The shipped controller (``controller.app``: API, distributor and the metadata service in one process)."""
    metadata_port = _free_port()
    ready, log_path = workdir / "ready", workdir / "controller.log"
    cmd = [PYTHON, "-m", "controller.app", "--listen", "127.0.0.1:0", "--db", str(workdir / "controller.db")]
    cmd += ["--metadata-listen", f"127.0.0.1:{metadata_port}", "--metadata-secret-file", str(secret_file)]
    cmd += ["--ready-file", str(ready), "--log-level", "WARNING"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log)
    try:
        try:
            api_port = wait_ready_file(proc, str(ready), 30, str(log_path))
        except ControllerNotReady:
            proc.kill()
            raise
        with grpc.insecure_channel(f"127.0.0.1:{api_port}") as channel:
            network = network_pb2_grpc.NetworkServiceStub(channel)
            compute = compute_pb2_grpc.ComputeServiceStub(channel)
            project = "proj-1"
            net = network.CreateNetwork(
                network_pb2.CreateNetworkRequest(network=resources_pb2.Network(name="md", mtu=1450, project_id=project))
            )
            subnet = network.CreateSubnet(
                network_pb2.CreateSubnetRequest(
                    subnet=resources_pb2.Subnet(network_id=net.id, cidr="10.0.0.0/24", gateway_ip="10.0.0.1")
                )
            )
            instance = compute.CreateInstance(
                compute_pb2.CreateInstanceRequest(
                    instance=resources_pb2.Instance(
                        name="bench", hostname="bench", project_id=project, user_data=b"#cloud-config\n"
                    )
                )
            )
            port = network.CreatePort(
                network_pb2.CreatePortRequest(
                    port=resources_pb2.Port(
                        network_id=net.id,
                        mac_address="fa:16:3e:00:00:0a",
                        fixed_ips=[resources_pb2.FixedIP(subnet_id=subnet.id, ip_address="10.0.0.10")],
                        device_id=instance.id,
                        device_owner="compute:nova",
                        project_id=project,
                    )
                )
            )
        yield MetadataController(proc, metadata_port, net.id, port.id, instance.id, project)
    finally:
        stop_child(proc)


def measure_metadata() -> Metrics:
    """The metadata path as it ships: a VM's request -> the agent's metadata proxy -> ``loom-controller``."""
    secret = secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="lm-bench-", dir="/dev/shm"))
    (workdir / "secret").write_text(secret)
    proxy: MetadataProxyManager | None = None
    metrics: Metrics = {}
    try:
        with (
            metadata_controller(workdir, workdir / "secret") as ctl,
            namespace_pair("lm", ["10.0.0.2/24", "169.254.169.254/32"], ["10.0.0.10/24"], "fa:16:3e:00:00:0a") as pair,
        ):
            _wait_port("127.0.0.1", ctl.metadata_port)
            sh("ip", "-n", pair.vm, "route", "add", "169.254.169.254/32", "via", "10.0.0.2")
            # 16 clients opening a connection per request from one address leave tens of thousands of TIME_WAIT
            # sockets, and connect() then spends milliseconds searching for a free port: the load generator's
            # limit, not the proxy's. Reusing TIME_WAIT ports for new outgoing connections removes it.
            sh("ip", "netns", "exec", pair.vm, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
            # The proxy as the agent runs it (dataplane.agent: MetadataProxyManager under the run directory).
            proxy = MetadataProxyManager(workdir / "proxy", f"http://127.0.0.1:{ctl.metadata_port}", secret)
            proxy.start()
            identity = MetadataIdentity("10.0.0.10", ctl.port_id, ctl.instance_id, ctl.project_id)
            proxy.sync([MetadataNetwork(ctl.network_id, pair.localport, (identity,), (ctl.port_id,))])
            assert proxy.metadata_ready(ctl.port_id)
            url = "http://169.254.169.254/latest/meta-data/instance-id"
            check = sh("ip", "netns", "exec", pair.vm, "curl", "-s", url).stdout
            assert check == ctl.instance_id, check
            for keep_alive, suffix in ((False, ""), (True, "_keepalive")):
                served_before = int(proxy.status()["requests"])  # type: ignore[call-overload]
                result = median_wrk(pair.vm, url, keep_alive)
                served = int(proxy.status()["requests"]) - served_before  # type: ignore[call-overload]
                # Every request wrk counted went through the proxy (wrk may count a few in flight at the end).
                assert abs(served - result.requests) <= REPEATS * CONCURRENCY, (served, result.requests)
                metrics[f"metadata_rps{suffix}"] = round(result.rps)
                metrics[f"metadata_p99_ms{suffix}"] = round(result.p99_ms, 2)
                metrics[f"metadata_errors{suffix}"] = result.errors
            # The goal's load (1,000 req/s, 16 clients), offered at a steady pace rather than as fast as possible.
            runs = [
                paced(pair.vm, "169.254.169.254", 80, "/latest/meta-data/instance-id", 1000) for _ in range(REPEATS)
            ]
            metrics["metadata_p99_ms_at_1000rps"] = round(statistics.median(r["p99_ms"] for r in runs), 2)
            metrics["metadata_p50_ms_at_1000rps"] = round(statistics.median(r["p50_ms"] for r in runs), 2)
            metrics["metadata_failures_at_1000rps"] = sum(r["failures"] for r in runs)
            with trivial_servers(pair.localport, "10.0.0.2", 8080):
                for keep_alive, suffix in ((False, ""), (True, "_keepalive")):
                    result = median_wrk(pair.vm, "http://10.0.0.2:8080/", keep_alive)
                    metrics[f"loadgen_trivial_rps{suffix}"] = round(result.rps)
                    metrics[f"loadgen_trivial_p99_ms{suffix}"] = round(result.p99_ms, 2)
            proxy.sync([])
    finally:
        if proxy is not None:
            proxy.close(stop_proxy=True)
        shutil.rmtree(workdir, ignore_errors=True)
    return metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------------- DHCP probe


_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
ETH_P_IP = 0x0800


def raw_socket_in(namespace: str, interface: str) -> socket.socket:
    """An AF_PACKET socket on ``interface`` inside ``namespace`` (created by a thread that enters it)."""
    out: list[socket.socket] = []

    def create() -> None:
        fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        sock.bind((interface, 0))
        out.append(sock)

    thread = threading.Thread(target=create)
    thread.start()
    thread.join()
    return out[0]


def dhcp_discover(src_mac: bytes, client_mac: bytes, xid: int) -> bytes:
    options = bytes([53, 1, 1, 55, 5, 1, 3, 6, 26, 121, 255])
    bootp = (
        struct.pack(
            "!BBBBIHH4s4s4s4s16s64s128s4s",
            1,
            1,
            6,
            0,
            xid,
            0,
            0x8000,
            b"\0" * 4,
            b"\0" * 4,
            b"\0" * 4,
            b"\0" * 4,
            client_mac,
            b"",
            b"",
            bytes([99, 130, 83, 99]),
        )
        + options
    )
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b"\0" * 4, b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return b"\xff" * 6 + src_mac + b"\x08\x00" + ip + udp


def probe_offer(sock: socket.socket, src_mac: bytes, client_mac: bytes, timeout: float = 2.0) -> float | None:
    """Send a DHCPDISCOVER for ``client_mac``; seconds until its DHCPOFFER (None: no offer in time)."""
    xid = secrets.randbits(32)
    started = time.perf_counter()
    sock.send(dhcp_discover(src_mac, client_mac, xid))
    deadline = started + timeout
    while (left := deadline - time.perf_counter()) > 0:
        sock.settimeout(left)
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            return None
        if _offer_xid(frame) == xid:
            return time.perf_counter() - started
    return None


def first_offer(sock: socket.socket, src_mac: bytes, client_mac: bytes, timeout: float, every: float = 0.005) -> float:
    """time.perf_counter() when dnsmasq first offers ``client_mac``: a DISCOVER every ``every`` s until it answers.

    Any of the DISCOVERs sent may be the one answered (a starting dnsmasq may answer a late one first).
    """
    xids: set[int] = set()
    deadline = time.perf_counter() + timeout
    next_send = 0.0
    while (now := time.perf_counter()) < deadline:
        if now >= next_send:
            xid = secrets.randbits(32)
            xids.add(xid)
            sock.send(dhcp_discover(src_mac, client_mac, xid))
            next_send = now + every
        sock.settimeout(max(0.0005, min(next_send, deadline) - time.perf_counter()))
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        if _offer_xid(frame) in xids:
            return time.perf_counter()
    raise AssertionError(f"dnsmasq did not offer {client_mac.hex(':')} within {timeout} s")


def stall_during(
    sock: socket.socket, src_mac: bytes, client_mac: bytes, action: Callable[[], object], window: float = 1.0
) -> float:
    """The longest time dnsmasq answers nothing while asked every 2 ms, from ``action`` to ``window`` s after it.

    ``window`` must exceed what is measured; dnsmasq must answer before it ends.
    """
    sent: set[int] = set()
    every = 0.002
    started = time.perf_counter()
    answers = [started]
    next_send = started
    while (now := time.perf_counter()) < started + window:
        if now >= next_send:
            xid = secrets.randbits(32)
            sock.send(dhcp_discover(src_mac, client_mac, xid))
            sent.add(xid)
            if len(sent) == 1:
                action()
            next_send += every
        sock.settimeout(max(0.0005, next_send - time.perf_counter()))
        try:
            frame = sock.recv(2048)
        except TimeoutError:
            continue
        if _offer_xid(frame) in sent:
            answers.append(time.perf_counter())
    worst = max(b - a for a, b in itertools.pairwise(answers))
    assert answers[-1] - started > worst and worst < window * 0.8, f"stall {worst:.3f} s: widen the window"
    return worst


def _offer_xid(frame: bytes) -> int | None:
    """The transaction id of a DHCPOFFER to the client port, else None."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    udp = frame[14 + ihl :]
    bootp = udp[8:]
    if struct.unpack("!H", udp[2:4])[0] != 68 or bootp[0] != 2 or b"\x35\x01\x02" not in bootp[240:]:
        return None
    return struct.unpack("!I", bootp[4:8])[0]


# ---------------------------------------------------------------------- dnsmasq at 5,000 hosts


def _mac(i: int) -> str:
    return f"fa:16:3e:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def _host(i: int) -> DhcpHostEntry:
    return DhcpHostEntry(f"port-{i:05d}", _mac(i), (f"10.1.{(i + 10) >> 8}.{(i + 10) & 0xFF}",), f"vm-{i}")


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _cpu_settled(pid: int, quiet: float = 0.1, timeout: float = 10.0) -> float:
    """The process's CPU time once it has not grown for ``quiet`` seconds (it finished what it was doing)."""
    deadline = time.monotonic() + timeout
    last, since = _cpu_ms(pid), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"process {pid} still busy after {timeout} s"
        time.sleep(0.01)
        now = _cpu_ms(pid)
        if now != last:
            last, since = now, time.monotonic()
    return last


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _dnsmasq_at_scale(manager: DhcpManager, pair: Pair, vm_mac: str) -> Metrics:
    metrics: Metrics = {}
    subnet = DhcpSubnetConfig(subnet_id="sub-1", cidr="10.1.0.0/16", server_ip="10.1.0.2", gateway_ip="10.1.0.1")
    config = DhcpNetworkConfig("net-1", pair.localport, pair.localport_if, (subnet,), mtu=1450)
    manager.sync([config], {"net-1": []})
    empty_pid = manager.pid("net-1")
    assert empty_pid is not None
    metrics["dnsmasq_rss_mb_0_hosts"] = round(_rss_mb(empty_pid), 2)
    manager.sync([], {})
    # An agent starting with a network of 5,000 ports: write every host file, start dnsmasq, and dnsmasq
    # answers (for the last host, so it has read them all). The clock stops at its first DHCPOFFER.
    hosts = [_host(i) for i in range(HOSTS)]
    sock = raw_socket_in(pair.vm, pair.vm_if)
    src = bytes.fromhex(vm_mac.replace(":", ""))
    last_mac = bytes.fromhex(_mac(HOSTS - 1).replace(":", ""))
    started = time.perf_counter()
    manager.sync([config], {"net-1": hosts})
    synced = time.perf_counter()
    answered = first_offer(sock, src, last_mac, timeout=30)
    metrics["dhcp_start_5000_hosts_ms"] = round((answered - started) * 1000, 1)
    metrics["dhcp_start_5000_hosts_sync_ms"] = round((synced - started) * 1000, 1)
    pid = manager.pid("net-1")
    assert pid is not None
    time.sleep(0.5)
    metrics["dnsmasq_rss_mb_5000_hosts"] = round(_rss_mb(pid), 2)

    offers = [probe_offer(sock, src, bytes.fromhex(_mac(i * 97 % HOSTS).replace(":", ""))) for i in range(50)]
    assert all(o is not None for o in offers)
    metrics["dnsmasq_offer_ms_5000_hosts"] = round(statistics.median(offers) * 1000, 3)  # type: ignore[type-var]

    # Adding one host: agent sync (render, diff, one file written) + dnsmasq's inotify read + the offer.
    add_total, add_sync = [], []
    for k in range(20):
        new = _host(HOSTS + k)
        hosts.append(new)
        started = time.perf_counter()
        manager.sync([config], {"net-1": hosts})
        synced = time.perf_counter()
        offer = probe_offer(sock, src, bytes.fromhex(new.mac.replace(":", "")))
        assert offer is not None, "new host not offered"
        add_sync.append(synced - started)
        add_total.append(synced - started + offer)
    assert manager.pid("net-1") == pid, "adding hosts restarted dnsmasq"
    metrics["dhcp_sync_add_one_ms"] = round(statistics.median(add_sync) * 1000, 2)
    metrics["dnsmasq_add_host_ms"] = round(statistics.median(add_total) * 1000, 2)

    # A SIGHUP reload (dnsmasq rereads every host file): how long a client's DISCOVER waits at worst while it
    # runs. Offers cannot time the reload from SIGHUP alone: dnsmasq may answer a packet already queued
    # before it gets to the signal (seen here: an offer 0.8 ms after SIGHUP, then 180 ms of reload).
    reload_stall, reload_cpu = [], []
    any_mac = bytes.fromhex(_mac(1234).replace(":", ""))
    for _ in range(10):
        reload_stall.append(stall_during(sock, src, any_mac, lambda: os.kill(pid, signal.SIGHUP)))
        # Its CPU apart, without the probes' packets (each answered and logged).
        cpu_before = _cpu_ms(pid)
        os.kill(pid, signal.SIGHUP)
        reload_cpu.append(_cpu_settled(pid) - cpu_before)
    metrics["dnsmasq_reload_stall_ms"] = round(statistics.median(reload_stall) * 1000, 1)
    metrics["dnsmasq_reload_cpu_ms"] = round(statistics.median(reload_cpu), 1)

    # Removing one host costs a reload too (plus the agent's sync).
    hosts.pop()
    started = time.perf_counter()
    manager.sync([config], {"net-1": hosts})
    metrics["dhcp_sync_remove_one_ms"] = round((time.perf_counter() - started) * 1000, 2)

    # dnsmasq killed: the agent's supervisor starts a new one (at once, for a first crash), which reads the
    # 5,000 host files; the clock stops at its first offer. The lab's tests check it happens, this how fast.
    pid = manager.pid("net-1")
    assert pid is not None
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    answered = first_offer(sock, src, any_mac, timeout=30)
    assert manager.pid("net-1") not in (None, pid)
    metrics["dnsmasq_restart_5000_hosts_ms"] = round((answered - killed) * 1000, 1)
    sock.close()
    return metrics


def measure_dnsmasq() -> Metrics:
    metrics: Metrics = {}
    # The agent's state belongs on tmpfs (/run on a normal host: it must survive agent restarts, not reboots).
    # On this machine /run and /tmp are ext4 on a shared disk where creating a file takes 50-700 us depending
    # on the neighbours' I/O; /dev/shm is the tmpfs that stands for /run here.
    workdir = Path(tempfile.mkdtemp(prefix="ld-bench-", dir="/dev/shm"))
    workdir.chmod(0o755)
    vm_mac = "fa:16:3e:ff:ff:01"
    manager = DhcpManager(workdir / "dhcp")  # as the agent runs it (dataplane.agent): DHCP requests logged
    manager.start()
    try:
        with namespace_pair("ld", ["10.1.0.2/16"], [], vm_mac) as pair:
            try:
                metrics.update(_dnsmasq_at_scale(manager, pair, vm_mac))
            finally:
                manager.sync([], {})  # before the namespace goes, or the supervisor would restart dnsmasq
    finally:
        manager.close(stop_dnsmasq=True)
        for pid in _dnsmasq_under(workdir):
            terminate(pid)
        shutil.rmtree(workdir, ignore_errors=True)
    return metrics


def _dnsmasq_under(workdir: Path) -> list[int]:
    marker = f"--pid-file={workdir}/"
    return list(find_processes(lambda argv: any(a.startswith(marker) for a in argv)))


# ---------------------------------------------------------------------- main

DHCP_PORTS = 50


# The lab measure_dhcp_after_active starts: its names and management range must not be another running lab's
# (check ``ip netns list | grep ^labh``), so both can be changed (``--lab-prefix``, ``--lab-mgmt-cidr``).
LAB_PREFIX = "labh"
LAB_MGMT_CIDR = "198.18.6.0/24"


def measure_dhcp_after_active() -> Metrics:
    """On the Loom lab: from a port turning ACTIVE (seen on Watch) to a completed lease of a real client.

    The client starts the moment Watch shows the port ACTIVE; the lease is complete when the DHCPACK
    arrives on the VM's interface (captured there). Two real clients, reported apart:

    - ISC dhclient (``dhcp_p50_ms``, ``dhcp_p99_ms``);
    - busybox udhcpc (``dhcp_udhcpc_*``). It opens and binds a new AF_PACKET socket for every packet it
      sends, and such a bind waits for an RCU grace period: 10-40 ms here, where the "VMs" share the
      host's busy kernel. That wait is the client's, not the server's: ``*_exchange_*`` shows the four
      packets, and dnsmasq answers each request within a millisecond.
    """
    from scapy.layers.dhcp import DHCP
    from scapy.layers.l2 import Ether

    from lab.mininet import guest
    from lab.mininet.config import LabConfig
    from lab.mininet.loom import LoomLab

    def message_type(frame: bytes) -> int:
        packet = Ether(frame)
        options = dict(o for o in packet[DHCP].options if isinstance(o, tuple)) if DHCP in packet else {}
        return int(options.get("message-type", 0))

    def run_client(client: str, netns: str, record: Path) -> str | None:
        if client == "dhclient":
            lease = guest.dhclient(netns, "eth0", record)
            return lease.get("new_ip_address") if lease else None
        lease, _ = guest.udhcpc(netns, "eth0", record, tries=1)
        return lease.get("ip") if lease else None

    config = LabConfig(hypervisors=2, prefix=LAB_PREFIX, mgmt_cidr=LAB_MGMT_CIDR)
    metrics: Metrics = {"dhcp_ports": DHCP_PORTS}
    with LoomLab(config=config) as loom, tempfile.TemporaryDirectory(prefix="ld-bench-") as tmp:
        os.chmod(tmp, 0o755)
        net = loom.create_network("dhcpbench", "10.0.0.0/22")
        for client, key in (("dhclient", "dhcp"), ("udhcpc", "dhcp_udhcpc")):
            to_lease, client_start, exchange = [], [], []
            for i in range(DHCP_PORTS):
                name = f"{client[:2]}{i}"
                port = loom.create_port(net, f"hv{i % 2 + 1}", name)
                vm = loom.plug(name, port, static_ip=False)
                with guest.Capture(vm.netns, "udp port 67 or udp port 68") as cap:
                    loom.wait_port(port.id)  # returns the moment Watch shows ACTIVE
                    active = time.time()
                    got = run_client(client, vm.netns, Path(tmp) / name)
                if got != port.fixed_ips[0].ip_address:
                    raise RuntimeError(f"{client} on port {i}: leased {got}, wanted {port.fixed_ips[0].ip_address}")
                kinds = [message_type(f) for f in cap.frames]
                discover, ack = cap.times[kinds.index(1)], cap.times[kinds.index(5)]
                to_lease.append((ack - active) * 1000)
                client_start.append((discover - active) * 1000)
                exchange.append((ack - discover) * 1000)
                loom.lab.remove_vm(name)
            metrics.update(
                {
                    f"{key}_p50_ms": round(percentile(to_lease, 0.5), 2),
                    f"{key}_p99_ms": round(percentile(to_lease, 0.99), 2),
                    f"{key}_client_start_p50_ms": round(percentile(client_start, 0.5), 2),
                    f"{key}_exchange_p50_ms": round(percentile(exchange, 0.5), 2),
                    f"{key}_exchange_p99_ms": round(percentile(exchange, 0.99), 2),
                }
            )
    return metrics


MEASUREMENTS: list[Callable[[], Metrics]] = [measure_dhcp_after_active, measure_metadata, measure_dnsmasq]


def main() -> None:
    if sys.argv[1:2] == ["--trivial-server"]:
        run_trivial_server(sys.argv[2], int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--paced-client"]:
        host, port, path, rate, concurrency, seconds = sys.argv[2:8]
        run_paced_client(host, int(port), path, float(rate), int(concurrency), float(seconds))
        return
    global LAB_PREFIX, LAB_MGMT_CIDR
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [m.__name__ for m in MEASUREMENTS]
    parser.add_argument("--only", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    parser.add_argument("--lab-prefix", default=LAB_PREFIX)
    parser.add_argument("--lab-mgmt-cidr", default=LAB_MGMT_CIDR)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    LAB_PREFIX, LAB_MGMT_CIDR = args.lab_prefix, args.lab_mgmt_cidr
    if os.geteuid() != 0:
        sys.exit("bench/dhcp_metadata.py needs root (namespaces)")
    if shutil.which("wrk") is None:
        sys.exit("bench/dhcp_metadata.py needs wrk (apt-get install wrk)")
    chosen = args.only.split(",")
    results: Metrics = {}
    for measure in MEASUREMENTS:
        if measure.__name__ not in chosen:
            continue
        started = time.monotonic()
        results.update(measure())
        print(f"# {measure.__name__}: {time.monotonic() - started:.1f} s", file=sys.stderr)
    width = max(len(k) for k in results)
    print(f"{'metric':<{width}}  value")
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    tmp.replace(args.output)


if __name__ == "__main__":
    main()
