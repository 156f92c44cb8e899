"""The ImageService over gRPC: streamed uploads and downloads over ``ImageApi``."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from compute.images import ImageApi
from controller.api.convert import Presenter, create_fields
from controller.api.errors import invalid
from controller.api.status import maps_errors
from protos.loom.v1 import image_pb2, image_pb2_grpc, network_pb2, resources_pb2


class ImageServicer(image_pb2_grpc.ImageServiceServicer):
    def __init__(self, api: ImageApi, presenter: Presenter) -> None:
        self.api = api
        self.present = presenter

    @maps_errors
    def UploadImage(
        self, request_iterator: Iterator[image_pb2.UploadImageRequest], context: grpc.ServicerContext
    ) -> resources_pb2.Image:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "image":
            raise invalid("image", "the first message of an upload carries the image's fields")

        def data() -> Iterator[bytes]:
            for msg in request_iterator:  # raises if the client goes away: the upload is dropped
                if msg.WhichOneof("part") != "data":
                    raise invalid("image", "only the first message of an upload carries the image's fields")
                yield msg.data

        return self.present.image(self.api.upload(create_fields(first.image), data()))

    @maps_errors
    def GetImage(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> resources_pb2.Image:
        return self.present.image(self.api.get(request.id))

    @maps_errors
    def ListImages(
        self, request: image_pb2.ListImagesRequest, context: grpc.ServicerContext
    ) -> image_pb2.ListImagesResponse:
        page = self.api.list(
            {"name": request.name, "project_id": request.project_id}, request.limit, request.page_token
        )
        return image_pb2.ListImagesResponse(
            images=[self.present.image(i) for i in page.items],
            revision=page.revision,
            next_page_token=page.next_page_token,
        )

    @maps_errors
    def DeleteImage(
        self, request: network_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> network_pb2.DeleteResponse:
        return network_pb2.DeleteResponse(revision=self.api.delete(request.id))

    def DownloadImage(
        self, request: network_pb2.GetRequest, context: grpc.ServicerContext
    ) -> Iterator[image_pb2.ImageChunk]:
        chunks = self._open(request, context)
        for chunk in chunks:
            yield image_pb2.ImageChunk(data=chunk)

    @maps_errors
    def _open(self, request: network_pb2.GetRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        return self.api.chunks(request.id)
