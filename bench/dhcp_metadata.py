"""Benchmark: the metadata path (requests/s and p99 at 16 concurrent clients through the proxy, the service in
the loop) and dnsmasq at 5,000 hosts in one network (memory, cost of adding a host, cost of a SIGHUP reload).

Run as root: ``.venv/bin/python bench/dhcp_metadata.py``. Prints a table and writes
``bench/results/dhcp_metadata.json`` (metric -> number). Needs ``wrk`` (Debian package) as the load generator;
it is first measured against a trivial server with the same connection pattern, to show it is not the limit.

Each measurement is a function returning ``{metric: value}``, listed in ``MEASUREMENTS``; the lab part
(``dhcp_p50_ms``/``dhcp_p99_ms``: from a port turning ACTIVE to a completed lease of a real client, on
the Loom lab with its controller and agents) is one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
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

from bench.stats import percentile  # noqa: E402
from controller.metadata.source import DictMetadataSource  # noqa: E402
from controller.model import FixedIP, Instance, Network, Port, Subnet  # noqa: E402
from dataplane.common.supervise import find_processes, terminate  # noqa: E402
from dhcp.manager import DhcpManager  # noqa: E402
from dhcp.model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig  # noqa: E402
from lab.mininet.prober import checksum  # noqa: E402
from metadata_proxy.manager import MetadataProxyManager  # noqa: E402
from metadata_proxy.model import MetadataIdentity, MetadataNetwork  # noqa: E402

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


def measure_metadata() -> Metrics:
    secret = secrets.token_hex(16)
    workdir = Path(tempfile.mkdtemp(prefix="lm-bench-", dir="/dev/shm"))
    source = DictMetadataSource().add(
        Network(id="net-1", mtu=1450),
        Subnet(id="sub-1", network_id="net-1", cidr="10.0.0.0/24", gateway_ip="10.0.0.1"),
        Port(
            id="port-1",
            network_id="net-1",
            mac_address="fa:16:3e:00:00:0a",
            fixed_ips=(FixedIP("sub-1", "10.0.0.10"),),
            device_id="inst-1",
            device_owner="compute:nova",
        ),
        Instance(id="inst-1", name="bench", hostname="bench", project_id="proj-1", user_data=b"#cloud-config\n"),
    )
    (workdir / "source.json").write_text(source.to_json())
    (workdir / "secret").write_text(secret)
    service_port = _free_port()
    service_args = ["--source", str(workdir / "source.json"), "--secret-file", str(workdir / "secret")]
    service = subprocess.Popen(
        [PYTHON, "-m", "controller.metadata", *service_args, "--port", str(service_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy: MetadataProxyManager | None = None
    metrics: Metrics = {}
    try:
        _wait_port("127.0.0.1", service_port)
        with namespace_pair("lm", ["10.0.0.2/24", "169.254.169.254/32"], ["10.0.0.10/24"], "fa:16:3e:00:00:0a") as pair:
            sh("ip", "-n", pair.vm, "route", "add", "169.254.169.254/32", "via", "10.0.0.2")
            # 16 clients opening a connection per request from one address leave tens of thousands of TIME_WAIT
            # sockets, and connect() then spends milliseconds searching for a free port: the load generator's
            # limit, not the proxy's. Reusing TIME_WAIT ports for new outgoing connections removes it.
            sh("ip", "netns", "exec", pair.vm, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1")
            proxy = MetadataProxyManager(workdir / "proxy", f"http://127.0.0.1:{service_port}", secret)
            proxy.start()
            identity = MetadataIdentity("10.0.0.10", "port-1", "inst-1", "proj-1")
            proxy.sync([MetadataNetwork("net-1", pair.localport, (identity,), ("port-1",))])
            assert proxy.metadata_ready("port-1")
            url = "http://169.254.169.254/latest/meta-data/instance-id"
            check = sh("ip", "netns", "exec", pair.vm, "curl", "-s", url).stdout
            assert check == "inst-1", check
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
    finally:
        if proxy is not None:
            proxy.sync([])
            proxy.close(stop_proxy=True)
        service.terminate()
        service.wait()
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
        if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        udp = frame[14 + ihl :]
        bootp = udp[8:]
        if struct.unpack("!H", udp[2:4])[0] != 68 or bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid:
            continue
        if b"\x35\x01\x02" in bootp[240:]:  # option 53 = OFFER
            return time.perf_counter() - started
    return None


# ---------------------------------------------------------------------- dnsmasq at 5,000 hosts


def _mac(i: int) -> str:
    return f"fa:16:3e:{(i >> 16) & 0xFF:02x}:{(i >> 8) & 0xFF:02x}:{i & 0xFF:02x}"


def _host(i: int) -> DhcpHostEntry:
    return DhcpHostEntry(f"port-{i:05d}", _mac(i), (f"10.1.{(i + 10) >> 8}.{(i + 10) & 0xFF}",), f"vm-{i}")


def _cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


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
    # An agent starting with a network of 5,000 ports: write every host file, then start dnsmasq.
    hosts = [_host(i) for i in range(HOSTS)]
    started = time.perf_counter()
    manager.sync([config], {"net-1": hosts})
    metrics["dhcp_start_5000_hosts_ms"] = round((time.perf_counter() - started) * 1000, 1)
    pid = manager.pid("net-1")
    assert pid is not None
    sock = raw_socket_in(pair.vm, pair.vm_if)
    src = bytes.fromhex(vm_mac.replace(":", ""))
    deadline = time.monotonic() + 30
    while probe_offer(sock, src, bytes.fromhex(_mac(HOSTS - 1).replace(":", "")), 0.5) is None:
        assert time.monotonic() < deadline, "dnsmasq never offered the last host"
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

    # A SIGHUP reload: dnsmasq handles the signal before the next packet, so SIGHUP -> offer is its cost.
    reload_wall, reload_cpu = [], []
    any_mac = bytes.fromhex(_mac(1234).replace(":", ""))
    for _ in range(10):
        cpu_before = _cpu_ms(pid)
        started = time.perf_counter()
        os.kill(pid, signal.SIGHUP)
        offer = probe_offer(sock, src, any_mac, timeout=10)
        assert offer is not None
        reload_wall.append(time.perf_counter() - started)
        time.sleep(0.2)
        reload_cpu.append(_cpu_ms(pid) - cpu_before)
    metrics["dnsmasq_reload_ms"] = round(statistics.median(reload_wall) * 1000, 1)
    metrics["dnsmasq_reload_cpu_ms"] = round(statistics.median(reload_cpu), 1)

    # Removing one host costs a reload too (plus the agent's sync).
    hosts.pop()
    started = time.perf_counter()
    manager.sync([config], {"net-1": hosts})
    metrics["dhcp_sync_remove_one_ms"] = round((time.perf_counter() - started) * 1000, 2)
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
    manager = DhcpManager(workdir / "dhcp", quiet_dhcp=True)
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

    config = LabConfig(hypervisors=2, prefix="labh", mgmt_cidr="198.18.6.0/24")
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
    if os.geteuid() != 0:
        sys.exit("bench/dhcp_metadata.py needs root (namespaces)")
    if shutil.which("wrk") is None:
        sys.exit("bench/dhcp_metadata.py needs wrk (apt-get install wrk)")
    results: Metrics = {}
    for measure in MEASUREMENTS:
        started = time.monotonic()
        results.update(measure())
        print(f"# {measure.__name__}: {time.monotonic() - started:.1f} s", file=sys.stderr)
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
