"""TCP transfers between a qemu guest and a peer in a namespace, checked by SHA-256 and timed.

    sent = guest_to_peer(guest, "lab-peer", "10.0.0.5", 4 << 20)     # the guest sends, the peer counts
    got = peer_to_guest(guest, "lab-peer", "10.0.0.5", 4 << 20)      # the peer sends, the guest counts
    assert sent.intact and got.intact; print(sent.mbps, got.mbps)

The guest side is busybox ``nc`` and ``sha256sum`` on a tmpfs file (no pipe
in the timed part: under TCG a pipe costs the guest as much as the network).
The peer side is a socket made inside the peer's namespace and served by a
thread of this process. A transfer counts only if every byte arrived: the
digests of both ends are compared, because a datapath that forwards packets
with unfinished checksums fails exactly here while ping works.

Timing: guest->peer runs from the peer's first byte to its end of stream;
peer->guest from the connection's accept to the end of the guest's ``nc``
(busybox nc closes its sending half at once, so the peer cannot see the
guest finish).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from dataplane.common import netns as ns
from lab.mininet.qemu_guest import SerialConsole

GUEST_FILE = "/tmp/loom-transfer"
_CHUNK = 1 << 16


class TransferError(RuntimeError):
    """The transfer could not even be attempted (the peer could not listen, the guest could not write)."""


@dataclass(frozen=True, slots=True)
class Transfer:
    """One transfer's outcome: what was sent, what arrived, how long it took."""

    direction: str  # "guest->peer" or "peer->guest"
    nbytes: int
    sent_sha256: str
    received_bytes: int
    received_sha256: str
    seconds: float
    detail: str = ""  # why it failed, when it did

    @property
    def intact(self) -> bool:
        return self.received_bytes == self.nbytes and self.received_sha256 == self.sent_sha256

    @property
    def mbps(self) -> float:
        """Megabits (10^6) per second; 0 when the transfer failed."""
        return self.nbytes * 8 / self.seconds / 1e6 if self.intact and self.seconds > 0 else 0.0


@dataclass
class _Peer:
    """One TCP connection accepted in a namespace and served by a thread: it receives or it sends."""

    listener: socket.socket
    timeout: float
    data: bytes | None = None  # None: receive
    received: int = 0
    digest: str = ""
    accepted_at: float = 0.0
    first_byte_at: float = 0.0
    done_at: float = 0.0
    error: str = ""

    @classmethod
    def listen(cls, netns: str, ip: str, port: int, timeout: float, data: bytes | None) -> _Peer:
        # The socket belongs to the namespace it was made in; only this thread enters it, briefly.
        with ns.entered(netns):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((ip, port))
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise TransferError(f"cannot listen on {ip}:{port} in {netns}: {exc}") from exc
        sock.settimeout(timeout)
        return cls(sock, timeout, data)

    def serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError as exc:
            self.error = f"no connection: {exc}"
            return
        finally:
            self.listener.close()
        self.accepted_at = time.monotonic()
        with conn:
            conn.settimeout(self.timeout)
            try:
                if self.data is None:
                    self._receive(conn)
                else:
                    conn.sendall(self.data)
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(_CHUNK):  # until the guest closes
                        pass
            except OSError as exc:
                self.error = f"{type(exc).__name__}: {exc}"
        self.done_at = time.monotonic()

    def _receive(self, conn: socket.socket) -> None:
        h = hashlib.sha256()
        while chunk := conn.recv(_CHUNK):
            if not self.received:
                self.first_byte_at = time.monotonic()
            self.received += len(chunk)
            h.update(chunk)
        self.done_at = time.monotonic()
        self.digest = h.hexdigest()

    def abort(self) -> None:
        """Stop waiting for a connection that will not come (the guest's nc gave up)."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept() in the serving thread
        except OSError:
            pass


def _serve(peer: _Peer) -> threading.Thread:
    thread = threading.Thread(target=peer.serve, name="transfer-peer", daemon=True)
    thread.start()
    return thread


def _finish(peer: _Peer, thread: threading.Thread, timeout: float) -> None:
    """After the guest's side ended: give the peer its time, unless it never got a connection."""
    thread.join(0.5)
    if thread.is_alive() and not peer.accepted_at:
        peer.abort()
    thread.join(timeout)


def _guest_sha256(guest: SerialConsole, path: str) -> str:
    out = guest.check(f"sha256sum {path}")
    return out.split()[0] if out.split() else ""


def _guest_size(guest: SerialConsole, path: str) -> int:
    out = guest.run(f"wc -c < {path}")[1].split()
    return int(out[0]) if out and out[0].isdigit() else 0


def make_guest_file(guest: SerialConsole, nbytes: int, path: str = GUEST_FILE) -> str:
    """Random bytes in a tmpfs file of the guest; returns their SHA-256."""
    if nbytes % _CHUNK:
        raise ValueError(f"sizes are whole multiples of {_CHUNK} bytes")
    guest.check(f"dd if=/dev/urandom of={path} bs={_CHUNK} count={nbytes // _CHUNK} 2>/dev/null", timeout=120)
    return _guest_sha256(guest, path)


def guest_to_peer(
    guest: SerialConsole,
    peer_netns: str,
    peer_ip: str,
    nbytes: int,
    port: int = 5201,
    timeout: float = 60.0,
    sent_sha256: str | None = None,
    connect_timeout: int = 5,
    phase: Callable[[str], None] | None = None,
) -> Transfer:
    """The guest sends ``nbytes`` random bytes to the peer with nc; the peer hashes what arrives.

    ``sent_sha256``: the guest file of that size exists already (``make_guest_file``), with this digest.
    ``phase`` is called with "start" and "end" around the transfer itself (not the hashing), for meters.
    """
    digest = sent_sha256 or make_guest_file(guest, nbytes)
    peer = _Peer.listen(peer_netns, peer_ip, port, timeout, None)
    thread = _serve(peer)
    if phase:
        phase("start")
    status, output = guest.run(f"nc -w {connect_timeout} {peer_ip} {port} < {GUEST_FILE}", timeout=timeout)
    _finish(peer, thread, timeout)
    if phase:
        phase("end")
    detail = peer.error or ("" if status == 0 else f"guest nc exited {status}: {output.strip()[-300:]}")
    seconds = peer.done_at - peer.first_byte_at if peer.received else 0.0
    return Transfer("guest->peer", nbytes, digest, peer.received, peer.digest, seconds, detail)


def peer_to_guest(
    guest: SerialConsole,
    peer_netns: str,
    peer_ip: str,
    nbytes: int,
    port: int = 5202,
    timeout: float = 60.0,
    keep: bool = False,
    connect_timeout: int = 5,
    phase: Callable[[str], None] | None = None,
) -> Transfer:
    """The peer sends ``nbytes`` random bytes; the guest's nc writes them to tmpfs and hashes them afterwards.

    ``phase`` is called with "start" and "end" around the transfer itself (not the hashing), for meters.
    """
    data = os.urandom(nbytes)
    peer = _Peer.listen(peer_netns, peer_ip, port, timeout, data)
    thread = _serve(peer)
    if phase:
        phase("start")
    status, output = guest.run(f"nc -w {connect_timeout} {peer_ip} {port} > {GUEST_FILE}.in", timeout=timeout)
    finished = time.monotonic()
    if phase:
        phase("end")
    _finish(peer, thread, timeout)
    received = _guest_size(guest, f"{GUEST_FILE}.in")
    digest = _guest_sha256(guest, f"{GUEST_FILE}.in") if received else ""
    if not keep:
        guest.run(f"rm -f {GUEST_FILE}.in")
    detail = peer.error or ("" if status == 0 else f"guest nc exited {status}: {output.strip()[-300:]}")
    seconds = finished - peer.accepted_at if peer.accepted_at else 0.0
    return Transfer("peer->guest", nbytes, hashlib.sha256(data).hexdigest(), received, digest, seconds, detail)
