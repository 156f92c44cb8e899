"""What every loomctl command gets: the gRPC channel and stubs, output settings, name resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from controller.cli.output import Column, print_json, print_table
from protos.loom.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    image_pb2,
    image_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    volume_pb2,
    volume_pb2_grpc,
)

PAGE_SIZE = 500
_Stub = TypeVar("_Stub")


class CliError(Exception):
    """A problem loomctl reports itself (bad option, ambiguous name); exit status 1."""


@dataclass
class ApiClient:
    """The controller's gRPC API at ``server``: a channel opened on first use, and its service stubs."""

    server: str
    _channel: grpc.Channel | None = field(default=None, init=False, repr=False)
    # One stub per service: building one creates a callable per RPC, too slow to repeat per call.
    _stubs: dict[type, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.server)
        return self._channel

    def _stub(self, stub_type: type[_Stub]) -> _Stub:
        stub = self._stubs.get(stub_type)
        if stub is None:
            stub = self._stubs[stub_type] = stub_type(self.channel)
        return stub

    @property
    def network(self) -> network_pb2_grpc.NetworkServiceStub:
        return self._stub(network_pb2_grpc.NetworkServiceStub)

    @property
    def compute(self) -> compute_pb2_grpc.ComputeServiceStub:
        return self._stub(compute_pb2_grpc.ComputeServiceStub)

    @property
    def security(self) -> security_pb2_grpc.SecurityGroupServiceStub:
        return self._stub(security_pb2_grpc.SecurityGroupServiceStub)

    @property
    def routers(self) -> router_pb2_grpc.RouterServiceStub:
        return self._stub(router_pb2_grpc.RouterServiceStub)

    @property
    def images(self) -> image_pb2_grpc.ImageServiceStub:
        return self._stub(image_pb2_grpc.ImageServiceStub)

    @property
    def volumes(self) -> volume_pb2_grpc.VolumeServiceStub:
        return self._stub(volume_pb2_grpc.VolumeServiceStub)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._stubs.clear()


@dataclass
class Cli(ApiClient):
    """What loomctl's commands share: the API, output format and per-call timeout."""

    json: bool = False
    timeout: float = 30.0

    # ------------------------------------------------------------- output

    def print_list(self, items: list[Any], columns: list[Column]) -> None:
        """A List call's objects: JSON with --json, else a table."""
        if self.json:
            print_json(items)
        else:
            print_table(items, columns)

    def delete_each(self, kind: str, delete: Callable[..., Any], refs: list[str]) -> None:
        """Delete the objects named by ``refs`` (ids or names) in order, saying each one's revision."""
        for ref in refs:
            response = delete(network_pb2.DeleteRequest(id=self.resolve(kind, ref)), timeout=self.timeout)
            if self.json:
                print_json(response)
            else:
                print(f"deleted {kind} {ref} (revision {response.revision})")

    # ------------------------------------------------------------- lookups

    def list_all(self, method: Callable[..., Any], request: Any, items: str) -> Iterator[Any]:
        """Every object of a List call, following page tokens."""
        if not request.limit:
            request.limit = PAGE_SIZE
        while True:
            response = method(request, timeout=self.timeout)
            yield from getattr(response, items)
            if not response.next_page_token:
                return
            request.page_token = response.next_page_token

    def resolve(self, kind: str, ref: str, project: str = "") -> str:
        """The id of the object named by ``ref``: its id, or its name when that is unique (in ``project``)."""
        get, lister, request, items = self._lookups(kind)
        if project and hasattr(request, "project_id"):
            request.project_id = project
        try:
            return get(network_pb2.GetRequest(id=ref), timeout=self.timeout).id
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        request.name = ref
        matches = [obj.id for obj in self.list_all(lister, request, items)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise CliError(f"NOT_FOUND: no {kind} with id or name {ref!r}")
        raise CliError(f"{len(matches)} {kind}s are named {ref!r}; use an id")

    def _lookups(self, kind: str) -> tuple[Callable[..., Any], Callable[..., Any], Any, str]:
        net, comp = self.network, self.compute
        if kind == "network":
            return net.GetNetwork, net.ListNetworks, network_pb2.ListNetworksRequest(), "networks"
        if kind == "subnet":
            return net.GetSubnet, net.ListSubnets, network_pb2.ListSubnetsRequest(), "subnets"
        if kind == "port":
            return net.GetPort, net.ListPorts, network_pb2.ListPortsRequest(), "ports"
        if kind == "instance":
            return comp.GetInstance, comp.ListInstances, compute_pb2.ListInstancesRequest(), "instances"
        if kind == "security group":
            sec = self.security
            return (
                sec.GetSecurityGroup,
                sec.ListSecurityGroups,
                security_pb2.ListSecurityGroupsRequest(),
                "security_groups",
            )
        if kind == "router":
            r = self.routers
            return r.GetRouter, r.ListRouters, router_pb2.ListRoutersRequest(), "routers"
        if kind == "image":
            return self.images.GetImage, self.images.ListImages, image_pb2.ListImagesRequest(), "images"
        if kind == "volume":
            return self.volumes.GetVolume, self.volumes.ListVolumes, volume_pb2.ListVolumesRequest(), "volumes"
        raise ValueError(kind)
