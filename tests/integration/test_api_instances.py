"""ComputeService over real gRPC: instances, their hostnames, user data, keys, metadata and ports."""

from __future__ import annotations

import os
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from protos.loom.v1 import compute_pb2 as cpb
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import (
    LiveController,
    expect,
    make_network,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests user@host"


def create(live: LiveController, **fields: Any) -> rpb.Instance:
    return live.compute.CreateInstance(cpb.CreateInstanceRequest(instance=rpb.Instance(**fields)))


def update(live: LiveController, instance_id: str, paths: list[str], **fields: Any) -> rpb.Instance:
    return live.compute.UpdateInstance(
        cpb.UpdateInstanceRequest(instance=rpb.Instance(id=instance_id, **fields), update_mask=FieldMask(paths=paths))
    )


def test_create_with_defaults(live: LiveController) -> None:
    i = create(live, name="Web Server #1", project_id="p", availability_zone="az1", host="hv1")
    assert i.hostname == "web-server-1" and i.status == "ACTIVE" and i.tag >= 1
    assert (i.project_id, i.availability_zone, i.host) == ("p", "az1", "hv1")
    assert live.compute.GetInstance(npb.GetRequest(id=i.id)) == i
    unnamed = create(live, name="***")
    assert unnamed.hostname == f"instance-{unnamed.id[:8]}"
    assert create(live, name="x", hostname="Custom-Host").hostname == "custom-host"


def test_user_data_round_trips_byte_for_byte(live: LiveController) -> None:
    blob = os.urandom(64 * 1024)
    i = create(live, name="big", user_data=blob)
    assert live.compute.GetInstance(npb.GetRequest(id=i.id)).user_data == blob
    expect(live, INVALID, lambda: create(live, user_data=blob + b"!"), "instance.user_data: 65537 bytes")


def test_keys_and_metadata(live: LiveController) -> None:
    i = create(live, name="k", public_keys={"default": KEY + "\n"}, metadata={"role": "web", "tier": "1"})
    assert dict(i.public_keys) == {"default": KEY} and dict(i.metadata) == {"role": "web", "tier": "1"}
    expect(live, INVALID, lambda: create(live, public_keys={"a": ""}), "instance.public_keys['a']: is empty")
    expect(live, INVALID, lambda: create(live, metadata={"": "x"}), "instance.metadata: has an empty key")
    expect(live, INVALID, lambda: create(live, metadata={"k": "v" * 256}), "longer than 255")
    expect(live, INVALID, lambda: create(live, hostname="bad_host"), "instance.hostname: 'bad_host'")


def test_ports_are_those_naming_the_instance(live: LiveController) -> None:
    n = make_network(live)
    i = create(live, name="with-ports")
    a = live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id, device_id=i.id)))
    b = live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id, device_id=i.id)))
    live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id, device_id="someone-else")))
    assert list(live.compute.GetInstance(npb.GetRequest(id=i.id)).ports) == [a.id, b.id]
    live.network.UpdatePort(
        npb.UpdatePortRequest(port=rpb.Port(id=a.id, device_id=""), update_mask=FieldMask(paths=["device_id"]))
    )
    assert list(live.compute.GetInstance(npb.GetRequest(id=i.id)).ports) == [b.id]
    # Deleting the instance leaves its ports.
    live.compute.DeleteInstance(npb.DeleteRequest(id=i.id))
    assert live.network.GetPort(npb.GetRequest(id=b.id)).device_id == i.id


def test_update_and_delete(live: LiveController) -> None:
    i = create(live, name="old name", metadata={"a": "1"})
    u = update(
        live, i.id, ["name", "metadata", "user_data"], name="new name", metadata={"b": "2"}, user_data=b"\x00\x01"
    )
    assert u.name == "new name" and u.hostname == "old-name"  # the hostname stays unless asked
    assert dict(u.metadata) == {"b": "2"} and u.user_data == b"\x00\x01"
    assert update(live, i.id, ["hostname"]).hostname == "new-name"  # empty: derived from the name again
    assert update(live, i.id, ["hostname"], hostname="h2").hostname == "h2"
    expect(live, INVALID, lambda: update(live, i.id, ["ports"]), "instance.ports: is output only")
    expect(live, INVALID, lambda: update(live, i.id, ["project_id"], project_id="x"), "cannot be changed")
    expect(live, INVALID, lambda: update(live, i.id, []), "update_mask: is required")
    live.compute.DeleteInstance(npb.DeleteRequest(id=i.id))
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.compute.GetInstance(npb.GetRequest(id=i.id)))
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.compute.DeleteInstance(npb.DeleteRequest(id=i.id)))


def test_list_filters(live: LiveController) -> None:
    a = create(live, name="listed", host="lh-a")
    b = create(live, name="listed", host="lh-b")
    assert [x.id for x in live.compute.ListInstances(cpb.ListInstancesRequest(name="listed")).instances] == [a.id, b.id]
    assert [x.id for x in live.compute.ListInstances(cpb.ListInstancesRequest(host="lh-b")).instances] == [b.id]
    page = live.compute.ListInstances(cpb.ListInstancesRequest(name="listed", limit=1))
    assert [x.id for x in page.instances] == [a.id] and page.next_page_token
