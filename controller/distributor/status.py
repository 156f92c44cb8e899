"""Port stages and status, from what the controller compiled and what agents report.

A port's stages are: accepted (stored), compiled (in its host's desired
state), flows_installed, dhcp_ready, metadata_ready (reported by its host's
agent), and up (all of those, with the VIF present). Status is ACTIVE when up,
BUILD while a bound port is on its way, DOWN when unbound, disabled, or bound
to a host no agent has registered for (Neutron's ``binding_failed``: the port
binds, and goes on to ACTIVE, when that host's agent registers).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.model import (
    PORT_ACTIVE,
    PORT_BUILD,
    PORT_DOWN,
    STAGE_ACCEPTED,
    STAGE_COMPILED,
    STAGE_DHCP_READY,
    STAGE_FLOWS_INSTALLED,
    STAGE_METADATA_READY,
    STAGE_UP,
    Agent,
    Port,
    PortStage,
)
from controller.store.base import Store
from dataplane.common.logs import get_logger

log = get_logger(__name__)

# [(port_id, status, stages)] -> None; persists output-only port fields, all in one commit.
StatusWriter = Callable[[list[tuple[str, str, tuple[PortStage, ...]]]], object]
# Ports per status commit. The writer holds the API's lock for a batch: small ones let creates in between.
WRITE_BATCH = 32


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What a port's agent reported about it."""

    host: str
    vif_present: bool = False
    ofport: int = 0
    flows_installed: bool = False
    dhcp_ready: bool = False
    metadata_ready: bool = False


def compute_stages(
    port: Port, compiled_at: float | None, facts: HostFacts | None, now: float, agent_registered: bool = True
) -> tuple[str, tuple[PortStage, ...]]:
    """The status and stages ``port`` should show (``agent_registered``: its host has an agent).

    ``None`` means "not known yet" (e.g. right after a controller restart,
    before the agent reports again): the stored stage stands. Stages that stay
    done keep the time they were first reached.
    """
    previous = {s.name: s for s in port.stages}

    def was_done(name: str) -> bool:
        old = previous.get(name)
        return old is not None and old.done

    def stage(name: str, done: bool, detail: str = "") -> PortStage:
        old = previous.get(name)
        if done and old is not None and old.done:
            return replace(old, detail=detail)
        return PortStage(name, done, now if done else 0.0, detail)

    bound = bool(port.binding_host_id)
    # Facts from an agent on another host (the port moved) say nothing about it.
    if facts is not None and facts.host != port.binding_host_id:
        facts = None
    known = facts is not None

    def reported(name: str, value: bool) -> bool:
        return bound and (value if known else was_done(name))

    accepted = previous.get(STAGE_ACCEPTED) or PortStage(STAGE_ACCEPTED, True, port.created_at)
    compiled = stage(STAGE_COMPILED, bound and (compiled_at is not None or was_done(STAGE_COMPILED)))
    flows = stage(STAGE_FLOWS_INSTALLED, reported(STAGE_FLOWS_INSTALLED, bool(facts and facts.flows_installed)))
    dhcp = stage(STAGE_DHCP_READY, reported(STAGE_DHCP_READY, bool(facts and facts.dhcp_ready)))
    meta = stage(STAGE_METADATA_READY, reported(STAGE_METADATA_READY, bool(facts and facts.metadata_ready)))
    vif = reported(STAGE_UP, bool(facts and facts.vif_present))
    all_done = compiled.done and flows.done and dhcp.done and meta.done and vif
    if all_done:
        detail = f"ofport {facts.ofport}" if facts and facts.ofport else previous.get(STAGE_UP, PortStage("")).detail
    else:
        detail = "waiting for the VIF" if known and not vif else ""
    up = stage(STAGE_UP, all_done, detail)
    stages = (accepted, compiled, flows, dhcp, meta, up)
    if not bound or not port.admin_state_up or not agent_registered:
        status = PORT_DOWN
    elif all_done:
        status = PORT_ACTIVE
    else:
        status = PORT_BUILD
    return status, stages


class PortStatusTracker:
    """Joins compile events and agent reports, and writes a port's status when it changes.

    Callers only record facts; a writer thread turns them into store commits a
    moment later (``DELAY``), coalescing bursts: every port whose status changed
    meanwhile goes in one commit. A status write is a commit with events of its
    own: done inline it would compete, at the worst moment, with the delta just
    queued for the agent and with the API call that caused it.
    """

    DELAY = 0.005  # seconds

    def __init__(self, store: Store, writer: StatusWriter) -> None:
        self.store = store
        self.writer = writer
        self.lock = threading.Lock()
        self.compiled: dict[str, float] = {}
        self.facts: dict[str, HostFacts] = {}
        self._pending: set[str] = set()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="port-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=5)

    def flush(self) -> None:
        """Write what is pending now (for tests and shutdown)."""
        self._write_pending()

    def ports_compiled(self, port_ids: list[str], revision: int) -> None:
        now = time.time()
        with self.lock:
            for pid in port_ids:
                self.compiled.setdefault(pid, now)
        self._mark(port_ids)

    def report(self, host: str, facts: list[tuple[str, HostFacts]]) -> None:
        with self.lock:
            for pid, f in facts:
                self.facts[pid] = f
        self._mark([pid for pid, _ in facts])

    def forget(self, port_id: str) -> None:
        with self.lock:
            self.compiled.pop(port_id, None)
            self.facts.pop(port_id, None)

    def rebind(self, port_id: str) -> None:
        """A port moved host or was unbound: what its old host said no longer counts."""
        self.forget(port_id)
        self._mark([port_id])

    def agent_registered(self, host: str, port_ids: list[str]) -> None:
        """``host``'s agent registered for the first time: its ports' binding no longer fails."""
        self._mark(port_ids)

    def _mark(self, port_ids: list[str]) -> None:
        with self.lock:
            self._pending.update(port_ids)
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            time.sleep(self.DELAY)
            self._write_pending()
        self._write_pending()

    def _write_pending(self) -> None:
        with self.lock:
            pending, self._pending = self._pending, set()
        changes: list[tuple[Port, str, tuple[PortStage, ...], bool]] = []
        for pid in pending:
            try:
                change = self._refresh(pid)
            except Exception:
                log.exception("port status refresh failed", port_id=pid)
                continue
            if change is not None:
                changes.append(change)
        for start in range(0, len(changes), WRITE_BATCH):
            batch = changes[start : start + WRITE_BATCH]
            try:
                self.writer([(port.id, status, stages) for port, status, stages, _ in batch])
            except Exception as exc:
                log.warning("port statuses not written", ports=len(batch), error=str(exc))
                continue
            for port, status, _, registered in batch:
                if status == port.status:
                    continue
                if registered:
                    log.info("port status", port_id=port.id, status=status, host=port.binding_host_id)
                else:
                    host = port.binding_host_id
                    log.warning("port binding failed", port_id=port.id, status=status, host=host, reason="no agent")

    def _refresh(self, port_id: str) -> tuple[Port, str, tuple[PortStage, ...], bool] | None:
        """The port's new (status, stages), or None when they stand."""
        port = self.store.get("port", port_id)
        if not isinstance(port, Port):
            self.forget(port_id)
            return None
        with self.lock:
            compiled_at = self.compiled.get(port_id)
            facts = self.facts.get(port_id)
        host = port.binding_host_id
        registered = not host or isinstance(self.store.get("agent", host), Agent)
        status, stages = compute_stages(port, compiled_at, facts, time.time(), registered)
        if status == port.status and _same(stages, port.stages):
            return None
        return port, status, stages, registered


def _same(a: tuple[PortStage, ...], b: tuple[PortStage, ...]) -> bool:
    return [(s.name, s.done, s.detail) for s in a] == [(s.name, s.done, s.detail) for s in b]
