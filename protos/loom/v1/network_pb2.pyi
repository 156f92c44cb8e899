from google.protobuf import field_mask_pb2 as _field_mask_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: _resources_pb2.Network
    def __init__(self, network: _Optional[_Union[_resources_pb2.Network, _Mapping]] = ...) -> None: ...

class UpdateNetworkRequest(_message.Message):
    __slots__ = ("network", "update_mask")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    network: _resources_pb2.Network
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, network: _Optional[_Union[_resources_pb2.Network, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
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

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks", "revision", "next_page_token")
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Network]
    revision: int
    next_page_token: str
    def __init__(self, networks: _Optional[_Iterable[_Union[_resources_pb2.Network, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSubnetRequest(_message.Message):
    __slots__ = ("subnet",)
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    subnet: _resources_pb2.Subnet
    def __init__(self, subnet: _Optional[_Union[_resources_pb2.Subnet, _Mapping]] = ...) -> None: ...

class UpdateSubnetRequest(_message.Message):
    __slots__ = ("subnet", "update_mask")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    subnet: _resources_pb2.Subnet
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, subnet: _Optional[_Union[_resources_pb2.Subnet, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListSubnetsRequest(_message.Message):
    __slots__ = ("network_id", "name", "project_id", "limit", "page_token")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    name: str
    project_id: str
    limit: int
    page_token: str
    def __init__(self, network_id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubnetsResponse(_message.Message):
    __slots__ = ("subnets", "revision", "next_page_token")
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subnets: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Subnet]
    revision: int
    next_page_token: str
    def __init__(self, subnets: _Optional[_Iterable[_Union[_resources_pb2.Subnet, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreatePortRequest(_message.Message):
    __slots__ = ("port", "no_security_groups")
    PORT_FIELD_NUMBER: _ClassVar[int]
    NO_SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    port: _resources_pb2.Port
    no_security_groups: bool
    def __init__(self, port: _Optional[_Union[_resources_pb2.Port, _Mapping]] = ..., no_security_groups: _Optional[bool] = ...) -> None: ...

class UpdatePortRequest(_message.Message):
    __slots__ = ("port", "update_mask")
    PORT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    port: _resources_pb2.Port
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, port: _Optional[_Union[_resources_pb2.Port, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListPortsRequest(_message.Message):
    __slots__ = ("network_id", "device_id", "device_owner", "binding_host_id", "name", "project_id", "mac_address", "limit", "page_token")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_OWNER_FIELD_NUMBER: _ClassVar[int]
    BINDING_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    device_id: str
    device_owner: str
    binding_host_id: str
    name: str
    project_id: str
    mac_address: str
    limit: int
    page_token: str
    def __init__(self, network_id: _Optional[str] = ..., device_id: _Optional[str] = ..., device_owner: _Optional[str] = ..., binding_host_id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPortsResponse(_message.Message):
    __slots__ = ("ports", "revision", "next_page_token")
    PORTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ports: _containers.RepeatedCompositeFieldContainer[_resources_pb2.Port]
    revision: int
    next_page_token: str
    def __init__(self, ports: _Optional[_Iterable[_Union[_resources_pb2.Port, _Mapping]]] = ..., revision: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("since_revision", "kinds", "id")
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    since_revision: int
    kinds: _containers.RepeatedScalarFieldContainer[str]
    id: str
    def __init__(self, since_revision: _Optional[int] = ..., kinds: _Optional[_Iterable[str]] = ..., id: _Optional[str] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("revision", "type", "kind", "id", "at", "network", "subnet", "port", "instance", "router", "floating_ip", "image", "volume", "security_group", "security_group_rule")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[WatchEvent.Type]
        CREATED: _ClassVar[WatchEvent.Type]
        UPDATED: _ClassVar[WatchEvent.Type]
        DELETED: _ClassVar[WatchEvent.Type]
    TYPE_UNSPECIFIED: WatchEvent.Type
    CREATED: WatchEvent.Type
    UPDATED: WatchEvent.Type
    DELETED: WatchEvent.Type
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    ROUTER_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IP_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_RULE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    type: WatchEvent.Type
    kind: str
    id: str
    at: float
    network: _resources_pb2.Network
    subnet: _resources_pb2.Subnet
    port: _resources_pb2.Port
    instance: _resources_pb2.Instance
    router: _resources_pb2.Router
    floating_ip: _resources_pb2.FloatingIp
    image: _resources_pb2.Image
    volume: _resources_pb2.Volume
    security_group: _resources_pb2.SecurityGroup
    security_group_rule: _resources_pb2.SecurityGroupRule
    def __init__(self, revision: _Optional[int] = ..., type: _Optional[_Union[WatchEvent.Type, str]] = ..., kind: _Optional[str] = ..., id: _Optional[str] = ..., at: _Optional[float] = ..., network: _Optional[_Union[_resources_pb2.Network, _Mapping]] = ..., subnet: _Optional[_Union[_resources_pb2.Subnet, _Mapping]] = ..., port: _Optional[_Union[_resources_pb2.Port, _Mapping]] = ..., instance: _Optional[_Union[_resources_pb2.Instance, _Mapping]] = ..., router: _Optional[_Union[_resources_pb2.Router, _Mapping]] = ..., floating_ip: _Optional[_Union[_resources_pb2.FloatingIp, _Mapping]] = ..., image: _Optional[_Union[_resources_pb2.Image, _Mapping]] = ..., volume: _Optional[_Union[_resources_pb2.Volume, _Mapping]] = ..., security_group: _Optional[_Union[_resources_pb2.SecurityGroup, _Mapping]] = ..., security_group_rule: _Optional[_Union[_resources_pb2.SecurityGroupRule, _Mapping]] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("host", "tunnel_ip", "datapath_type", "alive", "last_seen", "applied_revision", "host_revision", "flows", "version")
    HOST_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_IP_FIELD_NUMBER: _ClassVar[int]
    DATAPATH_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    HOST_REVISION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    host: str
    tunnel_ip: str
    datapath_type: str
    alive: bool
    last_seen: float
    applied_revision: int
    host_revision: int
    flows: int
    version: str
    def __init__(self, host: _Optional[str] = ..., tunnel_ip: _Optional[str] = ..., datapath_type: _Optional[str] = ..., alive: _Optional[bool] = ..., last_seen: _Optional[float] = ..., applied_revision: _Optional[int] = ..., host_revision: _Optional[int] = ..., flows: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    def __init__(self, agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ...) -> None: ...

class GetHostFlowsRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: str
    def __init__(self, host: _Optional[str] = ...) -> None: ...

class HostFlow(_message.Message):
    __slots__ = ("text", "cookie", "owner")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    text: str
    cookie: int
    owner: str
    def __init__(self, text: _Optional[str] = ..., cookie: _Optional[int] = ..., owner: _Optional[str] = ...) -> None: ...

class GetHostFlowsResponse(_message.Message):
    __slots__ = ("flows", "revision")
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    flows: _containers.RepeatedCompositeFieldContainer[HostFlow]
    revision: int
    def __init__(self, flows: _Optional[_Iterable[_Union[HostFlow, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class TracePacketRequest(_message.Message):
    __slots__ = ("from_port_id", "to_port_id", "dst_ip", "dst_mac", "protocol", "dst_port", "src_port")
    FROM_PORT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_PORT_ID_FIELD_NUMBER: _ClassVar[int]
    DST_IP_FIELD_NUMBER: _ClassVar[int]
    DST_MAC_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    DST_PORT_FIELD_NUMBER: _ClassVar[int]
    SRC_PORT_FIELD_NUMBER: _ClassVar[int]
    from_port_id: str
    to_port_id: str
    dst_ip: str
    dst_mac: str
    protocol: str
    dst_port: int
    src_port: int
    def __init__(self, from_port_id: _Optional[str] = ..., to_port_id: _Optional[str] = ..., dst_ip: _Optional[str] = ..., dst_mac: _Optional[str] = ..., protocol: _Optional[str] = ..., dst_port: _Optional[int] = ..., src_port: _Optional[int] = ...) -> None: ...

class TraceStep(_message.Message):
    __slots__ = ("table", "table_name", "flow", "cookie", "owner")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TABLE_NAME_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    table: int
    table_name: str
    flow: str
    cookie: int
    owner: str
    def __init__(self, table: _Optional[int] = ..., table_name: _Optional[str] = ..., flow: _Optional[str] = ..., cookie: _Optional[int] = ..., owner: _Optional[str] = ...) -> None: ...

class TraceOutput(_message.Message):
    __slots__ = ("kind", "host", "ofport", "port_id", "port_name", "vni", "remote_host", "remote_ip", "packet", "warning")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[TraceOutput.Kind]
        DELIVERED: _ClassVar[TraceOutput.Kind]
        TUNNEL: _ClassVar[TraceOutput.Kind]
        LOST: _ClassVar[TraceOutput.Kind]
    KIND_UNSPECIFIED: TraceOutput.Kind
    DELIVERED: TraceOutput.Kind
    TUNNEL: TraceOutput.Kind
    LOST: TraceOutput.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    OFPORT_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_NAME_FIELD_NUMBER: _ClassVar[int]
    VNI_FIELD_NUMBER: _ClassVar[int]
    REMOTE_HOST_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_FIELD_NUMBER: _ClassVar[int]
    PACKET_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    kind: TraceOutput.Kind
    host: str
    ofport: int
    port_id: str
    port_name: str
    vni: int
    remote_host: str
    remote_ip: str
    packet: str
    warning: str
    def __init__(self, kind: _Optional[_Union[TraceOutput.Kind, str]] = ..., host: _Optional[str] = ..., ofport: _Optional[int] = ..., port_id: _Optional[str] = ..., port_name: _Optional[str] = ..., vni: _Optional[int] = ..., remote_host: _Optional[str] = ..., remote_ip: _Optional[str] = ..., packet: _Optional[str] = ..., warning: _Optional[str] = ...) -> None: ...

class TraceHop(_message.Message):
    __slots__ = ("host", "in_port", "came_from", "packet", "steps", "outputs", "dropped", "drop_table", "drop_reason")
    HOST_FIELD_NUMBER: _ClassVar[int]
    IN_PORT_FIELD_NUMBER: _ClassVar[int]
    CAME_FROM_FIELD_NUMBER: _ClassVar[int]
    PACKET_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DROP_TABLE_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    host: str
    in_port: int
    came_from: str
    packet: str
    steps: _containers.RepeatedCompositeFieldContainer[TraceStep]
    outputs: _containers.RepeatedCompositeFieldContainer[TraceOutput]
    dropped: bool
    drop_table: int
    drop_reason: str
    def __init__(self, host: _Optional[str] = ..., in_port: _Optional[int] = ..., came_from: _Optional[str] = ..., packet: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[TraceStep, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TraceOutput, _Mapping]]] = ..., dropped: _Optional[bool] = ..., drop_table: _Optional[int] = ..., drop_reason: _Optional[str] = ...) -> None: ...

class TracePacketResponse(_message.Message):
    __slots__ = ("packet", "hops", "deliveries", "reached_destination", "revision", "notes")
    PACKET_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    REACHED_DESTINATION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    packet: str
    hops: _containers.RepeatedCompositeFieldContainer[TraceHop]
    deliveries: _containers.RepeatedCompositeFieldContainer[TraceOutput]
    reached_destination: bool
    revision: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, packet: _Optional[str] = ..., hops: _Optional[_Iterable[_Union[TraceHop, _Mapping]]] = ..., deliveries: _Optional[_Iterable[_Union[TraceOutput, _Mapping]]] = ..., reached_destination: _Optional[bool] = ..., revision: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...
