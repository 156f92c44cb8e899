"""``TracePacket``: the controller's trace of a packet, over the distributor's topology.

The distributor keeps the topology its compiler reads; the trace compiles the
hosts a packet reaches from that same topology (``controller.compiler.trace``)
while holding the distributor's lock, so it sees one consistent revision.
This module only resolves the request's ports, runs the trace and turns it
into the response message.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.compiler.trace import PacketTrace, TraceError, TraceOutput, build_packet, trace_from_port
from controller.distributor.distributor import Distributor
from controller.model import Port
from controller.store.base import Store
from dataplane.common.logs import get_logger
from protos.loom.v1 import network_pb2

log = get_logger(__name__)

_KINDS = {
    "delivered": network_pb2.TraceOutput.DELIVERED,
    "tunnel": network_pb2.TraceOutput.TUNNEL,
    "lost": network_pb2.TraceOutput.LOST,
}


# (port id, host) -> whether the host's agent reported the port's VIF present (None: no report yet).
VifPresent = Callable[[str, str], bool | None]


def trace_packet(
    store: Store,
    distributor: Distributor,
    request: network_pb2.TracePacketRequest,
    vif_present: VifPresent | None = None,
) -> network_pb2.TracePacketResponse:
    """Trace the request's packet; raises :class:`TraceError` naming the request field at fault.

    ``vif_present`` lets deliveries to a VIF its agent has not seen plugged say so: the
    compiled flows send the packet there, but the switch has no such port yet.
    """
    started = time.perf_counter()
    if not request.from_port_id:
        raise TraceError("invalid", "from_port_id", "required")
    src = _port(store, "from_port_id", request.from_port_id)
    dst = _port(store, "to_port_id", request.to_port_id) if request.to_port_id else None
    with distributor.lock:
        topo = distributor.topo
        # The topology holds bound ports only; the sender must be one of them, as the switch sees it.
        bound = topo.ports.get(src.id)
        if bound is None or not bound.binding_host_id:
            raise TraceError("precondition", "from_port_id", f"port {src.name or src.id} is not bound to a host")
        packet = build_packet(
            topo,
            bound,
            request.protocol,
            dst=dst,
            dst_ip=request.dst_ip,
            dst_mac=request.dst_mac.lower(),
            dst_port=request.dst_port,
            src_port=request.src_port,
        )
        result = trace_from_port(topo, bound, packet)
        revision = distributor.revision
    response = to_proto(result, revision)
    if vif_present is not None:
        for out in [o for hop in response.hops for o in hop.outputs] + list(response.deliveries):
            if out.kind == network_pb2.TraceOutput.DELIVERED and vif_present(out.port_id, out.host) is False:
                out.warning = f"the agent on {out.host} has not reported this VIF plugged: a real packet is lost here"
    if dst is not None:
        response.reached_destination = any(d.port_id == dst.id for d in response.deliveries)
    log.info(
        "packet traced",
        from_port=src.id,
        to_port=dst.id if dst else "",
        protocol=request.protocol or "icmp",
        hops=len(result.hops),
        deliveries=len(result.deliveries),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return response


def _port(store: Store, field: str, port_id: str) -> Port:
    port = store.get("port", port_id)
    if not isinstance(port, Port):
        raise TraceError("not_found", field, f"no port {port_id!r}")
    return port


def _output(o: TraceOutput) -> network_pb2.TraceOutput:
    return network_pb2.TraceOutput(
        kind=_KINDS[o.kind],
        host=o.host,
        ofport=o.ofport,
        port_id=o.port_id,
        port_name=o.port_name,
        vni=o.vni,
        remote_host=o.remote_host,
        remote_ip=o.remote_ip,
        packet=o.packet,
    )


def to_proto(result: PacketTrace, revision: int) -> network_pb2.TracePacketResponse:
    hops = [
        network_pb2.TraceHop(
            host=h.host,
            in_port=h.in_port,
            came_from=h.came_from,
            packet=h.packet,
            steps=[
                network_pb2.TraceStep(
                    table=s.table, table_name=s.table_name, flow=s.flow, cookie=s.cookie, owner=s.owner
                )
                for s in h.steps
            ],
            outputs=[_output(o) for o in h.outputs],
            dropped=h.dropped,
            drop_table=h.drop_table or 0,
            drop_reason=h.drop_reason,
        )
        for h in result.hops
    ]
    return network_pb2.TracePacketResponse(
        packet=result.packet,
        hops=hops,
        deliveries=[_output(o) for o in result.deliveries],
        revision=revision,
        notes=list(result.notes),
    )
