"""The agent's copy of its host's desired state, as the controller sent it.

Snapshots replace it, deltas patch it. It is persisted after changes (atomic
rename), so an agent that restarts — or finds OVS restarted — can reprogram the
switch from the last full state it knew without waiting for the controller.
A state is only ever *complete*: the agent never programs from a partial one.

Remote security groups' members arrive as address sets (data, not flows); the
state renders their flows itself, lazily and only for the addresses that
changed, so a member joining a group costs the agent a set insertion until it
next programs the switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataplane.common.files import write_atomically
from dataplane.common.logs import get_logger
from dataplane.contract.address_sets import HeldSet, address_cookie, flows_of_address
from dataplane.contract.address_sets import to_proto as address_set_to_proto
from dataplane.contract.encode import WireFlow, group_to_proto, group_to_wire, to_wire
from protos.loom.v1 import agent_pb2, hypervisor_pb2

log = get_logger(__name__)

STATE_FILE = "desired-state.pb"


@dataclass
class DesiredState:
    revision: int = 0
    epoch: str = ""
    complete: bool = False  # a snapshot (or a persisted full state) has been applied
    groups: dict[int, list[WireFlow]] = field(default_factory=dict)
    ports: dict[str, agent_pb2.LocalPort] = field(default_factory=dict)
    networks: dict[str, agent_pb2.LocalNetwork] = field(default_factory=dict)
    tunnel_ip: str = ""
    metadata_url: str = ""
    peers: tuple[str, ...] = ()
    l3: agent_pb2.HostL3 = field(default_factory=agent_pb2.HostL3)
    instances: dict[str, hypervisor_pb2.InstanceSpec] = field(default_factory=dict)  # the guests to run
    address_sets: dict[str, HeldSet] = field(default_factory=dict)  # remote group id -> its members here
    # Derived from address_sets: address -> the sets holding it, and its rendered flows (stale ones pending).
    _sets_of: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _rendered: dict[str, list[WireFlow]] = field(default_factory=dict, repr=False)
    _stale: set[str] = field(default_factory=set, repr=False)

    def apply(self, msg: agent_pb2.SyncMessage) -> None:
        body = msg.WhichOneof("body")
        if body == "snapshot":
            self._apply_snapshot(msg.snapshot)
        elif body == "delta":
            if not self.complete:
                raise ValueError("a delta arrived before any snapshot")
            self._apply_delta(msg.delta)
        self.revision = msg.revision
        self.epoch = msg.epoch

    def _apply_snapshot(self, snap: agent_pb2.HostState) -> None:
        self.groups = {g.cookie: group_to_wire(g) for g in snap.groups}
        self.ports = {p.port_id: p for p in snap.ports}
        self.networks = {n.network_id: n for n in snap.networks}
        self.tunnel_ip = snap.tunnel_ip
        self.metadata_url = snap.metadata_url
        self.peers = tuple(snap.peers.ips)
        self.l3 = snap.l3
        self.instances = {i.instance_id: i for i in snap.instances}
        self.address_sets, self._sets_of, self._rendered, self._stale = {}, {}, {}, set()
        for held in snap.address_sets:
            self._put_set(held)
        self.complete = True

    def _apply_delta(self, delta: agent_pb2.HostDelta) -> None:
        for cookie in delta.removed_groups:
            self.groups.pop(cookie, None)
        for g in delta.upsert_groups:
            self.groups[g.cookie] = group_to_wire(g)
        for pid in delta.removed_ports:
            self.ports.pop(pid, None)
        for p in delta.upsert_ports:
            self.ports[p.port_id] = p
        for nid in delta.removed_networks:
            self.networks.pop(nid, None)
        for n in delta.upsert_networks:
            self.networks[n.network_id] = n
        if delta.HasField("peers"):
            self.peers = tuple(delta.peers.ips)
        if delta.HasField("l3"):
            self.l3 = delta.l3
        for iid in delta.removed_instances:
            self.instances.pop(iid, None)
        for i in delta.upsert_instances:
            self.instances[i.instance_id] = i
        for group_id in delta.removed_address_sets:
            self._drop_set(group_id)
        for held in delta.upsert_address_sets:
            self._put_set(held)
        for change in delta.address_set_changes:
            self._change_set(change)

    # ------------------------------------------------------------ address sets

    def _put_set(self, msg: agent_pb2.AddressSet) -> None:
        self._drop_set(msg.group_id)
        held = self.address_sets[msg.group_id] = HeldSet(msg.ingress_conj_id, msg.egress_conj_id, set(msg.addresses))
        for address in held.addresses:
            self._link(address, msg.group_id)

    def _drop_set(self, group_id: str) -> None:
        held = self.address_sets.pop(group_id, None)
        for address in held.addresses if held else ():
            self._unlink(address, group_id)

    def _change_set(self, change: agent_pb2.AddressSetChange) -> None:
        held = self.address_sets.get(change.group_id)
        if held is None:
            raise ValueError(f"a change to address set {change.group_id} arrived before the set")
        for address in change.removed:
            if address in held.addresses:
                held.addresses.discard(address)
                self._unlink(address, change.group_id)
        for address in change.added:
            if address not in held.addresses:
                held.addresses.add(address)
                self._link(address, change.group_id)

    def _link(self, address: str, group_id: str) -> None:
        self._sets_of.setdefault(address, set()).add(group_id)
        self._stale.add(address)

    def _unlink(self, address: str, group_id: str) -> None:
        sets = self._sets_of.get(address)
        if sets is not None:
            sets.discard(group_id)
            if not sets:
                del self._sets_of[address]
        self._stale.add(address)

    def _address_flows(self) -> dict[str, list[WireFlow]]:
        """The member flows of every held address, re-rendering those whose sets changed."""
        for address in self._stale:
            groups = self._sets_of.get(address, ())
            flows = flows_of_address(address, (self.address_sets[g] for g in groups))
            if flows:
                self._rendered[address] = [to_wire(f) for f in flows]
            else:
                self._rendered.pop(address, None)
        self._stale.clear()
        return self._rendered

    # ------------------------------------------------------------ flows

    def flows(self) -> list[WireFlow]:
        """Every flow the controller's state implies: its groups and the member flows of the address sets."""
        out = [f for group in self.groups.values() for f in group]
        for flows in self._address_flows().values():
            out.extend(flows)
        return out

    def flow_groups(self) -> dict[int, list[WireFlow]]:
        """The same flows by cookie (a member address's flows are the group of its ``SG_ADDRESS`` cookie)."""
        out = dict(self.groups)
        for address, flows in self._address_flows().items():
            out[address_cookie(address)] = flows
        return out

    # ------------------------------------------------------------ persistence

    def to_proto(self) -> agent_pb2.SyncMessage:
        return agent_pb2.SyncMessage(
            revision=self.revision,
            epoch=self.epoch,
            snapshot=agent_pb2.HostState(
                groups=[group_to_proto(c, flows) for c, flows in self.groups.items()],
                ports=list(self.ports.values()),
                networks=list(self.networks.values()),
                tunnel_ip=self.tunnel_ip,
                metadata_url=self.metadata_url,
                peers=agent_pb2.TunnelPeers(ips=self.peers),
                l3=self.l3,
                instances=list(self.instances.values()),
                address_sets=[address_set_to_proto(g, held) for g, held in self.address_sets.items()],
            ),
        )

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(state_dir / STATE_FILE, self.to_proto().SerializeToString(), mode=0o600, durable=True)

    @classmethod
    def load(cls, state_dir: Path) -> DesiredState:
        """The persisted full state, or an empty (incomplete) one."""
        path = state_dir / STATE_FILE
        state = cls()
        try:
            msg = agent_pb2.SyncMessage.FromString(path.read_bytes())
        except FileNotFoundError:
            return state
        except Exception as exc:  # a corrupt file is not a state: start empty, resync
            log.warning("persisted state unreadable, ignoring it", path=str(path), error=str(exc))
            return state
        state.apply(msg)
        return state
