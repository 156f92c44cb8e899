"""A 1 ms ICMP prober for time-to-first-packet measurements, run inside a VM namespace.

    python -m lab.mininet.prober DEST_IP [--wait-go] [--timeout S]

Sends an echo request every millisecond (``ping`` cannot go that fast) until
the first reply, then prints one JSON line: when it started probing and when
the first reply came (``time.time()``, comparable across processes). With
``--wait-go`` it opens its socket first and starts probing only when a line
arrives on stdin, so the caller can start it early and fire it at a chosen
moment without paying for process start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    payload = struct.pack("!d", time.time())
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum(header + payload), ident, seq) + payload


def first_reply(dest: str, ident: int, sock: socket.socket, timeout: float, interval: float = 0.001) -> dict:
    started = time.time()
    seq = 0
    while time.time() - started < timeout:
        seq = (seq + 1) & 0xFFFF
        sock.sendto(echo_request(ident, seq), (dest, 0))
        deadline = time.monotonic() + interval
        while (wait := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                break
            packet, (source, _) = sock.recvfrom(2048)
            ihl = (packet[0] & 0x0F) * 4
            kind, _, _, rid, _ = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
            if kind == ICMP_ECHO_REPLY and rid == ident and source == dest:
                return {"started": started, "first_reply": time.time(), "sent": seq}
    return {"started": started, "first_reply": None, "sent": seq}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mininet.prober")
    parser.add_argument("dest")
    parser.add_argument("--wait-go", action="store_true", help="start probing when a line arrives on stdin")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    if args.wait_go:
        print("ready", flush=True)
        sys.stdin.readline()
    print(json.dumps(first_reply(args.dest, ident, sock, args.timeout)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
