"""libvirt domain XML for an instance spec, and what the agent reads back from a domain. Pure.

What Nova's libvirt driver would write, reduced to what Loom's guests need:

- ``<domain type='qemu'>`` (TCG) or ``'kvm'``; the instance id is the
  domain's UUID and its name is ``loom-<id>``;
- SMBIOS ``product = OpenStack Compute``: cloud-init's ds-identify then knows
  the guest is on OpenStack and reads Loom's metadata service;
- the root disk ``vda`` (a qcow2 overlay on the cached image), volumes
  ``vdb``... with their id (cut to 20 bytes) as virtio serial;
- direct kernel boot for AMI-style images (kernel, ramdisk, command line);
- each NIC ``<interface type='ethernet'>`` on the tap the agent plugged
  (``managed='no'``: libvirt opens it, never creates or deletes it),
  ``virtio``, with the network's MTU. libvirt opens the tap like qemu does
  (vnet_hdr on); ``vif/tap.py`` makes that work in the userspace datapath;
- the serial console on a unix socket, logged to a file (virtlogd);
- ``<metadata>``: what the agent applied (reboot and power generations) and
  a digest of the rest, so an unchanged spec is never redefined.

Volumes of other backends render as Nova renders them (``rbd`` as a network
disk, ``iscsi`` as a block device by path); no backend serves them yet.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from protos.loom.v1 import hypervisor_pb2

NAMESPACE = "https://loom.invalid/xmlns/libvirt/instance/1"
PREFIX = "loom"
DOMAIN_PREFIX = "loom-"
ROOT_DEVICE = "vda"

ET.register_namespace(PREFIX, NAMESPACE)


@dataclass(frozen=True, slots=True)
class InstancePaths:
    """Where an instance's files are on its host."""

    directory: Path
    image: Path  # the cached base image
    kernel: Path | None = None
    ramdisk: Path | None = None

    @property
    def disk(self) -> Path:
        return self.directory / "disk"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def console_socket(self) -> Path:
        return self.directory / "console.sock"


@dataclass(frozen=True, slots=True)
class Applied:
    """What the agent carried out on a domain, kept in the domain's metadata (survives agent restarts)."""

    spec_hash: str = ""
    boot_generation: int = 0
    power_generation: int = 0  # the start request it last started the guest for


@dataclass(frozen=True, slots=True)
class DomainView:
    """A domain as read back from its XML."""

    instance_id: str
    name: str
    applied: Applied
    taps: tuple[str, ...]  # the target devices of its ethernet interfaces
    volumes: dict[str, ET.Element] = field(default_factory=dict)  # serial -> <disk> element (not vda)


def domain_name(instance_id: str) -> str:
    return DOMAIN_PREFIX + instance_id


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def volume_serial(volume_id: str) -> str:
    return volume_id[:20]


def volume_disk(v: hypervisor_pb2.VolumeAttachment) -> ET.Element:
    """The ``<disk>`` of one volume (for the domain, and alone for hot-plug)."""
    serial = v.serial or volume_serial(v.volume_id)
    if v.driver == "file":
        disk = ET.Element("disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none", io="native")
        _sub(disk, "source", file=v.path)
    elif v.driver == "rbd":
        disk = ET.Element("disk", type="network", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none")
        source = _sub(disk, "source", protocol="rbd", name=v.path)
        for mon in filter(None, v.options.get("monitors", "").split(",")):
            host, _, port = mon.partition(":")
            _sub(source, "host", name=host, port=port or "6789")
        if v.options.get("auth_user"):
            auth = _sub(disk, "auth", username=v.options["auth_user"])
            _sub(auth, "secret", type="ceph", uuid=v.options.get("secret_uuid", ""))
    elif v.driver == "iscsi":
        # os-brick logs in and hands Nova /dev/disk/by-path/...; the agent would do the same.
        disk = ET.Element("disk", type="block", device="disk")
        _sub(disk, "driver", name="qemu", type="raw", cache="none", io="native")
        portal, lun = v.options.get("portal", ""), v.options.get("lun", "0")
        _sub(disk, "source", dev=f"/dev/disk/by-path/ip-{portal}-iscsi-{v.path}-lun-{lun}")
    else:
        raise ValueError(f"volume {v.volume_id}: unknown driver {v.driver!r}")
    _sub(disk, "target", dev=v.device, bus="virtio")
    _sub(disk, "serial", serial)
    if v.read_only:
        _sub(disk, "readonly")
    return disk


def render(
    spec: hypervisor_pb2.InstanceSpec,
    paths: InstancePaths,
    taps: dict[str, str],
    virt_type: str = "qemu",
    applied: Applied | None = None,
) -> tuple[str, str]:
    """The domain XML for ``spec`` and the digest of everything but the metadata.

    ``taps``: port id -> tap device. ``applied`` goes into the metadata as it
    is (its ``spec_hash`` is replaced by the digest of this rendering).
    """
    dom = ET.Element("domain", type=virt_type)
    _sub(dom, "name", domain_name(spec.instance_id))
    _sub(dom, "uuid", spec.instance_id)
    if spec.name:
        _sub(dom, "title", spec.name[:250])
    _sub(dom, "memory", str(spec.memory_mb), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    sysinfo = _sub(dom, "sysinfo", type="smbios")
    system = _sub(sysinfo, "system")
    for name, value in (
        ("manufacturer", "Loom"),
        ("product", "OpenStack Compute"),  # what cloud-init's ds-identify looks for
        ("serial", spec.instance_id),
        ("uuid", spec.instance_id),
        ("family", "Virtual Machine"),
    ):
        _sub(system, "entry", value, name=name)
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    if spec.HasField("kernel") and paths.kernel is not None:
        _sub(os_el, "kernel", str(paths.kernel))
        if paths.ramdisk is not None:
            _sub(os_el, "initrd", str(paths.ramdisk))
        _sub(os_el, "cmdline", spec.kernel_cmdline)
    else:
        _sub(os_el, "boot", dev="hd")
    _sub(os_el, "smbios", mode="sysinfo")
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if virt_type == "kvm":
        _sub(dom, "cpu", mode="host-model")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    devices = _sub(dom, "devices")
    root = _sub(devices, "disk", type="file", device="disk")
    _sub(root, "driver", name="qemu", type="qcow2", cache="none")
    _sub(root, "source", file=str(paths.disk))
    _sub(root, "target", dev=ROOT_DEVICE, bus="virtio")
    for v in sorted(spec.volumes, key=lambda v: v.device):
        devices.append(volume_disk(v))
    for nic in spec.nics:
        iface = _sub(devices, "interface", type="ethernet")
        _sub(iface, "mac", address=nic.mac_address)
        _sub(iface, "target", dev=taps[nic.port_id], managed="no")
        _sub(iface, "model", type="virtio")
        if nic.mtu:
            _sub(iface, "mtu", size=str(nic.mtu))
    serial = _sub(devices, "serial", type="unix")
    _sub(serial, "source", mode="bind", path=str(paths.console_socket))
    _sub(serial, "log", file=str(paths.console_log), append="on")
    _sub(serial, "target", port="0")
    rng = _sub(devices, "rng", model="virtio")  # guests get entropy at boot (cloud-init, ssh host keys)
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="none")
    digest = hashlib.sha256(ET.tostring(dom)).hexdigest()[:32]
    meta = ET.Element("metadata")
    done = applied or Applied()
    meta.append(metadata_element(Applied(digest, done.boot_generation, done.power_generation)))
    dom.insert(3 if spec.name else 2, meta)  # after name, uuid (and title), where libvirt puts it
    return ET.tostring(dom, encoding="unicode"), digest


def metadata_element(applied: Applied) -> ET.Element:
    el = ET.Element(f"{{{NAMESPACE}}}instance")
    _sub(el, f"{{{NAMESPACE}}}spec-hash", applied.spec_hash)
    _sub(el, f"{{{NAMESPACE}}}boot-generation", str(applied.boot_generation))
    _sub(el, f"{{{NAMESPACE}}}power-generation", str(applied.power_generation))
    return el


def metadata_xml(applied: Applied) -> str:
    """The metadata element alone, for ``virDomainSetMetadata`` (which takes it without the namespace prefix)."""
    el = ET.Element("instance")
    _sub(el, "spec-hash", applied.spec_hash)
    _sub(el, "boot-generation", str(applied.boot_generation))
    _sub(el, "power-generation", str(applied.power_generation))
    return ET.tostring(el, encoding="unicode")


def parse_applied(el: ET.Element | None) -> Applied:
    if el is None:
        return Applied()

    def text(tag: str) -> str:
        child = el.find(f"{{{NAMESPACE}}}{tag}")
        if child is None:
            child = el.find(tag)
        return (child.text or "") if child is not None else ""

    def number(tag: str) -> int:
        try:
            return int(text(tag) or 0)
        except ValueError:
            return 0

    return Applied(text("spec-hash"), number("boot-generation"), number("power-generation"))


def parse(xml: str) -> DomainView | None:
    """A Loom domain's view; None for a domain Loom did not make (no Loom metadata)."""
    dom = ET.fromstring(xml)
    meta = dom.find(f"metadata/{{{NAMESPACE}}}instance")
    if meta is None:
        return None
    taps = tuple(t.get("dev", "") for t in dom.findall("devices/interface[@type='ethernet']/target") if t.get("dev"))
    volumes: dict[str, ET.Element] = {}
    for disk in dom.findall("devices/disk"):
        target = disk.find("target")
        serial = disk.find("serial")
        if target is None or target.get("dev") == ROOT_DEVICE or serial is None or not serial.text:
            continue
        volumes[serial.text] = disk
    return DomainView(
        instance_id=dom.findtext("uuid", ""),
        name=dom.findtext("name", ""),
        applied=parse_applied(meta),
        taps=taps,
        volumes=volumes,
    )


def device_xml(el: ET.Element) -> str:
    return ET.tostring(el, encoding="unicode")
