"""A paced TCP stream between two lab VMs, watched from both ends, for tests that change things under it.

    with PacedStream(client, server, port=5201) as stream:
        ...                     # change rules, restart things
        stream.mark("cut")      # remember a moment
    gaps = stream.gaps(since, until)        # largest silence at each end, from packet timestamps

The client writes 512 bytes every 5 ms on one connection (TCP_NODELAY, so
each write is a segment); both ends are captured with tcpdump, so gaps are
measured from the packets' own timestamps, not from when a script noticed.
A dropped segment costs TCP at least one retransmission timeout (200 ms on
Linux), so a gap above 100 ms means packets were lost.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from dataclasses import dataclass, field

from lab.mininet.guest import Capture, in_netns
from lab.mininet.lab import Vm

_SERVER = """
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(1); print("ready", flush=True)
conn, _ = srv.accept(); print("accepted", flush=True)
try:
    while conn.recv(65536):
        pass
    print("eof", flush=True)
except OSError as exc:
    print(f"error {exc!r}", flush=True)
"""

_CLIENT = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.settimeout(None)
print("connected", flush=True)
chunk = b"x" * 512
try:
    while True:
        s.send(chunk)
        time.sleep(float(sys.argv[3]))
except OSError as exc:
    print(f"error {exc!r}", flush=True)
"""


@dataclass
class PacedStream:
    client: Vm
    server: Vm
    port: int = 5201
    interval: float = 0.005
    marks: dict[str, float] = field(default_factory=dict)
    client_output: str = ""
    server_output: str = ""

    def __post_init__(self) -> None:
        sip, cip = self.server.address, self.client.address
        # At the server: the client's segments; at the client: what the server sends back (ACKs).
        self.at_server = Capture(self.server.netns, f"tcp and src host {cip} and dst port {self.port}", settle=0.5)
        self.at_client = Capture(self.client.netns, f"tcp and src host {sip} and src port {self.port}", settle=0.5)
        self._server: subprocess.Popen[str] | None = None
        self._client: subprocess.Popen[str] | None = None

    def __enter__(self) -> PacedStream:
        self.at_server.__enter__()
        self.at_client.__enter__()
        try:
            self._server = _popen(self.server.netns, _SERVER, self.server.address or "", str(self.port))
            assert self._server.stdout is not None
            if self._server.stdout.readline().strip() != "ready":
                raise RuntimeError("the stream's server did not start")
            self._client = _popen(
                self.client.netns, _CLIENT, self.server.address or "", str(self.port), str(self.interval)
            )
            assert self._client.stdout is not None
            if self._client.stdout.readline().strip() != "connected":
                raise RuntimeError("the stream's client could not connect")
            self.mark("start")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        self.mark("stop")
        for proc in (self._client, self._server):
            if proc is not None and proc.poll() is None:
                proc.kill()
        if self._client is not None:
            self.client_output = self._client.communicate(timeout=10)[0]
        if self._server is not None:
            self.server_output = self._server.communicate(timeout=10)[0]
        self.at_client.__exit__(None, None, None)
        self.at_server.__exit__(None, None, None)

    def mark(self, name: str) -> float:
        self.marks[name] = time.time()
        return self.marks[name]

    # ------------------------------------------------------------ analysis (after the block)

    def gaps(self, since: float, until: float) -> tuple[float, float]:
        """The longest silence (seconds) in [since, until] at the server and at the client."""
        return _longest_gap(self.at_server.times, since, until), _longest_gap(self.at_client.times, since, until)

    def last_seen(self) -> tuple[float, float]:
        """When the server last received a segment, and the client last received anything back."""
        return max(self.at_server.times, default=0.0), max(self.at_client.times, default=0.0)

    def resets(self, since: float, until: float) -> int:
        """RST segments seen at either end in [since, until]."""
        from scapy.layers.inet import TCP
        from scapy.layers.l2 import Ether

        count = 0
        for cap in (self.at_server, self.at_client):
            for frame, at in zip(cap.frames, cap.times, strict=True):
                pkt = Ether(frame)
                if since <= at <= until and TCP in pkt and pkt[TCP].flags & 0x04:
                    count += 1
        return count


def _longest_gap(times: list[float], since: float, until: float) -> float:
    inside = sorted(t for t in times if since <= t <= until)
    if not inside:
        return until - since
    edges = [since, *inside, until]
    return max(b - a for a, b in itertools.pairwise(edges))


def _popen(netns: str, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        in_netns(netns, [sys.executable, "-c", script, *args]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
