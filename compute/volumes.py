"""Volumes (Cinder's): a backend interface, the file backend, and the VolumeService's logic.

A backend creates and deletes the volume's storage and says how a hypervisor
reaches it (a :class:`Connection`: ``file`` and a path; ``rbd`` / ``iscsi``
with their pool/image or target and options). The hypervisors' agents
attach what the connection describes; they never call the backend. Only the
file backend exists: sparse files on a directory every hypervisor mounts at
the same path (NFS in production, the local disk in the lab). A network block
backend implements the same three methods and returns its own connection
type; the agent's domain XML already renders ``rbd`` and ``iscsi`` disks.

Statuses: available -> attaching (API) -> in-use (the host attached it) ->
detaching (API, or its instance was deleted) -> available (the host
detached it, or no longer runs the instance). A failed attach returns the
volume to available, a failed detach to in-use, with ``fault`` saying why.
A volume's data never depends on an instance: it outlives detach, deletion
of the instance, and re-attachment on another host.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from compute.core import GIB, ComputeCore
from compute.images import BOOTABLE_FORMATS, ImageApi
from controller.api import validation as v
from controller.api.errors import failed_precondition, invalid, not_found
from controller.api.paging import Page, paginate
from controller.model import Image, Instance, Volume
from dataplane.common import qemu_img
from dataplane.common.logs import get_logger

log = get_logger(__name__)

MAX_VOLUME_GB = 16 * 1024
DEVICES = tuple(f"vd{c}" for c in "bcdefghijklmnopqrstuvwxyz")  # vda is the root disk

AVAILABLE = "available"
ATTACHING = "attaching"
IN_USE = "in-use"
DETACHING = "detaching"
CREATING = "creating"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class Connection:
    """How a hypervisor reaches a volume (Cinder's connection_info)."""

    driver: str  # "file", "rbd", "iscsi"
    path: str  # file: the path; rbd: pool/image; iscsi: the target IQN
    options: dict[str, str] = field(default_factory=dict)  # rbd: monitors; iscsi: portal, lun


class VolumeBackend(Protocol):
    """Where volumes live. ``location`` is the backend's own name for a volume, stored with it."""

    name: str

    def create(self, volume_id: str, size: int) -> str:
        """A new, zeroed volume of ``size`` bytes; returns its location."""
        ...

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size: int) -> str:
        """A new volume holding the image's data (then zeroes up to ``size``); returns its location."""
        ...

    def delete(self, location: str) -> None: ...

    def connection(self, location: str) -> Connection: ...


class FileBackend:
    """Sparse raw files in one directory that every hypervisor mounts at the same path."""

    name = "file"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # The agents open the files as root; nobody else needs to read tenants' data.
        os.chmod(self.directory, 0o700)

    def _path(self, volume_id: str) -> Path:
        return self.directory / f"volume-{volume_id}"

    def create(self, volume_id: str, size: int) -> str:
        path = self._path(volume_id)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.ftruncate(fd, size)  # sparse: no block is allocated until written
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return str(path)

    def create_from_image(self, volume_id: str, image: Path, image_format: str, size: int) -> str:
        path = self._path(volume_id)
        tmp = path.with_name(f".{path.name}.new")
        try:
            qemu_img.convert(image, image_format, tmp, "raw")
            if os.path.getsize(tmp) < size:
                os.truncate(tmp, size)
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return str(path)

    def delete(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)

    def connection(self, location: str) -> Connection:
        return Connection("file", location)


class VolumeApi:
    def __init__(self, core: ComputeCore, images: ImageApi, backend: VolumeBackend) -> None:
        self.core = core
        self.store = core.store
        self.images = images
        self.backend = backend

    # ------------------------------------------------------------ reads

    def get(self, volume_id: str) -> Volume:
        return self.core.get("volume", volume_id)

    def list(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Volume]:
        revision, objs = self.store.snapshot("volume")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    def attached_to(self, instance_id: str) -> list[Volume]:
        """Volumes attached or being attached/detached to ``instance_id``, oldest first."""
        return [vol for vol in self.store.list("volume") if isinstance(vol, Volume) and vol.instance_id == instance_id]

    def attached_ids(self, instance_id: str) -> list[str]:
        return [vol.id for vol in self.attached_to(instance_id) if vol.status in (ATTACHING, IN_USE)]

    def connection(self, vol: Volume) -> Connection:
        return self.backend.connection(vol.location)

    # ------------------------------------------------------------ create / delete

    def create(self, fields: Mapping[str, Any]) -> Volume:
        name = v.text("volume.name", fields.get("name", ""))
        project_id = v.text("volume.project_id", fields.get("project_id", ""))
        size_gb = int(fields.get("size_gb", 0))
        image_id = fields.get("image_id", "")
        image: Image | None = None
        if image_id:
            image = self.core.get("image", image_id, "volume.image_id")
            assert image is not None
            if image.disk_format not in BOOTABLE_FORMATS:
                raise invalid("volume.image_id", f"image {image_id} is a {image.disk_format}, not a disk image")
            need = qemu_img.gib_ceil(image.virtual_size)
            if size_gb and size_gb < need:
                raise invalid("volume.size_gb", f"{size_gb} GiB is smaller than image {image_id} ({need} GiB)")
            size_gb = size_gb or need
        if not 1 <= size_gb <= MAX_VOLUME_GB:
            raise invalid("volume.size_gb", f"must be between 1 and {MAX_VOLUME_GB} (GiB)")
        volume_id = str(uuid.uuid4())
        vol = Volume(
            id=volume_id,
            name=name,
            project_id=project_id,
            size_gb=size_gb,
            image_id=image_id,
            backend=self.backend.name,
        )
        if image is None:
            location = self.backend.create(volume_id, size_gb * GIB)
            try:
                with self.core.lock:
                    self.core.commit([dataclasses.replace(vol, status=AVAILABLE, location=location)])
            except BaseException:
                self.backend.delete(location)
                raise
        else:
            # Copying an image takes a while: the volume shows "creating" meanwhile (and holds the image).
            with self.core.lock:
                self.core.commit([dataclasses.replace(vol, status=CREATING)])
            try:
                location = self.backend.create_from_image(
                    volume_id, self.images.path(image), image.disk_format, size_gb * GIB
                )
            except Exception as exc:
                log.error("volume creation failed", volume_id=volume_id, image_id=image_id, error=str(exc))
                with self.core.lock:
                    self.core.commit([dataclasses.replace(self.get(volume_id), status=ERROR, fault=str(exc))])
                return self.get(volume_id)
            with self.core.lock:
                self.core.commit([dataclasses.replace(self.get(volume_id), status=AVAILABLE, location=location)])
        log.info("volume created", volume_id=volume_id, size_gb=size_gb, image_id=image_id, backend=self.backend.name)
        return self.get(volume_id)

    def delete(self, volume_id: str) -> int:
        with self.core.lock:
            vol = self.get(volume_id)
            if vol.status not in (AVAILABLE, ERROR):
                raise failed_precondition(f"volume {volume_id} is {vol.status}; only an available volume can go")
            revision = self.core.commit(deletes=[("volume", volume_id)])
        if vol.location:
            self.backend.delete(vol.location)
        log.info("volume deleted", volume_id=volume_id, revision=revision)
        return revision

    # ------------------------------------------------------------ attach / detach

    def attach(self, volume_id: str, instance_id: str) -> Volume:
        with self.core.lock:
            vol = self.get(volume_id)
            inst = self.store.get("instance", instance_id) if instance_id else None
            if not isinstance(inst, Instance):
                raise not_found("instance", instance_id, "instance_id")
            if not inst.booted:
                raise failed_precondition(f"instance {instance_id} has no guest Loom runs (no image)")
            if vol.status != AVAILABLE:
                where = f" to instance {vol.instance_id}" if vol.instance_id else ""
                raise failed_precondition(f"volume {volume_id} is {vol.status}{where}; only an available one attaches")
            if inst.migration_id:
                raise failed_precondition(f"instance {instance_id} is migrating")
            used = {other.device for other in self.attached_to(instance_id)}
            device = next((d for d in DEVICES if d not in used), None)
            if device is None:
                raise failed_precondition(f"instance {instance_id} has no free disk device left")
            new = dataclasses.replace(vol, status=ATTACHING, instance_id=instance_id, device=device, fault="")
            self.core.commit([new])
        log.info("volume attaching", volume_id=volume_id, instance_id=instance_id, device=device, host=inst.host)
        return self.get(volume_id)

    def detach(self, volume_id: str) -> Volume:
        with self.core.lock:
            vol = self.get(volume_id)
            if vol.status not in (IN_USE, ATTACHING):
                raise failed_precondition(f"volume {volume_id} is {vol.status}, not attached")
            self.core.commit([dataclasses.replace(vol, status=DETACHING, fault="")])
        log.info("volume detaching", volume_id=volume_id, instance_id=vol.instance_id)
        return self.get(volume_id)
