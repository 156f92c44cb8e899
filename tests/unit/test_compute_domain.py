"""The libvirt domain XML the agent renders for an instance spec, and what it reads back."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dataplane.compute import domain as dx
from protos.loom.v1 import hypervisor_pb2

IID = "3f2a9c1e-7b00-4c1d-9e2f-123456789abc"
VOL = "aab59a64-0a09-462b-8a38-fba30aa91e76"


def spec(kernel: bool = True) -> hypervisor_pb2.InstanceSpec:
    s = hypervisor_pb2.InstanceSpec(instance_id=IID, name="web 1", vcpus=2, memory_mb=512, running=True)
    s.image.CopyFrom(hypervisor_pb2.ImageRef(image_id="img", sha256="a" * 64, size=1, disk_format="qcow2"))
    if kernel:
        s.kernel.CopyFrom(hypervisor_pb2.ImageRef(image_id="k", sha256="b" * 64, size=1, disk_format="aki"))
        s.ramdisk.CopyFrom(hypervisor_pb2.ImageRef(image_id="r", sha256="c" * 64, size=1, disk_format="ari"))
        s.kernel_cmdline = "root=/dev/vda console=ttyS0"
    s.nics.add(port_id="p1", mac_address="fa:16:3e:00:00:01", mtu=1450, ofport=100)
    s.nics.add(port_id="p2", mac_address="fa:16:3e:00:00:02", mtu=1400, ofport=101)
    s.volumes.add(volume_id=VOL, device="vdb", serial=VOL[:20], driver="file", path="/vol/volume-1")
    return s


def paths() -> dx.InstancePaths:
    return dx.InstancePaths(Path("/inst") / IID, Path("/cache/" + "a" * 64), Path("/cache/k"), Path("/cache/r"))


def render(s: hypervisor_pb2.InstanceSpec, applied: dx.Applied | None = None) -> tuple[ET.Element, str]:
    xml, digest = dx.render(s, paths(), {"p1": "tapp1", "p2": "tapp2"}, "qemu", applied or dx.Applied())
    return ET.fromstring(xml), digest


def test_the_domain_nova_would_define() -> None:
    dom, _ = render(spec())
    assert dom.get("type") == "qemu"
    assert (dom.findtext("name"), dom.findtext("uuid")) == (f"loom-{IID}", IID)
    assert dom.find("memory").text == "512" and dom.find("memory").get("unit") == "MiB"  # type: ignore[union-attr]
    assert dom.findtext("vcpu") == "2"
    system = {e.get("name"): e.text for e in dom.findall("sysinfo/system/entry")}
    assert system["product"] == "OpenStack Compute" and system["uuid"] == IID  # cloud-init's OpenStack detection
    assert dom.find("os/smbios").get("mode") == "sysinfo"  # type: ignore[union-attr]
    assert (dom.findtext("os/kernel"), dom.findtext("os/initrd")) == ("/cache/k", "/cache/r")
    assert dom.findtext("os/cmdline") == "root=/dev/vda console=ttyS0"
    root = dom.find("devices/disk[target]")
    assert root.find("source").get("file") == f"/inst/{IID}/disk"  # type: ignore[union-attr]
    assert root.find("driver").get("type") == "qcow2"  # type: ignore[union-attr]


def test_nics_are_ethernet_on_the_agents_taps_unmanaged_virtio_with_the_mtu() -> None:
    dom, _ = render(spec())
    ifaces = dom.findall("devices/interface")
    assert [i.get("type") for i in ifaces] == ["ethernet", "ethernet"]
    first = ifaces[0]
    assert first.find("target").attrib == {"dev": "tapp1", "managed": "no"}  # type: ignore[union-attr]
    assert first.find("model").get("type") == "virtio"  # type: ignore[union-attr]
    assert first.find("mac").get("address") == "fa:16:3e:00:00:01"  # type: ignore[union-attr]
    assert first.find("mtu").get("size") == "1450"  # type: ignore[union-attr]


def test_the_serial_console_is_a_socket_logged_to_a_file() -> None:
    dom, _ = render(spec())
    serial = dom.find("devices/serial")
    assert serial.get("type") == "unix"  # type: ignore[union-attr]
    assert serial.find("source").get("path") == f"/inst/{IID}/console.sock"  # type: ignore[union-attr]
    assert serial.find("log").get("file") == f"/inst/{IID}/console.log"  # type: ignore[union-attr]


def test_without_a_kernel_it_boots_from_the_disk() -> None:
    dom, _ = render(spec(kernel=False))
    assert dom.find("os/kernel") is None and dom.find("os/boot").get("dev") == "hd"  # type: ignore[union-attr]


def test_the_digest_ignores_what_the_agent_applied_and_follows_the_spec() -> None:
    _, d1 = render(spec())
    _, d2 = render(spec(), dx.Applied("x", 5, 7))
    assert d1 == d2
    changed = spec()
    changed.memory_mb = 1024
    assert render(changed)[1] != d1


def test_read_back_metadata_taps_and_volumes() -> None:
    xml, digest = dx.render(spec(), paths(), {"p1": "tapp1", "p2": "tapp2"}, "kvm", dx.Applied("", 3, 4))
    view = dx.parse(xml)
    assert view is not None
    assert view.instance_id == IID and view.applied == dx.Applied(digest, 3, 4)
    assert view.taps == ("tapp1", "tapp2")
    assert list(view.volumes) == [VOL[:20]]
    assert "cpu" in xml  # host-model under KVM


def test_a_domain_without_loom_metadata_is_not_loom_s() -> None:
    assert dx.parse("<domain type='qemu'><name>other</name><uuid>x</uuid></domain>") is None


def test_metadata_as_libvirt_stores_it_after_set_metadata() -> None:
    # virDomainSetMetadata puts the element under our namespace with unprefixed children.
    children = "<spec-hash>ab</spec-hash><boot-generation>2</boot-generation><power-generation>9</power-generation>"
    el = ET.fromstring(f'<loom:instance xmlns:loom="{dx.NAMESPACE}">{children}</loom:instance>')
    assert dx.parse_applied(el) == dx.Applied("ab", 2, 9)


def test_volume_disks_for_each_backend() -> None:
    file_disk = dx.volume_disk(hypervisor_pb2.VolumeAttachment(volume_id=VOL, device="vdc", driver="file", path="/v"))
    assert file_disk.get("type") == "file" and file_disk.findtext("serial") == VOL[:20]
    assert file_disk.find("target").attrib == {"dev": "vdc", "bus": "virtio"}  # type: ignore[union-attr]
    rbd = dx.volume_disk(
        hypervisor_pb2.VolumeAttachment(
            volume_id=VOL, device="vdd", driver="rbd", path="volumes/volume-1", options={"monitors": "10.0.0.5:6789"}
        )
    )
    assert rbd.get("type") == "network"
    assert rbd.find("source").get("protocol") == "rbd" and rbd.find("source/host").get("name") == "10.0.0.5"  # type: ignore[union-attr]
    iscsi = dx.volume_disk(
        hypervisor_pb2.VolumeAttachment(
            volume_id=VOL,
            device="vde",
            driver="iscsi",
            path="iqn.2010-10.org:vol1",
            options={"portal": "10.0.0.6:3260"},
        )
    )
    source = iscsi.find("source")
    assert source is not None
    assert source.get("dev") == "/dev/disk/by-path/ip-10.0.0.6:3260-iscsi-iqn.2010-10.org:vol1-lun-0"
    with pytest.raises(ValueError):
        dx.volume_disk(hypervisor_pb2.VolumeAttachment(volume_id=VOL, device="vdf", driver="nfs4"))
