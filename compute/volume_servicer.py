"""The VolumeService over gRPC, over ``VolumeApi``."""

from __future__ import annotations

import grpc

from compute.volumes import VolumeApi
from controller.api.convert import Presenter, create_fields
from controller.api.status import maps_errors
from protos.loom.v1 import network_pb2, resources_pb2, volume_pb2, volume_pb2_grpc


class VolumeServicer(volume_pb2_grpc.VolumeServiceServicer):
    def __init__(self, api: VolumeApi, presenter: Presenter) -> None:
        self.api = api
        self.present = presenter

    @maps_errors
    def CreateVolume(
        self, request: volume_pb2.CreateVolumeRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Volume:
        return self.present.volume(self.api.create(create_fields(request.volume)))

    @maps_errors
    def GetVolume(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Volume:
        return self.present.volume(self.api.get(request.id))

    @maps_errors
    def ListVolumes(
        self, request: volume_pb2.ListVolumesRequest, context: grpc.ServicerContext
    ) -> volume_pb2.ListVolumesResponse:
        filters = {"name": request.name, "project_id": request.project_id, "instance_id": request.instance_id}
        page = self.api.list(filters, request.limit, request.page_token)
        return volume_pb2.ListVolumesResponse(
            volumes=[self.present.volume(v) for v in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def DeleteVolume(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.delete(request.id))

    @maps_errors
    def AttachVolume(
        self, request: volume_pb2.AttachVolumeRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Volume:
        return self.present.volume(self.api.attach(request.volume_id, request.instance_id))

    @maps_errors
    def DetachVolume(
        self, request: volume_pb2.DetachVolumeRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Volume:
        return self.present.volume(self.api.detach(request.volume_id))
