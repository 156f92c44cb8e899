"""Named network namespaces: create, delete, list, and run code inside one.

Names live in /run/netns like `ip netns`. ``entered(name)`` moves only the
calling *thread* into a namespace (setns is per thread on Linux) and back, so a
process can open netlink and ioctl sockets in several namespaces without
forking; sockets stay in the namespace they were created in.
``NetnsExecutor`` is a one-thread executor living in a namespace: the lab uses
it to act "from inside" an emulated hypervisor.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from dataplane.common.logs import get_logger

log = get_logger(__name__)

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the namespace."""


def path(name: str) -> str:
    """The bind-mount path of a named namespace, or ``name`` itself when it is a path."""
    return name if name.startswith("/") else os.path.join(NETNS_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def list_names(prefix: str = "") -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _share_netns_dir() -> None:
    """Make /run/netns a shared mount, as `ip netns` does, so namespaces we name are seen everywhere."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    # Not a mount point yet: bind it onto itself, then share it.
    if _libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None) != 0:
        raise NetnsError(f"cannot bind-mount {NETNS_DIR}: {os.strerror(ctypes.get_errno())}")
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) != 0:
        raise NetnsError(f"cannot make {NETNS_DIR} shared: {os.strerror(ctypes.get_errno())}")


def _bind(source: str, name: str) -> None:
    """Bind-mount a namespace file onto /run/netns/NAME (created empty first)."""
    _share_netns_dir()
    target = path(name)
    try:
        os.close(os.open(target, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    except FileExistsError as exc:
        raise NetnsError(f"network namespace {name} already exists") from exc
    if _libc.mount(source.encode(), target.encode(), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        os.unlink(target)
        raise NetnsError(f"cannot bind network namespace {name}: {os.strerror(err)}")


def _create_in_thread(name: str, errors: list[BaseException]) -> None:
    # unshare() on a thread gives only that thread the new namespace; the thread ends right after.
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise NetnsError(f"unshare for network namespace {name} failed: {os.strerror(ctypes.get_errno())}")
        _bind("/proc/thread-self/ns/net", name)
    except BaseException as exc:
        errors.append(exc)


def create(name: str) -> bool:
    """Create a named namespace with its loopback up; True if it was created. Idempotent.

    No fork: a short-lived thread unshares and bind-mounts its namespace (forking a
    process that runs OVSDB threads risks deadlocks in the child).
    """
    if exists(name):
        return False
    errors: list[BaseException] = []
    worker = threading.Thread(target=_create_in_thread, args=(name, errors), name=f"netns-create-{name}")
    worker.start()
    worker.join()
    if errors:
        if isinstance(errors[0], FileExistsError | NetnsError) and exists(name):
            return False  # created by someone else meanwhile
        raise errors[0]
    with entered(name):
        from pyroute2 import IPRoute  # local: only namespaces we create need it here

        with IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
    log.debug("netns created", netns=name)
    return True


def delete(name: str) -> bool:
    """Remove a named namespace; True if it existed. Idempotent.

    The namespace itself lives on while a process is still inside it; its
    devices (and the veth peers they hold) go when the last user leaves.
    """
    target = path(name)
    if not os.path.exists(target):
        return False
    _libc.umount2(target.encode(), MNT_DETACH)
    try:
        os.unlink(target)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise NetnsError(f"cannot delete network namespace {name}: {exc}") from exc
    log.debug("netns deleted", netns=name)
    return True


def attach(name: str, pid: int) -> None:
    """Give the namespace of process ``pid`` a name (like `ip netns attach`)."""
    _bind(f"/proc/{pid}/ns/net", name)


def pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (for cleanup)."""
    try:
        target = os.stat(path(name))
    except FileNotFoundError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry))
    return found


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns into {what} failed: {os.strerror(err)}")


def enter_thread(name: str) -> None:
    """Move the calling thread into namespace ``name`` for good (executor initialiser)."""
    try:
        fd = os.open(path(name), os.O_RDONLY)
    except FileNotFoundError as exc:
        raise NetnsError(f"network namespace {name} does not exist") from exc
    try:
        _setns(fd, name)
    finally:
        os.close(fd)


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``name`` (None: stay where we are)."""
    if name is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter_thread(name)
        try:
            yield
        finally:
            _setns(home, "the thread's own namespace")
    finally:
        os.close(home)


class NetnsExecutor(ThreadPoolExecutor):
    """A one-thread executor whose thread lives in the namespace ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(
            max_workers=1,
            thread_name_prefix=f"netns-{os.path.basename(name)}",
            initializer=enter_thread,
            initargs=(name,),
        )
        self.netns = name
