"""One simulated Open vSwitch bridge: flow tables, groups, port liveness and conntrack.

:class:`FlowTable` pushes a packet through OpenFlow 1.3 tables the way OVS's
translation (ofproto/ofproto-dpif-xlate.c) and userspace datapath
(lib/dpif-netdev.c) do, for the actions Loom uses:

* Lookup: highest priority wins; two matching flows at one priority with
  different actions is a compiler bug and raises (OVS would pick either; when
  their actions and goto are identical, which one ran changes nothing, and
  the first in match order is reported). Conjunctive matches follow OVS's
  classifier (lib/classifier.c): flows with ``conjunction(id, k/n)`` actions
  match "softly"; when every dimension of an id matched at a priority above
  the best ordinary match, the table is searched again with ``conj_id=id``
  (ordinary flows only, any priority) and that flow runs. If the search finds
  nothing, lower-priority flows with the same match are tried. Several ids
  completing at one priority: OVS takes the first it finds, so unless every
  one of them leads to a flow with the same actions and goto, the outcome is
  "unpredictable" and raises here.
* Actions run in order; ``goto_table`` last. ``resubmit`` is a subroutine
  whose changes persist. A table miss ends only the lookup it belongs to.
  Output to the input port is skipped; ``IN_PORT`` sends back.
* ``dec_ttl`` with TTL <= 1 ends the *current action list* only (OVS sends a
  packet-in that no controller receives); a resubmitting caller carries on.
* ``ct``: the datapath runs conntrack (:mod:`.conntrack`) on the packet; with
  ``table=T`` a clone recirculates to T with ct_state, ct_zone, ct_mark and
  ct_label set, while the current action list carries on with those fields
  cleared. NAT rewrites the datapath packet, not the fields the current
  translation matches on, exactly as in OVS (an ``output`` after
  ``ct(commit,nat(...))`` sends the translated packet). Recirculation runs
  where it happens, as dpif-netdev executes it.
* ``ct_clear`` untracks the packet. ``bundle`` outputs to one live member
  (``active_backup``: the first; ``hrw``: OVS's hash). ``group``: all and
  indirect run every bucket, fast_failover the first live one, select the
  only live one (OVS picks among several by the datapath hash: raises).
  Buckets are action sets and run on a clone of the packet.

Port liveness (carrier and BFD, OVS's ``may_enable``) is a map the tests set
per port with :meth:`FlowTable.set_port`; a bundle or group asking about a
port nobody declared raises.

Trace mode (``process(..., ct_next=[...])``) behaves like ``ovs-appctl
ofproto/trace --ct-next``: ct does not touch the connection table, each
recirculation resumes with the next given ct_state (default ``trk|new``), NAT
is faked by writing the range's first address and port, and recirculations
run after the pass that made them, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Union

from controller.compiler.sim.conntrack import CS_NEW, CS_TRACKED, Conntrack, CtMeta, parse_ct_state
from controller.compiler.sim.errors import SimulationError
from controller.compiler.sim.hashing import flow_hash_fields, hrw_pick
from controller.compiler.sim.packet import Packet
from dataplane.contract.fields import ETH_TYPE_IPV4, IP_PROTO_TCP, IP_PROTO_UDP, OFPP_IN_PORT, ipv4_to_int
from dataplane.contract.flow import (
    Action,
    Bucket,
    Bundle,
    BundleLoad,
    Conjunction,
    Ct,
    CtClear,
    DecTtl,
    Flow,
    Group,
    GroupDef,
    Match,
    Move,
    Nat,
    Output,
    PopVlan,
    PushVlan,
    Resubmit,
    SetField,
)

# Fields that belong to the pipeline, not the packet: reset at every bridge.
PIPELINE_FIELDS = ("metadata", *(f"reg{i}" for i in range(16)))
_CT_FIELDS = ("ct_state", "ct_zone", "ct_mark", "ct_label")
# What the translation knows but the datapath packet does not carry.
_META_FIELDS = frozenset({"in_port", "conj_id", *PIPELINE_FIELDS, *_CT_FIELDS})
# Fields every OVS flow has, zero unless set: a match on them never fails for lack of a header.
_ZERO_DEFAULT = frozenset(
    {*PIPELINE_FIELDS, *_CT_FIELDS, "conj_id", "tunnel_id", "tun_ipv4_src", "tun_ipv4_dst", "pkt_mark", "vlan_vid"}
)
_VLAN_PRESENT = 0x1000  # OFPVID_PRESENT: the packet has an 802.1Q tag
_READ_ONLY = frozenset({"eth_type", "ip_proto", "ct_state", "ct_zone", "ct_mark", "ct_label", "conj_id"})

MAX_DEPTH = 64  # ofproto-dpif-xlate.c MAX_DEPTH: nested resubmit/goto/group
MAX_RESUBMITS = MAX_DEPTH * MAX_DEPTH
MAX_RECIRC_DEPTH = 6  # dpif-netdev.c: deeper recirculation is dropped
_MAX_LIVENESS_RECURSION = 128

OFPP_TABLE = 0xFFFFFFF9
OFPP_NORMAL = 0xFFFFFFFA
OFPP_FLOOD = 0xFFFFFFFB
OFPP_ALL = 0xFFFFFFFC
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_NONE = 0xFFFFFFFF
_UNMODELLED_PORTS = {
    OFPP_TABLE: "TABLE",
    OFPP_NORMAL: "NORMAL",
    OFPP_FLOOD: "FLOOD",
    OFPP_ALL: "ALL",
    OFPP_CONTROLLER: "CONTROLLER",
    OFPP_NONE: "NONE",
}


# ---------------------------------------------------------------- what a trace records


@dataclass(frozen=True)
class Emit:
    """A packet leaving through ``port``: its headers as sent, plus the pipeline registers for debugging."""

    port: int
    packet: Packet


@dataclass(frozen=True)
class CtEvent:
    """A ct action ran. ``state`` is the ct_state conntrack gave the packet (in trace mode: the --ct-next one)."""

    zone: int
    commit: bool
    recirc_table: int | None
    nat: Nat | None
    state: int
    mark: int
    label: int


@dataclass(frozen=True)
class ConjunctionEvent:
    """A conjunctive match completed: the table was searched with ``conj_id`` and found ``flow``."""

    table: int
    priority: int
    conj_id: int
    flow: Flow


@dataclass(frozen=True)
class BundleEvent:
    bundle: Bundle
    member: int | None  # None: no live member, dropped


@dataclass(frozen=True)
class GroupEvent:
    group_id: int
    buckets: tuple[int, ...]  # indices of the buckets that ran


@dataclass(frozen=True)
class DropEvent:
    """Processing of an action list ended early (dec_ttl exception)."""

    reason: str


Event = Union[CtEvent, ConjunctionEvent, BundleEvent, GroupEvent, DropEvent]


@dataclass
class Pass:
    """One run of the pipeline: the first (``table`` 0) or one resumed after a ct recirculation."""

    table: int
    ct_state: int = 0
    ct_zone: int = 0
    ct_mark: int = 0
    ct_label: int = 0
    hits: list[Flow] = field(default_factory=list)
    emitted: list[Emit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


@dataclass
class Trace:
    """What happened to one packet on one bridge: every pass, and everything in execution order."""

    hits: list[Flow] = field(default_factory=list)
    emitted: list[Emit] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    passes: list[Pass] = field(default_factory=list)

    def outputs(self) -> list[int]:
        return [e.port for e in self.emitted]


# ---------------------------------------------------------------- per-packet translation state


@dataclass
class _State:
    """One pass in progress.

    ``flow`` is what the translation sees and matches on; ``dp`` the packet
    in the datapath, and ``base`` what the translation believes ``dp`` holds.
    OVS writes a field to the datapath packet (at an output, a ct, a
    recirculation) only where ``flow`` and ``base`` differ: that is how a
    packet NATed by ct keeps its translated headers while the translation
    still sees the original ones.
    """

    flow: Packet
    dp: Packet
    base: Packet
    md: CtMeta
    record: Pass
    recirc_depth: int
    resubmits: int = 0

    def commit(self) -> None:
        for name, value in self.flow.items():
            if name not in _META_FIELDS and self.base.get(name) != value:
                self.dp[name] = value
                self.base[name] = value


class _Stop(Exception):
    """dec_ttl's exception: ends the current action list."""


@dataclass
class _Run:
    trace: Trace
    ct_next: deque[int] | None
    queue: deque[tuple[int, Packet, CtMeta, int]] = field(default_factory=deque)


# ---------------------------------------------------------------- the bridge


class FlowTable:
    """The flows, groups, port liveness and connection table of one bridge."""

    def __init__(
        self,
        flows: Iterable[Flow],
        groups: Iterable[GroupDef] = (),
        *,
        conntrack: Conntrack | None = None,
        ports: dict[int, bool] | None = None,
    ) -> None:
        self.flows: list[Flow] = list(flows)
        self.groups: dict[int, GroupDef] = {}
        for g in groups:
            if g.group_id in self.groups:
                raise SimulationError(f"group {g.group_id} is defined twice")
            self.groups[g.group_id] = g
        self.conntrack = conntrack if conntrack is not None else Conntrack()
        self.ports: dict[int, bool] = dict(ports or {})
        # Per table, flows with identical matches form one chain, highest priority first (OVS keeps such
        # "twins" together; a conjunctive match falls back to them). Chains are sorted by their top priority.
        chains: dict[int, dict[Match, list[Flow]]] = {}
        for f in self.flows:
            chain = chains.setdefault(f.table, {}).setdefault(f.match, [])
            if any(other.priority == f.priority for other in chain):
                raise SimulationError(f"two flows share table, priority and match: {f.text()}")
            chain.append(f)
            _check_prerequisites(f)
            if any(isinstance(a, Conjunction) for a in f.actions) and (
                not all(isinstance(a, Conjunction) for a in f.actions) or f.goto is not None
            ):
                raise SimulationError(f"a flow with conjunction actions may have no other action: {f.text()}")
        self._chains: dict[int, list[list[Flow]]] = {}
        for table, by_match in chains.items():
            lists = [sorted(c, key=lambda f: -f.priority) for c in by_match.values()]
            self._chains[table] = sorted(lists, key=lambda c: -c[0].priority)

    # -- liveness

    def set_port(self, port: int, up: bool = True) -> None:
        """Declare a port's liveness (link up and, for tunnels, BFD forwarding)."""
        self.ports[port] = up

    def port_up(self, port: int) -> bool:
        up = self.ports.get(port)
        if up is None:
            raise SimulationError(f"liveness of port {port} is unknown: declare it with set_port()")
        return up

    # -- lookup

    def lookup(self, table: int, pkt: Packet) -> Flow | None:
        """The flow a packet with these fields hits in ``table`` (conjunctions included)."""
        return self._lookup(table, pkt, None)

    def _lookup(self, table: int, pkt: Packet, events: list[Event] | None) -> Flow | None:
        hard_pri = -1
        hards: list[Flow] = []
        soft: list[tuple[list[Flow], int]] = []
        for chain in self._chains.get(table, ()):
            top = chain[0]
            if top.priority < hard_pri:
                break
            if not _matches(top.match, pkt):
                continue
            if _is_soft(top):
                soft.append((chain, 0))
            elif top.priority > hard_pri:
                hard_pri, hards = top.priority, [top]
            else:
                hards.append(top)
        while True:
            soft = [(c, i) for c, i in soft if c[i].priority > hard_pri]
            if not soft:
                break
            soft_pri = max(c[i].priority for c, i in soft)
            here = [(c, i) for c, i in soft if c[i].priority == soft_pri]
            clauses: dict[int, tuple[int, set[int]]] = {}
            for c, i in here:
                for conj in c[i].actions:
                    assert isinstance(conj, Conjunction)
                    n, seen = clauses.setdefault(conj.id, (conj.n_clauses, set()))
                    if n != conj.n_clauses:
                        raise SimulationError(
                            f"conjunction {conj.id} has {n} and {conj.n_clauses} dimensions in table {table}"
                        )
                    seen.add(conj.clause)
            found: dict[int, Flow | None] = {}
            for conj_id, (n, seen) in sorted(clauses.items()):
                if len(seen) == n:
                    found[conj_id] = self._lookup_hard(table, {**pkt, "conj_id": conj_id})
            outcomes = {None if hit is None else (hit.actions, hit.goto) for hit in found.values()}
            if len(outcomes) > 1:
                raise SimulationError(
                    f"overlapping conjunctive matches in table {table} at priority {soft_pri}: conj ids"
                    f" {sorted(found)} all complete and lead to different actions (OVS picks one unpredictably)"
                )
            if outcomes and None not in outcomes:
                conj_id, hit = next((c, h) for c, h in found.items() if h is not None)
                if events is not None:
                    events.append(ConjunctionEvent(table, soft_pri, conj_id, hit))
                return hit
            # No conj_id flow: try the next-lower flows with the same matches (OVS's soft-match fallback).
            soft = [(c, i) for c, i in soft if c[i].priority != soft_pri]
            for c, i in here:
                if i + 1 < len(c):
                    twin = c[i + 1]
                    if _is_soft(twin):
                        soft.append((c, i + 1))
                    elif twin.priority > hard_pri:
                        hard_pri, hards = twin.priority, [twin]
                    elif twin.priority == hard_pri:
                        hards.append(twin)
        return _one(table, hards)

    def _lookup_hard(self, table: int, pkt: Packet) -> Flow | None:
        """The best ordinary (non-conjunctive) flow, as the conj_id search does it."""
        best_pri = -1
        best: list[Flow] = []
        for chain in self._chains.get(table, ()):
            if chain[0].priority < best_pri:
                break
            if not _matches(chain[0].match, pkt):
                continue
            hard = next((f for f in chain if not _is_soft(f)), None)
            if hard is None or hard.priority < best_pri:
                continue
            if hard.priority > best_pri:
                best_pri, best = hard.priority, [hard]
            else:
                best.append(hard)
        return _one(table, best)

    # -- processing

    def process(self, packet: Packet, in_port: int, *, ct_next: Sequence[int | str] | None = None) -> Trace:
        """Push one packet received on ``in_port`` through the tables.

        ``ct_next`` switches to trace mode (``ofproto/trace --ct-next``): the
        ct_states recirculations resume with, in order, ints or ``"trk,est"``.
        """
        flow = {k: v for k, v in packet.items() if k not in _META_FIELDS}
        flow["in_port"] = in_port
        states = None if ct_next is None else deque(s if isinstance(s, int) else parse_ct_state(s) for s in ct_next)
        run = _Run(Trace(), states)
        self._pass(run, 0, flow, CtMeta(), 0)
        while run.queue:
            table, rec_flow, md, depth = run.queue.popleft()
            self._pass(run, table, rec_flow, md, depth)
        return run.trace

    def _pass(self, run: _Run, table: int, flow: Packet, md: CtMeta, recirc_depth: int) -> None:
        record = Pass(
            table, flow.get("ct_state", 0), flow.get("ct_zone", 0), flow.get("ct_mark", 0), flow.get("ct_label", 0)
        )
        run.trace.passes.append(record)
        dp = {k: v for k, v in flow.items() if k not in _META_FIELDS}
        st = _State(flow, dp, dict(dp), md, record, recirc_depth)
        self._run_table(run, st, table, 0)

    def _run_table(self, run: _Run, st: _State, table: int, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise SimulationError(f"over the translation depth {MAX_DEPTH}: a resubmit/goto loop in the tables")
        st.resubmits += 1
        if st.resubmits > MAX_RESUBMITS:
            raise SimulationError(f"over {MAX_RESUBMITS} resubmits")
        found: list[Event] = []
        flow = self._lookup(table, st.flow, found)
        for event in found:
            self._event(run, st, event)
        if flow is None:
            return  # table miss: OpenFlow 1.3 drops; a resubmitting caller carries on
        st.record.hits.append(flow)
        run.trace.hits.append(flow)
        try:
            self._do_actions(run, st, flow.actions, depth)
        except _Stop:
            return  # the goto belongs to the action list the exception ended
        if flow.goto is not None:
            if flow.goto <= table:
                raise SimulationError(f"goto_table {flow.goto} from table {table} goes backwards")
            self._run_table(run, st, flow.goto, depth + 1)

    def _do_actions(self, run: _Run, st: _State, actions: Sequence[Action], depth: int) -> None:
        for action in actions:
            self._apply(run, st, action, depth)

    def _apply(self, run: _Run, st: _State, action: Action, depth: int) -> None:
        flow = st.flow
        if isinstance(action, SetField):
            if action.field in _READ_ONLY:
                raise SimulationError(f"set_field on {action.field} outside ct(exec(...)) is not allowed")
            flow[action.field] = action.value
        elif isinstance(action, Move):
            src = (flow.get(action.src, 0) >> action.src_ofs) & ((1 << action.n_bits) - 1)
            mask = ((1 << action.n_bits) - 1) << action.dst_ofs
            flow[action.dst] = (flow.get(action.dst, 0) & ~mask) | (src << action.dst_ofs)
        elif isinstance(action, Output):
            self._output(run, st, action.port)
        elif isinstance(action, Resubmit):
            self._run_table(run, st, action.table, depth + 1)
        elif isinstance(action, DecTtl):
            if flow.get("eth_type") != ETH_TYPE_IPV4:
                return  # OVS: dec_ttl of a non-IP packet does nothing (only a group bucket can ask)
            ttl = flow.get("nw_ttl", 0)
            if ttl > 1:
                flow["nw_ttl"] = ttl - 1
                return
            self._event(run, st, DropEvent(f"dec_ttl with TTL {ttl}: sent to the controller (none: dropped)"))
            raise _Stop
        elif isinstance(action, Ct):
            self._ct(run, st, action)
        elif isinstance(action, CtClear):
            for name in _CT_FIELDS:
                flow[name] = 0
            st.md.clear()
        elif isinstance(action, Bundle):
            self._bundle(run, st, action)
        elif isinstance(action, BundleLoad):
            self._bundle_load(run, st, action)
        elif isinstance(action, PushVlan):
            if flow.get("vlan_vid", 0) & _VLAN_PRESENT:
                raise SimulationError("push_vlan on a tagged packet (QinQ) is not simulated")
            flow["vlan_vid"] = _VLAN_PRESENT  # OpenFlow 1.3: a new outermost tag with VID 0 (no tag to copy)
        elif isinstance(action, PopVlan):
            flow["vlan_vid"] = 0  # OFPVID_NONE: untagged (pop on an untagged packet does nothing)
        elif isinstance(action, Group):
            self._group(run, st, action.group_id, depth)
        elif isinstance(action, Conjunction):
            raise SimulationError("a conjunction action ran: conjunctive flows never run actions")
        else:
            raise SimulationError(f"unknown action {action!r}")

    def _event(self, run: _Run, st: _State, event: Event) -> None:
        st.record.events.append(event)
        run.trace.events.append(event)

    def _output(self, run: _Run, st: _State, port: int) -> None:
        in_port = st.flow["in_port"]
        if port == OFPP_IN_PORT:
            port = in_port
        elif port == in_port:
            return  # OpenFlow: output to the input port needs IN_PORT
        if port in _UNMODELLED_PORTS:
            raise SimulationError(f"output to {_UNMODELLED_PORTS[port]} is not simulated")
        st.commit()
        packet = {**{k: v for k, v in st.flow.items() if k in PIPELINE_FIELDS}, **st.dp}
        emit = Emit(port, packet)
        st.record.emitted.append(emit)
        run.trace.emitted.append(emit)

    # -- conntrack

    def _ct(self, run: _Run, st: _State, action: Ct) -> None:
        flow = st.flow
        if flow.get("eth_type") != ETH_TYPE_IPV4:
            raise SimulationError("ct on a non-IPv4 packet is not simulated")
        zone = action.zone if action.zone_field is None else flow.get(action.zone_field, 0) & 0xFFFF
        setmark: tuple[int, int] | None = None
        setlabel: tuple[int, int] | None = None
        for a in action.actions:
            if not isinstance(a, SetField) or a.field not in ("ct_mark", "ct_label"):
                raise SimulationError(f"ct exec() may only set ct_mark or ct_label: {a!r}")
            if not action.commit:
                raise SimulationError("ct exec() without commit: OVS refuses it")
            flow[a.field] = a.value  # the translation sees the new value until the ct fields are cleared
            if a.field == "ct_mark":
                setmark = (a.value, 0xFFFFFFFF)
            else:
                setlabel = (a.value, (1 << 128) - 1)
        st.commit()
        if run.ct_next is not None:
            # Like ofproto/trace, only a recirculation takes a --ct-next state (the default is trk|new); the
            # queue runs in creation order, so taking it now is taking it when the recirculation runs.
            state = 0
            if action.table is not None:
                state = run.ct_next.popleft() if run.ct_next else CS_TRACKED | CS_NEW
            self._event(
                run,
                st,
                CtEvent(
                    zone,
                    action.commit,
                    action.table,
                    action.nat,
                    state,
                    flow.get("ct_mark", 0),
                    flow.get("ct_label", 0),
                ),
            )
            if action.table is not None:
                rec = dict(flow)
                rec.update(ct_state=state, ct_zone=zone)
                if action.nat is not None:
                    _trace_nat(rec, action.nat)
                run.queue.append((action.table, rec, st.md.copy(), st.recirc_depth + 1))
        else:
            self.conntrack.execute(
                st.dp, st.md, zone, commit=action.commit, nat=action.nat, setmark=setmark, setlabel=setlabel
            )
            md = st.md
            self._event(run, st, CtEvent(zone, action.commit, action.table, action.nat, md.state, md.mark, md.label))
            if action.table is not None:
                if st.recirc_depth + 1 > MAX_RECIRC_DEPTH:
                    raise SimulationError(
                        f"recirculation deeper than {MAX_RECIRC_DEPTH}: the datapath drops the packet (a ct loop?)"
                    )
                rec = dict(st.dp)
                rec.update({k: v for k, v in flow.items() if k in ("in_port", *PIPELINE_FIELDS)})
                rec.update(ct_state=md.state, ct_zone=md.zone, ct_mark=md.mark, ct_label=md.label)
                self._pass(run, action.table, rec, md.copy(), st.recirc_depth + 1)
        for name in _CT_FIELDS:
            flow[name] = 0

    # -- bundles and groups

    def _pick(self, st: _State, members: tuple[int, ...], algorithm: str, fields: str, basis: int) -> int | None:
        """The live member a bundle picks (active_backup: the first; hrw: OVS's hash), None if none is live."""
        alive = [self.port_up(p) for p in members]
        if algorithm == "active_backup":
            return next((p for p, up in zip(members, alive, strict=True) if up), None)
        index = hrw_pick(flow_hash_fields(st.flow, fields, basis), alive)
        return None if index is None else members[index]

    def _bundle(self, run: _Run, st: _State, action: Bundle) -> None:
        member = self._pick(st, action.members, action.algorithm, action.fields, action.basis)
        self._event(run, st, BundleEvent(action, member))
        if member is not None:
            self._output(run, st, member)

    def _bundle_load(self, run: _Run, st: _State, action: BundleLoad) -> None:
        """bundle_load: the member ``bundle`` would pick, written to a field (0xffff: none live)."""
        member = self._pick(st, action.members, action.algorithm, action.fields, action.basis)
        self._event(run, st, BundleEvent(Bundle(action.members, action.algorithm, action.fields, action.basis), member))
        value = BundleLoad.NONE if member is None else member
        mask = ((1 << action.n_bits) - 1) << action.dst_ofs
        st.flow[action.dst] = (st.flow.get(action.dst, 0) & ~mask) | (value << action.dst_ofs)

    def _group(self, run: _Run, st: _State, group_id: int, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise SimulationError(f"over the translation depth {MAX_DEPTH} in group {group_id}")
        group = self.groups.get(group_id)
        if group is None:
            raise SimulationError(f"group {group_id} is not defined (OVS refuses flows naming it)")
        if group.type in ("all", "indirect"):
            chosen = list(range(len(group.buckets)))
        elif group.type == "fast_failover":
            first = next((i for i, b in enumerate(group.buckets) if self._bucket_alive(group, b, 0)), None)
            chosen = [] if first is None else [first]
        else:
            chosen = [i for i, b in enumerate(group.buckets) if self._bucket_alive(group, b, 0)]
            if len(chosen) > 1:
                raise SimulationError(
                    f"select group {group_id} has {len(chosen)} live buckets: OVS picks one by the datapath hash,"
                    " which is not simulated"
                )
        self._event(run, st, GroupEvent(group_id, tuple(chosen)))
        for i in chosen:
            saved = dict(st.flow)
            try:
                self._do_actions(run, st, _action_set(group.buckets[i].actions), depth + 1)
            except _Stop:
                pass
            st.flow.clear()
            st.flow.update(saved)  # buckets work on a clone of the packet

    def _bucket_alive(self, group: GroupDef, bucket: Bucket, depth: int) -> bool:
        if depth >= _MAX_LIVENESS_RECURSION:
            raise SimulationError(f"group liveness chained over {_MAX_LIVENESS_RECURSION} groups")
        if group.type == "select" and bucket.weight == 0:
            return False
        if bucket.watch_port is None and bucket.watch_group is None:
            return True
        if bucket.watch_port is not None and self.port_up(bucket.watch_port):
            return True
        if bucket.watch_group is not None:
            watched = self.groups.get(bucket.watch_group)
            if watched is None:
                return False
            return any(self._bucket_alive(watched, b, depth + 1) for b in watched.buckets)
        return False


# What a flow must match on before it may touch a field (OVS refuses the flow otherwise: OFPBAC_MATCH_INCONSISTENT).
_PREREQUISITES: dict[str, tuple[tuple[str, int], ...]] = {
    **{n: (("eth_type", ETH_TYPE_IPV4),) for n in ("ipv4_src", "ipv4_dst", "nw_ttl", "ip_proto")},
    **{n: (("eth_type", ETH_TYPE_IPV4), ("ip_proto", IP_PROTO_TCP)) for n in ("tcp_src", "tcp_dst")},
    **{n: (("eth_type", ETH_TYPE_IPV4), ("ip_proto", IP_PROTO_UDP)) for n in ("udp_src", "udp_dst")},
    **{n: (("eth_type", ETH_TYPE_IPV4), ("ip_proto", 1)) for n in ("icmpv4_type", "icmpv4_code")},
    **{n: (("eth_type", 0x0806),) for n in ("arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha")},
}


def _check_prerequisites(flow: Flow) -> None:
    """Refuse what OVS refuses: actions on IP/L4/ARP fields, ct and dec_ttl, without the matching match."""

    def require(name: str, why: str) -> None:
        for field_name, value in _PREREQUISITES.get(name, ()):
            got = flow.match.get(field_name)
            if got is None or got.mask is not None or got.value != value:
                raise SimulationError(f"{why} needs {field_name}={value:#x} in the match (OVS refuses): {flow.text()}")

    for a in flow.actions:
        if isinstance(a, Ct | DecTtl):
            require("nw_ttl", type(a).__name__)
        elif isinstance(a, SetField):
            require(a.field, f"set_field {a.field}")
        elif isinstance(a, Move):
            require(a.src, f"move from {a.src}")
            require(a.dst, f"move to {a.dst}")


def _matches(match: Match, pkt: Packet) -> bool:
    for f in match.fields:
        value = pkt.get(f.name)
        if value is None:
            if f.name not in _ZERO_DEFAULT:
                return False
            value = 0
        if (value if f.mask is None else value & f.mask) != f.value:
            return False
    return True


def _is_soft(flow: Flow) -> bool:
    return bool(flow.actions) and isinstance(flow.actions[0], Conjunction)


def _one(table: int, flows: list[Flow]) -> Flow | None:
    """The one flow of several matching at one priority: they must all do the same, or OVS's pick matters."""
    for other in flows[1:]:
        if (other.actions, other.goto) != (flows[0].actions, flows[0].goto):
            raise SimulationError(f"ambiguous match in table {table}: {flows[0].text()} and {other.text()}")
    return flows[0] if flows else None


# The "final" actions of an action set, lowest precedence first (lib/ofp-actions.c ACTION_SET_FINAL_PRIORITY).
_FINAL_ORDER: tuple[type, ...] = (Ct, CtClear, Resubmit, Output, Group)


def _action_set(actions: Sequence[Action]) -> list[Action]:
    """The action list OVS runs for a bucket's action set (ofpacts_execute_action_set)."""
    dec_ttl: Action | None = None
    sets: list[Action] = []
    final: Action | None = None
    final_rank = -1
    for a in actions:
        if isinstance(a, DecTtl):
            dec_ttl = a
        elif isinstance(a, SetField | Move):
            sets.append(a)
        elif isinstance(a, _FINAL_ORDER):
            rank = _FINAL_ORDER.index(type(a))
            if rank >= final_rank:
                final, final_rank = a, rank
        else:
            raise SimulationError(f"{type(a).__name__} is not allowed in a group bucket (an action set)")
    if final is None:
        return []  # an action set without an output-like action does nothing at all
    return [*([dec_ttl] if dec_ttl is not None else []), *sets, final]


def _trace_nat(flow: Packet, nat: Nat) -> None:
    """ofproto/trace's stand-in for NAT: the range's first address and port (ofproto-dpif-trace.c)."""
    if not (nat.src or nat.dst) or not nat.ip_min:
        return
    side = "src" if nat.src else "dst"
    flow[f"ipv4_{side}"] = ipv4_to_int(nat.ip_min)
    if nat.port_min:
        proto = flow.get("ip_proto")
        if proto == IP_PROTO_TCP:
            flow[f"tcp_{side}"] = nat.port_min
        elif proto == IP_PROTO_UDP:
            flow[f"udp_{side}"] = nat.port_min
