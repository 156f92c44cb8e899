"""``qemu-img``, as the controller (checking uploaded images) and the agents (building disks) run it.

Every call runs the real tool and turns a failure into :class:`QemuImgError`
whose message carries qemu-img's own. ``info``, the one call that reads
untrusted uploads, runs with a bounded address space and CPU time (as Nova's
does: a crafted image must not make it eat the host; ``convert`` needs more
than those limits allow for its threads).

``info`` never follows a backing chain: qemu-img opens only the named file
(``BDRV_O_NO_BACKING``) unless asked for ``--backing-chain``, so looking at a
hostile image does not read the host file its header points at.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QEMU_IMG = "qemu-img"
# The limits Nova's qemu-img calls run under (nova.virt.images.QEMU_IMG_LIMITS).
ADDRESS_SPACE_LIMIT = 1 << 30
CPU_SECONDS_LIMIT = 30
GIB = 1 << 30


class QemuImgError(RuntimeError):
    """qemu-img failed or said something we cannot use; the message says what and on which file."""


@dataclass(frozen=True, slots=True)
class DiskInfo:
    """What ``qemu-img info`` reports about one file (never its backing chain)."""

    path: str
    format: str
    virtual_size: int
    actual_size: int
    backing_file: str  # empty: none
    data_file: str  # qcow2 external data file; empty: none
    encrypted: bool

    @classmethod
    def from_json(cls, path: str, data: dict[str, Any]) -> DiskInfo:
        specific = (data.get("format-specific") or {}).get("data") or {}
        return cls(
            path=path,
            format=str(data.get("format", "")),
            virtual_size=int(data.get("virtual-size", 0)),
            actual_size=int(data.get("actual-size", 0)),
            backing_file=str(data.get("full-backing-filename") or data.get("backing-filename") or ""),
            data_file=str(specific.get("data-file") or ""),
            encrypted=bool(data.get("encrypted", False)),
        )


def _run(argv: list[str], what: str, timeout: float = 120.0, limited: bool = False) -> str:
    cmd = [QEMU_IMG, *argv]
    if limited:
        cmd = ["prlimit", f"--as={ADDRESS_SPACE_LIMIT}", f"--cpu={CPU_SECONDS_LIMIT}", "--", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise QemuImgError(f"{what}: {exc.filename} is not installed (Debian package qemu-utils)") from exc
    except subprocess.TimeoutExpired as exc:
        raise QemuImgError(f"{what}: qemu-img took longer than {timeout:.0f} s") from exc
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise QemuImgError(f"{what}: {detail[-1] if detail else f'qemu-img exited {proc.returncode}'}")
    return proc.stdout


def info(path: str | Path, fmt: str | None = None) -> DiskInfo:
    """``qemu-img info`` of ``path``; ``fmt`` None lets qemu-img probe the format (to compare with a claim)."""
    argv = ["info", "--output=json", "-U"]
    if fmt:
        argv += ["-f", fmt]
    out = _run([*argv, str(path)], f"qemu-img info {path}", limited=True)
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        raise QemuImgError(f"qemu-img info {path}: unreadable output") from exc
    return DiskInfo.from_json(str(path), data)


def create_overlay(path: str | Path, base: str | Path, base_format: str, size: int | None = None) -> None:
    """A qcow2 at ``path`` backed by ``base`` (whose format is given, never probed), ``size`` bytes or the base's."""
    argv = ["create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base), str(path)]
    if size:
        argv.append(str(size))
    _run(argv, f"qemu-img create {path}")


def create(path: str | Path, fmt: str, size: int) -> None:
    _run(["create", "-q", "-f", fmt, str(path), str(size)], f"qemu-img create {path}")


def rebase_unsafe(path: str | Path, base: str | Path, base_format: str) -> None:
    """Point the overlay at ``path`` to ``base`` without touching its data (the base has the same content)."""
    _run(["rebase", "-q", "-u", "-f", "qcow2", "-F", base_format, "-b", str(base), str(path)], f"rebase {path}")


def convert(src: str | Path, src_format: str, dst: str | Path, dst_format: str, timeout: float = 600.0) -> None:
    """Copy ``src`` into a new ``dst`` of another format (sparse where the source has holes)."""
    _run(
        ["convert", "-q", "-f", src_format, "-O", dst_format, str(src), str(dst)],
        f"qemu-img convert {src} -> {dst}",
        timeout=timeout,
    )


def resize(path: str | Path, fmt: str, size: int) -> None:
    _run(["resize", "-q", "-f", fmt, str(path), str(size)], f"qemu-img resize {path}")


def gib_ceil(size: int) -> int:
    """Bytes to whole GiB, rounded up (a flavor's disk is counted in GiB)."""
    return -(-size // GIB)
