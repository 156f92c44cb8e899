"""The NetworkService over gRPC: a thin layer from messages to ``NetworkApi`` and back.

``ListAgents``, ``GetHostFlows`` and ``TracePacket`` belong to the distributor: they are served
by the ``extras`` object given at construction, or answer UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import grpc

from controller.api import watch as watching
from controller.api.convert import Presenter, create_fields, update_changes
from controller.api.network_api import NetworkApi
from controller.api.status import maps_errors
from protos.loom.v1 import network_pb2, network_pb2_grpc, resources_pb2


class NetworkExtras(Protocol):
    """The NetworkService methods the distributor implements."""

    def ListAgents(
        self, request: network_pb2.ListAgentsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListAgentsResponse: ...

    def GetHostFlows(
        self, request: network_pb2.GetHostFlowsRequest, context: grpc.ServicerContext
    ) -> network_pb2.GetHostFlowsResponse: ...

    def TracePacket(
        self, request: network_pb2.TracePacketRequest, context: grpc.ServicerContext
    ) -> network_pb2.TracePacketResponse: ...


class NetworkServicer(network_pb2_grpc.NetworkServiceServicer):
    """Requests to ``NetworkApi`` calls, model objects to messages, ``ApiError`` to statuses."""

    def __init__(self, api: NetworkApi, presenter: Presenter, extras: NetworkExtras | None = None) -> None:
        self.api = api
        self.present = presenter
        self.extras = extras

    # ------------------------------------------------------------- networks

    @maps_errors
    def CreateNetwork(
        self, request: network_pb2.CreateNetworkRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Network:
        return self.present.network(self.api.networks.create(create_fields(request.network)))

    @maps_errors
    def GetNetwork(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Network:
        return self.present.network(self.api.networks.get(request.id))

    @maps_errors
    def ListNetworks(
        self, request: network_pb2.ListNetworksRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListNetworksResponse:
        filters = {"name": request.name, "project_id": request.project_id}
        page = self.api.networks.list(filters, request.limit, request.page_token)
        return network_pb2.ListNetworksResponse(
            networks=[self.present.network(n) for n in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateNetwork(
        self, request: network_pb2.UpdateNetworkRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Network:
        changes = update_changes(request.network, request.update_mask)
        return self.present.network(self.api.networks.update(request.network.id, changes))

    @maps_errors
    def DeleteNetwork(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.networks.delete(request.id))

    # -------------------------------------------------------------- subnets

    @maps_errors
    def CreateSubnet(
        self, request: network_pb2.CreateSubnetRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Subnet:
        return self.present.subnet(self.api.subnets.create(create_fields(request.subnet)))

    @maps_errors
    def GetSubnet(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Subnet:
        return self.present.subnet(self.api.subnets.get(request.id))

    @maps_errors
    def ListSubnets(
        self, request: network_pb2.ListSubnetsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListSubnetsResponse:
        filters = {"network_id": request.network_id, "name": request.name, "project_id": request.project_id}
        page = self.api.subnets.list(filters, request.limit, request.page_token)
        return network_pb2.ListSubnetsResponse(
            subnets=[self.present.subnet(s) for s in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateSubnet(
        self, request: network_pb2.UpdateSubnetRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Subnet:
        changes = update_changes(request.subnet, request.update_mask)
        return self.present.subnet(self.api.subnets.update(request.subnet.id, changes))

    @maps_errors
    def DeleteSubnet(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.subnets.delete(request.id))

    # ---------------------------------------------------------------- ports

    @maps_errors
    def CreatePort(self, request: network_pb2.CreatePortRequest, context: grpc.ServicerContext) -> resources_pb2.Port:
        fields = create_fields(request.port)
        if request.no_security_groups:
            fields["no_security_groups"] = True
        return self.present.port(self.api.ports.create(fields))

    @maps_errors
    def GetPort(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Port:
        return self.present.port(self.api.ports.get(request.id))

    @maps_errors
    def ListPorts(
        self, request: network_pb2.ListPortsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListPortsResponse:
        filters = {
            "network_id": request.network_id,
            "device_id": request.device_id,
            "device_owner": request.device_owner,
            "binding_host_id": request.binding_host_id,
            "name": request.name,
            "project_id": request.project_id,
            "mac_address": request.mac_address.lower(),
        }
        page = self.api.ports.list(filters, request.limit, request.page_token)
        return network_pb2.ListPortsResponse(
            ports=[self.present.port(p) for p in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdatePort(self, request: network_pb2.UpdatePortRequest, context: grpc.ServicerContext) -> resources_pb2.Port:
        changes = update_changes(request.port, request.update_mask)
        return self.present.port(self.api.ports.update(request.port.id, changes))

    @maps_errors
    def DeletePort(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.ports.delete(request.id))

    # ---------------------------------------------------------------- watch

    def Watch(
        self, request: network_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[network_pb2.WatchEvent]:
        return watching.watch(self.api.store, self.present, request, context)

    # ------------------------------------------------ served by the distributor

    def ListAgents(
        self, request: network_pb2.ListAgentsRequest, context: grpc.ServicerContext
    ) -> network_pb2.ListAgentsResponse:
        if self.extras is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "ListAgents: no distributor in this controller")
        return self.extras.ListAgents(request, context)

    def GetHostFlows(
        self, request: network_pb2.GetHostFlowsRequest, context: grpc.ServicerContext
    ) -> network_pb2.GetHostFlowsResponse:
        if self.extras is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetHostFlows: no distributor in this controller")
        return self.extras.GetHostFlows(request, context)

    def TracePacket(
        self, request: network_pb2.TracePacketRequest, context: grpc.ServicerContext
    ) -> network_pb2.TracePacketResponse:
        if self.extras is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "TracePacket: no distributor in this controller")
        return self.extras.TracePacket(request, context)
