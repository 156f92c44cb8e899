"""Real guests through the compute API on the Loom lab: images, instances, volumes, consoles.

    with LoomLab(hypervisors=2, compute=True) as loom:
        net = loom.create_network("red", "10.0.0.0/24")
        image = tiny_image(loom)                        # the tiny guest, uploaded once (AMI-style)
        inst = create_instance(loom, "vm1", image.id, [net.id], host="hv1")
        inst = wait_instance(loom, inst.id, "ACTIVE")
        guest = console(loom, inst)                     # its serial port: log, and the tiny guest's shell
        lease = guest.wait_lease()

Everything goes through the gRPC API (ImageService, ComputeService,
VolumeService) like an orchestrator; only ``console`` reads the hypervisor's
files, the way an operator runs ``virsh console``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import grpc

from dataplane.common import qemu_img
from lab.mininet import guest_image
from lab.mininet.lab import LabError
from lab.mininet.loom import LoomLab
from lab.mininet.qemu_guest import SerialConsole
from protos.loom.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    image_pb2,
    image_pb2_grpc,
    network_pb2,
    resources_pb2,
    volume_pb2,
    volume_pb2_grpc,
)

CHUNK = 1 << 20
TINY_FLAVOR = resources_pb2.Flavor(vcpus=1, ram_mb=192, disk_gb=1)
TINY_CMDLINE = "console=ttyS0 quiet"
TINY_DISK_SIZE = 1 << 30  # virtual; the file holds a qcow2 header only


def images(loom: LoomLab) -> image_pb2_grpc.ImageServiceStub:
    return image_pb2_grpc.ImageServiceStub(loom.api.channel)


def volumes(loom: LoomLab) -> volume_pb2_grpc.VolumeServiceStub:
    return volume_pb2_grpc.VolumeServiceStub(loom.api.channel)


def compute(loom: LoomLab) -> compute_pb2_grpc.ComputeServiceStub:
    return compute_pb2_grpc.ComputeServiceStub(loom.api.channel)


# ---------------------------------------------------------------- images


def upload_requests(image: resources_pb2.Image, data: Iterator[bytes]) -> Iterator[image_pb2.UploadImageRequest]:
    yield image_pb2.UploadImageRequest(image=image)
    for chunk in data:
        yield image_pb2.UploadImageRequest(data=chunk)


def file_chunks(path: str | os.PathLike[str], limit: int | None = None) -> Iterator[bytes]:
    """A file's bytes in chunks (only the first ``limit`` bytes: a truncated upload)."""
    sent = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if limit is not None and sent + len(chunk) > limit:
                chunk = chunk[: limit - sent]
            sent += len(chunk)
            if chunk:
                yield chunk
            if limit is not None and sent >= limit:
                return


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def upload_image(
    loom: LoomLab,
    path: str | os.PathLike[str],
    name: str,
    disk_format: str,
    properties: Mapping[str, str] | None = None,
    declare: bool = True,
    timeout: float = 300.0,
) -> resources_pb2.Image:
    """Upload a file as an image, declaring its size and SHA-256 (as a careful client does) unless told not to."""
    image = resources_pb2.Image(name=name, disk_format=disk_format, properties=dict(properties or {}))
    if declare:
        image.size = os.path.getsize(path)
        image.sha256 = sha256_of(path)
    return images(loom).UploadImage(upload_requests(image, file_chunks(path)), timeout=timeout)


def find_image(loom: LoomLab, name: str) -> resources_pb2.Image | None:
    found = images(loom).ListImages(image_pb2.ListImagesRequest(name=name), timeout=10).images
    return found[0] if found else None


def tiny_image(loom: LoomLab) -> resources_pb2.Image:
    """The tiny guest as an AMI-style image: Debian's kernel (aki), the busybox initramfs (ari), a qcow2 root disk.

    Uploaded once per controller (found by name afterwards).
    """
    existing = find_image(loom, "loom-tiny")
    if existing is not None:
        return existing
    built = guest_image.build()
    kernel = upload_image(loom, built.kernel, "loom-tiny-kernel", "aki")
    ramdisk = upload_image(loom, built.initrd, "loom-tiny-ramdisk", "ari")
    with tempfile.TemporaryDirectory(prefix="loom-tiny-") as tmp:
        disk = Path(tmp) / "root.qcow2"
        qemu_img.create(disk, "qcow2", TINY_DISK_SIZE)
        props = {"kernel_id": kernel.id, "ramdisk_id": ramdisk.id, "os_command_line": TINY_CMDLINE}
        return upload_image(loom, disk, "loom-tiny", "qcow2", props)


# ---------------------------------------------------------------- instances


def create_instance(
    loom: LoomLab,
    name: str,
    image_id: str,
    networks: Sequence[str] = (),
    host: str = "",
    flavor: resources_pb2.Flavor = TINY_FLAVOR,
    user_data: bytes = b"",
    ports: Sequence[str] = (),
    **fields: object,
) -> resources_pb2.Instance:
    requests = [resources_pb2.NetworkRequest(network_id=n) for n in networks]
    requests += [resources_pb2.NetworkRequest(port_id=p) for p in ports]
    inst = resources_pb2.Instance(
        name=name,
        hostname=name,
        image_id=image_id,
        flavor=flavor,
        networks=requests,
        host=host,
        user_data=user_data,
        **fields,  # type: ignore[arg-type]
    )
    return compute(loom).CreateInstance(compute_pb2.CreateInstanceRequest(instance=inst), timeout=30)


def get_instance(loom: LoomLab, instance_id: str) -> resources_pb2.Instance:
    return compute(loom).GetInstance(network_pb2.GetRequest(id=instance_id), timeout=10)


def wait_instance(
    loom: LoomLab,
    instance_id: str,
    status: str | Callable[[resources_pb2.Instance], bool],
    timeout: float = 60.0,
) -> resources_pb2.Instance:
    """Follow Watch (no polling) until the instance has ``status`` (or the predicate holds).

    ERROR ends the wait early (with the fault) unless ERROR is what is awaited.
    """
    want: Callable[[resources_pb2.Instance], bool] = (
        (lambda i: i.status == status) if isinstance(status, str) else status  # type: ignore[assignment]
    )
    inst = get_instance(loom, instance_id)
    if want(inst):
        return inst
    stream = loom.network.Watch(
        network_pb2.WatchRequest(since_revision=inst.revision_number, kinds=["instance"], id=instance_id),
        timeout=timeout,
    )
    try:
        for ev in stream:
            if ev.type == network_pb2.WatchEvent.DELETED:
                raise LabError(f"instance {instance_id} was deleted while waiting for {status}")
            inst = ev.instance
            if want(inst):
                return inst
            if inst.status == "ERROR" and status != "ERROR":
                raise LabError(f"instance {instance_id} went to ERROR while waiting for {status}: {inst.fault}")
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        stream.cancel()
    last = get_instance(loom, instance_id)
    raise LabError(
        f"instance {instance_id} not {status} after {timeout} s "
        f"(status {last.status}, task {last.task_state!r}, power {last.power_state!r}, fault {last.fault!r})"
    )


def action(loom: LoomLab, name: str, instance_id: str, **kwargs: object) -> resources_pb2.Instance:
    """``StartInstance``, ``StopInstance``, ``RebootInstance`` or ``MigrateInstance`` by name."""
    stub = compute(loom)
    request: object
    if name == "RebootInstance":
        request = compute_pb2.RebootInstanceRequest(id=instance_id, **kwargs)  # type: ignore[arg-type]
    elif name == "MigrateInstance":
        request = compute_pb2.MigrateInstanceRequest(id=instance_id, **kwargs)  # type: ignore[arg-type]
    else:
        request = compute_pb2.InstanceActionRequest(id=instance_id)
    return getattr(stub, name)(request, timeout=30)


def delete_instance(loom: LoomLab, instance_id: str) -> None:
    try:
        compute(loom).DeleteInstance(network_pb2.DeleteRequest(id=instance_id), timeout=30)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise


def console_output(loom: LoomLab, instance_id: str) -> str:
    return compute(loom).GetConsoleOutput(compute_pb2.GetConsoleOutputRequest(id=instance_id), timeout=10).output


def wait_console(loom: LoomLab, instance_id: str, text: str, timeout: float = 60.0) -> str:
    """Poll GetConsoleOutput (the API's view of the serial console) until it shows ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        out = console_output(loom, instance_id)
        if text in out:
            return out
        if time.monotonic() > deadline:
            raise LabError(f"instance {instance_id}: {text!r} not on its console after {timeout} s:\n{out[-3000:]}")
        time.sleep(0.5)


# ---------------------------------------------------------------- the hypervisor's side


def instance_dir(loom: LoomLab, host: str, instance_id: str) -> Path:
    return Path(loom.state_dir) / host / "instances" / instance_id


def console(loom: LoomLab, inst: resources_pb2.Instance) -> SerialConsole:
    """The guest's serial port on its hypervisor (its log, and the tiny guest's shell on its socket)."""
    d = instance_dir(loom, inst.host, inst.id)
    return SerialConsole(inst.name, d / "console.log", d / "console.sock")


def create_volume(loom: LoomLab, name: str, size_gb: int = 1, image_id: str = "") -> resources_pb2.Volume:
    vol = resources_pb2.Volume(name=name, size_gb=size_gb, image_id=image_id)
    return volumes(loom).CreateVolume(volume_pb2.CreateVolumeRequest(volume=vol), timeout=120)


def get_volume(loom: LoomLab, volume_id: str) -> resources_pb2.Volume:
    return volumes(loom).GetVolume(network_pb2.GetRequest(id=volume_id), timeout=10)


def wait_volume(loom: LoomLab, volume_id: str, status: str, timeout: float = 60.0) -> resources_pb2.Volume:
    """Follow Watch until the volume has ``status``."""
    vol = get_volume(loom, volume_id)
    if vol.status == status:
        return vol
    stream = loom.network.Watch(
        network_pb2.WatchRequest(since_revision=vol.revision_number, kinds=["volume"], id=volume_id), timeout=timeout
    )
    try:
        for ev in stream:
            if ev.volume.status == status:
                return ev.volume
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    finally:
        stream.cancel()
    last = get_volume(loom, volume_id)
    raise LabError(f"volume {volume_id} not {status} after {timeout} s (status {last.status}, fault {last.fault!r})")
