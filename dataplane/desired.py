"""The agent's copy of its host's desired state, as the controller sent it.

Snapshots replace it, deltas patch it. It is persisted after changes (atomic
rename), so an agent that restarts — or finds OVS restarted — can reprogram the
switch from the last full state it knew without waiting for the controller.
A state is only ever *complete*: the agent never programs from a partial one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataplane.common.files import write_atomically
from dataplane.common.logs import get_logger
from dataplane.contract.encode import WireFlow, group_to_proto, group_to_wire
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

    def flows(self) -> list[WireFlow]:
        return [f for group in self.groups.values() for f in group]

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
