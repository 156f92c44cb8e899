from protos.loom.v1 import network_pb2 as _network_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateVolumeRequest(_message.Message):
    __slots__ = ("volume",)
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    volume: _resources_pb2.Volume
    def __init__(self, volume: _Optional[_Union[_resources_pb2.Volume, _Mapping]] = ...) -> None: ...

class ListVolumesRequest(_message.Message):
    __slots__ = ("name", "project_id", "instance_id", "limit", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    project_id: str
    instance_id: str
    limit: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., project_id: _Optional[str] = ..., instance_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVolumesResponse(_message.Message):
    __slots__ = ("volumes", "revision", "next_page_token")
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    volumes: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Volume]
    revision: int
    next_page_token: str
    def __init__(self, volumes: _Optional[_Iterable[_Union[_resources_pb2.Volume, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AttachVolumeRequest(_message.Message):
    __slots__ = ("volume_id", "instance_id")
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    instance_id: str
    def __init__(self, volume_id: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class DetachVolumeRequest(_message.Message):
    __slots__ = ("volume_id",)
    VOLUME_ID_FIELD_NUMBER: _ClassVar[int]
    volume_id: str
    def __init__(self, volume_id: _Optional[str] = ...) -> None: ...
