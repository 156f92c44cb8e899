"""Real guests through the compute API: libvirt domains on lab hypervisors, images, volumes, restarts, migration.

The lab (``compute_lab``) runs two hypervisors, each with its own libvirtd in
its namespace; guests are qemu under TCG. The tiny guest (Debian's kernel and
a busybox initramfs, uploaded as an AMI-style image) boots in seconds and
serves a shell on its serial port, which tests use the way an operator uses
``virsh console``. The Debian guest (mmdebstrap, cloud-init) is used where
cloud-init is the point, because it boots in tens of seconds under TCG.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import grpc
import libvirt
import pytest

from lab.mininet import compute as c
from lab.mininet import debian_image
from lab.mininet.guest_image import HOSTNAME_MARKER, USERDATA_EXIT_MARKER
from lab.mininet.loom import LoomLab
from lab.mininet.qemu_guest import SerialConsole
from protos.loom.v1 import compute_pb2, image_pb2, network_pb2, resources_pb2, volume_pb2
from tests.lab.compute_scenario import Cloud, image_dir_files

pytestmark = pytest.mark.lab

MIB = 1 << 20
PATTERN_OFFSET_MIB = 8  # where tests write on the root disk: past anything qemu-img put there


@pytest.fixture(scope="session")
def tiny(compute_lab: LoomLab) -> resources_pb2.Image:
    return c.tiny_image(compute_lab)


@pytest.fixture(scope="session")
def debian(compute_lab: LoomLab) -> resources_pb2.Image:
    built = debian_image.cached()
    if built is None:
        pytest.skip("no Debian guest image cached (make bootstrap builds it with mmdebstrap)")
    existing = c.find_image(compute_lab, "loom-debian")
    if existing is not None:
        return existing
    kernel = c.upload_image(compute_lab, built.kernel, "loom-debian-kernel", "aki")
    initrd = c.upload_image(compute_lab, built.initrd, "loom-debian-initrd", "ari")
    props = {"kernel_id": kernel.id, "ramdisk_id": initrd.id, "os_command_line": built.cmdline}
    return c.upload_image(compute_lab, built.disk, "loom-debian", "qcow2", props)


def ready_guest(cloud: Cloud, inst: resources_pb2.Instance, timeout: float = 120.0) -> SerialConsole:
    c.wait_instance(cloud.loom, inst.id, "ACTIVE", timeout=60)
    guest = cloud.console(inst)
    guest.wait_lease(timeout)
    return guest


def sha256_in(output: str) -> str:
    """The digest sha256sum printed (the guest's own console messages may be mixed into the output)."""
    m = re.search(r"\b([0-9a-f]{64})\b", output)
    assert m, output
    return m.group(1)


def write_pattern(guest: SerialConsole, device: str, mib: int, offset_mib: int = 0) -> str:
    """Random data onto the device (synced), and its SHA-256."""
    guest.check(f"dd if=/dev/urandom of=/tmp/pattern bs=1M count={mib} 2>/dev/null")
    guest.check(f"dd if=/tmp/pattern of={device} bs=1M seek={offset_mib} conv=fsync 2>/dev/null")
    return sha256_in(guest.check("sha256sum /tmp/pattern"))


def read_pattern(guest: SerialConsole, device: str, mib: int, offset_mib: int = 0) -> str:
    return sha256_in(guest.check(f"dd if={device} bs=1M skip={offset_mib} count={mib} 2>/dev/null | sha256sum"))


def wait_device(guest: SerialConsole, name: str, present: bool = True, timeout: float = 30.0) -> float:
    """Until the guest has (or no longer has) /sys/block/<name>; seconds it took."""
    t0 = time.monotonic()
    while True:
        status, _ = guest.run(f"test -e /sys/block/{name}")
        if (status == 0) == present:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{name} {'never appeared' if present else 'never went'} in the guest")
        time.sleep(0.1)


def qemu_pid(loom: LoomLab, host: str, instance_id: str) -> int:
    conn = libvirt.open(loom.libvirt[host].uri)
    try:
        dom = conn.lookupByUUIDString(instance_id)
        return int((loom.libvirt[host].root / "run" / "qemu" / f"{dom.name()}.pid").read_text())
    finally:
        conn.close()


def longest_gap(ping_output: str, sent: int) -> int:
    """The longest run of consecutive echo requests that got no reply."""
    answered = {int(n) for n in re.findall(r"seq=(\d+)", ping_output)}
    longest = run = 0
    for seq in range(sent):
        run = 0 if seq in answered else run + 1
        longest = max(longest, run)
    return longest


def received(ping_output: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) packets received", ping_output)
    assert m, ping_output
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- booting, through the API only


def test_two_instances_on_two_hypervisors_through_the_api_only(
    cloud: Cloud, tiny: resources_pb2.Image, debian: resources_pb2.Image
) -> None:
    """A tiny guest on hv1 and a Debian guest with cloud-init on hv2, seen only through the API.

    Their ports are made first, so each one's user data can ping the other's address.
    """
    net = cloud.network("boot", "10.31.0.0/24")
    p_tiny, p_deb = cloud.port(net, "tiny"), cloud.port(net, "deb")
    ip_tiny, ip_deb = p_tiny.fixed_ips[0].ip_address, p_deb.fixed_ips[0].ip_address
    tiny_ud = (
        "#!/bin/sh\n"
        f"i=0; while [ $i -lt 300 ] && ! ping -c 1 -W 1 {ip_deb} >/dev/null; do i=$((i + 1)); sleep 1; done\n"
        f"ping -c 3 -W 2 {ip_deb}\n"
    )
    deb_ud = (
        "#!/bin/sh\n"
        f'echo "LOOM-USERDATA hostname=$(hostname) $(ping -c 3 -W 2 {ip_tiny} | grep transmitted)" > /dev/ttyS0\n'
    )
    t0 = time.monotonic()
    deb = cloud.boot(
        "debvm", debian, host="hv2", ports=[p_deb.id], user_data=deb_ud.encode(),
        flavor=resources_pb2.Flavor(vcpus=1, ram_mb=512, disk_gb=3),
    )  # fmt: skip
    small = cloud.boot("tinyvm", tiny, host="hv1", ports=[p_tiny.id], user_data=tiny_ud.encode())
    for inst in (small, deb):
        c.wait_instance(cloud.loom, inst.id, "ACTIVE", timeout=60)
    # The tiny guest: its lease, hostname from metadata, and its user data pinging the Debian guest.
    out = c.wait_console(cloud.loom, small.id, f"{USERDATA_EXIT_MARKER} 0", timeout=400)
    assert f"LOOM-LEASE ip={ip_tiny} mask=24" in out and "mtu=1450" in out
    assert f"{HOSTNAME_MARKER} {small.hostname}" in out
    assert "3 packets transmitted, 3 packets received" in out
    # The Debian guest: cloud-init's network table shows the lease, the hostname is the metadata's,
    # and the user data ran and reached the tiny guest.
    out = c.wait_console(cloud.loom, deb.id, "LOOM-USERDATA", timeout=400)
    assert re.search(rf"ci-info: .*\|\s*{re.escape(ip_deb)}\s*\|", out), out[-3000:]
    m = re.search(r"LOOM-USERDATA hostname=(\S+) (.*)", out)
    assert m and m.group(1) == deb.hostname, out[-2000:]
    assert "3 packets transmitted, 3 received" in m.group(2), m.group(0)
    print(f"tiny + Debian booted, leased, pinged each other in {time.monotonic() - t0:.0f} s")


# ---------------------------------------------------------------- lifecycle


def test_stop_start_and_reboots_keep_the_disk_delete_leaves_nothing(cloud: Cloud, tiny: resources_pb2.Image) -> None:
    loom = cloud.loom
    net = cloud.network("life", "10.32.0.0/24")
    inst = cloud.boot("life", tiny, net, host="hv1")
    guest = ready_guest(cloud, inst)
    digest = write_pattern(guest, "/dev/vda", 1, PATTERN_OFFSET_MIB)

    stopped = c.action(loom, "StopInstance", inst.id)
    assert stopped.task_state == "powering-off"
    stopped = c.wait_instance(loom, inst.id, "SHUTOFF", timeout=60)
    assert (stopped.power_state, stopped.task_state) == ("shutdown", "")
    assert "LOOM-POWEROFF" in guest.console()  # a graceful stop: the guest's power button handler ran
    for step in ("start", "soft reboot", "hard reboot"):
        mark = guest.mark()
        guest.close()
        if step == "start":
            c.action(loom, "StartInstance", inst.id)
        else:
            rebooting = c.action(loom, "RebootInstance", inst.id, hard=step == "hard reboot")
            assert rebooting.status == ("HARD_REBOOT" if step == "hard reboot" else "REBOOT")
        c.wait_instance(loom, inst.id, "ACTIVE", timeout=60)
        guest.wait_ready(120, since=mark)  # a new boot
        assert read_pattern(guest, "/dev/vda", 1, PATTERN_OFFSET_MIB) == digest, f"disk changed after {step}"

    # A root disk that vanished behind Loom's back is reported, not replaced by a blank one.
    c.action(loom, "StopInstance", inst.id)
    c.wait_instance(loom, inst.id, "SHUTOFF", timeout=60)
    disk = c.instance_dir(loom, inst.host, inst.id) / "disk"
    disk.unlink()
    c.action(loom, "StartInstance", inst.id)
    failed = c.wait_instance(loom, inst.id, "ERROR", timeout=30)
    assert "root disk is missing" in failed.fault, failed.fault
    assert not disk.exists()

    host, ports = inst.host, list(c.get_instance(loom, inst.id).ports)
    c.delete_instance(loom, inst.id)
    left = cloud.wait_gone(host, inst.id, ports)
    assert left.empty(), left
    for pid in ports:
        with pytest.raises(grpc.RpcError) as exc:
            loom.get_port(pid)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_cold_migration_keeps_ports_addresses_and_disk(cloud: Cloud, tiny: resources_pb2.Image) -> None:
    loom = cloud.loom
    net = cloud.network("mig", "10.33.0.0/24")
    inst = cloud.boot("mig", tiny, net, host="hv1")
    guest = ready_guest(cloud, inst)
    lease = guest.wait_lease()
    digest = write_pattern(guest, "/dev/vda", 1, PATTERN_OFFSET_MIB)
    port_before = loom.get_port(inst.ports[0])
    c.action(loom, "StopInstance", inst.id)
    c.wait_instance(loom, inst.id, "SHUTOFF", timeout=60)
    moving = c.action(loom, "MigrateInstance", inst.id)  # the scheduler picks the other host
    assert (moving.status, moving.task_state) == ("MIGRATING", "migrating")
    moved = c.wait_instance(loom, inst.id, lambda i: i.status == "SHUTOFF" and i.host == "hv2", timeout=120)
    port = loom.get_port(inst.ports[0])
    assert port.binding_host_id == "hv2"
    assert (port.id, port.mac_address, list(port.fixed_ips)) == (
        port_before.id,
        port_before.mac_address,
        list(port_before.fixed_ips),
    )
    left = cloud.wait_gone("hv1", inst.id, [port.id])
    assert left.empty(), left
    c.action(loom, "StartInstance", inst.id)
    guest = cloud.console(moved)
    c.wait_instance(loom, inst.id, "ACTIVE", timeout=60)
    assert guest.wait_lease(120).ip == lease.ip
    assert read_pattern(guest, "/dev/vda", 1, PATTERN_OFFSET_MIB) == digest


# ---------------------------------------------------------------- volumes


def test_a_volume_moves_between_guests_on_two_hosts_with_its_data(cloud: Cloud, tiny: resources_pb2.Image) -> None:
    loom = cloud.loom
    net = cloud.network("vol", "10.34.0.0/24")
    a = cloud.boot("vola", tiny, net, host="hv1")
    b = cloud.boot("volb", tiny, net, host="hv2")
    ga, gb = ready_guest(cloud, a), ready_guest(cloud, b)
    vol = cloud.volume("data", size_gb=1)
    vols = c.volumes(loom)
    vols.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=a.id), timeout=10)
    attached = c.wait_volume(loom, vol.id, "in-use")
    assert (attached.instance_id, attached.device) == (a.id, "/dev/vdb")
    wait_device(ga, "vdb")
    digest = write_pattern(ga, "/dev/vdb", 4)

    vols.DetachVolume(volume_pb2.DetachVolumeRequest(volume_id=vol.id), timeout=10)
    c.wait_volume(loom, vol.id, "available")
    wait_device(ga, "vdb", present=False)
    vols.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=b.id), timeout=10)
    c.wait_volume(loom, vol.id, "in-use")
    wait_device(gb, "vdb")
    assert read_pattern(gb, "/dev/vdb", 4) == digest

    # Deleting the instance it is attached to frees the volume, data intact.
    c.delete_instance(loom, b.id)
    c.wait_volume(loom, vol.id, "available", timeout=60)
    vols.AttachVolume(volume_pb2.AttachVolumeRequest(volume_id=vol.id, instance_id=a.id), timeout=10)
    c.wait_volume(loom, vol.id, "in-use")
    wait_device(ga, "vdb")
    assert read_pattern(ga, "/dev/vdb", 4) == digest


# ---------------------------------------------------------------- bad input


def test_bad_input_is_refused_clearly_and_leaves_nothing(cloud: Cloud, tiny: resources_pb2.Image, tmp_path) -> None:
    loom = cloud.loom
    net = cloud.network("bad", "10.35.0.0/24")
    images, compute = c.images(loom), c.compute(loom)

    def counts() -> tuple[int, int, int, frozenset[str]]:
        return (
            len(images.ListImages(image_pb2.ListImagesRequest(), timeout=10).images),
            len(compute.ListInstances(compute_pb2.ListInstancesRequest(), timeout=10).instances),
            len(loom.network.ListPorts(network_pb2.ListPortsRequest(), timeout=10).ports),
            frozenset(image_dir_files(loom)),
        )

    def refused(code: grpc.StatusCode, fragment: str, call) -> None:  # type: ignore[no-untyped-def]
        before = counts()
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert exc.value.code() == code, exc.value.details()
        assert fragment in exc.value.details(), exc.value.details()
        assert counts() == before, "a refused request left something behind"

    evil = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/shadow", str(evil), "1M"])
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        "image.disk_format: a qcow2 image with a backing file is refused",
        lambda: c.upload_image(loom, evil, "evil", "qcow2"),
    )
    blob = tmp_path / "blob.raw"
    blob.write_bytes(b"\x01" * 2 * MIB)
    wrong = resources_pb2.Image(name="wrong", disk_format="raw", sha256="f" * 64)
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        "image.sha256",
        lambda: images.UploadImage(c.upload_requests(wrong, c.file_chunks(blob)), timeout=30),
    )
    cut = resources_pb2.Image(name="cut", disk_format="raw", size=2 * MIB)
    refused(
        grpc.StatusCode.INVALID_ARGUMENT,
        "image.size: 2097152 bytes declared, 1048576 received (truncated upload)",
        lambda: images.UploadImage(c.upload_requests(cut, c.file_chunks(blob, limit=MIB)), timeout=30),
    )
    big = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big), "3G"], check=True)
    big_image = c.upload_image(loom, big, "big", "qcow2")
    try:
        refused(
            grpc.StatusCode.INVALID_ARGUMENT,
            "instance.flavor.disk_gb: 1 GiB is too small for image",
            lambda: c.create_instance(loom, "small", big_image.id, [net.id]),
        )
    finally:
        images.DeleteImage(network_pb2.DeleteRequest(id=big_image.id), timeout=10)
    refused(
        grpc.StatusCode.NOT_FOUND,
        "instance.networks[0].network_id: network 'no-such-net' not found",
        lambda: c.create_instance(loom, "nonet", tiny.id, ["no-such-net"]),
    )
    refused(
        grpc.StatusCode.NOT_FOUND,
        "instance.host: hypervisor 'hv9' not found",
        lambda: c.create_instance(loom, "nohost", tiny.id, [net.id], host="hv9"),
    )


def test_libvirtd_down_on_the_chosen_host_is_error_with_the_reason_within_seconds(
    cloud: Cloud, tiny: resources_pb2.Image
) -> None:
    loom = cloud.loom
    net = cloud.network("down", "10.36.0.0/24")
    lv = loom.libvirt["hv2"]
    lv.kill()
    try:
        t0 = time.monotonic()
        inst = cloud.boot("down", tiny, net, host="hv2")
        failed = c.wait_instance(loom, inst.id, "ERROR", timeout=15)
        seconds = time.monotonic() - t0
        assert failed.fault.startswith("hypervisor unavailable: libvirtd at "), failed.fault
        assert seconds < 10, f"ERROR after {seconds:.1f} s"
        hvs = {h.host: h for h in c.compute(loom).ListHypervisors(compute_pb2.ListHypervisorsRequest()).hypervisors}
        assert not hvs["hv2"].hypervisor_up and "libvirtd" in hvs["hv2"].error
        # The scheduler does not pick a host whose libvirtd is down.
        assert cloud.boot("elsewhere", tiny, net).host == "hv1"
    finally:
        lv.start()
    # With libvirtd back, the host carries the instance out after all.
    c.wait_instance(loom, inst.id, "ACTIVE", timeout=60)


# ---------------------------------------------------------------- restarts


def test_guests_keep_running_when_agent_controller_or_libvirtd_restart(cloud: Cloud, tiny: resources_pb2.Image) -> None:
    loom = cloud.loom
    net = cloud.network("restart", "10.37.0.0/24")
    a = cloud.boot("ra", tiny, net, host="hv1")
    b = cloud.boot("rb", tiny, net, host="hv2")
    ga, gb = ready_guest(cloud, a), ready_guest(cloud, b)
    ip_b = gb.wait_lease().ip
    pids = {a.id: qemu_pid(loom, "hv1", a.id), b.id: qemu_pid(loom, "hv2", b.id)}

    def kill_agent() -> None:
        loom.stop_agent("hv1", signal.SIGKILL)
        time.sleep(2)
        loom.start_agent("hv1")
        loom.wait_agents()

    def kill_controller() -> None:
        loom.stop_controller(signal.SIGKILL)
        time.sleep(2)
        loom.start_controller()
        loom.wait_agents()
        # What the new controller holds in memory only, the agents send again: the consoles.
        c.wait_console(loom, a.id, "LOOM-READY", timeout=15)

    def kill_libvirtd() -> None:
        loom.libvirt["hv1"].kill()
        time.sleep(2)
        loom.libvirt["hv1"].start()

    for what, kill in (("agent", kill_agent), ("controller", kill_controller), ("libvirtd", kill_libvirtd)):
        ga.check(f"ping -c 40 -i 0.25 -W 10 {ip_b} > /tmp/ping.log 2>&1 &")
        kill()
        deadline = time.monotonic() + 60
        while "transmitted" not in (log := ga.check("cat /tmp/ping.log")) and time.monotonic() < deadline:
            time.sleep(1)
        sent, got = received(log)
        # Under TCG on a loaded machine a reply can take seconds; an outage is a run of missing ones.
        assert sent == 40 and longest_gap(log, sent) <= 2, f"{what} restart: {got}/{sent} answered:\n{log}"
        for inst, host in ((a, "hv1"), (b, "hv2")):
            assert qemu_pid(loom, host, inst.id) == pids[inst.id], f"{what} restart restarted {inst.name}"
            c.wait_instance(loom, inst.id, "ACTIVE", timeout=30)
        ga.check(f"ping -c 1 -W 2 {ip_b}")
