"""Instances: records for metadata, and guests Loom boots, with their lifecycle.

Plain methods over the store, like ``controller.api.network_api``: ``fields``
/ ``changes`` map field names to the user's values; errors are ``ApiError``
naming the field.

Two kinds of instance share the API:

- **A record** (no ``image_id``): the instance of a guest something else runs
  (the lab's namespace VMs, or an orchestrator's own). Its ports are the ports
  whose ``device_id`` names it; deleting it leaves them, as Neutron does when
  Nova is not the caller. Status ACTIVE.
- **A booted instance** (an ``image_id`` and a flavor): Loom runs its guest.
  Create validates everything first (flavor, image and its size, networks and
  ports, the host or the scheduler's choice), then commits the instance and its
  ports, bound to the host, in one transaction: a refused request leaves
  nothing, and the host's agent learns of the ports and the guest together,
  installing the ports' flows before it plugs their taps and starts the
  domain (flow-first). Power and reboot requests change the desired state; the
  host's reports drive ``status`` (``compute/status.py``). Delete removes the
  ports creation made, unbinds the ones it was given, and detaches volumes.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from compute import scheduler
from compute.core import GIB, ComputeCore
from compute.images import BOOTABLE_FORMATS, KERNEL_ID, RAMDISK_ID
from controller.api import validation as v
from controller.api.errors import ApiError, ErrorCode, failed_precondition, invalid, not_found
from controller.api.masks import INSTANCE_RULES
from controller.api.paging import Page, paginate
from controller.api.ports import Reservation
from controller.model import Image, Instance, Network, Port, Resource, Volume
from dataplane.common import qemu_img
from dataplane.common.logs import get_logger

log = get_logger(__name__)

MAX_METADATA_VALUE = 255
MAX_VCPUS = 128
MAX_RAM_MB = 1024 * 1024
MAX_DISK_GB = 16 * 1024
MIN_RAM_MB = 32
OWNER_PREFIX = "compute:"

# Instance statuses (Nova's, for the ones Loom has).
BUILD = "BUILD"
ACTIVE = "ACTIVE"
SHUTOFF = "SHUTOFF"
REBOOT = "REBOOT"
HARD_REBOOT = "HARD_REBOOT"
MIGRATING = "MIGRATING"
ERROR = "ERROR"

# task_state values.
SPAWNING = "spawning"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
TASK_MIGRATING = "migrating"


class InstanceApi:
    """Instance CRUD and lifecycle over the store."""

    def __init__(self, core: ComputeCore) -> None:
        self.core = core
        self.store = core.store
        self.lock: threading.RLock = core.lock

    def _get(self, instance_id: str) -> Instance:
        obj = self.store.get("instance", instance_id) if instance_id else None
        if not isinstance(obj, Instance):
            raise not_found("instance", instance_id)
        return obj

    def _booted(self, instance_id: str) -> Instance:
        inst = self._get(instance_id)
        if not inst.booted:
            raise failed_precondition(f"instance {instance_id} is a record only (no image): Loom runs no guest for it")
        return inst

    def get_instance(self, instance_id: str) -> Instance:
        return self._get(instance_id)

    def list_instances(self, filters: Mapping[str, str], limit: int = 0, page_token: str = "") -> Page[Instance]:
        revision, objs = self.store.snapshot("instance")
        return paginate(revision, objs, filters, limit, page_token)  # type: ignore[arg-type]

    # ------------------------------------------------------------ create

    def create_instance(self, fields: Mapping[str, Any]) -> Instance:
        instance_id = str(uuid.uuid4())
        name = v.text("instance.name", fields.get("name", ""))
        if fields.get("hostname"):
            hostname = v.hostname("instance.hostname", fields["hostname"])
        else:
            hostname = v.sanitize_hostname(name, fallback=f"instance-{instance_id[:8]}")
        instance = Instance(
            id=instance_id,
            name=name,
            hostname=hostname,
            project_id=v.text("instance.project_id", fields.get("project_id", "")),
            user_data=v.user_data("instance.user_data", fields.get("user_data", b"")),
            public_keys=v.public_keys("instance.public_keys", fields.get("public_keys", {})),
            metadata=v.string_map(
                "instance.metadata", fields.get("metadata", {}), v.MAX_METADATA_ITEMS, MAX_METADATA_VALUE
            ),
            availability_zone=v.text("instance.availability_zone", fields.get("availability_zone", "")),
            host=v.text("instance.host", fields.get("host", "")),
        )
        if fields.get("image_id"):
            return self._create_booted(instance, fields)
        for field in ("flavor", "networks"):
            if fields.get(field):
                raise invalid(f"instance.{field}", "needs an image_id (an instance without one is a record only)")
        with self.lock:
            self.core.commit([instance])
        log.info("instance created", instance_id=instance_id, hostname=hostname)
        return self._get(instance_id)

    def _create_booted(self, instance: Instance, fields: Mapping[str, Any]) -> Instance:
        vcpus, ram_mb, disk_gb = self._flavor(fields.get("flavor"))
        image = self._image("instance.image_id", fields["image_id"])
        disk_gb = self._check_image_fits(image, vcpus, ram_mb, disk_gb)
        requests = list(fields.get("networks") or ())
        owner = OWNER_PREFIX + (instance.availability_zone or "nova")
        with self.lock:
            host = self._place(instance.host, "instance.host", vcpus, ram_mb)
            instance = dataclasses.replace(
                instance,
                host=host,
                status=BUILD,
                task_state=SPAWNING,
                vcpus=vcpus,
                ram_mb=ram_mb,
                disk_gb=disk_gb,
                image_id=image.id,
                power_on=True,
            )
            net = self.core.network
            with net.core.lock:
                ports, owned = self._ports_for(instance, requests, host, owner)
                instance = dataclasses.replace(instance, owned_ports=tuple(owned))
                self.core.commit([instance, *ports])
        log.info(
            "instance created",
            instance_id=instance.id,
            hostname=instance.hostname,
            host=host,
            image_id=image.id,
            vcpus=vcpus,
            ram_mb=ram_mb,
            disk_gb=disk_gb,
            ports=",".join(p.id for p in ports),
        )
        return self._get(instance.id)

    @staticmethod
    def _flavor(flavor: Any) -> tuple[int, int, int]:
        if flavor is None:
            raise invalid("instance.flavor", "is required with an image_id (vcpus, ram_mb, disk_gb)")
        vcpus, ram_mb, disk_gb = int(flavor.vcpus), int(flavor.ram_mb), int(flavor.disk_gb)
        if not 1 <= vcpus <= MAX_VCPUS:
            raise invalid("instance.flavor.vcpus", f"must be between 1 and {MAX_VCPUS}")
        if not MIN_RAM_MB <= ram_mb <= MAX_RAM_MB:
            raise invalid("instance.flavor.ram_mb", f"must be between {MIN_RAM_MB} and {MAX_RAM_MB}")
        if disk_gb > MAX_DISK_GB:
            raise invalid("instance.flavor.disk_gb", f"must be at most {MAX_DISK_GB}")
        return vcpus, ram_mb, disk_gb

    def _image(self, field: str, image_id: str) -> Image:
        image = self.store.get("image", image_id)
        if not isinstance(image, Image):
            raise not_found("image", image_id, field)
        if image.disk_format not in BOOTABLE_FORMATS:
            raise invalid(field, f"image {image_id} is {image.disk_format}, not a disk image (raw or qcow2)")
        if image.status != "active":
            raise failed_precondition(f"{field}: image {image_id} is {image.status}")
        for key in (KERNEL_ID, RAMDISK_ID):
            ref = image.prop(key)
            if ref and not isinstance(self.store.get("image", ref), Image):
                raise failed_precondition(f"{field}: image {image_id}'s {key} {ref} does not exist")
        return image

    @staticmethod
    def _check_image_fits(image: Image, vcpus: int, ram_mb: int, disk_gb: int) -> int:
        """The root disk's size in GiB (0: the image's), after checking the flavor against the image."""
        need = qemu_img.gib_ceil(image.virtual_size)
        if disk_gb and image.virtual_size > disk_gb * GIB:
            raise invalid(
                "instance.flavor.disk_gb",
                f"{disk_gb} GiB is too small for image {image.id} (virtual size {image.virtual_size} bytes, "
                f"{need} GiB)",
            )
        if image.min_disk and max(disk_gb, need) < image.min_disk:
            raise invalid("instance.flavor.disk_gb", f"image {image.id} needs at least {image.min_disk} GiB")
        if image.min_ram and ram_mb < image.min_ram:
            raise invalid("instance.flavor.ram_mb", f"image {image.id} needs at least {image.min_ram} MiB")
        return disk_gb

    # ------------------------------------------------------------ placement

    def usage(self, exclude: str = "") -> dict[str, scheduler.Usage]:
        """What the instances placed on each host take (all booted ones, whatever their status)."""
        out: dict[str, scheduler.Usage] = {}
        for inst in self.store.list("instance"):
            assert isinstance(inst, Instance)
            if not inst.booted or inst.id == exclude:
                continue
            for host in {inst.host, inst.migration_target} - {""}:
                u = out.get(host, scheduler.Usage())
                out[host] = scheduler.Usage(u.vcpus + inst.vcpus, u.memory_mb + inst.ram_mb, u.instances + 1)
        return out

    def candidates(self) -> list[scheduler.HostCandidate]:
        reg = self.core.hypervisors
        return [scheduler.HostCandidate(h.host, h.vcpus, h.memory_mb, reg.alive(h), h.up, h.error) for h in reg.all()]

    def _ratios(self) -> scheduler.Ratios:
        s = self.core.settings
        return scheduler.Ratios(s.cpu_allocation_ratio, s.ram_allocation_ratio, s.reserved_host_memory_mb)

    def _place(
        self, host: str, field: str, vcpus: int, ram_mb: int, exclude: Sequence[str] = (), instance_id: str = ""
    ) -> str:
        """The host asked for, checked, or the scheduler's choice (hold the lock: usage must not change)."""
        usage = self.usage(exclude=instance_id)
        ratios = self._ratios()
        if not host:
            try:
                return scheduler.schedule(self.candidates(), usage, vcpus, ram_mb, ratios, exclude)
            except scheduler.NoValidHost as exc:
                raise failed_precondition(str(exc)) from exc
        if not isinstance(self.store.get("agent", host), Resource) and self.core.hypervisors.get(host) is None:
            raise not_found("hypervisor", host, field)
        if host in exclude:
            raise invalid(field, f"the instance is on {host} already")
        candidate = next((c for c in self.candidates() if c.host == host), None)
        if candidate is None:
            raise failed_precondition(f"{field}: host {host} runs no hypervisor Loom has heard from")
        # A host the request names is taken even if its libvirtd is down: its agent is there to say
        # so, and the instance shows ERROR with the reason (the scheduler never picks such a host).
        candidate = dataclasses.replace(candidate, up=True)
        verdict = scheduler.judge(candidate, usage.get(host, scheduler.Usage()), vcpus, ram_mb, ratios)
        if not verdict.fits:
            raise failed_precondition(f"{field}: host {host} cannot take the instance: {verdict.reason}")
        return host

    # ------------------------------------------------------------ ports

    def _ports_for(
        self, instance: Instance, requests: list[tuple[Any, ...]], host: str, owner: str
    ) -> tuple[list[Resource], list[str]]:
        """What to commit for the instance's ports (new ones — with a default security group made for them —
        or the given ones rebound), and the ids of the new ones."""
        ports_api = self.core.network.ports
        reservation = Reservation()
        out: list[Port] = []
        owned: list[str] = []
        seen: set[str] = set()
        for i, request in enumerate(requests):
            network_id, port_id, fixed_ip = (str(x) for x in request)
            field = f"instance.networks[{i}]"
            if bool(network_id) == bool(port_id):
                raise invalid(field, "needs a network_id or a port_id (one of them)")
            if port_id:
                port = self.store.get("port", port_id)
                if not isinstance(port, Port):
                    raise not_found("port", port_id, f"{field}.port_id")
                if port_id in seen:
                    raise invalid(f"{field}.port_id", f"port {port_id} is given twice")
                if port.device_id and port.device_id != instance.id:
                    raise failed_precondition(f"{field}.port_id: port {port_id} is in use by {port.device_id}")
                if port.device_owner.startswith("network:"):
                    raise invalid(f"{field}.port_id", f"port {port_id} is a {port.device_owner} port")
                seen.add(port_id)
                out.append(
                    ports_api.rebound(
                        port, host, reservation, f"{field}.port_id", device_id=instance.id, device_owner=owner
                    )
                )
                continue
            if not isinstance(self.store.get("network", network_id), Network):
                raise not_found("network", network_id, f"{field}.network_id")
            port_fields: dict[str, Any] = {
                "network_id": network_id,
                "name": f"{instance.name or instance.hostname}-{i}",
                "device_id": instance.id,
                "device_owner": owner,
                "binding_host_id": host,
                "project_id": instance.project_id,
            }
            if fixed_ip:
                port_fields["fixed_ips"] = [("", fixed_ip)]
            port = ports_api.prepare(port_fields, reservation, field)
            out.append(port)
            owned.append(port.id)
        return [*reservation.extra, *out], owned

    def _instance_ports(self, instance_id: str) -> list[Port]:
        ids = self.core.network.index.device_port_ids(instance_id)
        return [p for p in (self.store.get("port", pid) for pid in ids) if isinstance(p, Port)]

    # ------------------------------------------------------------ update / delete

    def update_instance(self, instance_id: str, changes: Mapping[str, Any]) -> Instance:
        INSTANCE_RULES.check(changes)
        updates: dict[str, Any] = {}
        for name in ("name", "availability_zone", "host"):
            if name in changes:
                updates[name] = v.text(f"instance.{name}", changes[name])
        if "user_data" in changes:
            updates["user_data"] = v.user_data("instance.user_data", changes["user_data"])
        if "public_keys" in changes:
            updates["public_keys"] = v.public_keys("instance.public_keys", changes["public_keys"])
        if "metadata" in changes:
            updates["metadata"] = v.string_map(
                "instance.metadata", changes["metadata"], v.MAX_METADATA_ITEMS, MAX_METADATA_VALUE
            )
        with self.lock:
            instance = self._get(instance_id)
            if instance.booted and "host" in updates and updates["host"] != instance.host:
                raise invalid("instance.host", "a booted instance moves with MigrateInstance")
            if "hostname" in changes:
                # Empty: derive it from the (new) name again, as on create.
                name = updates.get("name", instance.name)
                updates["hostname"] = (
                    v.hostname("instance.hostname", changes["hostname"])
                    if changes["hostname"]
                    else v.sanitize_hostname(name, fallback=f"instance-{instance_id[:8]}")
                )
            new = dataclasses.replace(instance, **updates)
            if new != instance:
                self.core.commit([new])
            return self._get(instance_id)

    def delete_instance(self, instance_id: str) -> int:
        with self.lock:
            inst = self._get(instance_id)
            if not inst.booted:
                revision = self.core.commit(deletes=[("instance", instance_id)])
                log.info("instance deleted", instance_id=instance_id, revision=revision)
                return revision
            net = self.core.network
            with net.core.lock:
                deletes: list[tuple[str, str]] = [("instance", instance_id)]
                puts: list[Resource] = []
                for port in self._instance_ports(instance_id):
                    if port.id in inst.owned_ports:
                        deletes.append(("port", port.id))
                    else:  # given at creation: the orchestrator's, unbound and left
                        puts.append(net.ports.rebound(port, "", device_id="", device_owner=""))
                for vol in self.store.list("volume"):
                    if isinstance(vol, Volume) and vol.instance_id == instance_id:
                        # Available once its host no longer runs the guest (compute/status.py).
                        puts.append(dataclasses.replace(vol, status="detaching"))
                revision = self.core.commit(puts, deletes)
        log.info("instance deleted", instance_id=instance_id, host=inst.host, revision=revision)
        return revision

    # ------------------------------------------------------------ lifecycle

    def start(self, instance_id: str) -> Instance:
        with self.lock:
            inst = self._booted(instance_id)
            self._not_migrating(inst)
            if not inst.power_on:
                self.core.commit([power(inst, True, task_state=POWERING_ON)])
                log.info("instance starting", instance_id=instance_id, host=inst.host)
            return self._get(instance_id)

    def stop(self, instance_id: str) -> Instance:
        with self.lock:
            inst = self._booted(instance_id)
            self._not_migrating(inst)
            if inst.power_on:
                self.core.commit([power(inst, False, task_state=POWERING_OFF)])
                log.info("instance stopping", instance_id=instance_id, host=inst.host)
            return self._get(instance_id)

    def reboot(self, instance_id: str, hard: bool) -> Instance:
        with self.lock:
            inst = self._booted(instance_id)
            self._not_migrating(inst)
            if not hard and (not inst.power_on or inst.status not in (ACTIVE, REBOOT)):
                raise failed_precondition(
                    f"instance {instance_id} is {inst.status}: a soft reboot needs it ACTIVE (a hard one starts it)"
                )
            new = dataclasses.replace(
                power(inst, True),
                boot_generation=inst.boot_generation + 1,
                hard_reboot=hard,
                status=HARD_REBOOT if hard else REBOOT,
                task_state=REBOOTING_HARD if hard else REBOOTING,
            )
            self.core.commit([new])
            log.info("instance rebooting", instance_id=instance_id, host=inst.host, hard=hard)
            return self._get(instance_id)

    def migrate(self, instance_id: str, host: str) -> Instance:
        host = v.text("host", host)
        with self.lock:
            inst = self._booted(instance_id)
            self._not_migrating(inst)
            if inst.power_on or inst.status != SHUTOFF:
                raise failed_precondition(
                    f"instance {instance_id} is {inst.status}: a cold migration needs it SHUTOFF (stop it first)"
                )
            target = self._place(host, "host", inst.vcpus, inst.ram_mb, exclude=[inst.host], instance_id=inst.id)
            new = dataclasses.replace(
                inst,
                migration_id=str(uuid.uuid4()),
                migration_target=target,
                migration_phase="export",
                status=MIGRATING,
                task_state=TASK_MIGRATING,
            )
            self.core.commit([new])
            log.info("instance migrating", instance_id=instance_id, source=inst.host, target=target)
            return self._get(instance_id)

    @staticmethod
    def _not_migrating(inst: Instance) -> None:
        if inst.migration_id:
            raise ApiError(
                ErrorCode.FAILED_PRECONDITION,
                f"instance {inst.id} is migrating to {inst.migration_target}; wait until it is SHUTOFF",
            )


def power(inst: Instance, on: bool, **changes: Any) -> Instance:
    """``inst`` with the desired power state ``on`` (a new power generation when that changes it)."""
    if inst.power_on == on:
        return dataclasses.replace(inst, **changes)
    return dataclasses.replace(inst, power_on=on, power_generation=inst.power_generation + 1, **changes)
