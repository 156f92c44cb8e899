"""The ComputeService over gRPC: Instance CRUD, a thin layer over ``InstanceApi``."""

from __future__ import annotations

import grpc

from compute.instance_api import InstanceApi
from controller.api.convert import Presenter, create_fields, update_changes
from controller.api.status import maps_errors
from protos.loom.v1 import compute_pb2, compute_pb2_grpc, network_pb2, resources_pb2


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    """Requests to ``InstanceApi`` calls, instances to messages, ``ApiError`` to statuses."""

    def __init__(self, api: InstanceApi, presenter: Presenter) -> None:
        self.api = api
        self.present = presenter

    @maps_errors
    def CreateInstance(
        self, request: compute_pb2.CreateInstanceRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        return self.present.instance(self.api.create_instance(create_fields(request.instance)))

    @maps_errors
    def GetInstance(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Instance:
        return self.present.instance(self.api.get_instance(request.id))

    @maps_errors
    def ListInstances(
        self, request: compute_pb2.ListInstancesRequest, context: grpc.ServicerContext
    ) -> compute_pb2.ListInstancesResponse:
        filters = {"name": request.name, "project_id": request.project_id, "host": request.host}
        page = self.api.list_instances(filters, request.limit, request.page_token)
        return compute_pb2.ListInstancesResponse(
            instances=[self.present.instance(i) for i in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def UpdateInstance(
        self, request: compute_pb2.UpdateInstanceRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        changes = update_changes(request.instance, request.update_mask)
        return self.present.instance(self.api.update_instance(request.instance.id, changes))

    @maps_errors
    def DeleteInstance(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.delete_instance(request.id))
