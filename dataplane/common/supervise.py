"""Finding, checking, stopping and watching the agent's helper processes (dnsmasq, the metadata proxy).

The agent must survive its own restarts without disturbing them, so a helper is identified from the outside:
its pid file, its exact command line (``/proc/PID/cmdline``) and, for namespaced helpers, its network
namespace. Exits are noticed through pidfds (``pidfd_open``), which work for processes that are not the
agent's children (dnsmasq daemonizes; an adopted process belongs to init), so a killed helper is seen at once
rather than at the next poll.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dataplane.common.logs import get_logger

log = get_logger(__name__)

NETNS_DIR = Path("/run/netns")
CRASH_WINDOW = 30.0  # seconds: crashes closer together than this back off
MAX_BACKOFF = 10.0  # seconds, the longest wait before restarting a crashing helper
LOG_ROTATE_BYTES = 8 << 20

NamespaceId = tuple[int, int]  # (st_dev, st_ino) of a network namespace


def read_pid_file(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def read_cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None when it is gone (a zombie has an empty cmdline: also None)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def is_running(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may itself hold spaces or parentheses).
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def process_netns(pid: int) -> NamespaceId | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def named_netns(name: str) -> NamespaceId | None:
    """The namespace ``ip netns add NAME`` created, or None when there is none."""
    try:
        st = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def find_processes(predicate: Callable[[list[str]], bool]) -> dict[int, list[str]]:
    """Every live process whose argv satisfies ``predicate``."""
    found: dict[int, list[str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        argv = read_cmdline(pid)
        if argv and predicate(argv):
            found[pid] = argv
    return found


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None when the process is gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def wait_pidfd(pidfd: int, timeout: float) -> bool:
    """True when the process behind ``pidfd`` exited within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def terminate(pid: int, timeout: float = 2.0) -> None:
    """Stop a process: SIGTERM, then SIGKILL if it is still there after ``timeout``. Idempotent.

    Signals go through a pidfd, so a recycled pid is never hit.
    """
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return
    try:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                return
            if wait_pidfd(pidfd, wait):
                return
        log.warning("process survived SIGKILL", pid=pid)
    finally:
        os.close(pidfd)


def stop_child(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a child this process started: SIGTERM, SIGKILL after ``timeout``, and reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def send_signal(pid: int, sig: signal.Signals) -> bool:
    """Signal a process through a pidfd; False when it is gone."""
    pidfd = open_pidfd(pid)
    if pidfd is None:
        return False
    try:
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(pidfd)


class ProcessWatcher:
    """One thread that reports the exit of watched processes at once and calls a periodic tick.

    ``on_exit(key, pid)`` and ``on_tick()`` run on the watcher's thread, never under its lock, so they may
    call ``watch``/``unwatch``. A key names what the process is for (e.g. a network id).
    """

    def __init__(
        self,
        name: str,
        on_exit: Callable[[str, int], None],
        on_tick: Callable[[], None],
        tick_seconds: float = 1.0,
    ) -> None:
        self._name = name
        self._on_exit = on_exit
        self._on_tick = on_tick
        self._tick_seconds = tick_seconds
        self._lock = threading.Lock()
        self._watched: dict[str, tuple[int, int]] = {}  # key -> (pid, pidfd)
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        os.eventfd_write(self._wake, 1)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._lock:
            for _, pidfd in self._watched.values():
                os.close(pidfd)
            self._watched.clear()
        os.close(self._wake)

    def watch(self, key: str, pid: int) -> bool:
        """Watch ``pid`` under ``key`` (replacing what the key watched). False when it is already gone."""
        pidfd = open_pidfd(pid)
        with self._lock:
            old = self._watched.pop(key, None)
            if old is not None:
                os.close(old[1])
            if pidfd is not None:
                self._watched[key] = (pid, pidfd)
        os.eventfd_write(self._wake, 1)
        return pidfd is not None and is_running(pid)

    def unwatch(self, key: str) -> None:
        with self._lock:
            old = self._watched.pop(key, None)
            if old is not None:
                os.close(old[1])
        os.eventfd_write(self._wake, 1)

    def watched_pid(self, key: str) -> int | None:
        with self._lock:
            entry = self._watched.get(key)
        return entry[0] if entry else None

    def _run(self) -> None:
        next_tick = time.monotonic() + self._tick_seconds
        while not self._stopping:
            poller = select.poll()
            poller.register(self._wake, select.POLLIN)
            with self._lock:
                by_fd = {pidfd: (key, pid) for key, (pid, pidfd) in self._watched.items()}
            for pidfd in by_fd:
                poller.register(pidfd, select.POLLIN)
            timeout_ms = max(0.0, next_tick - time.monotonic()) * 1000
            events = poller.poll(timeout_ms)
            exited: list[tuple[str, int]] = []
            for fd, _ in events:
                if fd == self._wake:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(self._wake)
                    continue
                key, pid = by_fd[fd]
                with self._lock:
                    current = self._watched.get(key)
                    if current is not None and current[1] == fd:
                        del self._watched[key]
                        os.close(fd)
                        exited.append((key, pid))
            for key, pid in exited:
                self._call(self._on_exit, key, pid)
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_seconds
                self._call(self._on_tick)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._stopping:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("process watcher callback failed", watcher=self._name)


def record_crash(crashes: list[float], now: float) -> tuple[list[float], float | None]:
    """A helper exited at ``now``: its recent crash times, and when to restart it (None: at once).

    A first crash restarts at once; each further one within ``CRASH_WINDOW`` doubles the wait, up to
    ``MAX_BACKOFF``, so a helper that cannot run does not spin.
    """
    recent = [t for t in crashes if now - t < CRASH_WINDOW] + [now]
    if len(recent) <= 1:
        return recent, None
    return recent, now + min(MAX_BACKOFF, 0.25 * 2 ** (len(recent) - 1))


def rotate_log(path: Path) -> None:
    """Keep one previous log once ``path`` passes ``LOG_ROTATE_BYTES`` (a log only grows while its helper runs)."""
    try:
        if path.stat().st_size > LOG_ROTATE_BYTES:
            path.replace(path.with_suffix(".log.1"))
    except FileNotFoundError:
        pass
