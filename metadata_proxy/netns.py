"""Listening sockets inside network namespaces, for a process that lives in another one.

A socket belongs to the namespace it was created in, wherever it is used afterwards. So a short-lived
thread enters the namespace (``setns`` changes only the calling thread's namespace), creates and binds the
socket, and exits; the proxy's event loop then serves that socket from the host namespace.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
IP_FREEBIND = 15  # linux/in.h: bind before the address is configured on the interface
NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def netns_id(namespace: str) -> tuple[int, int] | None:
    """Identity of a named namespace (changes when it is deleted and created again), or None."""
    try:
        st = os.stat(NETNS_DIR / namespace)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def listen_in_netns(namespace: str, ip: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking TCP socket listening on ``ip:port`` inside the named namespace."""
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            fd = os.open(NETNS_DIR / namespace, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {namespace}: {os.strerror(err)}")
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # The agent may put 169.254.169.254 on the interface after the proxy got the network.
                sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
                sock.bind((ip, port))
                sock.listen(backlog)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            result.append(sock)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=create, name=f"netns-listen-{namespace}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]
