#!/usr/bin/env bash
# Installs what Loom needs on a fresh Debian 12 machine of this kind: Debian
# packages, a venv that also sees Debian's Python packages (Mininet lives
# there), the Python dependencies and the generated protos. Idempotent.
# With --bench, also what the benchmarks' baselines need (OVN).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  openvswitch-switch dnsmasq-base mininet iproute2 ethtool iperf3 tcpdump
  busybox-static udhcpc isc-dhcp-client cloud-init curl iputils-ping procps
  psmisc kmod bridge-utils python3-venv python3-pip wrk
  # The real-guest tests: qemu (TCG) booting Debian's kernel with a busybox initramfs.
  qemu-system-x86 linux-image-amd64
  # Compute: libvirtd with its QEMU driver (not libvirt-daemon-system: no systemd units, no default
  # network with its own dnsmasq), libvirt-python for the agent, qemu-img, and mmdebstrap + e2fsprogs
  # to build the Debian guest image offline from the apt mirror.
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients python3-libvirt qemu-utils mmdebstrap e2fsprogs
)
# Only the benchmarks need these: OVN is the baseline bench/time_to_ping.py measures against.
BENCH_PACKAGES=(ovn-central ovn-host)
if [ "${1:-}" = "--bench" ]; then
  APT_PACKAGES+=("${BENCH_PACKAGES[@]}")
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # INITRD=No: the kernel is only for guests, which get our own initramfs; Debian's hook would
  # spend half a minute building a host initramfs nobody boots (and can fail in containers).
  INITRD=No apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# libvirtd's QEMU driver looks up its build-time user and group (libvirt-qemu, kvm) when it loads,
# before reading qemu.conf (where the lab says "root"); libvirt-daemon-system would create them.
getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null || useradd --system --no-create-home --home-dir /var/lib/libvirt \
  --shell /usr/sbin/nologin -g libvirt-qemu -G kvm libvirt-qemu

# Debian's Python, so Debian's Mininet (the real 2.3.0) is importable.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.loom-deps
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q -r requirements.txt
  .venv/bin/pip install -q --no-deps -e .
  touch "$stamp"
fi

# The real-guest tests' image (kernel + busybox initramfs), built once into /var/cache/loom/guests:
# fails here, clearly, if the kernel or its virtio modules are missing.
.venv/bin/python -m lab.mininet.guest_image build >/dev/null

# The compute tests' Debian guest (mmdebstrap from the apt mirror, cloud-init), built once into the same
# cache: a few minutes the first time (the only download), then reused until the mirror moves on.
.venv/bin/python -m lab.mininet.debian_image build >/dev/null
