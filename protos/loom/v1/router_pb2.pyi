from google.protobuf import field_mask_pb2 as _field_mask_pb2
from protos.loom.v1 import network_pb2 as _network_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateRouterRequest(_message.Message):
    __slots__ = ("router",)
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    router: _resources_pb2.Router
    def __init__(self, router: _Optional[_Union[_resources_pb2.Router, _Mapping]] = ...) -> None: ...

class UpdateRouterRequest(_message.Message):
    __slots__ = ("router", "update_mask")
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    router: _resources_pb2.Router
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, router: _Optional[_Union[_resources_pb2.Router, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListRoutersRequest(_message.Message):
    __slots__ = ("name", "project_id", "limit", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    project_id: str
    limit: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRoutersResponse(_message.Message):
    __slots__ = ("routers", "revision", "next_page_token")
    ROUTERS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    routers: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Router]
    revision: int
    next_page_token: str
    def __init__(self, routers: _Optional[_Iterable[_Union[_resources_pb2.Router, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RouterInterfaceRequest(_message.Message):
    __slots__ = ("router_id", "subnet_id", "port_id")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    subnet_id: str
    port_id: str
    def __init__(self, router_id: _Optional[str] = ..., subnet_id: _Optional[str] = ..., port_id: _Optional[str] = ...) -> None: ...

class RouterInterface(_message.Message):
    __slots__ = ("router_id", "subnet_id", "port_id", "network_id", "revision")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    subnet_id: str
    port_id: str
    network_id: str
    revision: int
    def __init__(self, router_id: _Optional[str] = ..., subnet_id: _Optional[str] = ..., port_id: _Optional[str] = ..., network_id: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateFloatingIpRequest(_message.Message):
    __slots__ = ("floating_ip",)
    FLOATING_IP_FIELD_NUMBER: _ClassVar[int]
    floating_ip: _resources_pb2.FloatingIp
    def __init__(self, floating_ip: _Optional[_Union[_resources_pb2.FloatingIp, _Mapping]] = ...) -> None: ...

class UpdateFloatingIpRequest(_message.Message):
    __slots__ = ("floating_ip", "update_mask")
    FLOATING_IP_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    floating_ip: _resources_pb2.FloatingIp
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, floating_ip: _Optional[_Union[_resources_pb2.FloatingIp, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class AssociateFloatingIpRequest(_message.Message):
    __slots__ = ("id", "port_id", "fixed_ip_address")
    ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    port_id: str
    fixed_ip_address: str
    def __init__(self, id: _Optional[str] = ..., port_id: _Optional[str] = ..., fixed_ip_address: _Optional[str] = ...) -> None: ...

class ListFloatingIpsRequest(_message.Message):
    __slots__ = ("floating_network_id", "port_id", "router_id", "floating_ip_address", "project_id", "limit", "page_token")
    FLOATING_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    floating_network_id: str
    port_id: str
    router_id: str
    floating_ip_address: str
    project_id: str
    limit: int
    page_token: str
    def __init__(self, floating_network_id: _Optional[str] = ..., port_id: _Optional[str] = ..., router_id: _Optional[str] = ..., floating_ip_address: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFloatingIpsResponse(_message.Message):
    __slots__ = ("floating_ips", "revision", "next_page_token")
    FLOATING_IPS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    floating_ips: _containers.RepeatedCompositeFieldContainer[_resources_pb2.FloatingIp]
    revision: int
    next_page_token: str
    def __init__(self, floating_ips: _Optional[_Iterable[_Union[_resources_pb2.FloatingIp, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...
