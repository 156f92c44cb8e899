"""Files every Loom process writes: atomically replaced, named safely after object ids."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def safe_name(identifier: str) -> str:
    """A file name for an object id: the id itself when harmless, else a digest of it."""
    if _SAFE.fullmatch(identifier) and ".." not in identifier:
        return identifier
    return "x-" + hashlib.sha256(identifier.encode()).hexdigest()[:32]


def write_atomically(
    target: Path, data: bytes, mode: int = 0o644, tmp_dir: Path | None = None, durable: bool = False
) -> None:
    """Write ``target`` through a temporary file and a rename, so no reader ever sees half a file.

    ``tmp_dir`` must be on the same file system as ``target`` (default: its
    directory). ``durable`` also fsyncs the data before the rename, for state
    that must survive a crash of the machine, not only of the process.
    """
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or target.parent, prefix="." + target.name[:32] + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)  # mkstemp creates 0600, whatever the umask
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
