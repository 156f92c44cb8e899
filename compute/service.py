"""Compute inside the controller: its APIs, the gRPC services, and what the distributor asks of it.

``Compute`` assembles instances, images, volumes (with the file backend),
the status tracker and the disk transfers over one ``ComputeCore``;
``register`` adds the ComputeService, ImageService, VolumeService and the
agents' HypervisorService to the controller's gRPC server. The distributor
takes ``Compute.specs`` as the source of each host's instance specs.
"""

from __future__ import annotations

import os

import grpc

from compute.core import ComputeCore, ComputeSettings
from compute.hypervisor_servicer import HypervisorServicer
from compute.image_servicer import ImageServicer
from compute.images import ImageApi
from compute.instance_api import InstanceApi
from compute.servicer import ComputeServicer
from compute.spec import InstanceSpecs
from compute.status import InstanceStatusTracker
from compute.transfers import DiskTransfers
from compute.volume_servicer import VolumeServicer
from compute.volumes import FileBackend, VolumeApi
from controller.api.convert import Presenter
from controller.api.network_api import NetworkApi
from controller.store.base import Store
from protos.loom.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    hypervisor_pb2,
    hypervisor_pb2_grpc,
    image_pb2,
    image_pb2_grpc,
    volume_pb2,
    volume_pb2_grpc,
)


class Compute:
    def __init__(self, store: Store, network: NetworkApi, settings: ComputeSettings | None = None) -> None:
        self.core = ComputeCore(store, network, settings)
        s = self.core.settings
        self.images = ImageApi(self.core)
        self.volumes = VolumeApi(self.core, self.images, FileBackend(s.volume_dir))
        self.instances = InstanceApi(self.core)
        self.transfers = DiskTransfers(os.path.join(s.image_dir, "migrations"))
        self.tracker = InstanceStatusTracker(self.core, self.transfers)
        self.specs = InstanceSpecs(self.core, self.volumes)

    def register(self, server: grpc.Server, presenter: Presenter) -> list[str]:
        """Add compute's services to ``server``; their full names (for reflection and health)."""
        compute_pb2_grpc.add_ComputeServiceServicer_to_server(
            ComputeServicer(self.instances, presenter, self.tracker), server
        )
        image_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(self.images, presenter), server)
        volume_pb2_grpc.add_VolumeServiceServicer_to_server(VolumeServicer(self.volumes, presenter), server)
        hypervisor_pb2_grpc.add_HypervisorServiceServicer_to_server(
            HypervisorServicer(self.core, self.tracker, self.transfers), server
        )
        return [
            compute_pb2.DESCRIPTOR.services_by_name["ComputeService"].full_name,
            image_pb2.DESCRIPTOR.services_by_name["ImageService"].full_name,
            volume_pb2.DESCRIPTOR.services_by_name["VolumeService"].full_name,
            hypervisor_pb2.DESCRIPTOR.services_by_name["HypervisorService"].full_name,
        ]
