"""Root disks in transit during a cold migration: the source host uploads, the target downloads.

The controller holds the disk (the instance's qcow2 overlay, not its base
image: the target has or fetches that by digest) in ``<image_dir>/migrations``
between the two. An upload is kept only if its size and SHA-256 match what the
source announced; the file goes once the target has its copy, or the instance
is gone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from compute.images import CHUNK
from controller.api.errors import invalid
from dataplane.common.files import safe_name
from dataplane.common.logs import get_logger

log = get_logger(__name__)


class DiskTransfers:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        for leftover in self.directory.glob(".upload-*"):
            leftover.unlink(missing_ok=True)

    def path(self, instance_id: str, migration_id: str) -> Path:
        return self.directory / f"{safe_name(instance_id)}.{safe_name(migration_id)}.qcow2"

    def has(self, instance_id: str, migration_id: str) -> bool:
        return self.path(instance_id, migration_id).exists()

    def receive(self, instance_id: str, migration_id: str, size: int, sha256: str, data: Iterable[bytes]) -> int:
        """Store an upload; ApiError (nothing kept) if it is not the ``size`` bytes with digest ``sha256``."""
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            got = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in data:
                    got += len(chunk)
                    if got > size:
                        raise invalid("size", f"more than the {size} bytes announced")
                    h.update(chunk)
                    f.write(chunk)
            if got != size:
                raise invalid("size", f"{size} bytes announced, {got} received (truncated upload)")
            if h.hexdigest() != sha256:
                raise invalid("sha256", f"the data's SHA-256 is {h.hexdigest()}, not {sha256}")
            target = self.path(instance_id, migration_id)
            target.with_suffix(".sha256").write_text(f"{size} {sha256}\n")
            os.rename(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("migration disk received", instance_id=instance_id, migration_id=migration_id, size=size)
        return got

    def digest(self, instance_id: str, migration_id: str) -> tuple[int, str]:
        """(size, sha256) of a received disk, as its upload announced and proved them."""
        text = self.path(instance_id, migration_id).with_suffix(".sha256").read_text().split()
        return int(text[0]), text[1]

    def chunks(self, instance_id: str, migration_id: str) -> Iterator[bytes]:
        f = open(self.path(instance_id, migration_id), "rb")  # noqa: SIM115 - closed by the generator
        return _read(f)

    def discard(self, instance_id: str, migration_id: str = "") -> None:
        """The transfer of one migration, or every one of the instance's (it was deleted)."""
        if migration_id:
            paths = [self.path(instance_id, migration_id)]
        else:
            paths = list(self.directory.glob(f"{safe_name(instance_id)}.*.qcow2"))
        for path in paths:
            path.unlink(missing_ok=True)
            path.with_suffix(".sha256").unlink(missing_ok=True)


def _read(f: object) -> Iterator[bytes]:
    with f:  # type: ignore[attr-defined]
        while chunk := f.read(CHUNK):  # type: ignore[attr-defined]
            yield chunk
