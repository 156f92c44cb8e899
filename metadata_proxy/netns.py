"""Listening sockets inside network namespaces, for a process that lives in another one.

A socket belongs to the namespace it was created in, wherever it is used afterwards. So a short-lived
thread enters the namespace (``setns`` changes only the calling thread's namespace), creates and binds the
socket, and exits; the proxy's event loop then serves that socket from the host namespace.
"""

from __future__ import annotations

import socket
import threading

from dataplane.common import netns

IP_FREEBIND = 15  # linux/in.h: bind before the address is configured on the interface


def listen_in_netns(namespace: str, ip: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking TCP socket listening on ``ip:port`` inside the named namespace."""
    result: list[socket.socket] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            netns.enter_thread(namespace)  # this thread only, and it ends here
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
