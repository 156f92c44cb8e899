"""Images (Glance's): streamed uploads, checked before they exist; their bytes in the controller's image directory.

An upload is written to a temporary file while its SHA-256 is computed; the
image exists (a store object and ``<image_dir>/<id>``) only once every check
passed:

- the size and digest the client declared, if it declared them (a client
  cut off half-way sends fewer bytes than it announced: "truncated");
- ``qemu-img info`` on the bytes, letting qemu-img *probe* the format: a
  "raw" image whose bytes are a qcow2 header is refused (the classic attack:
  a raw upload that qemu would later open as qcow2), as is any qcow2 with a
  backing file or an external data file (either would make qemu on the
  hypervisor read a host file into the guest), or encryption;
- kernels and ramdisks (disk formats ``aki`` and ``ari``, for AMI-style
  direct kernel boot) must probe as plain data.

Anything failing leaves no file and no object behind. Images never change
after upload, so hypervisors cache them by digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from compute.core import ComputeCore
from controller.api import validation as v
from controller.api.errors import failed_precondition, invalid, not_found
from controller.api.paging import Page, paginate
from controller.model import Image, Instance, Volume
from dataplane.common import qemu_img
from dataplane.common.logs import get_logger

log = get_logger(__name__)

DISK_FORMATS = ("raw", "qcow2", "aki", "ari")
BOOTABLE_FORMATS = ("raw", "qcow2")  # what a root disk can be made from
CONTAINER_FORMATS = ("bare", "aki", "ari")
KERNEL_ID = "kernel_id"
RAMDISK_ID = "ramdisk_id"
COMMAND_LINE = "os_command_line"
MAX_PROPERTIES = 64
MAX_PROPERTY_VALUE = 4096
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ImageApi:
    def __init__(self, core: ComputeCore) -> None:
        self.core = core
        self.store = core.store
        self.directory = Path(core.settings.image_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sweep()

    def _sweep(self) -> None:
        """Uploads a killed controller left half-written are nobody's."""
        for leftover in self.directory.glob(".upload-*"):
            leftover.unlink(missing_ok=True)

    def path(self, image: Image) -> Path:
        return self.directory / image.id

    # ------------------------------------------------------------ reads

    def get(self, image_id: str) -> Image:
        return self.core.get("image", image_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Image]:
        revision, objs = self.store.snapshot("image")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def chunks(self, image_id: str) -> Iterator[bytes]:
        """The image's bytes, in chunks (the file is opened before the first one is asked for)."""
        image = self.get(image_id)
        f = open(self.path(image), "rb")  # noqa: SIM115 - closed by the generator
        return _read_chunks(f)

    # ------------------------------------------------------------ upload

    def validate_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """The upload's declared fields, checked before a single byte is read."""
        disk_format = v.required("image.disk_format", fields.get("disk_format", ""))
        if disk_format not in DISK_FORMATS:
            raise invalid("image.disk_format", f"{disk_format!r} is not one of {', '.join(DISK_FORMATS)}")
        container = fields.get("container_format", "") or (disk_format if disk_format in ("aki", "ari") else "bare")
        if container not in CONTAINER_FORMATS:
            raise invalid("image.container_format", f"{container!r} is not one of {', '.join(CONTAINER_FORMATS)}")
        if container != "bare" and container != disk_format:
            raise invalid("image.container_format", f"{container} goes with disk_format {container} only")
        sha256 = str(fields.get("sha256", "")).lower()
        if sha256 and not _SHA256.match(sha256):
            raise invalid("image.sha256", "must be 64 hexadecimal digits (a SHA-256 digest)")
        properties = v.string_map(
            "image.properties", dict(fields.get("properties", {})), MAX_PROPERTIES, MAX_PROPERTY_VALUE
        )
        for key, kind in ((KERNEL_ID, "aki"), (RAMDISK_ID, "ari")):
            ref = dict(properties).get(key)
            if ref:
                self._referenced(f"image.properties[{key!r}]", ref, kind)
        return {
            "name": v.text("image.name", fields.get("name", "")),
            "project_id": v.text("image.project_id", fields.get("project_id", "")),
            "disk_format": disk_format,
            "container_format": container,
            "size": int(fields.get("size", 0)),
            "sha256": sha256,
            "min_disk": int(fields.get("min_disk", 0)),
            "min_ram": int(fields.get("min_ram", 0)),
            "properties": properties,
        }

    def _referenced(self, field: str, image_id: str, disk_format: str) -> Image:
        ref = self.store.get("image", image_id)
        if not isinstance(ref, Image):
            raise not_found("image", image_id, field)
        if ref.disk_format != disk_format:
            raise invalid(field, f"image {image_id} is {ref.disk_format}, not {disk_format}")
        return ref

    def upload(self, fields: Mapping[str, Any], data: Iterable[bytes]) -> Image:
        """Store an image from its declared fields and its bytes; ApiError (and nothing kept) on any problem.

        ``data`` raising (the client went away) also leaves nothing behind.
        """
        declared = self.validate_fields(fields)
        image_id = str(uuid.uuid4())
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".upload-{image_id}-")
        tmp = Path(tmp_name)
        try:
            size, digest = self._receive(fd, data)
            info = self._check(tmp, declared, size, digest)
            image = Image(
                id=image_id,
                name=declared["name"],
                project_id=declared["project_id"],
                disk_format=declared["disk_format"],
                container_format=declared["container_format"],
                size=size,
                virtual_size=info.virtual_size if info is not None else size,
                sha256=digest,
                status="active",
                min_disk=declared["min_disk"],
                min_ram=declared["min_ram"],
                properties=declared["properties"],
            )
            os.chmod(tmp, 0o640)
            target = self.directory / image_id
            os.rename(tmp, target)
            try:
                with self.core.lock:
                    # What it refers to may have been deleted while the bytes arrived.
                    props = dict(image.properties)
                    for key, kind in ((KERNEL_ID, "aki"), (RAMDISK_ID, "ari")):
                        if props.get(key):
                            self._referenced(f"image.properties[{key!r}]", props[key], kind)
                    self.core.commit([image])
            except BaseException:
                target.unlink(missing_ok=True)
                raise
        finally:
            tmp.unlink(missing_ok=True)
        log.info(
            "image uploaded",
            image_id=image_id,
            name=image.name,
            disk_format=image.disk_format,
            size=size,
            virtual_size=image.virtual_size,
            sha256=digest,
        )
        return self.get(image_id)

    def _receive(self, fd: int, data: Iterable[bytes]) -> tuple[int, str]:
        limit = self.core.settings.max_image_bytes
        h = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as f:
            for chunk in data:
                size += len(chunk)
                if size > limit:
                    raise invalid("image.size", f"the upload exceeds the limit of {limit} bytes")
                h.update(chunk)
                f.write(chunk)
        return size, h.hexdigest()

    @staticmethod
    def _check(path: Path, declared: Mapping[str, Any], size: int, digest: str) -> qemu_img.DiskInfo | None:
        want = declared["size"]
        if want and size != want:
            what = "truncated upload" if size < want else "more bytes than declared"
            raise invalid("image.size", f"{want} bytes declared, {size} received ({what})")
        if declared["sha256"] and digest != declared["sha256"]:
            raise invalid("image.sha256", f"the data's SHA-256 is {digest}, not the {declared['sha256']} declared")
        if size == 0:
            raise invalid("image.size", "the upload carried no data")
        fmt = declared["disk_format"]
        try:
            info = qemu_img.info(path)  # probed, not told: what would qemu make of these bytes?
        except qemu_img.QemuImgError as exc:
            raise invalid("image.disk_format", f"qemu-img cannot read the data as a disk image ({exc})") from exc
        expected = "raw" if fmt in ("aki", "ari") else fmt
        if info.format != expected:
            raise invalid("image.disk_format", f"declared {fmt}, but the data is a {info.format} image")
        if info.backing_file:
            raise invalid("image.disk_format", f"a {info.format} image with a backing file is refused")
        if info.data_file:
            raise invalid("image.disk_format", "a qcow2 image with an external data file is refused")
        if info.encrypted:
            raise invalid("image.disk_format", "encrypted images are not supported")
        return info if fmt in BOOTABLE_FORMATS else None

    # ------------------------------------------------------------ delete

    def delete(self, image_id: str) -> int:
        with self.core.lock:
            image = self.get(image_id)
            users = self._users(image_id)
            if users:
                raise failed_precondition(f"image {image_id} is in use by {users[0]}")
            revision = self.core.commit(deletes=[("image", image_id)])
        self.path(image).unlink(missing_ok=True)
        log.info("image deleted", image_id=image_id, revision=revision)
        return revision

    def _users(self, image_id: str) -> list[str]:
        users = [
            f"instance {i.id}"
            for i in self.store.list("instance")
            if isinstance(i, Instance) and i.image_id == image_id
        ]
        for other in self.store.list("image"):
            assert isinstance(other, Image)
            if image_id in (other.prop(KERNEL_ID), other.prop(RAMDISK_ID)):
                users.append(f"image {other.id} (its kernel or ramdisk)")
        users += [
            f"volume {vol.id}"
            for vol in self.store.list("volume")
            if isinstance(vol, Volume) and vol.status == "creating" and vol.image_id == image_id
        ]
        return users


def _read_chunks(f: Any) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK):
            yield chunk
