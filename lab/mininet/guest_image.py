"""A tiny real guest for qemu: Debian's kernel plus a busybox initramfs, built offline and cached.

    image = guest_image.build()          # or: python -m lab.mininet.guest_image build
    qemu ... -kernel image.kernel -initrd image.initrd

The guest is what a cloud image does on its first boot, minus the disk:
load the virtio drivers of the same kernel package, bring eth0 up, ask DHCP
(MTU and classless routes, applied as a cloud image would), print the lease
on the serial console (``LOOM-LEASE ...``), then serve a shell on the serial
port for the host to drive (``lab/mininet/qemu_guest.py``).

Everything comes from Debian packages already on the machine
(``linux-image-amd64``, ``busybox-static``): no network at build or test
time. The image lives in ``<cache>/<hash>/`` where the hash covers every
input byte (kernel, modules, busybox, the init scripts below), so a new
kernel or a changed script builds a new image and an unchanged one is reused.
The archive itself is reproducible: fixed owners, times and order.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.common.logs import get_logger, setup_logging

log = get_logger(__name__)

# Bump when the layout of the archive changes in a way the inputs do not show.
FORMAT = 1

DEFAULT_CACHE = "/var/cache/loom/guests"
CACHE_ENV = "LOOM_GUEST_CACHE"

BUSYBOX = "/bin/busybox"  # busybox-static: no shared libraries to carry

# Debian's cloud/generic kernel builds virtio as modules; insmod order is dependency order
# (there is no modules.dep in the initramfs, and busybox insmod does not resolve dependencies).
VIRTIO_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    # The root disk and volumes (hot-plugged through ACPI PCI hotplug, which the kernel has built in).
    "virtio_blk",
    # The ACPI power button (libvirt's graceful shutdown) as an input event for busybox acpid.
    "evdev",
    "button",
)

# Markers the host looks for on the serial console.
LEASE_MARKER = "LOOM-LEASE"
READY_MARKER = "LOOM-READY"
NO_LEASE_MARKER = "LOOM-NO-LEASE"
HOSTNAME_MARKER = "LOOM-HOSTNAME"
USERDATA_START_MARKER = "LOOM-USERDATA-START"
USERDATA_EXIT_MARKER = "LOOM-USERDATA-EXIT"
POWEROFF_MARKER = "LOOM-POWEROFF"

INIT = f"""#!/bin/sh
# PID 1 of the Loom test guest: drivers, DHCP, then a shell on the serial port for the host.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for m in {" ".join(VIRTIO_MODULES)}; do
    insmod /lib/modules/$m.ko || echo "LOOM-ERROR insmod $m"
done
echo 1 > /proc/sys/kernel/printk
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do usleep 50000; i=$((i + 1)); done
ip link set eth0 up
# The power button (libvirt's graceful shutdown) powers the guest off, as acpid does on a cloud image.
acpid -c /etc/acpi -l /tmp/acpid.log
[ -e /sys/block/vda ] && echo "LOOM-DISK vda sectors=$(cat /sys/block/vda/size)"
# -O asks for the options a cloud image asks for; the script applies the lease and prints it.
udhcpc -i eth0 -s /etc/udhcpc.sh -O mtu -O staticroutes -t 10 -T 1 -A 1 -n -q || echo "{NO_LEASE_MARKER}"
# What cloud-init (or CirrOS's init) does, in the background: hostname and user data from the metadata service.
if [ -n "$(ip route show 169.254.169.254)" ]; then
    /etc/cloud-init.sh </dev/null >/dev/ttyS0 2>&1 &
fi
# The host drives the guest through the serial port: no echo, no line editing, no CR/LF games.
# The shell reads the port as its script, so it is not interactive (no prompt, no line editor),
# and commands get /dev/null as stdin: one that reads stdin cannot eat the commands after it.
stty -F /dev/ttyS0 raw -echo
echo "{READY_MARKER}"
while true; do
    sh /dev/ttyS0 </dev/null >/dev/ttyS0 2>&1
done
"""

UDHCPC_SCRIPT = f"""#!/bin/sh
# udhcpc's hook: apply the lease the way a cloud image does, and tell the host what it was.
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$mtu" ] && ip link set dev "$interface" mtu "$mtu"
    if [ -n "$staticroutes" ]; then
        # RFC 3442: with classless routes the router option is ignored.
        set -- $staticroutes
        while [ $# -ge 2 ]; do
            if [ "$2" = 0.0.0.0 ]; then ip route replace "$1" dev "$interface"
            else ip route replace "$1" via "$2" dev "$interface"; fi
            shift 2
        done
    elif [ -n "$router" ]; then
        ip route replace default via "${{router%% *}}" dev "$interface"
    fi
    echo "{LEASE_MARKER} ip=$ip mask=$mask router=$router mtu=$mtu staticroutes=\\"$staticroutes\\""
    ;;
esac
exit 0
"""


CLOUD_INIT = f"""#!/bin/sh
# The Loom test guest's cloud-init: the hostname and the user data (a script) from 169.254.169.254.
meta() {{
    printf 'GET %s HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\nConnection: close\\r\\n\\r\\n' "$1" \\
        | nc -w 10 169.254.169.254 80 | tr -d '\\r' > /tmp/meta.reply 2>/dev/null || return 1
    head -n 1 /tmp/meta.reply | grep -q ' 200 ' || return 1
    sed '1,/^$/d' /tmp/meta.reply
}}
name=$(meta /latest/meta-data/hostname) && hostname "${{name%%.*}}" && echo "{HOSTNAME_MARKER} $(hostname)"
if meta /openstack/latest/user_data > /tmp/user-data && [ "$(head -c 2 /tmp/user-data)" = "#!" ]; then
    chmod +x /tmp/user-data
    echo "{USERDATA_START_MARKER}"
    /tmp/user-data
    echo "{USERDATA_EXIT_MARKER} $?"
fi
"""

POWER_BUTTON = f"""#!/bin/sh
# busybox acpid runs this on the ACPI power button.
echo "{POWEROFF_MARKER}" > /dev/ttyS0
sync
poweroff -f
"""


class GuestImageError(RuntimeError):
    """The image cannot be built here (no kernel, no busybox, a module missing)."""


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A built guest: pass ``kernel`` and ``initrd`` to qemu's -kernel/-initrd."""

    key: str
    directory: Path
    kernel_version: str

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initramfs.cpio.gz"


@dataclass(frozen=True, slots=True)
class GuestInputs:
    """Everything that goes into an image; ``key()`` hashes all of it."""

    kernel: Path
    kernel_version: str
    modules: tuple[tuple[str, Path], ...]  # (name, .ko or .ko.xz file) in load order
    busybox: Path
    files: dict[str, str] = field(default_factory=dict)  # archive path -> text (scripts)

    def key(self) -> str:
        h = hashlib.sha256(f"loom-guest format {FORMAT}\n".encode())
        for name, path in (("kernel", self.kernel), ("busybox", self.busybox), *self.modules):
            h.update(f"{name}\n".encode())
            h.update(_sha256_file(path).encode())
        for path, text in sorted(self.files.items()):
            h.update(f"{path}\n{text}".encode())
        return h.hexdigest()[:16]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _kernel_version(vmlinuz: str) -> str:
    return os.path.basename(vmlinuz).removeprefix("vmlinuz-")


def _module_file(version: str, name: str) -> Path:
    found = sorted(
        glob.glob(f"/lib/modules/{version}/kernel/**/{name}.ko", recursive=True)
        + glob.glob(f"/lib/modules/{version}/kernel/**/{name}.ko.xz", recursive=True)
    )
    if not found:
        raise GuestImageError(f"module {name}.ko of kernel {version} not found under /lib/modules/{version}")
    return Path(found[0])


def _version_key(version: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", version)]


def find_inputs(kernel: str | None = None, busybox: str = BUSYBOX) -> GuestInputs:
    """The newest installed Debian kernel that has its modules (or ``kernel``), busybox-static, the scripts."""
    if kernel is None:
        candidates = [
            k for k in glob.glob("/boot/vmlinuz-*") if os.path.isdir(f"/lib/modules/{_kernel_version(k)}/kernel")
        ]
        if not candidates:
            raise GuestImageError("no /boot/vmlinuz-* with its /lib/modules: install linux-image-amd64")
        kernel = max(candidates, key=lambda k: _version_key(_kernel_version(k)))
    version = _kernel_version(kernel)
    if not os.path.exists(busybox):
        raise GuestImageError(f"{busybox} not found: install busybox-static")
    modules = tuple((name, _module_file(version, name)) for name in VIRTIO_MODULES)
    files = {
        "init": INIT,
        "etc/udhcpc.sh": UDHCPC_SCRIPT,
        "etc/cloud-init.sh": CLOUD_INIT,
        "etc/acpi/PWRF/00000080": POWER_BUTTON,
    }
    return GuestInputs(Path(kernel), version, modules, Path(busybox), files)


# ---------------------------------------------------------------- cpio (newc), reproducible


class _Cpio:
    """Writes a SVR4 "newc" archive, the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        header = "070701" + "".join(
            f"{v:08x}"
            for v in (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(encoded), 0)  # uid, gid, mtime 0
        )
        self.ino += 1
        self.out.write(header.encode() + encoded)
        self.out.write(b"\0" * (-(110 + len(encoded)) % 4))
        self.out.write(data)
        self.out.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.out.getvalue()


def _busybox_applets(busybox: Path) -> list[str]:
    import subprocess

    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a for a in out.split() if a and "/" not in a} - {"busybox"})


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return lzma.decompress(data) if path.suffix == ".xz" else data


def initramfs(inputs: GuestInputs) -> bytes:
    """The gzip-compressed initramfs for ``inputs``; identical bytes for identical inputs."""
    cpio = _Cpio()
    dirs = {"bin", "dev", "etc", "lib", "lib/modules", "proc", "run", "sys", "tmp"}
    for path in inputs.files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    for d in sorted(dirs):
        cpio.directory(d)
    cpio.file("bin/busybox", inputs.busybox.read_bytes(), 0o755)
    for applet in _busybox_applets(inputs.busybox):
        cpio.symlink(f"bin/{applet}", "busybox")
    for name, path in inputs.modules:
        cpio.file(f"lib/modules/{name}.ko", _module_bytes(path))
    for path, text in sorted(inputs.files.items()):
        cpio.file(path, text.encode(), 0o755)
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(cpio.finish())
    return buf.getvalue()


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def build(cache: str | os.PathLike[str] | None = None, kernel: str | None = None, force: bool = False) -> GuestImage:
    """The image for the installed kernel and busybox: from the cache, or built into it (atomically)."""
    inputs = find_inputs(kernel)
    key = inputs.key()
    root = Path(cache) if cache is not None else cache_root()
    target = root / key
    image = GuestImage(key, target, inputs.kernel_version)
    if not force and (target / "manifest.json").exists():
        log.debug("guest image cached", key=key, directory=str(target))
        return image
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        shutil.copyfile(inputs.kernel, tmp / "vmlinuz")
        (tmp / "initramfs.cpio.gz").write_bytes(initramfs(inputs))
        manifest = {
            "key": key,
            "format": FORMAT,
            "kernel": str(inputs.kernel),
            "kernel_version": inputs.kernel_version,
            "busybox": str(inputs.busybox),
            "modules": [str(p) for _, p in inputs.modules],
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        if force and target.exists():
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "manifest.json").exists():  # not a concurrent builder that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("guest image built", key=key, directory=str(target), kernel=inputs.kernel_version)
    return image


def _paths(images: Iterable[GuestImage]) -> str:
    return "\n".join(f"{i.kernel}\n{i.initrd}" for i in images)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mininet.guest_image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the guest (or reuse the cached one) and print kernel and initrd paths")
    b.add_argument("--cache", help=f"cache directory (default ${CACHE_ENV} or {DEFAULT_CACHE})")
    b.add_argument("--kernel", help="a /boot/vmlinuz-* (default: the newest with its modules)")
    b.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    setup_logging("guest-image")
    try:
        image = build(args.cache, args.kernel, args.force)
    except GuestImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(_paths([image]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
