"""Reachability probes between namespaces: ICMP (ping) and TCP (a checked transfer).

They answer yes or no, never raise for "unreachable", and give up quickly,
so a connectivity matrix with many expected "no" cells stays fast. The TCP
probe sends random bytes and compares SHA-256 on both ends: a transfer only
counts if every byte arrived (TCP through a userspace datapath with checksum
offload on fails exactly this way, while ping works).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

_TCP_SINK = """
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2]))); srv.listen(1); print("ready", flush=True)
srv.settimeout(float(sys.argv[3])); conn, _ = srv.accept(); conn.settimeout(float(sys.argv[3]))
h = hashlib.sha256()
while chunk := conn.recv(65536):
    h.update(chunk)
print(h.hexdigest(), flush=True)
"""

_TCP_SOURCE = """
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[4]))
s.sendall(data); s.close(); print(hashlib.sha256(data).hexdigest(), flush=True)
"""


def _in(netns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv]


def ping(netns: str, ip: str, count: int = 1, timeout: float = 1.0, interval: float = 0.2) -> bool:
    """True if ``ip`` answers at least one of ``count`` echo requests from inside ``netns``."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(max(1, round(timeout))), ip]
    proc = subprocess.run(_in(netns, argv), capture_output=True, check=False, timeout=count * interval + timeout + 5)
    return proc.returncode == 0


def tcp_transfer(
    server_netns: str,
    client_netns: str,
    ip: str,
    nbytes: int = 1_000_000,
    port: int = 5201,
    timeout: float = 5.0,
    bind_ip: str = "",
) -> bool:
    """True if ``nbytes`` sent over TCP from ``client_netns`` to ``ip:port`` (served in ``server_netns``)
    all arrived intact within ``timeout`` seconds of inactivity. The server listens on ``bind_ip``
    (default ``ip``; behind a NAT the two differ)."""
    sink = subprocess.Popen(
        _in(server_netns, [sys.executable, "-c", _TCP_SINK, bind_ip or ip, str(port), str(timeout)]),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sink.stdout is not None
        if sink.stdout.readline().strip() != "ready":
            return False
        source = subprocess.run(
            _in(client_netns, [sys.executable, "-c", _TCP_SOURCE, ip, str(port), str(nbytes), str(timeout)]),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout * 4 + 10,
        )
        if source.returncode != 0:
            return False
        return source.stdout.strip() == sink.stdout.readline().strip()
    except subprocess.TimeoutExpired:
        return False
    finally:
        if sink.poll() is None:
            sink.kill()
        sink.wait(5)


def udp_port_bound(pid: int, port: int) -> bool:
    """Whether process ``pid`` lives and its network namespace has a socket bound to UDP ``port``.

    Read from /proc, so a server's restart can be timed to the millisecond without a client's retries.
    """
    suffix = f":{port:04X}"
    try:
        with open(f"/proc/{pid}/net/udp") as f:
            next(f)  # the header
            return any(line.split()[1].endswith(suffix) for line in f)
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_restarted_on_udp(
    pid_of: Callable[[], int | None], old_pid: int, port: int, since: float, give_up: float = 3.0
) -> float:
    """Seconds from ``since`` (a ``time.monotonic()``) until a process other than ``old_pid``, as
    ``pid_of`` reports it, has UDP ``port`` bound; raises TimeoutError after ``give_up`` seconds.

    Polled at 5 ms steps from /proc: a client's own retry timer (DHCP: a second) would hide the moment."""
    while True:
        pid = pid_of()
        if pid not in (None, old_pid) and udp_port_bound(pid, port):
            return time.monotonic() - since
        if time.monotonic() - since > give_up:
            raise TimeoutError(f"no new process serving UDP port {port} {give_up:g} s after pid {old_pid} was killed")
        time.sleep(0.005)
