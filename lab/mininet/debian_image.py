"""A real Debian guest with cloud-init, built offline with mmdebstrap from the apt mirror, and cached.

    image = debian_image.build()        # or: python -m lab.mininet.debian_image build
    image.disk, image.kernel, image.initrd

What a cloud image is, minus the bootloader (installing one needs a partitioned
loop device, which this container cannot give: no partition nodes without udev;
Loom boots AMI-style images directly, as Nova does):

- a Debian 12 root file system from ``mmdebstrap`` (the mirror and suite apt
  already uses): systemd, the cloud kernel and its initramfs, cloud-init,
  ifupdown + ISC dhclient (what cloud-init's network rendering drives on
  Debian), iproute2, ping;
- cloud-init reads the OpenStack datasource only (Loom's domains say
  ``OpenStack Compute`` in SMBIOS, as Nova's do, and serve the OpenStack
  metadata at 169.254.169.254), and runs the modules a test needs: hostname,
  users and SSH keys, runcmd, user scripts;
- timers and services a short-lived guest does not need are masked, which
  saves tens of seconds of boot under TCG;
- the root file system made without mounting anything (``mke2fs -d``, fixed
  UUID and hash seed, every file time and the file system's own set to one
  epoch, ctimes through ``debugfs``), converted to qcow2: two builds from the
  same packages are byte-identical; the kernel and initrd are
  uploaded as the image's ``aki`` / ``ari`` and the command line names
  ``root=/dev/vda``.

The cache key covers the build script, the package list and the mirror's
release dates as apt last saw them, so a rebuild happens when the mirror
moves on, not at every test run. ``make bootstrap`` builds it (a few minutes,
the only step that downloads packages); tests only read the cache.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dataplane.common import qemu_img
from dataplane.common.logs import get_logger, setup_logging
from lab.mininet.guest_image import cache_root

log = get_logger(__name__)

FORMAT = 3
SUITE = "bookworm"
ROOT_SIZE = 2 << 30  # the ext4 root file system, virtual
FIXED_UUID = "5f0c5e1e-1d0a-4f1e-9c35-100000000001"
HASH_SEED = "5f0c5e1e-1d0a-4f1e-9c35-100000000002"
EPOCH = 1700000000  # SOURCE_DATE_EPOCH: every file time in the image
CMDLINE = "root=/dev/vda rw rootfstype=ext4 console=ttyS0 quiet"
USERDATA_MARKER = "LOOM-USERDATA"  # what the tests' user data prints

PACKAGES = (
    "systemd-sysv",
    "udev",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "cloud-init",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "iputils-ping",
    "netbase",
    "procps",
)

CLOUD_CFG = """\
# Loom's test image: the OpenStack datasource (SMBIOS says "OpenStack Compute"), few modules.
datasource_list: [ OpenStack ]
datasource:
  OpenStack:
    max_wait: 60
    timeout: 5
    retries: 3
cloud_init_modules:
  - seed_random
  - bootcmd
  - write-files
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - runcmd
cloud_final_modules:
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - final-message
"""

FSTAB = "/dev/vda / ext4 rw,errors=remount-ro 0 1\n"

# Units a guest that lives for minutes does not need; masking them shortens a TCG boot a lot.
MASKED = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
    "dpkg-db-backup.timer",
    "systemd-tmpfiles-clean.timer",
    "logrotate.timer",
    "systemd-journal-flush.service",
)

HOOK = """set -e
root="$1"
mkdir -p "$root/etc/cloud/cloud.cfg.d"
printf '%s' "$LOOM_CLOUD_CFG" > "$root/etc/cloud/cloud.cfg.d/90-loom.cfg"
printf '%s' "$LOOM_FSTAB" > "$root/etc/fstab"
echo debian > "$root/etc/hostname"
for unit in $LOOM_MASKED; do ln -sf /dev/null "$root/etc/systemd/system/$unit"; done
rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
touch "$root/etc/machine-id"
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
"""


class DebianImageError(RuntimeError):
    """The image cannot be built here; the message says what is missing or what failed."""


@dataclass(frozen=True, slots=True)
class DebianImage:
    key: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def cmdline(self) -> str:
        return CMDLINE


def _mirror() -> str:
    """The Debian mirror apt uses (deb822 or one-line sources)."""
    for path in [*sorted(glob.glob("/etc/apt/sources.list.d/*.sources")), "/etc/apt/sources.list"]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        m = re.search(r"^URIs:\s*(\S*debian\S*)\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S*debian\S*)\s+bookworm\s", text, re.M
        )
        if m and "security" not in m.group(1):
            return m.group(1)
    return "http://deb.debian.org/debian"


def _mirror_dates() -> list[str]:
    dates = []
    for path in sorted(glob.glob("/var/lib/apt/lists/*debian*_dists_bookworm*Release")):
        m = re.search(r"^Date: (.*)$", Path(path).read_text(errors="replace"), re.M)
        if m:
            dates.append(f"{os.path.basename(path)} {m.group(1)}")
    return dates


def key() -> str:
    h = hashlib.sha256(f"loom-debian format {FORMAT}\n".encode())
    for part in (SUITE, _mirror(), *PACKAGES, CLOUD_CFG, FSTAB, *MASKED, HOOK, CMDLINE, *_mirror_dates()):
        h.update(part.encode() + b"\n")
    return h.hexdigest()[:16]


def cached(cache: str | os.PathLike[str] | None = None) -> DebianImage | None:
    """The cached image for the current inputs, or None (never builds)."""
    root = Path(cache) if cache is not None else cache_root()
    image = DebianImage(key(), root / f"debian-{key()}")
    return image if (image.directory / "manifest.json").exists() else None


def build(cache: str | os.PathLike[str] | None = None, force: bool = False) -> DebianImage:
    root = Path(cache) if cache is not None else cache_root()
    k = key()
    image = DebianImage(k, root / f"debian-{k}")
    if not force and (image.directory / "manifest.json").exists():
        return image
    for tool in ("mmdebstrap", "mke2fs", "qemu-img"):
        if shutil.which(tool) is None:
            raise DebianImageError(
                f"{tool} is not installed (make bootstrap installs mmdebstrap, e2fsprogs, qemu-utils)"
            )
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".debian-{k}.", dir=root))
    try:
        rootfs = work / "rootfs"
        env = {
            **os.environ,
            "SOURCE_DATE_EPOCH": str(EPOCH),
            "LOOM_CLOUD_CFG": CLOUD_CFG,
            "LOOM_FSTAB": FSTAB,
            "LOOM_MASKED": " ".join(MASKED),
            "DEBIAN_FRONTEND": "noninteractive",
        }
        argv = [
            "mmdebstrap",
            "--mode=root",
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            "--customize-hook=" + HOOK,
            SUITE,
            str(rootfs),
            _mirror(),
        ]
        log.info("building the Debian guest", key=k, mirror=_mirror())
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DebianImageError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        kernels = sorted(glob.glob(str(rootfs / "boot" / "vmlinuz-*")))
        initrds = sorted(glob.glob(str(rootfs / "boot" / "initrd.img-*")))
        if not kernels or not initrds:
            raise DebianImageError("the root file system has no /boot/vmlinuz-* or /boot/initrd.img-*")
        shutil.copyfile(kernels[-1], work / "vmlinuz")
        shutil.copyfile(initrds[-1], work / "initrd.img")
        # Every time in the file system is the epoch (mke2fs -d copies each file's times), so two builds from
        # the same packages give the same bytes.
        subprocess.run(["find", str(rootfs), "-exec", "touch", "-h", "-d", f"@{EPOCH}", "{}", "+"], check=True)
        raw = work / "root.raw"
        mke2fs_env = {**env, "E2FSPROGS_FAKE_TIME": str(EPOCH)}
        proc = subprocess.run(
            [
                "mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-U", FIXED_UUID,
                "-E", f"hash_seed={HASH_SEED},root_owner=0:0", "-d", str(rootfs), str(raw), str(ROOT_SIZE >> 20) + "M",
            ],
            env=mke2fs_env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise DebianImageError(f"mke2fs failed: {proc.stderr.strip()[-2000:]}")
        _set_ctimes(rootfs, raw, mke2fs_env)
        qemu_img.convert(raw, "raw", work / "disk.qcow2", "qcow2")
        raw.unlink()
        shutil.rmtree(rootfs)
        manifest = {
            "key": k,
            "format": FORMAT,
            "suite": SUITE,
            "mirror": _mirror(),
            "packages": list(PACKAGES),
            "kernel": os.path.basename(kernels[-1]),
            "cmdline": CMDLINE,
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.chmod(work, 0o755)
        if image.directory.exists():
            shutil.rmtree(image.directory)
        os.rename(work, image.directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("Debian guest built", key=k, directory=str(image.directory))
    return image


def _set_ctimes(rootfs: Path, raw: Path, env: dict[str, str]) -> None:
    """Every inode's ctime to the epoch: mke2fs -d copies each file's ctime, which no tool can set on the source.

    debugfs writes them in place (``set_inode_field``), under the same fake time, so its own superblock
    timestamps are the epoch too.
    """
    commands = [f"sif / ctime @{EPOCH}"]
    for directory, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            path = os.path.join(directory, name)[len(str(rootfs)) :]
            if '"' in path or "\n" in path:
                raise DebianImageError(f"cannot name {path!r} to debugfs")
            commands.append(f'sif "{path}" ctime @{EPOCH}')
    script = raw.with_name("ctimes.debugfs")
    script.write_text("\n".join(commands) + "\n")
    proc = subprocess.run(
        ["debugfs", "-w", "-f", str(script), str(raw)], env=env, capture_output=True, text=True, check=False
    )
    failed = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if proc.returncode != 0 or failed:
        raise DebianImageError(f"debugfs failed: {(failed or [proc.stderr])[-1]}")
    script.unlink()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mininet.debian_image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (or reuse the cached one) and print its directory")
    b.add_argument("--cache", help="cache directory (default $LOOM_GUEST_CACHE or /var/cache/loom/guests)")
    b.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    setup_logging("debian-image")
    try:
        image = build(args.cache, args.force)
    except DebianImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(image.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
