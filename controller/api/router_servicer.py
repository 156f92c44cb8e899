"""The RouterService over gRPC: a thin layer from messages to the router and floating IP resources and back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import grpc

from controller.api import watch as watching
from controller.api.convert import ROUTER_KINDS, Presenter, create_fields, update_changes
from controller.api.network_api import NetworkApi
from controller.api.routers import GatewayInfo, InterfaceInfo
from controller.api.status import maps_errors
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2, router_pb2_grpc


def gateway_info(msg: resources_pb2.ExternalGatewayInfo) -> GatewayInfo | None:
    """An ExternalGatewayInfo message as the API takes it (an empty one clears the gateway)."""
    if not msg.network_id:
        return None
    return GatewayInfo(
        network_id=msg.network_id,
        enable_snat=msg.enable_snat if msg.HasField("enable_snat") else True,
        external_fixed_ips=tuple((f.subnet_id, f.ip_address) for f in msg.external_fixed_ips),
    )


def _router_fields(fields: Mapping[str, Any], msg: resources_pb2.Router) -> dict[str, Any]:
    out = dict(fields)
    if "external_gateway_info" in out:
        out["external_gateway_info"] = gateway_info(msg.external_gateway_info)
    return out


def _interface(info: InterfaceInfo) -> router_pb2.RouterInterface:
    return router_pb2.RouterInterface(
        router_id=info.router_id,
        subnet_id=info.subnet_id,
        port_id=info.port_id,
        network_id=info.network_id,
        revision=info.revision,
    )


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    def __init__(self, api: NetworkApi, presenter: Presenter) -> None:
        self.api = api
        self.present = presenter

    # -------------------------------------------------------------- routers

    @maps_errors
    def CreateRouter(self, request: router_pb2.CreateRouterRequest, context: grpc.ServicerContext) -> Any:
        fields = _router_fields(create_fields(request.router), request.router)
        return self.present.router(self.api.routers.create(fields))

    @maps_errors
    def GetRouter(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> Any:
        return self.present.router(self.api.routers.get(request.id))

    @maps_errors
    def ListRouters(self, request: router_pb2.ListRoutersRequest, context: grpc.ServicerContext) -> Any:
        page = self.api.routers.list(
            {"name": request.name, "project_id": request.project_id}, request.limit, request.page_token
        )
        return router_pb2.ListRoutersResponse(
            routers=[self.present.router(r) for r in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateRouter(self, request: router_pb2.UpdateRouterRequest, context: grpc.ServicerContext) -> Any:
        changes = _router_fields(update_changes(request.router, request.update_mask), request.router)
        return self.present.router(self.api.routers.update(request.router.id, changes))

    @maps_errors
    def DeleteRouter(self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext) -> Any:
        return network_pb2.DeleteResponse(revision=self.api.routers.delete(request.id))

    @maps_errors
    def AddRouterInterface(self, request: router_pb2.RouterInterfaceRequest, context: grpc.ServicerContext) -> Any:
        return _interface(self.api.routers.add_interface(request.router_id, request.subnet_id, request.port_id))

    @maps_errors
    def RemoveRouterInterface(self, request: router_pb2.RouterInterfaceRequest, context: grpc.ServicerContext) -> Any:
        return _interface(self.api.routers.remove_interface(request.router_id, request.subnet_id, request.port_id))

    # -------------------------------------------------------------- floating IPs

    @maps_errors
    def CreateFloatingIp(self, request: router_pb2.CreateFloatingIpRequest, context: grpc.ServicerContext) -> Any:
        return self.present.floating_ip(self.api.floating_ips.create(create_fields(request.floating_ip)))

    @maps_errors
    def GetFloatingIp(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> Any:
        return self.present.floating_ip(self.api.floating_ips.get(request.id))

    @maps_errors
    def ListFloatingIps(self, request: router_pb2.ListFloatingIpsRequest, context: grpc.ServicerContext) -> Any:
        filters = {
            "floating_network_id": request.floating_network_id,
            "port_id": request.port_id,
            "router_id": request.router_id,
            "floating_ip_address": request.floating_ip_address,
            "project_id": request.project_id,
        }
        page = self.api.floating_ips.list(filters, request.limit, request.page_token)
        return router_pb2.ListFloatingIpsResponse(
            floating_ips=[self.present.floating_ip(f) for f in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateFloatingIp(self, request: router_pb2.UpdateFloatingIpRequest, context: grpc.ServicerContext) -> Any:
        changes = update_changes(request.floating_ip, request.update_mask)
        return self.present.floating_ip(self.api.floating_ips.update(request.floating_ip.id, changes))

    @maps_errors
    def AssociateFloatingIp(self, request: router_pb2.AssociateFloatingIpRequest, context: grpc.ServicerContext) -> Any:
        fip = self.api.floating_ips.associate(request.id, request.port_id, request.fixed_ip_address)
        return self.present.floating_ip(fip)

    @maps_errors
    def DisassociateFloatingIp(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> Any:
        return self.present.floating_ip(self.api.floating_ips.disassociate(request.id))

    @maps_errors
    def DeleteFloatingIp(self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext) -> Any:
        return network_pb2.DeleteResponse(revision=self.api.floating_ips.delete(request.id))

    # -------------------------------------------------------------- watch

    def Watch(
        self, request: network_pb2.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[network_pb2.WatchEvent]:
        return watching.watch(self.api.store, self.present, request, context, ROUTER_KINDS)
