"""A real qemu guest on a Loom tap: DHCP, TCP both ways across hypervisors, and metadata.

The guest is Debian's kernel with a busybox initramfs (lab/mininet/guest_image.py)
under TCG, its NIC virtio-net on a tap opened with qemu's default options (which
are libvirt's too): vnet_hdr on, so the guest leaves TCP checksums and
segmentation to the host. The tap is plugged by the code ``loomctl vif plug
--kind tap`` runs, on hypervisor 1; the peer is a VM namespace on hypervisor 2,
so every TCP segment crosses the VXLAN tunnel of the userspace datapath.

The control test plugs the same kind of guest with ``--direct`` (the tap itself
as the OVS port, what Loom did before): ping and DHCP work, TCP does not. That
is the bug the redirect through a veth (vif/tap.py) fixes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab.mininet import guest_image
from lab.mininet.guest_image import GuestImage, GuestImageError
from lab.mininet.loom import LoomLab
from lab.mininet.qemu_guest import QEMU, QemuGuest
from lab.mininet.transfer import guest_to_peer, make_guest_file, peer_to_guest
from protos.loom.v1 import resources_pb2
from tests.lab.scenario import Scenario

pytestmark = pytest.mark.lab

MIB = 1 << 20
HV = "hv1"  # the guest's hypervisor
PEER_HV = "hv2"
REPO = str(Path(__file__).resolve().parents[2])


@pytest.fixture(scope="session")
def image() -> GuestImage:
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed (make bootstrap installs qemu-system-x86)")
    try:
        return guest_image.build()
    except GuestImageError as exc:
        pytest.skip(f"no guest image: {exc} (make bootstrap installs linux-image-amd64 and busybox-static)")


def loomctl(loom: LoomLab, hv: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``loomctl`` run on the hypervisor, as an operator (or the compute module) would."""
    loomctl = str(Path(sys.executable).with_name("loomctl"))  # the installed command, as users run it
    return loom.lab.run(hv, [loomctl, "--server", loom.api_address, *argv], env={"PYTHONPATH": REPO})


@contextmanager
def plugged_tap(loom: LoomLab, port: resources_pb2.Port, *extra: str) -> Iterator[dict[str, object]]:
    """``loomctl vif plug --kind tap --port-id P`` (MAC, MTU, ofport from the controller); unplugged afterwards."""
    out = loomctl(loom, port.binding_host_id, "vif", "plug", "--kind", "tap", "--port-id", port.id, "--json", *extra)
    try:
        yield json.loads(out.stdout)
    finally:
        loomctl(loom, port.binding_host_id, "vif", "unplug", "--port-id", port.id)


@contextmanager
def booted(image: GuestImage, loom: LoomLab, port: resources_pb2.Port, tap: str, workdir: Path) -> Iterator[QemuGuest]:
    """The guest on ``tap`` with qemu's default tap options, run inside the hypervisor's namespace."""
    netns = loom.lab.hv(port.binding_host_id).netns
    with QemuGuest.start(image, netns=netns, tap=tap, mac=port.mac_address, workdir=workdir, name=port.name) as vm:
        yield vm


def guest_setup(scenario: Scenario, name: str) -> tuple[resources_pb2.Port, resources_pb2.Instance, str, str]:
    """A network, an instance's port on hv1 (not plugged yet) and a VM namespace on hv2: (port, instance, peer
    namespace, peer IP)."""
    net = scenario.network(name, "10.0.0.0/24")
    inst = scenario.instance(name, hostname=name)
    port = scenario.port(net, HV, name, device_id=inst.id)
    peer = scenario.vm(PEER_HV, net, f"{name}peer")
    assert peer.address is not None
    return port, inst, peer.netns, peer.address


def test_real_guest_gets_dhcp_tcp_both_ways_and_metadata(
    scenario: Scenario, loom: LoomLab, image: GuestImage, tmp_path: Path
) -> None:
    port, inst, peer_netns, peer_ip = guest_setup(scenario, "rguest")
    ip = port.fixed_ips[0].ip_address
    with plugged_tap(loom, port) as vif, booted(image, loom, port, str(vif["device"]), tmp_path) as vm:
        assert vif["ovs_port"] != vif["device"]  # the veth the kernel finishes the guest's work on
        loom.wait_port(port.id)

        # DHCP, as the guest's udhcpc applied it (printed on its serial console).
        lease = vm.wait_lease()
        assert (lease.ip, lease.mask, lease.mtu) == (ip, "24", "1450")
        assert lease.staticroutes == "169.254.169.254/32 10.0.0.2 0.0.0.0/0 10.0.0.1"
        assert f"LOOM-LEASE ip={ip} " in vm.console()
        assert vm.check("cat /sys/class/net/eth0/mtu").strip() == "1450"
        assert "169.254.169.254 via 10.0.0.2 dev eth0" in vm.check("ip route")
        # Full-size ICMP: 1422 bytes of payload fill the 1450-byte MTU.
        vm.check(f"ping -c 2 -W 3 -s 1422 {peer_ip}")

        # 4 MiB each way across the VXLAN tunnel, checked by SHA-256 on both ends.
        sent = guest_to_peer(vm, peer_netns, peer_ip, 4 * MIB, sent_sha256=make_guest_file(vm, 4 * MIB))
        assert sent.intact, f"guest->peer: {sent.received_bytes} of {sent.nbytes} bytes; {sent.detail}"
        got = peer_to_guest(vm, peer_netns, peer_ip, 4 * MIB)
        assert got.intact, f"peer->guest: {got.received_bytes} of {got.nbytes} bytes; {got.detail}"

        # The metadata service, through the proxy on hv1, knows this guest by its port.
        reply = vm.http_get("/openstack/latest/meta_data.json")
        assert reply.status == 200, reply.raw[-500:]
        meta = json.loads(reply.body)
        assert (meta["uuid"], meta["hostname"]) == (inst.id, "rguest")
        reply = vm.http_get("/latest/meta-data/instance-id")
        assert (reply.status, reply.body) == (200, inst.id)
        print(f"real guest TCP: guest->peer {sent.mbps:.0f} Mbit/s, peer->guest {got.mbps:.0f} Mbit/s")
    assert loomctl(loom, HV, "vif", "unplug", "--port-id", port.id).stdout.endswith("(nothing was plugged)\n")


def test_control_a_direct_tap_gets_ping_but_no_tcp(
    scenario: Scenario, loom: LoomLab, image: GuestImage, tmp_path: Path
) -> None:
    """Without the redirect the guest's TCP checksums stay unfinished: the test above would fail."""
    port, _, peer_netns, peer_ip = guest_setup(scenario, "dguest")
    with plugged_tap(loom, port, "--direct") as vif, booted(image, loom, port, str(vif["device"]), tmp_path) as vm:
        assert vif["ovs_port"] == vif["device"]
        lease = vm.wait_lease()  # DHCP works: udhcpc checksums its own packets
        assert lease.mtu == "1450"
        vm.check(f"ping -c 1 -W 3 -s 1422 {peer_ip}")
        sent = guest_to_peer(vm, peer_netns, peer_ip, 64 * 1024, timeout=10, connect_timeout=2)
        assert not sent.intact and sent.received_bytes == 0, "TCP worked on a direct tap: is the control still valid?"
        assert vm.http_get("/latest/meta-data/instance-id", connect_timeout=2).status == 0


def test_guest_image_is_cached_and_reproducible(image: GuestImage, tmp_path: Path) -> None:
    """Same inputs, same bytes: a rebuild elsewhere matches the cached image, which is reused."""
    again = guest_image.build(cache=tmp_path)
    assert again.key == image.key
    assert again.initrd.read_bytes() == image.initrd.read_bytes()
    assert guest_image.build(cache=tmp_path).directory == again.directory
    assert os.path.getsize(again.kernel) == os.path.getsize(image.kernel)
