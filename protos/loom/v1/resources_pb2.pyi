from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Network(_message.Message):
    __slots__ = ("id", "name", "project_id", "admin_state_up", "mtu", "network_type", "segmentation_id", "physical_network", "port_security_enabled", "status", "subnets", "tag", "revision_number", "created_at", "updated_at", "router_external")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_UP_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TYPE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    PORT_SECURITY_ENABLED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ROUTER_EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    admin_state_up: bool
    mtu: int
    network_type: str
    segmentation_id: int
    physical_network: str
    port_security_enabled: bool
    status: str
    subnets: _containers.RepeatedScalarFieldContainer[str]
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    router_external: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., admin_state_up: _Optional[bool] = ..., mtu: _Optional[int] = ..., network_type: _Optional[str] = ..., segmentation_id: _Optional[int] = ..., physical_network: _Optional[str] = ..., port_security_enabled: _Optional[bool] = ..., status: _Optional[str] = ..., subnets: _Optional[_Iterable[str]] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., router_external: _Optional[bool] = ...) -> None: ...

class AllocationPool(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: str
    end: str
    def __init__(self, start: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class HostRoute(_message.Message):
    __slots__ = ("destination", "nexthop")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    NEXTHOP_FIELD_NUMBER: _ClassVar[int]
    destination: str
    nexthop: str
    def __init__(self, destination: _Optional[str] = ..., nexthop: _Optional[str] = ...) -> None: ...

class Subnet(_message.Message):
    __slots__ = ("id", "name", "network_id", "project_id", "ip_version", "cidr", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    IP_VERSION_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_IP_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_POOLS_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
    HOST_ROUTES_FIELD_NUMBER: _ClassVar[int]
    ENABLE_DHCP_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    network_id: str
    project_id: str
    ip_version: int
    cidr: str
    gateway_ip: str
    allocation_pools: _containers.RepeatedCompositeFieldContainer[AllocationPool]
    dns_nameservers: _containers.RepeatedScalarFieldContainer[str]
    host_routes: _containers.RepeatedCompositeFieldContainer[HostRoute]
    enable_dhcp: bool
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., network_id: _Optional[str] = ..., project_id: _Optional[str] = ..., ip_version: _Optional[int] = ..., cidr: _Optional[str] = ..., gateway_ip: _Optional[str] = ..., allocation_pools: _Optional[_Iterable[_Union[AllocationPool, _Mapping]]] = ..., dns_nameservers: _Optional[_Iterable[str]] = ..., host_routes: _Optional[_Iterable[_Union[HostRoute, _Mapping]]] = ..., enable_dhcp: _Optional[bool] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class FixedIP(_message.Message):
    __slots__ = ("subnet_id", "ip_address")
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    subnet_id: str
    ip_address: str
    def __init__(self, subnet_id: _Optional[str] = ..., ip_address: _Optional[str] = ...) -> None: ...

class PortStage(_message.Message):
    __slots__ = ("name", "done", "at", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    done: bool
    at: float
    detail: str
    def __init__(self, name: _Optional[str] = ..., done: _Optional[bool] = ..., at: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class Port(_message.Message):
    __slots__ = ("id", "name", "network_id", "project_id", "mac_address", "fixed_ips", "device_id", "device_owner", "binding_host_id", "admin_state_up", "port_security_enabled", "status", "stages", "binding_vif_details", "tag", "revision_number", "created_at", "updated_at", "binding_vif_type", "binding_failure_reason", "security_groups", "allowed_address_pairs")
    class BindingVifDetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FIXED_IPS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_OWNER_FIELD_NUMBER: _ClassVar[int]
    BINDING_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_UP_FIELD_NUMBER: _ClassVar[int]
    PORT_SECURITY_ENABLED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    BINDING_VIF_DETAILS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    BINDING_VIF_TYPE_FIELD_NUMBER: _ClassVar[int]
    BINDING_FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUPS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ADDRESS_PAIRS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    network_id: str
    project_id: str
    mac_address: str
    fixed_ips: _containers.RepeatedCompositeFieldContainer[FixedIP]
    device_id: str
    device_owner: str
    binding_host_id: str
    admin_state_up: bool
    port_security_enabled: bool
    status: str
    stages: _containers.RepeatedCompositeFieldContainer[PortStage]
    binding_vif_details: _containers.ScalarMap[str, str]
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    binding_vif_type: str
    binding_failure_reason: str
    security_groups: _containers.RepeatedScalarFieldContainer[str]
    allowed_address_pairs: _containers.RepeatedCompositeFieldContainer[AddressPair]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., network_id: _Optional[str] = ..., project_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., fixed_ips: _Optional[_Iterable[_Union[FixedIP, _Mapping]]] = ..., device_id: _Optional[str] = ..., device_owner: _Optional[str] = ..., binding_host_id: _Optional[str] = ..., admin_state_up: _Optional[bool] = ..., port_security_enabled: _Optional[bool] = ..., status: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[PortStage, _Mapping]]] = ..., binding_vif_details: _Optional[_Mapping[str, str]] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., binding_vif_type: _Optional[str] = ..., binding_failure_reason: _Optional[str] = ..., security_groups: _Optional[_Iterable[str]] = ..., allowed_address_pairs: _Optional[_Iterable[_Union[AddressPair, _Mapping]]] = ...) -> None: ...

class AddressPair(_message.Message):
    __slots__ = ("ip_address", "mac_address")
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ip_address: str
    mac_address: str
    def __init__(self, ip_address: _Optional[str] = ..., mac_address: _Optional[str] = ...) -> None: ...

class Flavor(_message.Message):
    __slots__ = ("vcpus", "ram_mb", "disk_gb")
    VCPUS_FIELD_NUMBER: _ClassVar[int]
    RAM_MB_FIELD_NUMBER: _ClassVar[int]
    DISK_GB_FIELD_NUMBER: _ClassVar[int]
    vcpus: int
    ram_mb: int
    disk_gb: int
    def __init__(self, vcpus: _Optional[int] = ..., ram_mb: _Optional[int] = ..., disk_gb: _Optional[int] = ...) -> None: ...

class NetworkRequest(_message.Message):
    __slots__ = ("network_id", "port_id", "fixed_ip")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    port_id: str
    fixed_ip: str
    def __init__(self, network_id: _Optional[str] = ..., port_id: _Optional[str] = ..., fixed_ip: _Optional[str] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "name", "hostname", "project_id", "user_data", "public_keys", "metadata", "availability_zone", "host", "status", "ports", "tag", "revision_number", "created_at", "updated_at", "flavor", "image_id", "networks", "power_state", "task_state", "fault", "volumes", "launched_at")
    class PublicKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEYS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FLAVOR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    TASK_STATE_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    LAUNCHED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    hostname: str
    project_id: str
    user_data: bytes
    public_keys: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    availability_zone: str
    host: str
    status: str
    ports: _containers.RepeatedScalarFieldContainer[str]
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    flavor: Flavor
    image_id: str
    networks: _containers.RepeatedCompositeFieldContainer[NetworkRequest]
    power_state: str
    task_state: str
    fault: str
    volumes: _containers.RepeatedScalarFieldContainer[str]
    launched_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., hostname: _Optional[str] = ..., project_id: _Optional[str] = ..., user_data: _Optional[bytes] = ..., public_keys: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., availability_zone: _Optional[str] = ..., host: _Optional[str] = ..., status: _Optional[str] = ..., ports: _Optional[_Iterable[str]] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., flavor: _Optional[_Union[Flavor, _Mapping]] = ..., image_id: _Optional[str] = ..., networks: _Optional[_Iterable[_Union[NetworkRequest, _Mapping]]] = ..., power_state: _Optional[str] = ..., task_state: _Optional[str] = ..., fault: _Optional[str] = ..., volumes: _Optional[_Iterable[str]] = ..., launched_at: _Optional[float] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("id", "name", "project_id", "disk_format", "container_format", "size", "virtual_size", "sha256", "status", "min_disk", "min_ram", "properties", "tag", "revision_number", "created_at", "updated_at")
    class PropertiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DISK_FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VIRTUAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MIN_DISK_FIELD_NUMBER: _ClassVar[int]
    MIN_RAM_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    disk_format: str
    container_format: str
    size: int
    virtual_size: int
    sha256: str
    status: str
    min_disk: int
    min_ram: int
    properties: _containers.ScalarMap[str, str]
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., disk_format: _Optional[str] = ..., container_format: _Optional[str] = ..., size: _Optional[int] = ..., virtual_size: _Optional[int] = ..., sha256: _Optional[str] = ..., status: _Optional[str] = ..., min_disk: _Optional[int] = ..., min_ram: _Optional[int] = ..., properties: _Optional[_Mapping[str, str]] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class Volume(_message.Message):
    __slots__ = ("id", "name", "project_id", "size_gb", "image_id", "status", "instance_id", "device", "backend", "fault", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_GB_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    size_gb: int
    image_id: str
    status: str
    instance_id: str
    device: str
    backend: str
    fault: str
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., size_gb: _Optional[int] = ..., image_id: _Optional[str] = ..., status: _Optional[str] = ..., instance_id: _Optional[str] = ..., device: _Optional[str] = ..., backend: _Optional[str] = ..., fault: _Optional[str] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class SecurityGroup(_message.Message):
    __slots__ = ("id", "name", "description", "project_id", "rules", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    project_id: str
    rules: _containers.RepeatedCompositeFieldContainer[SecurityGroupRule]
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., project_id: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[SecurityGroupRule, _Mapping]]] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class SecurityGroupRule(_message.Message):
    __slots__ = ("id", "security_group_id", "project_id", "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "icmp_type", "icmp_code", "remote_ip_prefix", "remote_group_id", "description", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SECURITY_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    ETHERTYPE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MIN_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_MAX_FIELD_NUMBER: _ClassVar[int]
    ICMP_TYPE_FIELD_NUMBER: _ClassVar[int]
    ICMP_CODE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REMOTE_GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    security_group_id: str
    project_id: str
    direction: str
    ethertype: str
    protocol: str
    port_range_min: int
    port_range_max: int
    icmp_type: int
    icmp_code: int
    remote_ip_prefix: str
    remote_group_id: str
    description: str
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., security_group_id: _Optional[str] = ..., project_id: _Optional[str] = ..., direction: _Optional[str] = ..., ethertype: _Optional[str] = ..., protocol: _Optional[str] = ..., port_range_min: _Optional[int] = ..., port_range_max: _Optional[int] = ..., icmp_type: _Optional[int] = ..., icmp_code: _Optional[int] = ..., remote_ip_prefix: _Optional[str] = ..., remote_group_id: _Optional[str] = ..., description: _Optional[str] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class ExternalGatewayInfo(_message.Message):
    __slots__ = ("network_id", "enable_snat", "external_fixed_ips")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    ENABLE_SNAT_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIXED_IPS_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    enable_snat: bool
    external_fixed_ips: _containers.RepeatedCompositeFieldContainer[FixedIP]
    def __init__(self, network_id: _Optional[str] = ..., enable_snat: _Optional[bool] = ..., external_fixed_ips: _Optional[_Iterable[_Union[FixedIP, _Mapping]]] = ...) -> None: ...

class GatewayHost(_message.Message):
    __slots__ = ("host", "priority", "alive", "active")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    host: str
    priority: int
    alive: bool
    active: bool
    def __init__(self, host: _Optional[str] = ..., priority: _Optional[int] = ..., alive: _Optional[bool] = ..., active: _Optional[bool] = ...) -> None: ...

class Router(_message.Message):
    __slots__ = ("id", "name", "project_id", "admin_state_up", "external_gateway_info", "routes", "status", "interfaces", "gateway_port_id", "dnat_zone", "snat_zone", "gateway_hosts", "active_gateway_host", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_UP_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_GATEWAY_INFO_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_PORT_ID_FIELD_NUMBER: _ClassVar[int]
    DNAT_ZONE_FIELD_NUMBER: _ClassVar[int]
    SNAT_ZONE_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_HOSTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_GATEWAY_HOST_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    project_id: str
    admin_state_up: bool
    external_gateway_info: ExternalGatewayInfo
    routes: _containers.RepeatedCompositeFieldContainer[HostRoute]
    status: str
    interfaces: _containers.RepeatedScalarFieldContainer[str]
    gateway_port_id: str
    dnat_zone: int
    snat_zone: int
    gateway_hosts: _containers.RepeatedCompositeFieldContainer[GatewayHost]
    active_gateway_host: str
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., project_id: _Optional[str] = ..., admin_state_up: _Optional[bool] = ..., external_gateway_info: _Optional[_Union[ExternalGatewayInfo, _Mapping]] = ..., routes: _Optional[_Iterable[_Union[HostRoute, _Mapping]]] = ..., status: _Optional[str] = ..., interfaces: _Optional[_Iterable[str]] = ..., gateway_port_id: _Optional[str] = ..., dnat_zone: _Optional[int] = ..., snat_zone: _Optional[int] = ..., gateway_hosts: _Optional[_Iterable[_Union[GatewayHost, _Mapping]]] = ..., active_gateway_host: _Optional[str] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...

class FloatingIp(_message.Message):
    __slots__ = ("id", "project_id", "description", "floating_network_id", "floating_ip_address", "port_id", "fixed_ip_address", "router_id", "status", "host", "floating_port_id", "mac_address", "tag", "revision_number", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FLOATING_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    FLOATING_PORT_ID_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REVISION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    description: str
    floating_network_id: str
    floating_ip_address: str
    port_id: str
    fixed_ip_address: str
    router_id: str
    status: str
    host: str
    floating_port_id: str
    mac_address: str
    tag: int
    revision_number: int
    created_at: float
    updated_at: float
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., description: _Optional[str] = ..., floating_network_id: _Optional[str] = ..., floating_ip_address: _Optional[str] = ..., port_id: _Optional[str] = ..., fixed_ip_address: _Optional[str] = ..., router_id: _Optional[str] = ..., status: _Optional[str] = ..., host: _Optional[str] = ..., floating_port_id: _Optional[str] = ..., mac_address: _Optional[str] = ..., tag: _Optional[int] = ..., revision_number: _Optional[int] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ...) -> None: ...
