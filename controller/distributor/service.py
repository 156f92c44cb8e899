"""The AgentService servicer, agent liveness, and the host inspection RPCs.

Agents register (persisted in the store, so tunnel endpoints survive a
controller restart), open a Sync stream that first brings them up to date and
then carries deltas, report what they reached for their ports, and send
heartbeats. ``ListAgents`` and ``GetHostFlows`` (NetworkService) are answered
from here too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc

from controller.distributor.distributor import Distributor
from controller.distributor.hoststate import merge_deltas
from controller.distributor.status import HostFacts, PortStatusTracker
from controller.model import OWNER_DHCP, Agent, FloatingIP, Network, Port, Router, SecurityGroup
from controller.store.base import Store
from dataplane.common.constants import PATCH_OFPORT_MAX, PATCH_OFPORT_MIN
from dataplane.common.logs import get_logger
from dataplane.contract.cookie import describe_cookie, owner_labels
from protos.loom.v1 import agent_pb2, agent_pb2_grpc, network_pb2

log = get_logger(__name__)

HEARTBEAT_INTERVAL = 2.0
DEAD_AFTER = 3 * HEARTBEAT_INTERVAL
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$")
DATAPATH_TYPES = ("netdev", "system")


@dataclass
class Liveness:
    last_seen: float = 0.0
    applied_revision: int = 0
    flows_installed: int = 0
    streams: int = 0


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        store: Store,
        distributor: Distributor,
        tracker: PortStatusTracker,
        underlay_mtu: int,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        set_active_gateway: Callable[[str, Sequence[str]], None] | None = None,
    ) -> None:
        self.store = store
        self.set_active_gateway = set_active_gateway
        self.distributor = distributor
        self.tracker = tracker
        self.underlay_mtu = underlay_mtu
        self.heartbeat_interval = heartbeat_interval
        self.liveness: dict[str, Liveness] = {}
        self.lock = threading.Lock()
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    # ------------------------------------------------------------ RPCs

    def Register(self, request: agent_pb2.RegisterRequest, context: grpc.ServicerContext) -> agent_pb2.RegisterResponse:
        host = request.host
        if not _HOST_RE.match(host):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"host: {host!r} is not a valid host name")
        try:
            ip = ipaddress.ip_address(request.tunnel_ip)
        except ValueError:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"tunnel_ip: {request.tunnel_ip!r} is not an IP address")
        if ip.version != 4:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tunnel_ip: only IPv4 underlays are supported")
        dp = request.datapath_type or "netdev"
        if dp not in DATAPATH_TYPES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"datapath_type: {dp!r} is not one of {DATAPATH_TYPES}")
        physnets = tuple(request.physical_networks)
        if len(set(physnets)) != len(physnets) or len(physnets) > PATCH_OFPORT_MAX - PATCH_OFPORT_MIN + 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "physical_networks: duplicates, or too many mappings")
        current = self.store.get("agent", host)
        wanted = Agent(
            id=host,
            tunnel_ip=str(ip),
            datapath_type=dp,
            version=request.version,
            physical_networks=physnets,
            gateway_priority=request.gateway_priority,
        )
        fields = ("tunnel_ip", "datapath_type", "version", "physical_networks", "gateway_priority")
        if not (isinstance(current, Agent) and all(getattr(current, f) == getattr(wanted, f) for f in fields)):
            if isinstance(current, Agent):
                wanted = dataclasses.replace(wanted, tag=current.tag)
            self.store.commit(puts=[wanted])
            log.info(
                "agent registered",
                host=host,
                tunnel_ip=str(ip),
                datapath_type=dp,
                physical_networks=",".join(physnets),
                gateway_priority=request.gateway_priority,
            )
        self._touch(host)
        return agent_pb2.RegisterResponse(heartbeat_interval=self.heartbeat_interval, underlay_mtu=self.underlay_mtu)

    def Sync(self, request: agent_pb2.SyncRequest, context: grpc.ServicerContext):
        host = request.host
        if not isinstance(self.store.get("agent", host), Agent):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"host: {host!r} has not registered")
        # Make sure the distributor has seen the registration before compiling for it.
        self.distributor.wait_for(self.store.revision)
        sub, catch_up = self.distributor.open_stream(host, request.last_revision, request.epoch)
        with self.lock:
            self.liveness.setdefault(host, Liveness()).streams += 1
        kind = "snapshot" if catch_up and catch_up[0].HasField("snapshot") else "deltas"
        log.info("agent sync opened", host=host, last_revision=request.last_revision, catch_up=len(catch_up), kind=kind)
        try:
            yield from catch_up
            while context.is_active() and not self._stopping.is_set():
                try:
                    msg = sub.get(timeout=0.5)
                except queue.Empty:
                    continue
                if msg is None:
                    return
                msg, closed = _coalesce(msg, sub)
                yield msg
                self._touch(host)
                if closed:
                    return
        finally:
            self.distributor.close_stream(host, sub)
            with self.lock:
                self.liveness[host].streams -= 1
            log.info("agent sync closed", host=host)

    def ReportPortStatus(self, request: agent_pb2.PortStatusReport, context: grpc.ServicerContext):
        facts = [
            (
                s.port_id,
                HostFacts(
                    host=request.host,
                    vif_present=s.vif_present,
                    ofport=s.ofport,
                    flows_installed=s.flows_installed,
                    dhcp_ready=s.dhcp_ready,
                    metadata_ready=s.metadata_ready,
                ),
            )
            for s in request.ports
        ]
        self.tracker.report(request.host, facts)
        self._touch(request.host)
        return agent_pb2.PortStatusAck()

    def Heartbeat(self, request: agent_pb2.HeartbeatRequest, context: grpc.ServicerContext):
        self._touch(request.host, request.applied_revision, request.flows_installed)
        return agent_pb2.HeartbeatResponse()

    def ReportGateways(self, request: agent_pb2.GatewayReport, context: grpc.ServicerContext):
        """A gateway host says which routers it SNATs for now: recorded as their active gateway."""
        if self.set_active_gateway is not None and request.active_routers:
            self.set_active_gateway(request.host, list(request.active_routers))
        self._touch(request.host)
        return agent_pb2.GatewayReportAck()

    def alive(self, host: str) -> bool:
        with self.lock:
            live = self.liveness.get(host)
        return live is not None and (live.streams > 0 or time.time() - live.last_seen < DEAD_AFTER)

    # ------------------------------------------------------------ inspection

    def _touch(self, host: str, applied: int | None = None, flows: int | None = None) -> None:
        with self.lock:
            live = self.liveness.setdefault(host, Liveness())
            live.last_seen = time.time()
            if applied is not None:
                live.applied_revision = applied
            if flows is not None:
                live.flows_installed = flows

    def list_agents(self) -> network_pb2.ListAgentsResponse:
        now = time.time()
        out = []
        for agent in self.store.list("agent"):
            assert isinstance(agent, Agent)
            with self.lock:
                live = self.liveness.get(agent.id, Liveness())
            rec = self.distributor.host_record(agent.id)
            out.append(
                network_pb2.Agent(
                    host=agent.id,
                    tunnel_ip=agent.tunnel_ip,
                    datapath_type=agent.datapath_type,
                    alive=live.streams > 0 or now - live.last_seen < DEAD_AFTER,
                    last_seen=live.last_seen,
                    applied_revision=live.applied_revision,
                    host_revision=rec.revision if rec else 0,
                    flows=self.distributor.flow_count(rec) if rec else 0,
                    version=agent.version,
                )
            )
        return network_pb2.ListAgentsResponse(agents=out)

    def host_flows(self, host: str) -> network_pb2.GetHostFlowsResponse | None:
        rec = self.distributor.host_record(host)
        if rec is None:
            return None
        owners = _owner_names(self.store)
        with self.distributor.lock:
            flows = rec.flows(self.distributor.members)
            revision = rec.revision
        flows.sort(key=lambda f: (f.table, -f.priority))
        return network_pb2.GetHostFlowsResponse(
            flows=[
                network_pb2.HostFlow(
                    text=f.text(), cookie=f.cookie, owner=owners.get(f.cookie, describe_cookie(f.cookie))
                )
                for f in flows
            ],
            revision=revision,
        )


def _owner_names(store: Store) -> dict[int, str]:
    """Cookie -> "port <id> (<name>)" for every object that can own flows."""
    nets = {n.id: f"network {n.id} ({n.name})" for n in store.list("network") if isinstance(n, Network)}
    networks = [(n.tag, nets[n.id]) for n in store.list("network") if isinstance(n, Network)]
    all_ports = [p for p in store.list("port") if isinstance(p, Port)]
    ports = [(p.tag, f"port {p.id} ({p.name or p.device_owner or p.mac_address})") for p in all_ports]
    localports = [(p.tag, nets.get(p.network_id, p.network_id)) for p in all_ports if p.device_owner == OWNER_DHCP]
    groups = [
        (g.tag, f"security group {g.id} ({g.name})")
        for g in store.list("security_group")
        if isinstance(g, SecurityGroup)
    ]
    routers = [(r.tag, f"router {r.id} ({r.name})") for r in store.list("router") if isinstance(r, Router)]
    fips = [
        (f.tag, f"floating IP {f.id} ({f.floating_ip_address})")
        for f in store.list("floatingip")
        if isinstance(f, FloatingIP)
    ]
    return owner_labels(networks, ports, localports, security_groups=groups, routers=routers, floating_ips=fips)


def _coalesce(msg: agent_pb2.SyncMessage, sub: queue.SimpleQueue) -> tuple[agent_pb2.SyncMessage, bool]:
    """``msg`` and every delta queued behind it as one message; True when the stream is to close.

    A stream that fell behind (its agent or the network slower than the deltas) then catches up in
    one message per send instead of one per delta: the states in between are history, and an agent
    may program its switch after any message anyway.
    """
    deltas = [msg.delta] if msg.HasField("delta") else None
    last, closed = msg, False
    while deltas is not None:
        try:
            more = sub.get_nowait()
        except queue.Empty:
            break
        if more is None:
            closed = True
            break
        if more.HasField("delta") and more.epoch == last.epoch:
            deltas.append(more.delta)
        else:
            deltas = [more.delta] if more.HasField("delta") else None  # a snapshot replaces what came before
        last = more
    if deltas is None or len(deltas) == 1:
        return last, closed
    return agent_pb2.SyncMessage(revision=last.revision, epoch=last.epoch, delta=merge_deltas(deltas)), closed
