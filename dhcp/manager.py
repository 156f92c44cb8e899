"""The agent's DHCP reconciler: one supervised dnsmasq per network namespace, kept equal to the desired state.

What each change costs (see ``dhcp.render`` for where each setting lives):

=====================================================  ============================================
change                                                 action
=====================================================  ============================================
port added (or a port gains its first address)         write its host file; dnsmasq reads it (inotify)
port changed (MAC, IP, hostname)                       rewrite its host file, then SIGHUP
port removed                                           delete its host file, then SIGHUP
router, DNS servers, domain, host routes               rewrite the options file, then SIGHUP
subnet added/removed/resized, MTU, lease time          restart dnsmasq (its command line changed)
network leaves the host (or loses every DHCP subnet)   stop dnsmasq, delete its files
=====================================================  ============================================

One ``sync`` sends at most one SIGHUP per network. dnsmasq keeps a host record until it re-reads everything,
which is why changes and removals need the signal and additions do not.

Supervision: every dnsmasq is watched through a pidfd; one that dies is restarted at once (the next crash
within ``CRASH_WINDOW`` waits with exponential backoff). An agent restart leaves dnsmasq running: the next
``DhcpManager`` adopts a dnsmasq whose pid file, command line and namespace match the desired network (and
sends it one SIGHUP, as it cannot know what the previous agent left half done), and on its first ``sync``
kills every dnsmasq under its state directory that it did not adopt or start.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.common.files import safe_name, write_atomically
from dataplane.common.logs import get_logger
from dataplane.common.supervise import (
    ProcessWatcher,
    find_processes,
    named_netns,
    process_netns,
    record_crash,
    send_signal,
    terminate,
)

from . import dnsmasq
from .model import DhcpHostEntry, DhcpNetworkConfig
from .paths import NetworkPaths, network_paths
from .render import dnsmasq_argv, render_host_file, render_opts

log = get_logger(__name__)

START_RETRY = 1.0  # seconds between attempts when dnsmasq cannot start (e.g. the namespace is not there yet)


@dataclass(slots=True)
class _Network:
    """What the manager knows about one network's dnsmasq."""

    config: DhcpNetworkConfig
    paths: NetworkPaths
    argv: list[str] = field(default_factory=list)
    opts: str | None = None  # options file content on disk
    host_files: dict[str, str] = field(default_factory=dict)  # file name -> content on disk
    rendered: dict[str, tuple[DhcpHostEntry, str, str]] = field(default_factory=dict)  # port -> (entry, file, text)
    pid: int | None = None
    error: str = ""
    crashes: list[float] = field(default_factory=list)
    retry_at: float | None = None
    strays_checked: bool = False  # whether another dnsmasq on these files was looked for (once is enough)


@dataclass(frozen=True, slots=True)
class DhcpNetworkStatus:
    network_id: str
    pid: int | None
    serving: bool  # dnsmasq runs (False as well when the network has no DHCP subnet)
    hosts: int
    error: str


class DhcpManager:
    """Keeps one dnsmasq per network namespace equal to what ``sync`` was last given."""

    def __init__(self, state_dir: Path, *, quiet_dhcp: bool = False, binary: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self._quiet_dhcp = quiet_dhcp
        self._binary = binary or dnsmasq.dnsmasq_binary()
        self._lock = threading.RLock()
        self._networks: dict[str, _Network] = {}
        self._port_network: dict[str, str] = {}  # port id -> network id
        self._first_sync_done = False
        self._watcher = ProcessWatcher("dhcp-supervisor", self._on_exit, self._on_tick, tick_seconds=0.5)
        self._closed = False

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Start supervising. dnsmasq processes are started or adopted by ``sync``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        _warn_unless_traversable(self.state_dir)
        self._watcher.start()

    def close(self, stop_dnsmasq: bool = False) -> None:
        """Stop supervising; dnsmasq keeps serving unless ``stop_dnsmasq`` (so DHCP survives agent restarts)."""
        with self._lock:
            self._closed = True
        self._watcher.stop()
        if stop_dnsmasq:
            with self._lock:
                for state in self._networks.values():
                    if state.pid is not None:
                        terminate(state.pid)
                        state.pid = None

    def sync(self, networks: Iterable[DhcpNetworkConfig], hosts: Mapping[str, Iterable[DhcpHostEntry]]) -> None:
        """Make the host's dnsmasq processes match ``networks`` and their ports ``hosts[network_id]``.

        ``networks`` is the full desired set: a network missing from it has its dnsmasq stopped and its files
        removed. Errors starting one network's dnsmasq are logged and retried; they do not stop the others.
        """
        desired = {n.network_id: n for n in networks}
        with self._lock:
            for network_id in [n for n in self._networks if n not in desired]:
                self._remove(network_id)
            port_network: dict[str, str] = {}
            for network_id, config in desired.items():
                entries = list(hosts.get(network_id, ()))
                self._apply(config, entries)
                for entry in entries:
                    port_network[entry.port_id] = network_id
            self._port_network = port_network
            if not self._first_sync_done:
                self._first_sync_done = True
                self._remove_strays(set(desired))

    def dhcp_ready(self, port_id: str) -> bool:
        """True when the port's static lease is in place: its host file is written and its dnsmasq serves.

        dnsmasq handles inotify events before packets in its event loop, so a request that arrives after the
        file was renamed into place already sees the entry. A port without an address in a DHCP subnet is
        ready as soon as it is known. An unknown port is not ready.
        """
        with self._lock:
            network_id = self._port_network.get(port_id)
            state = self._networks.get(network_id) if network_id else None
            if state is None:
                return False
            name = safe_name(port_id)
            if name not in state.host_files:
                return True  # nothing to lease
            return state.pid is not None

    def status(self, network_id: str) -> DhcpNetworkStatus | None:
        with self._lock:
            state = self._networks.get(network_id)
            if state is None:
                return None
            return DhcpNetworkStatus(
                network_id=network_id,
                pid=state.pid,
                serving=state.pid is not None,
                hosts=len(state.host_files),
                error=state.error,
            )

    def pid(self, network_id: str) -> int | None:
        status = self.status(network_id)
        return status.pid if status else None

    # ------------------------------------------------------------------ reconciliation

    def _apply(self, config: DhcpNetworkConfig, entries: list[DhcpHostEntry]) -> None:
        network_id = config.network_id
        state = self._networks.get(network_id)
        if state is None:
            state = _Network(config=config, paths=network_paths(self.state_dir, network_id))
            self._load_from_disk(state)
            self._networks[network_id] = state
        namespace_changed = state.config.namespace != config.namespace
        state.config = config

        if not config.subnets:
            # Nothing to serve: no dnsmasq, every port is "DHCP ready" (DHCP off).
            self._stop(state)
            state.host_files = {}
            state.rendered = {}
            state.opts = None
            shutil.rmtree(state.paths.dir, ignore_errors=True)
            return

        paths = state.paths
        for directory in (paths.dir, paths.hosts_dir, paths.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        argv = dnsmasq_argv(config, paths, self._binary, self._quiet_dhcp)
        needs_hup = False

        opts = render_opts(config)
        if opts != state.opts:
            write_atomically(paths.opts_file, opts.encode(), tmp_dir=paths.tmp_dir)
            state.opts = opts
            needs_hup = True

        desired_files: dict[str, str] = {}
        rendered: dict[str, tuple[DhcpHostEntry, str, str]] = {}
        for entry in entries:
            # Re-rendering thousands of unchanged ports on every sync would dominate its cost.
            cached = state.rendered.get(entry.port_id)
            if cached is None or cached[0] != entry:
                cached = (entry, safe_name(entry.port_id), render_host_file(entry))
            rendered[entry.port_id] = cached
            if cached[2]:
                desired_files[cached[1]] = cached[2]
        state.rendered = rendered
        for name, content in desired_files.items():
            old = state.host_files.get(name)
            if old == content:
                continue
            write_atomically(paths.hosts_dir / name, content.encode(), tmp_dir=paths.tmp_dir)
            state.host_files[name] = content
            if old is not None:
                needs_hup = True  # dnsmasq would keep the old record beside the new one
        for name in [n for n in state.host_files if n not in desired_files]:
            (paths.hosts_dir / name).unlink(missing_ok=True)
            del state.host_files[name]
            needs_hup = True

        if state.pid is not None and (
            state.argv != argv or namespace_changed or not self._in_namespace(state.pid, config.namespace)
        ):
            log.info("dnsmasq restarting: its command line or namespace changed", network_id=network_id)
            self._stop(state)
        state.argv = argv
        if state.pid is None:
            if self._adopt(state):
                needs_hup = True  # what the previous agent left half done is unknown: re-read everything
            else:
                if not state.strays_checked:
                    self._kill_others(state)
                    state.strays_checked = True
                self._try_start(state)
                needs_hup = False  # a fresh dnsmasq read every file at start
        if needs_hup and state.pid is not None:
            send_signal(state.pid, signal.SIGHUP)
            log.info("dnsmasq reloaded", network_id=network_id, pid=state.pid, hosts=len(state.host_files))

    def _remove(self, network_id: str) -> None:
        state = self._networks.pop(network_id)
        self._stop(state)
        self._kill_others(state)
        shutil.rmtree(state.paths.dir, ignore_errors=True)
        log.info("dhcp removed for network", network_id=network_id)

    def _remove_strays(self, desired: set[str]) -> None:
        """Kill every dnsmasq under the state directory not adopted or started here, and old network dirs."""
        ours = {s.pid for s in self._networks.values() if s.pid is not None}
        prefix = f"--pid-file={self.state_dir}/"
        for pid, argv in find_processes(lambda argv: any(a.startswith(prefix) for a in argv)).items():
            if pid not in ours:
                log.warning("stray dnsmasq killed", pid=pid, cmdline=" ".join(argv))
                terminate(pid)
        keep = {safe_name(network_id) for network_id in desired}
        for entry in os.scandir(self.state_dir):
            if entry.is_dir() and entry.name not in keep:
                log.info("stale dhcp state removed", path=entry.path)
                shutil.rmtree(entry.path, ignore_errors=True)

    # ------------------------------------------------------------------ processes

    def _adopt(self, state: _Network) -> bool:
        running = dnsmasq.running_instance(state.paths, state.argv, state.config.namespace)
        if running is None or not self._watcher.watch(state.config.network_id, running.pid):
            return False
        state.pid = running.pid
        state.error = ""
        log.info("dnsmasq adopted", network_id=state.config.network_id, pid=running.pid)
        return True

    def _try_start(self, state: _Network) -> None:
        network_id = state.config.network_id
        try:
            running = dnsmasq.start(state.paths, state.argv, state.config.namespace)
        except (dnsmasq.DnsmasqError, OSError) as exc:
            state.error = str(exc)
            state.retry_at = time.monotonic() + START_RETRY
            log.error("dnsmasq failed to start", network_id=network_id, error=state.error)
            return
        state.pid = running.pid
        state.error = ""
        state.retry_at = None
        if not self._watcher.watch(network_id, running.pid):
            # Died between start and watch: let the tick retry it.
            state.pid = None
            state.retry_at = time.monotonic()

    def _stop(self, state: _Network) -> None:
        self._watcher.unwatch(state.config.network_id)
        if state.pid is not None:
            terminate(state.pid)
            log.info("dnsmasq stopped", network_id=state.config.network_id, pid=state.pid)
            state.pid = None
        state.retry_at = None

    def _kill_others(self, state: _Network) -> None:
        """Kill any dnsmasq still using this network's files that is not ours (one bound to port 67 in the
        namespace would stop a new one from starting)."""
        marker = f"--pid-file={state.paths.pid_file}"
        for pid in find_processes(lambda argv: marker in argv):
            if pid != state.pid:
                log.warning("stray dnsmasq killed", network_id=state.config.network_id, pid=pid)
                terminate(pid)

    def _in_namespace(self, pid: int, namespace: str) -> bool:
        expected = named_netns(namespace)
        return expected is not None and process_netns(pid) == expected

    def _on_exit(self, network_id: str, pid: int) -> None:
        with self._lock:
            state = self._networks.get(network_id)
            if self._closed or state is None or state.pid != pid:
                return
            state.pid = None
            state.crashes, retry_at = record_crash(state.crashes, time.monotonic())
            log.warning("dnsmasq exited", network_id=network_id, pid=pid, recent_crashes=len(state.crashes))
            if retry_at is None:
                self._try_start(state)
            else:
                state.retry_at = retry_at

    def _on_tick(self) -> None:
        with self._lock:
            if self._closed:
                return
            now = time.monotonic()
            for state in self._networks.values():
                if state.pid is None and state.retry_at is not None and state.retry_at <= now and state.argv:
                    self._try_start(state)
                elif state.pid is not None and not self._in_namespace(state.pid, state.config.namespace):
                    # The namespace was deleted (and maybe created again): this dnsmasq serves no one.
                    log.warning("dnsmasq namespace gone or replaced", network_id=state.config.network_id)
                    self._stop(state)
                    state.retry_at = now

    # ------------------------------------------------------------------ files

    def _load_from_disk(self, state: _Network) -> None:
        """What an earlier agent left: the files a running dnsmasq may have read."""
        paths = state.paths
        try:
            state.opts = paths.opts_file.read_text()
        except OSError:
            state.opts = None
        if paths.hosts_dir.is_dir():
            for entry in os.scandir(paths.hosts_dir):
                try:
                    with open(entry.path) as f:
                        state.host_files[entry.name] = f.read()
                except OSError:
                    continue


def _warn_unless_traversable(path: Path) -> None:
    """dnsmasq drops root for an unprivileged user; it must be able to reach its files under ``path``."""
    for directory in [path, *path.parents]:
        if not directory.stat().st_mode & 0o001:
            log.error("dnsmasq cannot reach its files: directory not searchable by others", path=str(directory))
            return
