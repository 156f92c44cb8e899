from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageRef(_message.Message):
    __slots__ = ("image_id", "sha256", "size", "disk_format")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DISK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    sha256: str
    size: int
    disk_format: str
    def __init__(self, image_id: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., disk_format: _Optional[str] = ...) -> None: ...

class InstanceNic(_message.Message):
    __slots__ = ("port_id", "mac_address", "mtu", "ofport")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    OFPORT_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    mac_address: str
    mtu: int
    ofport: int
    def __init__(self, port_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., mtu: _Optional[int] = ..., ofport: _Optional[int] = ...) -> None: ...

class VolumeAttachment(_message.Message):
    __slots__ = ("volume_id", "device", "serial", "driver", "path", "options", "read_only")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    device: str
    serial: str
    driver: str
    path: str
    options: _containers.ScalarMap[str, str]
    read_only: bool
    def __init__(self, volume_id: _Optional[str] = ..., device: _Optional[str] = ..., serial: _Optional[str] = ..., driver: _Optional[str] = ..., path: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., read_only: _Optional[bool] = ...) -> None: ...

class DiskTransfer(_message.Message):
    __slots__ = ("migration_id", "export_disk", "import_disk", "base")
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORT_DISK_FIELD_NUMBER: _ClassVar[int]
    IMPORT_DISK_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    migration_id: str
    export_disk: bool
    import_disk: bool
    base: ImageRef
    def __init__(self, migration_id: _Optional[str] = ..., export_disk: _Optional[bool] = ..., import_disk: _Optional[bool] = ..., base: _Optional[_Union[ImageRef, _Mapping]] = ...) -> None: ...

class InstanceSpec(_message.Message):
    __slots__ = ("instance_id", "name", "vcpus", "memory_mb", "disk_bytes", "running", "boot_generation", "hard_reboot", "image", "kernel", "ramdisk", "kernel_cmdline", "nics", "volumes", "provisioned", "migration", "hostname", "power_generation")
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    BOOT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    HARD_REBOOT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    RAMDISK_FIELD_NUMBER: _ClassVar[int]
    KERNEL_CMDLINE_FIELD_NUMBER: _ClassVar[int]
    NICS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    PROVISIONED_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    POWER_GENERATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    name: str
    vcpus: int
    memory_mb: int
    disk_bytes: int
    running: bool
    boot_generation: int
    hard_reboot: bool
    image: ImageRef
    kernel: ImageRef
    ramdisk: ImageRef
    kernel_cmdline: str
    nics: _containers.RepeatedCompositeFieldContainer[InstanceNic]
    volumes: _containers.RepeatedCompositeFieldContainer[VolumeAttachment]
    provisioned: bool
    migration: DiskTransfer
    hostname: str
    power_generation: int
    def __init__(self, instance_id: _Optional[str] = ..., name: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., running: _Optional[bool] = ..., boot_generation: _Optional[int] = ..., hard_reboot: _Optional[bool] = ..., image: _Optional[_Union[ImageRef, _Mapping]] = ..., kernel: _Optional[_Union[ImageRef, _Mapping]] = ..., ramdisk: _Optional[_Union[ImageRef, _Mapping]] = ..., kernel_cmdline: _Optional[str] = ..., nics: _Optional[_Iterable[_Union[InstanceNic, _Mapping]]] = ..., volumes: _Optional[_Iterable[_Union[VolumeAttachment, _Mapping]]] = ..., provisioned: _Optional[bool] = ..., migration: _Optional[_Union[DiskTransfer, _Mapping]] = ..., hostname: _Optional[str] = ..., power_generation: _Optional[int] = ...) -> None: ...

class InstanceState(_message.Message):
    __slots__ = ("instance_id", "power_state", "settled", "fault", "boot_generation", "volumes", "volume_faults", "disk_ready", "exported", "stopped_by_guest", "console", "console_changed", "power_generation")
    class VolumeFaultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    BOOT_GENERATION_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FAULTS_FIELD_NUMBER: _ClassVar[int]
    DISK_READY_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_FIELD_NUMBER: _ClassVar[int]
    STOPPED_BY_GUEST_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    POWER_GENERATION_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    power_state: str
    settled: bool
    fault: str
    boot_generation: int
    volumes: _containers.RepeatedScalarFieldContainer[str]
    volume_faults: _containers.ScalarMap[str, str]
    disk_ready: bool
    exported: str
    stopped_by_guest: bool
    console: bytes
    console_changed: bool
    power_generation: int
    def __init__(self, instance_id: _Optional[str] = ..., power_state: _Optional[str] = ..., settled: _Optional[bool] = ..., fault: _Optional[str] = ..., boot_generation: _Optional[int] = ..., volumes: _Optional[_Iterable[str]] = ..., volume_faults: _Optional[_Mapping[str, str]] = ..., disk_ready: _Optional[bool] = ..., exported: _Optional[str] = ..., stopped_by_guest: _Optional[bool] = ..., console: _Optional[bytes] = ..., console_changed: _Optional[bool] = ..., power_generation: _Optional[int] = ...) -> None: ...

class HypervisorReport(_message.Message):
    __slots__ = ("host", "vcpus", "memory_mb", "hypervisor_up", "error", "virt_type", "instances")
    HOST_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_UP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VIRT_TYPE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    host: str
    vcpus: int
    memory_mb: int
    hypervisor_up: bool
    error: str
    virt_type: str
    instances: _containers.RepeatedCompositeFieldContainer[InstanceState]
    def __init__(self, host: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., hypervisor_up: _Optional[bool] = ..., error: _Optional[str] = ..., virt_type: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[InstanceState, _Mapping]]] = ...) -> None: ...

class HypervisorReportAck(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: str
    def __init__(self, epoch: _Optional[str] = ...) -> None: ...

class DiskChunk(_message.Message):
    __slots__ = ("host", "instance_id", "migration_id", "size", "sha256", "data")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    migration_id: str
    size: int
    sha256: str
    data: bytes
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ..., migration_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class DiskUploaded(_message.Message):
    __slots__ = ("size",)
    SIZE_FIELD_NUMBER: _ClassVar[int]
    size: int
    def __init__(self, size: _Optional[int] = ...) -> None: ...

class DownloadInstanceDiskRequest(_message.Message):
    __slots__ = ("host", "instance_id", "migration_id")
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MIGRATION_ID_FIELD_NUMBER: _ClassVar[int]
    host: str
    instance_id: str
    migration_id: str
    def __init__(self, host: _Optional[str] = ..., instance_id: _Optional[str] = ..., migration_id: _Optional[str] = ...) -> None: ...
