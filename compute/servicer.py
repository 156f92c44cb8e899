"""The ComputeService over gRPC: a thin layer over ``InstanceApi`` and the status tracker."""

from __future__ import annotations

import grpc

from compute.instance_api import InstanceApi
from compute.status import InstanceStatusTracker, tail_lines
from controller.api.convert import Presenter, create_fields, update_changes
from controller.api.status import maps_errors
from protos.loom.v1 import compute_pb2, compute_pb2_grpc, network_pb2, resources_pb2


class ComputeServicer(compute_pb2_grpc.ComputeServiceServicer):
    """Requests to ``InstanceApi`` calls, instances to messages, ``ApiError`` to statuses."""

    def __init__(self, api: InstanceApi, presenter: Presenter, tracker: InstanceStatusTracker) -> None:
        self.api = api
        self.present = presenter
        self.tracker = tracker

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
        revision = self.api.delete_instance(request.id)
        self.tracker.forget(request.id)
        return network_pb2.DeleteResponse(revision=revision)

    @maps_errors
    def StartInstance(
        self, request: compute_pb2.InstanceActionRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        return self.present.instance(self.api.start(request.id))

    @maps_errors
    def StopInstance(
        self, request: compute_pb2.InstanceActionRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        return self.present.instance(self.api.stop(request.id))

    @maps_errors
    def RebootInstance(
        self, request: compute_pb2.RebootInstanceRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        return self.present.instance(self.api.reboot(request.id, request.hard))

    @maps_errors
    def MigrateInstance(
        self, request: compute_pb2.MigrateInstanceRequest, context: grpc.ServicerContext
    ) -> resources_pb2.Instance:
        return self.present.instance(self.api.migrate(request.id, request.host))

    @maps_errors
    def GetConsoleOutput(
        self, request: compute_pb2.GetConsoleOutputRequest, context: grpc.ServicerContext
    ) -> compute_pb2.ConsoleOutput:
        self.api.get_instance(request.id)  # NOT_FOUND for an unknown instance
        console = self.tracker.console(request.id)
        if console is None:
            return compute_pb2.ConsoleOutput()
        text = console.output.decode(errors="replace")
        return compute_pb2.ConsoleOutput(output=tail_lines(text, request.length), reported_at=console.at)

    @maps_errors
    def ListHypervisors(
        self, request: compute_pb2.ListHypervisorsRequest, context: grpc.ServicerContext
    ) -> compute_pb2.ListHypervisorsResponse:
        usage = self.api.usage()
        out = []
        reg = self.api.core.hypervisors
        for h in reg.all():
            u = usage.get(h.host)
            out.append(
                compute_pb2.Hypervisor(
                    host=h.host,
                    alive=reg.alive(h),
                    hypervisor_up=h.up,
                    error=h.error,
                    virt_type=h.virt_type,
                    vcpus=h.vcpus,
                    memory_mb=h.memory_mb,
                    vcpus_used=u.vcpus if u else 0,
                    memory_mb_used=u.memory_mb if u else 0,
                    instances=u.instances if u else 0,
                    last_report=h.last_report,
                )
            )
        return compute_pb2.ListHypervisorsResponse(hypervisors=out)
