"""What a guest does, run inside a VM namespace: DHCP clients, metadata fetches, ICMP counters.

The DHCP clients are the real ones (busybox ``udhcpc``, ISC ``dhclient``) with
scripts that record the lease they got (and, for udhcpc, can apply it: address,
MTU, classless routes), so tests assert on what the client saw.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

UDHCPC_SCRIPT = """#!/bin/sh
# udhcpc calls this with the event as $1 and the lease as environment variables.
# deconfig comes before the first DISCOVER: return at once, the client is waiting on us.
[ "$1" = deconfig ] && exit 0
env | grep -E '^(ip|mask|router|dns|domain|hostname|mtu|staticroutes|msstaticroutes|lease|serverid|subnet)=' \\
    > "$LAB_RECORD.$1.tmp"; mv "$LAB_RECORD.$1.tmp" "$LAB_RECORD.$1"
if [ "$1" = bound ] && [ -n "$LAB_APPLY" ]; then
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    set -- $staticroutes
    while [ $# -ge 2 ]; do
        if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface"; else ip route replace "$1" via "$2"; fi
        shift 2
    done
fi
exit 0
"""

# dhclient runs its script with an environment of its own making: the record path is written into the script.
DHCLIENT_SCRIPT = """#!/bin/sh
# dhclient calls this with $reason and the lease as new_* variables; it must not touch the host's files.
env | grep -E '^(reason|new_)' > "{record}.$reason.tmp"; mv "{record}.$reason.tmp" "{record}.$reason"
exit 0
"""


def in_netns(netns: str, argv: list[str]) -> list[str]:
    """``argv`` run in the namespace's network stack only: nsenter is much quicker to start than
    `ip netns exec`, which also builds a mount namespace and remounts /sys for every command."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]


def netns_exec(netns: str, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(in_netns(netns, list(argv)), capture_output=True, text=True, check=check, timeout=timeout)


def read_record(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        values[key] = value.strip("'")
    return values


def udhcpc(
    netns: str, interface: str, record: Path, *extra: str, tries: int = 2, apply: bool = False
) -> tuple[dict[str, str] | None, float]:
    """Run busybox udhcpc once: the lease it got (None: none) and how long it took.

    ``record`` names the files the script writes (``<record>.bound``...);
    ``apply`` configures the interface with the lease. Pass ``-O staticroutes``
    / ``-O mtu`` in ``extra`` to ask for those options, as real images do.
    """
    script = record.parent / "udhcpc.sh"
    if not script.exists():
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
    for event in ("bound", "leasefail"):
        record.with_name(f"{record.name}.{event}").unlink(missing_ok=True)
    env = ["env", f"LAB_RECORD={record}"] + (["LAB_APPLY=1"] if apply else [])
    argv = ["udhcpc", "-f", "-q", "-n", "-i", interface, "-s", str(script), "-t", str(tries), "-T", "1", "-A", "1"]
    started = time.monotonic()
    netns_exec(netns, *env, *argv, *extra, timeout=30)
    elapsed = time.monotonic() - started
    bound = record.with_name(f"{record.name}.bound")
    return (read_record(bound) if bound.exists() else None), elapsed


def dhclient(netns: str, interface: str, record: Path) -> dict[str, str] | None:
    """Run ISC dhclient once (it would daemonize once bound: it is stopped right after)."""
    workdir = record.parent
    bound = record.with_name(f"{record.name}.BOUND")
    bound.unlink(missing_ok=True)
    pid_file = workdir / f"{record.name}.dhclient.pid"
    script = workdir / f"{record.name}.dhclient.sh"
    script.write_text(DHCLIENT_SCRIPT.format(record=record))
    script.chmod(0o755)
    try:
        leases = str(workdir / f"{record.name}.leases")
        argv = ["dhclient", "-1", "-sf", str(script), "-lf", leases, "-pf", str(pid_file), interface]
        netns_exec(netns, *argv, timeout=60)
    finally:
        _kill_pid_file(pid_file)
    return read_record(bound) if bound.exists() else None


def http_get(netns: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET from inside ``netns`` with curl; status 0 when it never connected."""
    proc = subprocess.run(
        in_netns(netns, ["curl", "-s", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}", url]),
        capture_output=True,
        timeout=timeout + 5,
        check=False,
    )
    body, _, code = proc.stdout.rpartition(b"\n")
    return int(code or b"0"), body


def icmp_counters(netns: str) -> dict[str, int]:
    """The namespace's ICMP counters (InEchos, OutEchoReps...), to tell who really answered a ping."""
    lines = [line.split() for line in netns_exec(netns, "cat", "/proc/net/snmp", check=True).stdout.splitlines()]
    icmp = [line for line in lines if line and line[0] == "Icmp:"]
    return dict(zip(icmp[0][1:], (int(v) for v in icmp[1][1:]), strict=True))


_SEND_FRAMES = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
"""


def send_frames(netns: str, interface: str, frames: list[bytes]) -> None:
    """Put raw Ethernet frames on the wire from inside ``netns`` (what a misbehaving guest can do)."""
    netns_exec(netns, sys.executable, "-c", _SEND_FRAMES, interface, *(f.hex() for f in frames), check=True)


class Capture:
    """What a VM's interface receives while the ``with`` block runs (tcpdump, a BPF filter).

    with Capture(vm.netns, "arp") as cap:
        ...
    frames = cap.frames  # raw bytes of each captured frame
    """

    def __init__(self, netns: str, bpf: str = "", interface: str = "eth0", settle: float = 0.3) -> None:
        self.netns = netns
        self.bpf = bpf
        self.interface = interface
        self.settle = settle
        self.frames: list[bytes] = []
        self.times: list[float] = []  # capture timestamps (time.time() clock)
        self._dir = tempfile.TemporaryDirectory(prefix="loom-capture-")
        self._pcap = Path(self._dir.name) / "cap.pcap"
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Capture:
        # --immediate-mode: otherwise libpcap hands frames over only when a ring block
        # times out (about a second), and frames still in the ring at exit are lost.
        argv = ["tcpdump", "-n", "-U", "-p", "--immediate-mode", "-i", self.interface, "-w", str(self._pcap)]
        self._proc = subprocess.Popen(
            in_netns(self.netns, [*argv, *([self.bpf] if self.bpf else [])]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stderr is not None
        line = self._proc.stderr.readline()  # "listening on eth0, ..." once the socket is open
        if "listening" not in line:
            self._proc.kill()
            raise RuntimeError(f"tcpdump in {self.netns} did not start: {line.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(self.settle)  # frames still in flight
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)
        self._proc.wait(10)
        from scapy.layers.l2 import Ether  # noqa: F401 - registers Ethernet with the pcap reader
        from scapy.utils import rdpcap

        packets = rdpcap(str(self._pcap)) if self._pcap.stat().st_size else []
        self.frames = [bytes(p) for p in packets]
        self.times = [float(p.time) for p in packets]
        self._dir.cleanup()


def _kill_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
