"""ImageService over real gRPC with the real qemu-img: uploads are checked before an image exists.

Each refused upload must leave no image object and no file in the image directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from protos.loom.v1 import image_pb2, image_pb2_grpc
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import LiveController, expect

INVALID = grpc.StatusCode.INVALID_ARGUMENT
MIB = 1 << 20

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img (qemu-utils) is not installed")


@pytest.fixture
def images(live: LiveController) -> image_pb2_grpc.ImageServiceStub:
    return image_pb2_grpc.ImageServiceStub(live.channel)


def image_dir(live: LiveController) -> Path:
    return Path(live.controller.context.compute.core.settings.image_dir)


def stored_files(live: LiveController) -> set[str]:
    return {p.name for p in image_dir(live).iterdir() if p.is_file()}


def requests(image: rpb.Image, data: bytes, chunk: int = 256 * 1024) -> Iterator[image_pb2.UploadImageRequest]:
    yield image_pb2.UploadImageRequest(image=image)
    for i in range(0, len(data), chunk):
        yield image_pb2.UploadImageRequest(data=data[i : i + chunk])


def upload(images: image_pb2_grpc.ImageServiceStub, data: bytes, **fields: object) -> rpb.Image:
    return images.UploadImage(requests(rpb.Image(**fields), data))  # type: ignore[arg-type]


def qcow2(tmp_path: Path, *options: str, size: str = "64M") -> bytes:
    path = tmp_path / "img.qcow2"
    path.unlink(missing_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), size], check=True)
    return path.read_bytes()


def test_upload_raw_and_qcow2_with_their_digest_and_sizes(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub, tmp_path: Path
) -> None:
    raw = os.urandom(3 * MIB)
    img = upload(images, raw, name="raw", disk_format="raw", size=len(raw), sha256=hashlib.sha256(raw).hexdigest())
    assert (img.status, img.size, img.virtual_size, img.container_format) == ("active", len(raw), len(raw), "bare")
    assert img.sha256 == hashlib.sha256(raw).hexdigest()
    assert (image_dir(live) / img.id).read_bytes() == raw
    assert b"".join(c.data for c in images.DownloadImage(npb.GetRequest(id=img.id))) == raw
    q = qcow2(tmp_path, size="2G")
    img2 = upload(images, q, name="q", disk_format="qcow2")  # nothing declared: still checked, not compared
    assert (img2.size, img2.virtual_size) == (len(q), 2 << 30)
    listed = images.ListImages(image_pb2.ListImagesRequest(name="q")).images
    assert [i.id for i in listed] == [img2.id]


def test_a_qcow2_with_a_backing_file_is_refused(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub, tmp_path: Path
) -> None:
    evil = qcow2(tmp_path, "-F", "raw", "-b", "/etc/shadow", size="1M")
    before = stored_files(live)
    expect(live, INVALID, lambda: upload(images, evil, disk_format="qcow2"), "image.disk_format", "backing file")
    assert stored_files(live) == before


def test_a_raw_image_that_is_really_a_qcow2_is_refused(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub, tmp_path: Path
) -> None:
    """The classic attack: declared raw, but qemu would probe the header and follow its backing file."""
    evil = qcow2(tmp_path, "-F", "raw", "-b", "/etc/shadow", size="1M")
    expect(live, INVALID, lambda: upload(images, evil, disk_format="raw"), "declared raw, but the data is a qcow2")


def test_a_qcow2_with_an_external_data_file_is_refused(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub, tmp_path: Path
) -> None:
    evil = qcow2(tmp_path, "-o", f"data_file={tmp_path / 'data'}", size="1M")
    expect(live, INVALID, lambda: upload(images, evil, disk_format="qcow2"), "external data file")


def test_checksum_mismatch_and_truncated_uploads_keep_nothing(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub
) -> None:
    data = os.urandom(MIB)
    before = stored_files(live)
    expect(
        live,
        INVALID,
        lambda: upload(images, data, disk_format="raw", sha256="0" * 64),
        "image.sha256",
        "not the 0000",
    )
    expect(
        live,
        INVALID,
        lambda: upload(images, data[: MIB // 2], disk_format="raw", size=MIB),
        "image.size",
        "1048576 bytes declared, 524288 received (truncated upload)",
    )
    assert stored_files(live) == before
    assert not list(image_dir(live).glob(".upload-*"))


def test_a_client_that_goes_away_mid_upload_leaves_nothing(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub
) -> None:
    revision = live.store.revision

    def dying() -> Iterator[image_pb2.UploadImageRequest]:
        yield image_pb2.UploadImageRequest(image=rpb.Image(disk_format="raw", size=8 * MIB))
        yield image_pb2.UploadImageRequest(data=os.urandom(MIB))
        raise RuntimeError("the client crashed")

    with pytest.raises(grpc.RpcError):
        images.UploadImage(dying())
    # The server learns of the cancellation a moment after the client gave up.
    deadline = time.monotonic() + 10
    while list(image_dir(live).glob(".upload-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not list(image_dir(live).glob(".upload-*"))
    assert live.store.revision == revision


def test_field_checks_before_any_byte(live: LiveController, images: image_pb2_grpc.ImageServiceStub) -> None:
    expect(live, INVALID, lambda: upload(images, b"x", disk_format="vmdk"), "image.disk_format: 'vmdk' is not one of")
    expect(live, INVALID, lambda: upload(images, b"x", disk_format="raw", sha256="abc"), "image.sha256")
    expect(
        live,
        grpc.StatusCode.NOT_FOUND,
        lambda: upload(images, b"x" * 512, disk_format="raw", properties={"kernel_id": "nope"}),
        "image.properties['kernel_id']: image 'nope' not found",
    )
    expect(
        live,
        INVALID,
        lambda: images.UploadImage(iter([image_pb2.UploadImageRequest(data=b"x")])),
        "the first message of an upload carries the image's fields",
    )


def test_ami_style_images_and_deleting_what_is_in_use(
    live: LiveController, images: image_pb2_grpc.ImageServiceStub, tmp_path: Path
) -> None:
    kernel = upload(images, os.urandom(64 * 1024), name="k", disk_format="aki")
    ramdisk = upload(images, os.urandom(64 * 1024), name="r", disk_format="ari")
    assert (kernel.container_format, ramdisk.container_format) == ("aki", "ari")
    disk = upload(
        images,
        qcow2(tmp_path),
        name="ami",
        disk_format="qcow2",
        properties={"kernel_id": kernel.id, "ramdisk_id": ramdisk.id, "os_command_line": "console=ttyS0"},
    )
    expect(
        live,
        INVALID,
        lambda: upload(images, os.urandom(512), disk_format="raw", properties={"kernel_id": ramdisk.id}),
        "is ari, not aki",
    )
    expect(
        live,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: images.DeleteImage(npb.DeleteRequest(id=kernel.id)),
        f"image {kernel.id} is in use by image {disk.id}",
    )
    images.DeleteImage(npb.DeleteRequest(id=disk.id))
    images.DeleteImage(npb.DeleteRequest(id=kernel.id))
    assert kernel.id not in stored_files(live)
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: images.GetImage(npb.GetRequest(id=kernel.id)), "not found")
