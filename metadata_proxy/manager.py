"""The agent's side of the metadata proxy: one proxy process per host, its configuration, and readiness.

``MetadataProxyManager.sync(networks)`` writes one file per network (atomically, only when it changed) and
asks the proxy over its control socket to reload; the answer says, per network, which configuration (by
digest) the proxy serves and whether its listener is up. ``metadata_ready(port_id)`` is true once the proxy
serves the port's current identities on a live listener (ports without an instance: once their network is
synced).

The proxy process is started in a session of its own, so it outlives an agent restart; the next manager
adopts it when its pid file and command line match (otherwise replaces it), and a supervisor thread restarts
it as soon as it dies (pidfd), retrying with backoff if it keeps dying.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dataplane.common.files import safe_name, write_atomically
from dataplane.common.logs import get_logger
from dataplane.common.supervise import (
    ProcessWatcher,
    find_processes,
    is_running,
    read_cmdline,
    read_pid_file,
    record_crash,
    rotate_log,
    terminate,
)

from .control import control_request
from .model import MetadataIdentity, MetadataNetwork, network_from_json, network_to_json

log = get_logger(__name__)

_KEY = "metadata-proxy"
START_TIMEOUT = 10.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class _Written:
    """A network file as written: its digest, its config, and the identities it gives each port."""

    digest: str
    config: MetadataNetwork
    by_port: dict[str, frozenset[MetadataIdentity]]

    @classmethod
    def of(cls, data: bytes, config: MetadataNetwork) -> _Written:
        return cls(hashlib.sha256(data).hexdigest(), config, _identities_by_port(config))


class MetadataProxyManager:
    """Runs and configures the host's metadata proxy; see the module docstring."""

    def __init__(self, state_dir: Path, upstream_url: str, secret: bytes | str, *, python: str | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.networks_dir = self.state_dir / "networks"
        self.tmp_dir = self.state_dir / "tmp"
        self.pid_file = self.state_dir / "pid"
        self.control_socket = self.state_dir / "control.sock"
        self.log_file = self.state_dir / "proxy.log"
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self.argv = [
            python or sys.executable,
            "-m",
            "metadata_proxy",
            "--state-dir",
            str(self.state_dir),
            "--upstream",
            upstream_url,
        ]
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._crashes: list[float] = []
        self._retry_at: float | None = None
        self._needs_reload = False
        self._written: dict[str, _Written] = {}
        self._ready_ports: dict[str, dict[str, frozenset[MetadataIdentity]]] = {}  # network -> port -> served
        self._port_network: dict[str, str] = {}
        self._watcher = ProcessWatcher("metadata-proxy-supervisor", self._on_exit, self._on_tick, tick_seconds=0.2)
        self._closed = False

    # ------------------------------------------------------------------ public API

    def start(self) -> None:
        """Write the secret, adopt a matching proxy or start one, and supervise it."""
        for directory in (self.state_dir, self.networks_dir, self.tmp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._write(self.state_dir / "secret", self._secret, mode=0o600)
        self._load_written()
        with self._lock:
            self._adopt_or_kill()
            if self._pid is None:
                self._start_process()
            self._watcher.start()
            self._needs_reload = True
            self._reload(wait=START_TIMEOUT)

    def close(self, stop_proxy: bool = False) -> None:
        """Stop supervising; the proxy keeps serving unless ``stop_proxy`` (metadata survives agent restarts)."""
        with self._lock:
            self._closed = True
        self._watcher.stop()
        if stop_proxy:
            with self._lock:
                if self._pid is not None:
                    terminate(self._pid)
                    self._pid = None
                if self._child is not None:
                    self._child.wait(timeout=5)
                    self._child = None

    def sync(self, networks: Iterable[MetadataNetwork]) -> None:
        """Serve exactly ``networks`` (the full desired set) and wait briefly for the proxy to confirm."""
        desired = {n.network_id: n for n in networks}
        with self._lock:
            for network_id in [n for n in self._written if n not in desired]:
                (self.networks_dir / f"{safe_name(network_id)}.json").unlink(missing_ok=True)
                del self._written[network_id]
                self._ready_ports.pop(network_id, None)
            for network_id, config in desired.items():
                data = network_to_json(config)
                written = _Written.of(data, config)
                old = self._written.get(network_id)
                if old is None or old.digest != written.digest:
                    self._write(self.networks_dir / f"{safe_name(network_id)}.json", data)
                    self._written[network_id] = written
            self._index_ports()
            self._needs_reload = True
            self._reload(wait=2.0)

    def metadata_ready(self, port_id: str) -> bool:
        with self._lock:
            network_id = self._port_network.get(port_id)
            if network_id is None or network_id not in self._written:
                return False
            wanted = self._written[network_id].by_port.get(port_id, frozenset())
            if not wanted:
                return True  # no instance behind it: nothing to serve
            return self._ready_ports.get(network_id, {}).get(port_id) == wanted

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._pid

    def status(self) -> dict[str, object]:
        """What the proxy itself reports (raises OSError when it does not answer)."""
        return control_request(self.control_socket, "status")

    # ------------------------------------------------------------------ confirmation from the proxy

    def _reload(self, wait: float) -> None:
        """Ask the proxy to reload; retry for up to ``wait`` seconds (it may be starting)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                answer = control_request(self.control_socket, "reload", timeout=max(0.5, wait))
            except OSError:
                if time.monotonic() >= deadline or self._pid is None:
                    return  # the supervisor's tick keeps trying
                time.sleep(0.05)
                continue
            self._record(answer)
            return

    def _record(self, answer: dict[str, object]) -> None:
        self._needs_reload = False
        reported = answer.get("networks", {})
        assert isinstance(reported, dict)
        for network_id, written in self._written.items():
            info = reported.get(network_id)
            if not isinstance(info, dict) or not info.get("listening"):
                self._ready_ports[network_id] = {}
            elif info.get("digest") == written.digest:
                self._ready_ports[network_id] = written.by_port
            # else: the proxy still serves an older file; what it served before stays valid.

    # ------------------------------------------------------------------ process

    def _start_process(self) -> None:
        rotate_log(self.log_file)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        with open(self.log_file, "ab") as log_out:
            child = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_out,
                stderr=log_out,
                start_new_session=True,  # not in the agent's process group: survives the agent
                env=env,
                cwd="/",
            )
        self._child = child
        self._pid = child.pid
        self._write(self.pid_file, f"{child.pid}\n".encode())
        if not self._watcher.watch(_KEY, child.pid):
            self._pid = None
            self._retry_at = time.monotonic() + 1.0
        log.info("metadata proxy started", pid=child.pid)

    def _adopt_or_kill(self) -> None:
        """Adopt the proxy in the pid file if it is ours exactly; kill any other proxy for this state dir."""
        pid = read_pid_file(self.pid_file)
        matches = pid is not None and is_running(pid) and read_cmdline(pid) == self.argv
        if matches and self._watcher.watch(_KEY, pid):  # type: ignore[arg-type]
            self._pid = pid
            log.info("metadata proxy adopted", pid=pid)
        marker = str(self.state_dir)
        for other, argv in find_processes(
            lambda argv: "metadata_proxy" in argv and "--state-dir" in argv and marker in argv
        ).items():
            if other != self._pid:
                log.warning("stray metadata proxy killed", pid=other, cmdline=" ".join(argv))
                terminate(other)

    def _on_exit(self, key: str, pid: int) -> None:
        with self._lock:
            if self._closed or pid != self._pid:
                return
            if self._child is not None and self._child.pid == pid:
                self._child.wait(timeout=5)  # reap it
                self._child = None
            self._pid = None
            for network_id in self._ready_ports:
                self._ready_ports[network_id] = {}
            self._crashes, retry_at = record_crash(self._crashes, time.monotonic())
            log.warning("metadata proxy exited", pid=pid, recent_crashes=len(self._crashes))
            if retry_at is None:
                self._start_process()
                self._needs_reload = True
            else:
                self._retry_at = retry_at

    def _on_tick(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._pid is None and self._retry_at is not None and time.monotonic() >= self._retry_at:
                self._retry_at = None
                self._start_process()
                self._needs_reload = True
            if self._pid is not None and self._needs_reload:
                self._reload(wait=0.0)

    # ------------------------------------------------------------------ files

    def _load_written(self) -> None:
        """Files an earlier agent left are the proxy's current configuration until the first sync."""
        for path in self.networks_dir.glob("*.json"):
            try:
                data = path.read_bytes()
                config = network_from_json(data)
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)
                continue
            self._written[config.network_id] = _Written.of(data, config)
        self._index_ports()

    def _index_ports(self) -> None:
        self._port_network = {}
        for network_id, written in self._written.items():
            for port_id in (*written.config.port_ids, *written.by_port):
                self._port_network.setdefault(port_id, network_id)

    def _write(self, target: Path, data: bytes, mode: int = 0o644) -> None:
        write_atomically(target, data, mode, tmp_dir=self.tmp_dir)


def _identities_by_port(config: MetadataNetwork) -> dict[str, frozenset[MetadataIdentity]]:
    by_port: dict[str, set[MetadataIdentity]] = {}
    for identity in config.identities:
        by_port.setdefault(identity.port_id, set()).add(identity)
    return {port_id: frozenset(identities) for port_id, identities in by_port.items()}
