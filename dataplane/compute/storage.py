"""A hypervisor's disks: the image cache, instance root disks, and their transfer in a cold migration.

**Image cache** (``<cache>/<sha256>``): an image is downloaded from the
controller's ImageService once, hashed while it arrives, and renamed into
place only if its SHA-256 and size are what the spec says. The file name
*is* the digest, so a cached file is a verified one, and instances of every
image with the same bytes share it. Concurrent requests for one image wait
for the first download.

**Root disks** (``<instances>/<id>/disk``): a qcow2 overlay whose backing
file is the cached image (its format given, never probed), grown to the
flavor's disk size.

**Migration**: the source uploads the overlay alone (the target has or
fetches the base by digest); the target checks what it downloaded (size,
digest, a qcow2 with no data file), points it at its own cached base
(``qemu-img rebase -u``: only the header changes) and renames it into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc

from dataplane.common import qemu_img
from dataplane.common.logs import get_logger
from protos.loom.v1 import hypervisor_pb2, hypervisor_pb2_grpc, image_pb2_grpc, network_pb2

log = get_logger(__name__)

CHUNK = 1 << 20
DOWNLOAD_TIMEOUT = 600.0


class StorageError(RuntimeError):
    """A disk or image could not be made ready; the message says which and why."""


def _sha256_file(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


class ImageCache:
    def __init__(self, directory: Path, channel: grpc.Channel) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stub = image_pb2_grpc.ImageServiceStub(channel)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        for leftover in self.directory.glob(".fetch-*"):
            leftover.unlink(missing_ok=True)

    def path(self, ref: hypervisor_pb2.ImageRef) -> Path:
        if len(ref.sha256) != 64 or not all(c in "0123456789abcdef" for c in ref.sha256):
            raise StorageError(f"image {ref.image_id}: {ref.sha256!r} is not a SHA-256 digest")
        return self.directory / ref.sha256

    def ready(self, ref: hypervisor_pb2.ImageRef) -> bool:
        try:
            return self.path(ref).stat().st_size == ref.size
        except (OSError, StorageError):
            return False

    def fetch(self, ref: hypervisor_pb2.ImageRef) -> Path:
        """The cached image, downloaded and verified first if it is not cached yet."""
        target = self.path(ref)
        with self._locks_lock:
            lock = self._locks.setdefault(ref.sha256, threading.Lock())
        with lock:
            if self.ready(ref):
                return target
            fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=f".fetch-{ref.sha256[:16]}-")
            tmp = Path(tmp_name)
            try:
                h = hashlib.sha256()
                size = 0
                with os.fdopen(fd, "wb") as f:
                    try:
                        for chunk in self.stub.DownloadImage(
                            network_pb2.GetRequest(id=ref.image_id), timeout=DOWNLOAD_TIMEOUT
                        ):
                            h.update(chunk.data)
                            size += len(chunk.data)
                            f.write(chunk.data)
                    except grpc.RpcError as exc:
                        raise StorageError(f"image {ref.image_id}: download failed: {exc.details()}") from exc
                if size != ref.size or h.hexdigest() != ref.sha256:
                    raise StorageError(
                        f"image {ref.image_id}: downloaded {size} bytes with SHA-256 {h.hexdigest()}, "
                        f"expected {ref.size} bytes with {ref.sha256}"
                    )
                os.chmod(tmp, 0o644)
                os.rename(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        log.info("image cached", image_id=ref.image_id, sha256=ref.sha256, size=ref.size)
        return target


def base_format(ref: hypervisor_pb2.ImageRef) -> str:
    return "qcow2" if ref.disk_format == "qcow2" else "raw"


def build_root_disk(disk: Path, base: Path, ref: hypervisor_pb2.ImageRef, size: int) -> None:
    """A qcow2 overlay of ``base`` at ``disk`` (made beside it and renamed: never half a disk)."""
    disk.parent.mkdir(parents=True, exist_ok=True)
    tmp = disk.with_name(".disk.new")
    tmp.unlink(missing_ok=True)
    try:
        qemu_img.create_overlay(tmp, base, base_format(ref), size or None)
        os.rename(tmp, disk)
    except qemu_img.QemuImgError as exc:
        raise StorageError(str(exc)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def remove_instance_dir(directory: Path) -> bool:
    existed = directory.exists()
    shutil.rmtree(directory, ignore_errors=True)
    return existed


class DiskTransfer:
    """The instance side of HypervisorService.UploadInstanceDisk / DownloadInstanceDisk."""

    def __init__(self, host: str, channel: grpc.Channel) -> None:
        self.host = host
        self.stub = hypervisor_pb2_grpc.HypervisorServiceStub(channel)

    def export(self, instance_id: str, migration_id: str, disk: Path) -> None:
        size, digest = _sha256_file(disk)

        def messages() -> Iterator[hypervisor_pb2.DiskChunk]:
            yield hypervisor_pb2.DiskChunk(
                host=self.host, instance_id=instance_id, migration_id=migration_id, size=size, sha256=digest
            )
            with open(disk, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield hypervisor_pb2.DiskChunk(data=chunk)

        try:
            self.stub.UploadInstanceDisk(messages(), timeout=DOWNLOAD_TIMEOUT)
        except grpc.RpcError as exc:
            raise StorageError(f"uploading the root disk failed: {exc.details()}") from exc
        log.info("root disk exported", instance_id=instance_id, migration_id=migration_id, size=size)

    def import_(
        self, instance_id: str, migration_id: str, disk: Path, base: Path, ref: hypervisor_pb2.ImageRef
    ) -> None:
        disk.parent.mkdir(parents=True, exist_ok=True)
        tmp = disk.with_name(".disk.import")
        request = hypervisor_pb2.DownloadInstanceDiskRequest(
            host=self.host, instance_id=instance_id, migration_id=migration_id
        )
        try:
            stream = self.stub.DownloadInstanceDisk(request, timeout=DOWNLOAD_TIMEOUT)
            header = next(stream)
            h = hashlib.sha256()
            size = 0
            with open(tmp, "wb") as f:
                for chunk in stream:
                    h.update(chunk.data)
                    size += len(chunk.data)
                    f.write(chunk.data)
            if size != header.size or h.hexdigest() != header.sha256:
                raise StorageError(
                    f"downloaded root disk: {size} bytes with SHA-256 {h.hexdigest()}, "
                    f"expected {header.size} with {header.sha256}"
                )
            info = qemu_img.info(tmp, "qcow2")
            if info.data_file:
                raise StorageError("the downloaded root disk has an external data file")
            # Its backing file names the source's cache; ours holds the same bytes under the same digest.
            qemu_img.rebase_unsafe(tmp, base, base_format(ref))
            os.rename(tmp, disk)
        except grpc.RpcError as exc:
            raise StorageError(f"downloading the root disk failed: {exc.details()}") from exc
        except StopIteration as exc:
            raise StorageError("downloading the root disk failed: empty stream") from exc
        except qemu_img.QemuImgError as exc:
            raise StorageError(str(exc)) from exc
        finally:
            tmp.unlink(missing_ok=True)
        log.info("root disk imported", instance_id=instance_id, migration_id=migration_id, size=size)
