from google.protobuf import field_mask_pb2 as _field_mask_pb2
from protos.loom.v1 import network_pb2 as _network_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateInstanceRequest(_message.Message):
    __slots__ = ("instance",)
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    instance: _resources_pb2.Instance
    def __init__(self, instance: _Optional[_Union[_resources_pb2.Instance, _Mapping]] = ...) -> None: ...

class UpdateInstanceRequest(_message.Message):
    __slots__ = ("instance", "update_mask")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    instance: _resources_pb2.Instance
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, instance: _Optional[_Union[_resources_pb2.Instance, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("name", "project_id", "host", "limit", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    project_id: str
    host: str
    limit: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., project_id: _Optional[str] = ..., host: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances", "revision", "next_page_token")
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Instance]
    revision: int
    next_page_token: str
    def __init__(self, instances: _Optional[_Iterable[_Union[_resources_pb2.Instance, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class InstanceActionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RebootInstanceRequest(_message.Message):
    __slots__ = ("id", "hard")
    ID_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    id: str
    hard: bool
    def __init__(self, id: _Optional[str] = ..., hard: _Optional[bool] = ...) -> None: ...

class MigrateInstanceRequest(_message.Message):
    __slots__ = ("id", "host")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    id: str
    host: str
    def __init__(self, id: _Optional[str] = ..., host: _Optional[str] = ...) -> None: ...

class GetConsoleOutputRequest(_message.Message):
    __slots__ = ("id", "length")
    ID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    id: str
    length: int
    def __init__(self, id: _Optional[str] = ..., length: _Optional[int] = ...) -> None: ...

class ConsoleOutput(_message.Message):
    __slots__ = ("output", "reported_at")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    output: str
    reported_at: float
    def __init__(self, output: _Optional[str] = ..., reported_at: _Optional[float] = ...) -> None: ...

class ListHypervisorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Hypervisor(_message.Message):
    __slots__ = ("host", "alive", "hypervisor_up", "error", "virt_type", "vcpus", "memory_mb", "vcpus_used", "memory_mb_used", "instances", "last_report")
    HOST_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_UP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VIRT_TYPE_FIELD_NUMBER: _ClassVar[int]
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    VCPUS_USED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_USED_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    LAST_REPORT_FIELD_NUMBER: _ClassVar[int]
    host: str
    alive: bool
    hypervisor_up: bool
    error: str
    virt_type: str
    vcpus: int
    memory_mb: int
    vcpus_used: int
    memory_mb_used: int
    instances: int
    last_report: float
    def __init__(self, host: _Optional[str] = ..., alive: _Optional[bool] = ..., hypervisor_up: _Optional[bool] = ..., error: _Optional[str] = ..., virt_type: _Optional[str] = ..., vcpus: _Optional[int] = ..., memory_mb: _Optional[int] = ..., vcpus_used: _Optional[int] = ..., memory_mb_used: _Optional[int] = ..., instances: _Optional[int] = ..., last_report: _Optional[float] = ...) -> None: ...

class ListHypervisorsResponse(_message.Message):
    __slots__ = ("hypervisors",)
    HYPERVISORS_FIELD_NUMBER: _ClassVar[int]
    hypervisors: _containers.RepeatedCompositeFieldContainer[Hypervisor]
    def __init__(self, hypervisors: _Optional[_Iterable[_Union[Hypervisor, _Mapping]]] = ...) -> None: ...
