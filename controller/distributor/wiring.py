"""Plugs the dataplane side of the controller into the gRPC server.

``DataplaneWiring`` builds, once per controller, the topology, the
distributor, the port status tracker and the AgentService, and hands the
server both the AgentService registrar and the object that answers the
NetworkService's ListAgents / GetHostFlows / TracePacket.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from controller.compiler.simulator import SimulationError
from controller.compiler.topology import Topology
from controller.compiler.trace import TraceError
from controller.distributor.distributor import Distributor
from controller.distributor.service import AgentServicer
from controller.distributor.status import PortStatusTracker
from controller.distributor.tracing import trace_packet
from controller.main import ControllerContext
from protos.loom.v1 import agent_pb2, agent_pb2_grpc, network_pb2

AGENT_SERVICE = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
_TRACE_ERROR_CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "precondition": grpc.StatusCode.FAILED_PRECONDITION,
}


class Dataplane:
    """The controller's dataplane parts, and the NetworkService methods they answer."""

    def __init__(self, ctx: ControllerContext) -> None:
        cfg = ctx.config
        self.topology = Topology(
            dns_domain=cfg.dns_domain, metadata_url=cfg.metadata_url, gateway_preempt=cfg.gateway_preempt
        )
        self.tracker = PortStatusTracker(ctx.store, ctx.network.ports.update_statuses)
        self.distributor = Distributor(
            ctx.store, self.topology, self.tracker, instances=ctx.compute.specs, pass_interval=cfg.pass_interval
        )
        self.agents = AgentServicer(
            ctx.store,
            self.distributor,
            self.tracker,
            underlay_mtu=cfg.underlay_mtu,
            set_active_gateway=ctx.network.routers.set_active_gateway,
        )
        ctx.network.agent_alive = self.agents.alive
        self.store = ctx.store

    def start(self) -> None:
        self.distributor.start()

    def stop(self) -> None:
        self.agents.stop()
        self.distributor.stop()
        self.tracker.stop()

    def ListAgents(
        self, request: network_pb2.ListAgentsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListAgentsResponse:
        return self.agents.list_agents()

    def GetHostFlows(
        self, request: network_pb2.GetHostFlowsRequest, context: grpc.ServicerContext
    ) -> network_pb2.GetHostFlowsResponse:
        resp = self.agents.host_flows(request.host)
        if resp is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"host: {request.host!r} has no compiled state")
        return resp

    def _vif_present(self, port_id: str, host: str) -> bool | None:
        with self.tracker.lock:
            facts = self.tracker.facts.get(port_id)
        return None if facts is None or facts.host != host else facts.vif_present

    def TracePacket(
        self, request: network_pb2.TracePacketRequest, context: grpc.ServicerContext
    ) -> network_pb2.TracePacketResponse:
        try:
            return trace_packet(self.store, self.distributor, request, self._vif_present)
        except TraceError as exc:
            context.abort(_TRACE_ERROR_CODES[exc.kind], str(exc))
        except SimulationError as exc:  # the compiled tables are inconsistent: a compiler bug, said as such
            context.abort(grpc.StatusCode.INTERNAL, f"the compiled flows cannot be simulated: {exc}")


class DataplaneWiring:
    """``build_server(config, extra_services=[w.register], network_extras=w.extras)``."""

    def __init__(self) -> None:
        self.dataplane: Dataplane | None = None

    def extras(self, ctx: ControllerContext) -> Dataplane:
        if self.dataplane is None:
            self.dataplane = Dataplane(ctx)
        return self.dataplane

    def register(self, server: grpc.Server, ctx: ControllerContext) -> Iterable[str]:
        dataplane = self.extras(ctx)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(dataplane.agents, server)
        ctx.on_start.append(dataplane.start)
        ctx.on_stop.append(dataplane.stop)
        return [AGENT_SERVICE]
