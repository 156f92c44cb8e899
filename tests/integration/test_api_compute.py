"""The compute API over real gRPC: booted instances, scheduling, validation, status from reports, migration, volumes.

Hypervisors here are the test itself speaking the agents' HypervisorService
(capacity, instance states, disk uploads), exactly the messages a real agent
sends; tests/lab/test_compute.py runs the same paths with real agents,
libvirtd and guests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos.loom.v1 import compute_pb2 as cpb
from protos.loom.v1 import hypervisor_pb2 as hpb
from protos.loom.v1 import hypervisor_pb2_grpc, image_pb2, image_pb2_grpc, volume_pb2, volume_pb2_grpc
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import LiveController, expect, make_network, make_subnet

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
FLAVOR = rpb.Flavor(vcpus=1, ram_mb=256, disk_gb=1)


@pytest.fixture(scope="module")
def stubs(live: LiveController) -> tuple:
    return (
        hypervisor_pb2_grpc.HypervisorServiceStub(live.channel),
        image_pb2_grpc.ImageServiceStub(live.channel),
        volume_pb2_grpc.VolumeServiceStub(live.channel),
    )


def report(live: LiveController, host: str, *states: hpb.InstanceState, memory_mb: int = 8192, up: bool = True) -> None:
    hv = hypervisor_pb2_grpc.HypervisorServiceStub(live.channel)
    hv.Report(
        hpb.HypervisorReport(
            host=host, vcpus=4, memory_mb=memory_mb, hypervisor_up=up, virt_type="qemu", instances=list(states)
        )
    )


def upload(live: LiveController, data: bytes, **fields: object) -> rpb.Image:
    def parts() -> Iterator[image_pb2.UploadImageRequest]:
        yield image_pb2.UploadImageRequest(image=rpb.Image(**fields))  # type: ignore[arg-type]
        yield image_pb2.UploadImageRequest(data=data)

    return image_pb2_grpc.ImageServiceStub(live.channel).UploadImage(parts())


@pytest.fixture(scope="module")
def world(live: LiveController, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Two hypervisors, a network with a subnet, a 1 GiB and a 2 GiB image."""
    report(live, "hv1")
    report(live, "hv2", memory_mb=4096)
    net = make_network(live, name="compute-net")
    make_subnet(live, net.id, "10.9.0.0/24")
    tmp = tmp_path_factory.mktemp("img")
    images = {}
    for name, size in (("small", "1G"), ("big", "2G")):
        path = tmp / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
        images[name] = upload(live, path.read_bytes(), name=name, disk_format="qcow2").id
    kernel = upload(live, os.urandom(4096), name="kernel", disk_format="aki").id
    return {"net": net.id, "kernel": kernel, **images}


def create(live: LiveController, **fields: object) -> rpb.Instance:
    return live.compute.CreateInstance(cpb.CreateInstanceRequest(instance=rpb.Instance(**fields)))  # type: ignore[arg-type]


def booted(live: LiveController, world: dict[str, str], name: str, **fields: object) -> rpb.Instance:
    fields.setdefault("networks", [rpb.NetworkRequest(network_id=world["net"])])
    return create(live, name=name, image_id=world["small"], flavor=FLAVOR, **fields)


def get(live: LiveController, instance_id: str) -> rpb.Instance:
    return live.compute.GetInstance(npb.GetRequest(id=instance_id))


def state(inst: rpb.Instance, power: str = "running", **fields: object) -> hpb.InstanceState:
    return hpb.InstanceState(instance_id=inst.id, power_state=power, **{"disk_ready": True, **fields})  # type: ignore[arg-type]


def port(live: LiveController, port_id: str) -> rpb.Port:
    return live.network.GetPort(npb.GetRequest(id=port_id))


# ---------------------------------------------------------------- create


def test_create_schedules_binds_its_ports_and_builds(live: LiveController, world: dict[str, str]) -> None:
    inst = booted(live, world, "web1")
    assert (inst.status, inst.task_state, inst.host) == ("BUILD", "spawning", "hv1")  # the most free RAM
    assert (inst.flavor.vcpus, inst.flavor.ram_mb, inst.flavor.disk_gb) == (1, 256, 1)
    assert len(inst.ports) == 1
    p = port(live, inst.ports[0])
    assert (p.device_id, p.device_owner, p.binding_host_id) == (inst.id, "compute:nova", "hv1")
    assert p.binding_vif_details["ofport"] and p.fixed_ips[0].ip_address.startswith("10.9.0.")
    two = booted(live, world, "two", networks=[rpb.NetworkRequest(network_id=world["net"])] * 2, host="hv2")
    ports = [port(live, pid) for pid in two.ports]
    assert two.host == "hv2" and len({p.fixed_ips[0].ip_address for p in ports}) == 2
    assert len({p.binding_vif_details["ofport"] for p in ports}) == 2  # one request, two distinct ofports
    assert len({p.mac_address for p in ports}) == 2


def test_bad_requests_are_refused_naming_the_field_and_change_nothing(
    live: LiveController, world: dict[str, str]
) -> None:
    net = [rpb.NetworkRequest(network_id=world["net"])]
    ok = {"name": "x", "image_id": world["small"], "flavor": FLAVOR, "networks": net}

    def attempt(code: grpc.StatusCode, *fragments: str, **changes: object) -> None:
        expect(live, code, lambda: create(live, **{**ok, **changes}), *fragments)

    attempt(INVALID, "instance.flavor: is required", flavor=None)
    attempt(INVALID, "instance.flavor.vcpus", flavor=rpb.Flavor(vcpus=0, ram_mb=256))
    attempt(NOT_FOUND, "instance.image_id: image 'nope' not found", image_id="nope")
    attempt(INVALID, "instance.image_id", "is aki, not a disk image", image_id=world["kernel"])
    attempt(
        INVALID,
        "instance.flavor.disk_gb: 1 GiB is too small for image",
        "virtual size 2147483648 bytes",
        image_id=world["big"],
    )
    attempt(
        NOT_FOUND,
        "instance.networks[0].network_id: network 'nope' not found",
        networks=[rpb.NetworkRequest(network_id="nope")],
    )
    attempt(INVALID, "instance.networks[0]: needs a network_id or a port_id", networks=[rpb.NetworkRequest()])
    attempt(NOT_FOUND, "instance.host: hypervisor 'hv9' not found", host="hv9")
    attempt(
        PRECONDITION,
        "instance.host: host hv2 cannot take the instance",
        "MiB free",
        host="hv2",
        flavor=rpb.Flavor(vcpus=1, ram_mb=8000, disk_gb=1),
    )
    attempt(PRECONDITION, "no hypervisor can take 1 vCPUs and 100000 MiB", flavor=rpb.Flavor(vcpus=1, ram_mb=100000))
    expect(live, INVALID, lambda: create(live, name="rec", networks=net), "instance.networks: needs an image_id")


def test_given_ports_are_bound_then_unbound_on_delete_created_ones_deleted(
    live: LiveController, world: dict[str, str]
) -> None:
    mine = live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=world["net"], name="mine")))
    inst = booted(
        live,
        world,
        "withport",
        networks=[rpb.NetworkRequest(port_id=mine.id), rpb.NetworkRequest(network_id=world["net"])],
    )
    assert inst.ports[0] == mine.id or mine.id in inst.ports
    created = next(p for p in inst.ports if p != mine.id)
    assert port(live, mine.id).binding_host_id == inst.host
    other = booted(live, world, "thief", networks=[])
    expect(
        live,
        PRECONDITION,
        lambda: booted(live, world, "thief2", networks=[rpb.NetworkRequest(port_id=mine.id)]),
        f"port {mine.id} is in use by {inst.id}",
    )
    live.compute.DeleteInstance(npb.DeleteRequest(id=inst.id))
    kept = port(live, mine.id)
    assert (kept.device_id, kept.binding_host_id, kept.binding_vif_details) == ("", "", {})
    expect(live, NOT_FOUND, lambda: port(live, created), "not found")
    live.compute.DeleteInstance(npb.DeleteRequest(id=other.id))


# ---------------------------------------------------------------- status from reports


def test_reports_drive_status_through_power_changes(live: LiveController, world: dict[str, str]) -> None:
    inst = booted(live, world, "power", host="hv1")
    report(live, "hv1", state(inst, "nostate", disk_ready=False))
    assert get(live, inst.id).status == "BUILD"
    report(live, "hv1", state(inst, "running", settled=True))
    now = get(live, inst.id)
    assert (now.status, now.power_state, now.task_state) == ("ACTIVE", "running", "")
    assert now.launched_at > 0
    stopping = live.compute.StopInstance(cpb.InstanceActionRequest(id=inst.id))
    assert (stopping.status, stopping.task_state) == ("ACTIVE", "powering-off")
    report(live, "hv1", state(inst, "shutdown", settled=True, power_generation=1))
    assert get(live, inst.id).status == "SHUTOFF"
    expect(
        live,
        PRECONDITION,
        lambda: live.compute.RebootInstance(cpb.RebootInstanceRequest(id=inst.id)),
        "a soft reboot needs it ACTIVE",
    )
    live.compute.StartInstance(cpb.InstanceActionRequest(id=inst.id))
    assert get(live, inst.id).task_state == "powering-on"
    report(live, "hv1", state(inst, "running", settled=True, power_generation=2))
    rebooting = live.compute.RebootInstance(cpb.RebootInstanceRequest(id=inst.id, hard=True))
    assert (rebooting.status, rebooting.task_state) == ("HARD_REBOOT", "rebooting_hard")
    report(live, "hv1", state(inst, "running", settled=True, boot_generation=1, power_generation=2))
    assert get(live, inst.id).status == "ACTIVE"
    report(live, "hv1", state(inst, "nostate", fault="hypervisor unavailable: libvirtd gone"))
    now = get(live, inst.id)
    assert (now.status, now.fault) == ("ERROR", "hypervisor unavailable: libvirtd gone")
    # The guest shuts itself down: recorded as stopped (Nova's power sync), not restarted.
    report(live, "hv1", state(inst, "shutdown", stopped_by_guest=True, boot_generation=1, power_generation=2))
    now = get(live, inst.id)
    assert (now.status, now.fault) == ("SHUTOFF", "")
    console = hpb.InstanceState(
        instance_id=inst.id, power_state="shutdown", console=b"LOOM-READY\n", console_changed=True
    )
    report(live, "hv1", console)
    out = live.compute.GetConsoleOutput(cpb.GetConsoleOutputRequest(id=inst.id))
    assert out.output == "LOOM-READY\n" and out.reported_at > 0
    hvs = {h.host: h for h in live.compute.ListHypervisors(cpb.ListHypervisorsRequest()).hypervisors}
    assert hvs["hv1"].alive and hvs["hv1"].instances >= 1 and hvs["hv1"].vcpus == 4


def test_cold_migration_moves_ports_and_disk(live: LiveController, world: dict[str, str]) -> None:
    inst = booted(live, world, "mover", host="hv1")
    report(live, "hv1", state(inst, "running", settled=True))
    expect(
        live,
        PRECONDITION,
        lambda: live.compute.MigrateInstance(cpb.MigrateInstanceRequest(id=inst.id)),
        "a cold migration needs it SHUTOFF",
    )
    live.compute.StopInstance(cpb.InstanceActionRequest(id=inst.id))
    report(live, "hv1", state(inst, "shutdown", settled=True, power_generation=1))
    before = port(live, inst.ports[0])
    moving = live.compute.MigrateInstance(cpb.MigrateInstanceRequest(id=inst.id))
    assert (moving.status, moving.host) == ("MIGRATING", "hv1")
    migration_id = live.controller.context.compute.instances.get_instance(inst.id).migration_id
    disk = os.urandom(300_000)
    hv = hypervisor_pb2_grpc.HypervisorServiceStub(live.channel)
    header = hpb.DiskChunk(
        host="hv1",
        instance_id=inst.id,
        migration_id=migration_id,
        size=len(disk),
        sha256=hashlib.sha256(disk).hexdigest(),
    )
    expect(
        live,
        PRECONDITION,
        lambda: hv.UploadInstanceDisk(iter([hpb.DiskChunk(host="hv2", instance_id=inst.id, migration_id="x")])),
        "is not in the export phase",
    )
    hv.UploadInstanceDisk(iter([header, hpb.DiskChunk(data=disk)]))
    report(live, "hv1", state(inst, "shutdown", settled=True, exported=migration_id, power_generation=1))
    moved = get(live, inst.id)
    assert (moved.host, moved.status) == ("hv2", "MIGRATING")
    after = port(live, inst.ports[0])
    assert after.binding_host_id == "hv2"
    assert (after.mac_address, after.fixed_ips) == (before.mac_address, before.fixed_ips)
    chunks = list(
        hv.DownloadInstanceDisk(
            hpb.DownloadInstanceDiskRequest(host="hv2", instance_id=inst.id, migration_id=migration_id)
        )
    )
    assert chunks[0].sha256 == header.sha256 and b"".join(c.data for c in chunks[1:]) == disk
    report(live, "hv2", state(inst, "shutdown", settled=True, power_generation=1))
    done = get(live, inst.id)
    assert (done.host, done.status, done.task_state) == ("hv2", "SHUTOFF", "")
    transfers = Path(live.controller.context.compute.transfers.directory)
    assert not list(transfers.glob(f"{inst.id}*"))


# ---------------------------------------------------------------- volumes


def test_volume_lifecycle_through_reports(live: LiveController, world: dict[str, str], stubs: tuple) -> None:
    _, _, volumes = stubs
    vol = volumes.CreateVolume(volume_pb2.CreateVolumeRequest(volume=rpb.Volume(name="data", size_gb=2)))
    assert (vol.status, vol.backend, vol.size_gb) == ("available", "file", 2)
    path = Path(live.controller.context.compute.volumes.get(vol.id).location)
    st = path.stat()
    assert st.st_size == 2 << 30 and st.st_blocks == 0  # sparse
    from_image = volumes.CreateVolume(volume_pb2.CreateVolumeRequest(volume=rpb.Volume(image_id=world["small"])))
    assert (from_image.status, from_image.size_gb) == ("available", 1)
    expect(
        live,
        INVALID,
        lambda: volumes.CreateVolume(volume_pb2.CreateVolumeRequest(volume=rpb.Volume(size_gb=0))),
        "volume.size_gb",
    )
    inst = booted(live, world, "withvol", host="hv1")
    attaching = volumes.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=inst.id))
    assert (attaching.status, attaching.device, attaching.instance_id) == ("attaching", "/dev/vdb", inst.id)
    expect(
        live,
        PRECONDITION,
        lambda: volumes.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=inst.id)),
        "only an available one attaches",
    )
    report(live, "hv1", state(inst, "running", volumes=[vol.id[:20]]))
    assert volumes.GetVolume(npb.GetRequest(id=vol.id)).status == "in-use"
    assert list(get(live, inst.id).volumes) == [vol.id]
    expect(live, PRECONDITION, lambda: volumes.DeleteVolume(npb.DeleteRequest(id=vol.id)), "is in-use")
    volumes.DetachVolume(volume_pb2.DetachVolumeRequest(volume_id=vol.id))
    report(live, "hv1", state(inst, "running"))
    back = volumes.GetVolume(npb.GetRequest(id=vol.id))
    assert (back.status, back.instance_id, back.device) == ("available", "", "")
    # Deleting an instance detaches its volumes once its host no longer has the guest.
    volumes.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=inst.id))
    report(live, "hv1", state(inst, "running", volumes=[vol.id[:20]]))
    live.compute.DeleteInstance(npb.DeleteRequest(id=inst.id))
    assert volumes.GetVolume(npb.GetRequest(id=vol.id)).status == "detaching"
    report(live, "hv1")
    assert volumes.GetVolume(npb.GetRequest(id=vol.id)).status == "available"
    volumes.DeleteVolume(npb.DeleteRequest(id=vol.id))
    assert not path.exists()
