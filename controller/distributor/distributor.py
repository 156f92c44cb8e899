"""The distributor: turns store changes into per-host deltas for the agents.

It subscribes to the store, applies each change to a :class:`Topology`, works
out which hosts and which flow groups on them the change touches, recompiles
only those, and logs and pushes the resulting delta to the host's Sync
streams. A change to one port on a network spanning k hosts costs k small group
compilations, independent of the size of the rest of the model.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from controller.compiler.feature import ALL_GROUPS, HOST_KIND, PIPELINE_KEY, GroupKey, HostGroups
from controller.compiler.host import FEATURES, host_peers, local_network_spec, local_port_spec
from controller.compiler.l3spec import host_l3_spec
from controller.compiler.secgroups import address_set_refs
from controller.compiler.topology import Topology, is_vif_port
from controller.distributor.hoststate import (
    DeltaBuilder,
    HostRecord,
    Members,
    SetRef,
    address_set_to_proto,
    merge_deltas,
    snapshot_to_proto,
)
from controller.model import Agent, Port, Resource
from controller.store.base import Event, EventType, Store
from dataplane.common.logs import get_logger
from protos.loom.v1 import agent_pb2, hypervisor_pb2

log = get_logger(__name__)

KINDS = (
    "network",
    "subnet",
    "port",
    "instance",
    "agent",
    "security_group",
    "security_group_rule",
    "router",
    "floatingip",
)

# Longest time between the starts of two passes under a sustained stream of changes (seconds): the bound on
# how long a change waits for the pass after a long one.
MAX_PASS_GAP = 0.25

# Port fields that change nothing in any host's desired state.
_STATUS_ONLY_FIELDS = frozenset({"status", "stages", "revision_number", "updated_at"})


@dataclass
class DistributorStats:
    """Counters for the event loop; ``last_*`` describe the most recent batch."""

    batches: int = 0
    events: int = 0
    last_batch_events: int = 0
    last_batch_hosts: int = 0
    last_batch_seconds: float = 0.0
    last_batch_cpu_seconds: float = 0.0


class InstanceSource(Protocol):
    """Per-host desired state beyond the compiled flows: the guests each host runs (compute/spec.py).

    Specs are not compiled from the topology: the source reads them from the
    store as it is now, and says which (host, instance) pairs an event may touch.
    """

    def affected(self, ev: Event) -> dict[str, set[str]]: ...

    def instance_ids(self, host: str) -> set[str]: ...

    def spec(self, host: str, instance_id: str) -> hypervisor_pb2.InstanceSpec | None: ...


class PortListener(Protocol):
    """Told about ports as the distributor compiles them (for port stages)."""

    def ports_compiled(self, port_ids: list[str], revision: int) -> None: ...

    def rebind(self, port_id: str) -> None: ...

    def agent_registered(self, host: str, port_ids: list[str]) -> None: ...


class Distributor:
    """Keeps every host's compiled state current and streams it to agents."""

    def __init__(
        self,
        store: Store,
        topology: Topology,
        listener: PortListener | None = None,
        instances: InstanceSource | None = None,
        pass_interval: float = 0.05,
    ) -> None:
        self.store = store
        # Shortest time between the starts of two passes while changes keep coming (seconds).
        self.pass_interval = pass_interval
        self.topo = topology
        self.instances = instances
        self.epoch = uuid.uuid4().hex
        self.records: dict[str, HostRecord] = {}
        self.set_holders: dict[str, set[str]] = {}  # remote group id -> hosts holding its address set
        self.lock = threading.RLock()
        self.listener = listener
        self._events: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._start_revision = 0
        self.revision = 0  # last store revision applied
        self._dataplane_ports: set[str] = set()  # ports the dataplane knows (see _on_commit)
        self._dataplane_ports_lock = threading.Lock()  # also guards _pending and _skipped_upto
        self._pending = 0  # commits queued and not yet processed
        self._skipped_upto = 0  # the last commit _on_commit found nothing to do for
        self.stats = DistributorStats()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the model, compile every known host, then follow the store."""
        self._unsubscribe = self.store.subscribe(self._on_commit)
        with self.lock, self._dataplane_ports_lock:
            self._start_revision = self.store.revision
            for kind in KINDS:
                for obj in self.store.list(kind):
                    if isinstance(obj, Port) and not in_dataplane(obj):
                        continue
                    if isinstance(obj, Port):
                        self._dataplane_ports.add(obj.id)
                    self.topo.apply(obj.KIND, obj.id, obj)
            self.topo.take_membership_changes()  # a fresh topology: every host is compiled whole below
            self.topo.secgroups.take_member_changes()
            self.revision = self._start_revision
            hosts = set(self.topo.vif_ports_by_host) | set(self.topo.agents)
            compiled: list[str] = []
            for host in hosts:
                compiled.extend(self._full_compile(host))
        if compiled and self.listener is not None:
            self.listener.ports_compiled(compiled, self.revision)
        self._thread = threading.Thread(target=self._run, name="distributor", daemon=True)
        self._thread.start()
        log.info("distributor started", revision=self.revision, hosts=len(self.records), epoch=self.epoch)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        self._events.put(None)
        if self._thread:
            self._thread.join(timeout=5)
        with self.lock:
            for rec in self.records.values():
                for sub in rec.subscribers:
                    sub.put(None)

    def _on_commit(self, events: list[Event]) -> None:
        """Store callback (the committing thread, in commit order): queue what can change a host.

        An unbound VM port changes no host's state, nor does a port's status; orchestrators create many, and
        waking the distributor for each would cost the API throughput. The set of
        ports the dataplane knows is kept here, in commit order, so that unbinding
        or deleting a port that was bound is always passed on, even before the
        distributor thread has applied its binding.
        """
        relevant = False
        with self._dataplane_ports_lock:
            for ev in events:
                if ev.kind != "port":
                    relevant = True
                    continue
                if ev.type == EventType.UPDATED and _status_only(ev.old, ev.obj):
                    continue  # the port's own status: no host's state reads it
                matters = ev.type != EventType.DELETED and in_dataplane(ev.obj)  # type: ignore[arg-type]
                if matters or ev.id in self._dataplane_ports:
                    relevant = True
                if matters:
                    self._dataplane_ports.add(ev.id)
                else:
                    self._dataplane_ports.discard(ev.id)
            if relevant:
                self._pending += 1
            else:
                # Nothing to do for this commit; it counts as applied once nothing queued before it remains.
                self._skipped_upto = events[-1].revision
                if self._pending == 0:
                    self.revision = max(self.revision, self._skipped_upto)
        if relevant:
            self._events.put(events)

    def wait_for(self, revision: int, timeout: float = 5.0) -> bool:
        """Block until the distributor has applied ``revision`` (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while self.revision < revision:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    # ------------------------------------------------------------ event loop

    def _run(self) -> None:
        last_pass, last_took, sustained = 0.0, 0.0, False
        while True:
            batch = self._events.get()
            if batch is None:
                return
            # Changes kept coming while the last pass ran (a stream of them, not one orchestrator step
            # waiting for its result): gather for a moment, so that a change touching every host (a
            # port joining a group all hosts reference) costs each host one delta per pass, not one
            # per change. Otherwise a change goes out at once.
            # A pass holds the interpreter while it runs; after a long one, wait as long as it took (up to
            # MAX_PASS_GAP from start to start), so that the API threads of this process get their turn.
            if sustained and self.pass_interval > 0:
                linger = last_pass + min(max(self.pass_interval, 2 * last_took), MAX_PASS_GAP) - time.monotonic()
                if linger > 0:
                    time.sleep(linger)
            last_pass = time.monotonic()
            events = list(batch)
            batches = 1
            # Coalesce whatever else is already queued into one pass.
            stopping = False
            while True:
                try:
                    more = self._events.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                events.extend(more)
                batches += 1
            try:
                self._process(events)
                last_took = time.monotonic() - last_pass
            except Exception:
                log.exception("distributor failed to process events", first=events[0].revision, n=len(events))
            with self._dataplane_ports_lock:
                self._pending -= batches
                if self._pending == 0:
                    self.revision = max(self.revision, self._skipped_upto)
            if stopping:
                return
            sustained = not self._events.empty()

    def _process(self, events: list[Event]) -> None:
        events = [e for e in events if e.revision > self._start_revision]
        if not events:
            return
        started, started_cpu = time.perf_counter(), time.thread_time()
        compiled_ports: list[str] = []
        rebound: list[str] = []
        registered: dict[str, list[str]] = {}  # hosts whose agent just registered -> their ports
        with self.lock:
            dirty: HostGroups = {}
            guests: dict[str, set[str]] = {}  # host -> instances whose spec to recompute
            spec_hosts: set[str] = set()  # hosts whose tunnel peers and L3 spec to recompute whatever else
            for ev in events:
                if self.instances is not None:
                    for host, ids in self.instances.affected(ev).items():
                        guests.setdefault(host, set()).update(ids)
                # Live events carry the object before the change; the topology holds bound ports only.
                old = None if ev.type == EventType.CREATED else ev.old
                new = None if ev.type == EventType.DELETED else ev.obj
                if isinstance(old, Port) and not in_dataplane(old):
                    old = None
                if isinstance(new, Port) and not in_dataplane(new):
                    new = None  # an unbound VM port is no part of the topology
                if old is None and new is None:
                    continue
                if _status_only(old, new):
                    continue
                if isinstance(old, Port) and (new is None or old.binding_host_id != new.binding_host_id):
                    rebound.append(old.id)
                if isinstance(new, Agent) and old is None:
                    registered[new.id] = list(self.topo.vif_ports_by_host.get(new.id, {}))
                # What reads the object before the change, and what reads it after: the union is what
                # to recompile.
                if old is not None:
                    _merge(dirty, FEATURES.affected(self.topo, old, None))
                self.topo.apply(ev.kind, ev.id, new)
                if new is not None:
                    _merge(dirty, FEATURES.affected(self.topo, None, new))
                joins = self.topo.take_membership_changes()
                _merge(dirty, FEATURES.membership(self.topo, joins))
                # Tunnel peers (and the L3 specs built on them) move only when a host joins or leaves a network,
                # or an agent changes: recomputed there, not on every host a port change touches.
                for host, network_id in joins:
                    spec_hosts.add(host)
                    spec_hosts.update(self.topo.hosts_of_network(network_id))
                if isinstance(old, Agent) or isinstance(new, Agent):
                    spec_hosts.update(self.records)
            revision = events[-1].revision
            shared = _PassCache(self.members, self._set_changes())
            # Every host holding a set whose members changed gets the change, whatever else touched it.
            holders = {h for group_id in shared.set_changes for h in self.set_holders.get(group_id, ())}
            for host in dirty.keys() | guests.keys() | holders:
                compiled_ports.extend(
                    self._recompile(
                        host, dirty.get(host, set()), revision, guests.get(host), shared, host in spec_hosts
                    )
                )
            st = self.stats
            st.batches += 1
            st.events += len(events)
            st.last_batch_events = len(events)
            st.last_batch_hosts = len(dirty)
            st.last_batch_seconds = time.perf_counter() - started
            st.last_batch_cpu_seconds = time.thread_time() - started_cpu
            self.revision = revision
        if self.listener is not None:
            for pid in rebound:
                self.listener.rebind(pid)
            for host, port_ids in registered.items():
                if port_ids:
                    self.listener.agent_registered(host, port_ids)
            if compiled_ports:
                self.listener.ports_compiled(compiled_ports, revision)

    # ------------------------------------------------------------ compile

    def _full_compile(self, host: str) -> list[str]:
        return self._recompile(host, {ALL_GROUPS}, self.revision or self._start_revision)

    def _set_changes(self) -> dict[str, agent_pb2.AddressSetChange]:
        """This pass's membership changes, one message per group, shared by every host holding its set."""
        return {
            group_id: agent_pb2.AddressSetChange(group_id=group_id, added=sorted(added), removed=sorted(removed))
            for group_id, (added, removed) in self.topo.secgroups.take_member_changes().items()
        }

    def members(self, group_id: str) -> Collection[str]:
        """A remote group's member addresses now: the content of its address set on every host holding it."""
        return self.topo.secgroups.addresses_of(group_id)

    def flow_count(self, rec: HostRecord) -> int:
        with self.lock:
            return rec.flow_count(self.members)

    def _recompile(
        self,
        host: str,
        keys: set[GroupKey],
        revision: int,
        instance_ids: set[str] | None = None,
        shared: _PassCache | None = None,
        specs: bool = False,
    ) -> list[str]:
        """Recompile ``keys`` on ``host``; log and push the delta. Returns newly compiled local ports.

        A dirty ("port", id) group also recomputes that port's local spec, a dirty
        ("network", id) group that network's localport spec: they read the same objects.
        ``instance_ids``: instances whose spec to recompute too (all of the host's on a full compile).
        ``shared``: what this pass computes once for every host (filled in here).
        ``specs``: recompute the host's tunnel peers and L3 spec even if no dirty group's feature shapes them.
        """
        topo = self.topo
        rec = self.records.get(host)
        created = rec is None
        if rec is None:
            rec = self.records[host] = HostRecord(host, revision=revision, log_floor=revision)
        builder = DeltaBuilder(rec)
        guests = set(instance_ids or ())
        host_specs = created or specs or not FEATURES.flows_only(keys)
        if created or ALL_GROUPS in keys:
            keys = set(FEATURES.host_groups(topo, host)) | set(rec.groups)
            port_ids = set(topo.vif_ports_by_host.get(host, {})) | set(rec.ports)
            net_ids = topo.networks_of_host(host) | set(rec.networks)
            if self.instances is not None:
                guests = self.instances.instance_ids(host) | set(rec.instances)
        else:
            port_ids = {oid for kind, oid in keys if kind == "port"}
            net_ids = {oid for kind, oid in keys if kind == "network"}
            keys = keys | {k for k in _HOST_WIDE if k not in rec.groups}
        shared = _PassCache(self.members, {}) if shared is None else shared
        cookies = shared.cookies
        for key in sorted(keys):
            if key not in cookies:
                cookies[key] = FEATURES.cookie(topo, key)
            builder.set_group(key, cookies[key], FEATURES.compile(topo, key, host))
        for pid in port_ids:
            port = topo.ports.get(pid)
            local = port is not None and is_vif_port(port) and port.binding_host_id == host
            builder.set_port(pid, local_port_spec(topo, port) if local and port else None)
        for net_id in net_ids:
            present = topo.host_has_network(host, net_id)
            builder.set_network(net_id, local_network_spec(topo, net_id) if present else None)
        # A host's address sets follow from its few remote references: recomputed whenever it is touched.
        builder.set_address_sets(address_set_refs(topo, host), shared.whole_set, shared.set_changes)
        for group_id in builder.removed_sets:
            self.set_holders.get(group_id, set()).discard(host)
        for whole in builder.upserted_sets:
            self.set_holders.setdefault(whole.group_id, set()).add(host)
        if host_specs:
            builder.set_peers(host_peers(topo, host))
            builder.set_l3(host_l3_spec(topo, host))
        if self.instances is not None:
            for iid in guests:
                builder.set_instance(iid, self.instances.spec(host, iid))
        local = topo.vif_ports_by_host.get(host, {})
        compiled = [k[1] for k in builder.changed_groups if k[0] == "port" and k[1] in local]
        if builder.empty():
            return compiled
        rec.revision = revision
        if created:
            # Nobody can hold an older state of a host that did not exist: a
            # stream opening now gets this as its snapshot, so log nothing.
            rec.log_floor = revision
            return compiled
        delta = builder.to_proto()
        rec.log.append((revision, delta))
        if len(rec.log) == rec.log.maxlen:
            rec.log_floor = rec.log[0][0] - 1
        msg = agent_pb2.SyncMessage(revision=revision, epoch=self.epoch, delta=delta)
        for sub in rec.subscribers:
            sub.put(msg)
        log.debug("delta queued", host=host, revision=revision, streams=len(rec.subscribers))
        return compiled

    # ------------------------------------------------------------ sync streams

    def open_stream(self, host: str, last_revision: int, epoch: str) -> tuple[queue.SimpleQueue, list]:
        """Register a Sync stream: returns its queue and the messages that bring the agent up to date."""
        sub: queue.SimpleQueue = queue.SimpleQueue()
        with self.lock:
            rec = self.records.get(host)
            if rec is None:
                self._full_compile(host)
                rec = self.records[host]
            rec.subscribers.add(sub)
            if epoch == self.epoch and rec.log_floor <= last_revision <= rec.revision:
                # One message, not one per missed delta: an agent may program the switch after
                # any message, and the states in between are history, not the desired state.
                missed = [delta for rev, delta in rec.log if rev > last_revision]
                catch_up = (
                    [agent_pb2.SyncMessage(revision=rec.revision, epoch=self.epoch, delta=merge_deltas(missed))]
                    if missed
                    else []
                )
            else:
                snapshot = snapshot_to_proto(rec, self.topo.tunnel_ip(host) or "", self.topo.metadata_url, self.members)
                catch_up = [agent_pb2.SyncMessage(revision=rec.revision, epoch=self.epoch, snapshot=snapshot)]
        return sub, catch_up

    def close_stream(self, host: str, sub: queue.SimpleQueue) -> None:
        with self.lock:
            rec = self.records.get(host)
            if rec is not None:
                rec.subscribers.discard(sub)

    def host_record(self, host: str) -> HostRecord | None:
        with self.lock:
            return self.records.get(host)


@dataclass
class _PassCache:
    """What one pass computes once and every host it touches shares."""

    members: Members  # a remote group's member addresses now
    set_changes: dict[str, agent_pb2.AddressSetChange]  # remote group -> its membership change this pass
    cookies: dict[GroupKey, int | None] = field(default_factory=dict)  # a group's cookie is the same everywhere
    wholes: dict[tuple[str, SetRef], agent_pb2.AddressSet] = field(default_factory=dict)

    def whole_set(self, group_id: str, ref: SetRef) -> agent_pb2.AddressSet:
        """A set going whole to a host: built once per pass for every host holding it with these conj ids."""
        key = (group_id, ref)
        if key not in self.wholes:
            self.wholes[key] = address_set_to_proto(group_id, ref, self.members(group_id))
        return self.wholes[key]


# Groups every host has, whatever it holds: the table misses and each feature's host-wide group.
_HOST_WIDE: frozenset[GroupKey] = frozenset({PIPELINE_KEY, *((HOST_KIND, f.name) for f in FEATURES.features)})


def _merge(into: HostGroups, more: HostGroups) -> None:
    for host, keys in more.items():
        into.setdefault(host, set()).update(keys)


def in_dataplane(port: Port) -> bool:
    """Bound VIF ports, and the distributed ports (DHCP, router) that exist on every host of a network."""
    return bool(port.binding_host_id) or port.device_owner.startswith("network:")


def _status_only(old: Resource | None, new: Resource | None) -> bool:
    """True for a port update that only moved its status or stages."""
    if not (isinstance(old, Port) and isinstance(new, Port)):
        return False
    for name in Port.__dataclass_fields__:
        if name not in _STATUS_ONLY_FIELDS and getattr(old, name) != getattr(new, name):
            return False
    return True
