"""The HypervisorService: the agents' reports, and root disks in transit during cold migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc

from compute.core import ComputeCore
from compute.status import InstanceStatusTracker
from compute.transfers import DiskTransfers
from controller.api.errors import failed_precondition, invalid, not_found
from controller.api.status import maps_errors
from controller.model import Instance
from dataplane.common.logs import get_logger
from protos.loom.v1 import hypervisor_pb2, hypervisor_pb2_grpc

log = get_logger(__name__)


class HypervisorServicer(hypervisor_pb2_grpc.HypervisorServiceServicer):
    def __init__(self, core: ComputeCore, tracker: InstanceStatusTracker, transfers: DiskTransfers) -> None:
        self.core = core
        self.tracker = tracker
        self.transfers = transfers
        self.epoch = uuid.uuid4().hex

    @maps_errors
    def Report(
        self, request: hypervisor_pb2.HypervisorReport, context: grpc.ServicerContext
    ) -> hypervisor_pb2.HypervisorReportAck:
        if not request.host:
            raise invalid("host", "is required")
        self.tracker.report(request)
        return hypervisor_pb2.HypervisorReportAck(epoch=self.epoch)

    def _migrating(self, host: str, instance_id: str, migration_id: str, phase: str) -> Instance:
        inst = self.core.store.get("instance", instance_id)
        if not isinstance(inst, Instance):
            raise not_found("instance", instance_id, "instance_id")
        if inst.migration_id != migration_id or inst.migration_phase != phase or inst.host != host:
            raise failed_precondition(
                f"instance {instance_id} is not in the {phase} phase of migration {migration_id} on {host}"
            )
        return inst

    @maps_errors
    def UploadInstanceDisk(
        self, request_iterator: Iterator[hypervisor_pb2.DiskChunk], context: grpc.ServicerContext
    ) -> hypervisor_pb2.DiskUploaded:
        header = next(request_iterator, None)
        if header is None or not header.instance_id:
            raise invalid("instance_id", "the first message of an upload names the instance")
        self._migrating(header.host, header.instance_id, header.migration_id, "export")
        data = (chunk.data for chunk in request_iterator)
        first = [header.data] if header.data else []
        size = self.transfers.receive(
            header.instance_id, header.migration_id, header.size, header.sha256, _chain(first, data)
        )
        return hypervisor_pb2.DiskUploaded(size=size)

    def DownloadInstanceDisk(
        self, request: hypervisor_pb2.DownloadInstanceDiskRequest, context: grpc.ServicerContext
    ) -> Iterator[hypervisor_pb2.DiskChunk]:
        size, sha256, chunks = self._open(request, context)
        yield hypervisor_pb2.DiskChunk(
            instance_id=request.instance_id, migration_id=request.migration_id, size=size, sha256=sha256
        )
        for chunk in chunks:
            yield hypervisor_pb2.DiskChunk(data=chunk)

    @maps_errors
    def _open(
        self, request: hypervisor_pb2.DownloadInstanceDiskRequest, context: grpc.ServicerContext
    ) -> tuple[int, str, Iterator[bytes]]:
        self._migrating(request.host, request.instance_id, request.migration_id, "import")
        if not self.transfers.has(request.instance_id, request.migration_id):
            raise not_found("migration disk", f"{request.instance_id}/{request.migration_id}")
        size, sha256 = self.transfers.digest(request.instance_id, request.migration_id)
        return size, sha256, self.transfers.chunks(request.instance_id, request.migration_id)


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest
