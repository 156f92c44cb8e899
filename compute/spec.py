"""Each host's instance specs: what its agent must make of every guest placed there.

The distributor asks this source, beside compiling flows, which instances a
store change touches (``affected``) and what their spec is now (``spec``);
specs travel in the host's Sync state (``HostState.instances``), so an agent
learns of a new instance and of its ports (bound to it in the same commit) in
one message, and restarts from its persisted copy like it does for flows.

A spec is read from the store as it is now, not as of the event being
processed: every change that can alter a spec marks it again, so the last
computation always sees the last state, and an unchanged spec sends nothing.
"""

from __future__ import annotations

from compute.core import GIB, ComputeCore
from compute.images import COMMAND_LINE, KERNEL_ID, RAMDISK_ID
from compute.volumes import ATTACHING, IN_USE, VolumeApi
from controller.model import Image, Instance, Network, Port, Volume
from controller.store.base import Event, EventType
from protos.loom.v1 import hypervisor_pb2

DEFAULT_CMDLINE = "root=/dev/vda console=ttyS0"


def image_ref(image: Image) -> hypervisor_pb2.ImageRef:
    return hypervisor_pb2.ImageRef(
        image_id=image.id, sha256=image.sha256, size=image.size, disk_format=image.disk_format
    )


class InstanceSpecs:
    """``controller.distributor.distributor.InstanceSource`` for compute's instances."""

    def __init__(self, core: ComputeCore, volumes: VolumeApi) -> None:
        self.core = core
        self.store = core.store
        self.volumes = volumes

    # ------------------------------------------------------------ what a change touches

    def affected(self, ev: Event) -> dict[str, set[str]]:
        """host -> instances whose spec may differ after ``ev`` (before and after it: a move touches both)."""
        out: dict[str, set[str]] = {}
        new = None if ev.type == EventType.DELETED else ev.obj
        old = ev.old if ev.type != EventType.CREATED else None
        for obj in (old, new):
            if isinstance(obj, Instance):
                self._touch(out, obj)
            elif isinstance(obj, Port) and obj.device_id:
                self._touch_id(out, obj.device_id)
            elif isinstance(obj, Volume) and obj.instance_id:
                self._touch_id(out, obj.instance_id)
        return out

    def _touch_id(self, out: dict[str, set[str]], instance_id: str) -> None:
        inst = self.store.get("instance", instance_id)
        if isinstance(inst, Instance):
            self._touch(out, inst)

    @staticmethod
    def _touch(out: dict[str, set[str]], inst: Instance) -> None:
        if inst.booted and inst.host:
            out.setdefault(inst.host, set()).add(inst.id)

    def instance_ids(self, host: str) -> set[str]:
        return {i.id for i in self.store.list("instance") if isinstance(i, Instance) and i.booted and i.host == host}

    # ------------------------------------------------------------ the spec

    def spec(self, host: str, instance_id: str) -> hypervisor_pb2.InstanceSpec | None:
        inst = self.store.get("instance", instance_id)
        if not isinstance(inst, Instance) or not inst.booted or inst.host != host:
            return None
        image = self.store.get("image", inst.image_id)
        if not isinstance(image, Image):
            return None  # cannot happen: an image in use cannot be deleted
        spec = hypervisor_pb2.InstanceSpec(
            instance_id=inst.id,
            name=inst.name,
            hostname=inst.hostname,
            vcpus=inst.vcpus,
            memory_mb=inst.ram_mb,
            disk_bytes=inst.disk_gb * GIB if inst.disk_gb else image.virtual_size,
            running=inst.power_on and not inst.migration_id,
            boot_generation=inst.boot_generation,
            power_generation=inst.power_generation,
            hard_reboot=inst.hard_reboot,
            image=image_ref(image),
            provisioned=inst.provisioned_host == host,
        )
        kernel, ramdisk = self._image(image.prop(KERNEL_ID)), self._image(image.prop(RAMDISK_ID))
        if kernel is not None:
            spec.kernel.CopyFrom(image_ref(kernel))
            spec.kernel_cmdline = image.prop(COMMAND_LINE) or DEFAULT_CMDLINE
            if ramdisk is not None:
                spec.ramdisk.CopyFrom(image_ref(ramdisk))
        for port in self._ports(inst.id, host):
            net = self.store.get("network", port.network_id)
            spec.nics.add(
                port_id=port.id,
                mac_address=port.mac_address,
                mtu=net.mtu if isinstance(net, Network) else 0,
                ofport=port.binding_ofport,
            )
        for vol in self.volumes.attached_to(inst.id):
            if vol.status not in (ATTACHING, IN_USE):
                continue
            conn = self.volumes.connection(vol)
            spec.volumes.add(
                volume_id=vol.id,
                device=vol.device,
                serial=vol.id[:20],  # virtio-blk serials hold 20 bytes; Nova uses the volume id the same way
                driver=conn.driver,
                path=conn.path,
                options=conn.options,
            )
        if inst.migration_id:
            spec.migration.migration_id = inst.migration_id
            spec.migration.export_disk = inst.migration_phase == "export"
            spec.migration.import_disk = inst.migration_phase == "import"
            spec.migration.base.CopyFrom(image_ref(image))
        return spec

    def _image(self, image_id: str) -> Image | None:
        image = self.store.get("image", image_id) if image_id else None
        return image if isinstance(image, Image) else None

    def _ports(self, instance_id: str, host: str) -> list[Port]:
        ids = self.core.network.index.device_port_ids(instance_id)
        ports = [p for p in (self.store.get("port", pid) for pid in ids) if isinstance(p, Port)]
        # NIC order is creation order: a guest's eth0 stays eth0 across reboots and migrations.
        return sorted((p for p in ports if p.binding_host_id == host), key=lambda p: p.tag)
