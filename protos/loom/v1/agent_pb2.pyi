from protos.loom.v1 import hypervisor_pb2 as _hypervisor_pb2
from protos.loom.v1 import resources_pb2 as _resources_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("host", "tunnel_ip", "datapath_type", "version", "physical_networks", "gateway_priority")
    HOST_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_IP_FIELD_NUMBER: _ClassVar[int]
    DATAPATH_TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    host: str
    tunnel_ip: str
    datapath_type: str
    version: str
    physical_networks: _containers.RepeatedScalarFieldContainer[str]
    gateway_priority: int
    def __init__(self, host: _Optional[str] = ..., tunnel_ip: _Optional[str] = ..., datapath_type: _Optional[str] = ..., version: _Optional[str] = ..., physical_networks: _Optional[_Iterable[str]] = ..., gateway_priority: _Optional[int] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("heartbeat_interval", "underlay_mtu")
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    UNDERLAY_MTU_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval: float
    underlay_mtu: int
    def __init__(self, heartbeat_interval: _Optional[float] = ..., underlay_mtu: _Optional[int] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("host", "last_revision", "epoch")
    HOST_FIELD_NUMBER: _ClassVar[int]
    LAST_REVISION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    host: str
    last_revision: int
    epoch: str
    def __init__(self, host: _Optional[str] = ..., last_revision: _Optional[int] = ..., epoch: _Optional[str] = ...) -> None: ...

class SyncMessage(_message.Message):
    __slots__ = ("revision", "epoch", "snapshot", "delta")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    revision: int
    epoch: str
    snapshot: HostState
    delta: HostDelta
    def __init__(self, revision: _Optional[int] = ..., epoch: _Optional[str] = ..., snapshot: _Optional[_Union[HostState, _Mapping]] = ..., delta: _Optional[_Union[HostDelta, _Mapping]] = ...) -> None: ...

class Flow(_message.Message):
    __slots__ = ("table", "priority", "match", "instructions")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    table: int
    priority: int
    match: bytes
    instructions: bytes
    def __init__(self, table: _Optional[int] = ..., priority: _Optional[int] = ..., match: _Optional[bytes] = ..., instructions: _Optional[bytes] = ...) -> None: ...

class FlowGroup(_message.Message):
    __slots__ = ("cookie", "flows")
    COOKIE_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    cookie: int
    flows: _containers.RepeatedCompositeFieldContainer[Flow]
    def __init__(self, cookie: _Optional[int] = ..., flows: _Optional[_Iterable[_Union[Flow, _Mapping]]] = ...) -> None: ...

class AddressSet(_message.Message):
    __slots__ = ("group_id", "ingress_conj_id", "egress_conj_id", "addresses")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    INGRESS_CONJ_ID_FIELD_NUMBER: _ClassVar[int]
    EGRESS_CONJ_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    ingress_conj_id: int
    egress_conj_id: int
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_id: _Optional[str] = ..., ingress_conj_id: _Optional[int] = ..., egress_conj_id: _Optional[int] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class AddressSetChange(_message.Message):
    __slots__ = ("group_id", "added", "removed")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    added: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_id: _Optional[str] = ..., added: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalPort(_message.Message):
    __slots__ = ("port_id", "tag", "network_id", "network_tag", "mac_address", "ip_addresses", "ofport", "mtu", "admin_state_up", "device_id", "device_owner", "hostname", "instance_id", "project_id")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TAG_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    OFPORT_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    ADMIN_STATE_UP_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_OWNER_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    tag: int
    network_id: str
    network_tag: int
    mac_address: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    ofport: int
    mtu: int
    admin_state_up: bool
    device_id: str
    device_owner: str
    hostname: str
    instance_id: str
    project_id: str
    def __init__(self, port_id: _Optional[str] = ..., tag: _Optional[int] = ..., network_id: _Optional[str] = ..., network_tag: _Optional[int] = ..., mac_address: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., ofport: _Optional[int] = ..., mtu: _Optional[int] = ..., admin_state_up: _Optional[bool] = ..., device_id: _Optional[str] = ..., device_owner: _Optional[str] = ..., hostname: _Optional[str] = ..., instance_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class DhcpSubnet(_message.Message):
    __slots__ = ("subnet_id", "cidr", "gateway_ip", "dns_nameservers", "host_routes", "enable_dhcp")
    SUBNET_ID_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_IP_FIELD_NUMBER: _ClassVar[int]
    DNS_NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
    HOST_ROUTES_FIELD_NUMBER: _ClassVar[int]
    ENABLE_DHCP_FIELD_NUMBER: _ClassVar[int]
    subnet_id: str
    cidr: str
    gateway_ip: str
    dns_nameservers: _containers.RepeatedScalarFieldContainer[str]
    host_routes: _containers.RepeatedCompositeFieldContainer[_resources_pb2.HostRoute]
    enable_dhcp: bool
    def __init__(self, subnet_id: _Optional[str] = ..., cidr: _Optional[str] = ..., gateway_ip: _Optional[str] = ..., dns_nameservers: _Optional[_Iterable[str]] = ..., host_routes: _Optional[_Iterable[_Union[_resources_pb2.HostRoute, _Mapping]]] = ..., enable_dhcp: _Optional[bool] = ...) -> None: ...

class LocalNetwork(_message.Message):
    __slots__ = ("network_id", "tag", "segmentation_id", "mtu", "localport_id", "localport_tag", "localport_mac", "localport_ips", "subnets", "dns_domain")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_ID_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    LOCALPORT_ID_FIELD_NUMBER: _ClassVar[int]
    LOCALPORT_TAG_FIELD_NUMBER: _ClassVar[int]
    LOCALPORT_MAC_FIELD_NUMBER: _ClassVar[int]
    LOCALPORT_IPS_FIELD_NUMBER: _ClassVar[int]
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    DNS_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    tag: int
    segmentation_id: int
    mtu: int
    localport_id: str
    localport_tag: int
    localport_mac: str
    localport_ips: _containers.RepeatedScalarFieldContainer[str]
    subnets: _containers.RepeatedCompositeFieldContainer[DhcpSubnet]
    dns_domain: str
    def __init__(self, network_id: _Optional[str] = ..., tag: _Optional[int] = ..., segmentation_id: _Optional[int] = ..., mtu: _Optional[int] = ..., localport_id: _Optional[str] = ..., localport_tag: _Optional[int] = ..., localport_mac: _Optional[str] = ..., localport_ips: _Optional[_Iterable[str]] = ..., subnets: _Optional[_Iterable[_Union[DhcpSubnet, _Mapping]]] = ..., dns_domain: _Optional[str] = ...) -> None: ...

class TunnelPeers(_message.Message):
    __slots__ = ("ips",)
    IPS_FIELD_NUMBER: _ClassVar[int]
    ips: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ips: _Optional[_Iterable[str]] = ...) -> None: ...

class ExternalNetwork(_message.Message):
    __slots__ = ("network_id", "tag", "physical_network", "vlan", "patch_ofport", "next_hops")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_NETWORK_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    PATCH_OFPORT_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOPS_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    tag: int
    physical_network: str
    vlan: int
    patch_ofport: int
    next_hops: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, network_id: _Optional[str] = ..., tag: _Optional[int] = ..., physical_network: _Optional[str] = ..., vlan: _Optional[int] = ..., patch_ofport: _Optional[int] = ..., next_hops: _Optional[_Iterable[str]] = ...) -> None: ...

class LocalFloatingIp(_message.Message):
    __slots__ = ("id", "address", "mac_address", "fixed_ip", "network_tag", "patch_ofport", "vlan", "dnat_zone", "snat_zone")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FIXED_IP_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TAG_FIELD_NUMBER: _ClassVar[int]
    PATCH_OFPORT_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    DNAT_ZONE_FIELD_NUMBER: _ClassVar[int]
    SNAT_ZONE_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    mac_address: str
    fixed_ip: str
    network_tag: int
    patch_ofport: int
    vlan: int
    dnat_zone: int
    snat_zone: int
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., mac_address: _Optional[str] = ..., fixed_ip: _Optional[str] = ..., network_tag: _Optional[int] = ..., patch_ofport: _Optional[int] = ..., vlan: _Optional[int] = ..., dnat_zone: _Optional[int] = ..., snat_zone: _Optional[int] = ...) -> None: ...

class GatewayRouter(_message.Message):
    __slots__ = ("router_id", "tag", "external_ip", "mac_address", "network_tag", "patch_ofport", "vlan", "before", "external_network_id", "gateway_hosts")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_IP_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    NETWORK_TAG_FIELD_NUMBER: _ClassVar[int]
    PATCH_OFPORT_FIELD_NUMBER: _ClassVar[int]
    VLAN_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_HOSTS_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    tag: int
    external_ip: str
    mac_address: str
    network_tag: int
    patch_ofport: int
    vlan: int
    before: _containers.RepeatedScalarFieldContainer[int]
    external_network_id: str
    gateway_hosts: int
    def __init__(self, router_id: _Optional[str] = ..., tag: _Optional[int] = ..., external_ip: _Optional[str] = ..., mac_address: _Optional[str] = ..., network_tag: _Optional[int] = ..., patch_ofport: _Optional[int] = ..., vlan: _Optional[int] = ..., before: _Optional[_Iterable[int]] = ..., external_network_id: _Optional[str] = ..., gateway_hosts: _Optional[int] = ...) -> None: ...

class GatewayTunnel(_message.Message):
    __slots__ = ("host", "remote_ip", "ofport")
    HOST_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_FIELD_NUMBER: _ClassVar[int]
    OFPORT_FIELD_NUMBER: _ClassVar[int]
    host: str
    remote_ip: str
    ofport: int
    def __init__(self, host: _Optional[str] = ..., remote_ip: _Optional[str] = ..., ofport: _Optional[int] = ...) -> None: ...

class HostL3(_message.Message):
    __slots__ = ("externals", "floating_ips", "gateway_routers", "gateway_tunnels")
    EXTERNALS_FIELD_NUMBER: _ClassVar[int]
    FLOATING_IPS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ROUTERS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_TUNNELS_FIELD_NUMBER: _ClassVar[int]
    externals: _containers.RepeatedCompositeFieldContainer[ExternalNetwork]
    floating_ips: _containers.RepeatedCompositeFieldContainer[LocalFloatingIp]
    gateway_routers: _containers.RepeatedCompositeFieldContainer[GatewayRouter]
    gateway_tunnels: _containers.RepeatedCompositeFieldContainer[GatewayTunnel]
    def __init__(self, externals: _Optional[_Iterable[_Union[ExternalNetwork, _Mapping]]] = ..., floating_ips: _Optional[_Iterable[_Union[LocalFloatingIp, _Mapping]]] = ..., gateway_routers: _Optional[_Iterable[_Union[GatewayRouter, _Mapping]]] = ..., gateway_tunnels: _Optional[_Iterable[_Union[GatewayTunnel, _Mapping]]] = ...) -> None: ...

class HostState(_message.Message):
    __slots__ = ("groups", "ports", "networks", "tunnel_ip", "metadata_url", "peers", "l3", "instances", "address_sets")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_IP_FIELD_NUMBER: _ClassVar[int]
    METADATA_URL_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    L3_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SETS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[FlowGroup]
    ports: _containers.RepeatedCompositeFieldContainer[LocalPort]
    networks: _containers.RepeatedCompositeFieldContainer[LocalNetwork]
    tunnel_ip: str
    metadata_url: str
    peers: TunnelPeers
    l3: HostL3
    instances: _containers.RepeatedCompositeFieldContainer[_hypervisor_pb2.InstanceSpec]
    address_sets: _containers.RepeatedCompositeFieldContainer[AddressSet]
    def __init__(self, groups: _Optional[_Iterable[_Union[FlowGroup, _Mapping]]] = ..., ports: _Optional[_Iterable[_Union[LocalPort, _Mapping]]] = ..., networks: _Optional[_Iterable[_Union[LocalNetwork, _Mapping]]] = ..., tunnel_ip: _Optional[str] = ..., metadata_url: _Optional[str] = ..., peers: _Optional[_Union[TunnelPeers, _Mapping]] = ..., l3: _Optional[_Union[HostL3, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[_hypervisor_pb2.InstanceSpec, _Mapping]]] = ..., address_sets: _Optional[_Iterable[_Union[AddressSet, _Mapping]]] = ...) -> None: ...

class HostDelta(_message.Message):
    __slots__ = ("upsert_groups", "removed_groups", "upsert_ports", "removed_ports", "upsert_networks", "removed_networks", "peers", "l3", "upsert_instances", "removed_instances", "removed_address_sets", "upsert_address_sets", "address_set_changes")
    UPSERT_GROUPS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_PORTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_PORTS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    L3_FIELD_NUMBER: _ClassVar[int]
    UPSERT_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    REMOVED_ADDRESS_SETS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_ADDRESS_SETS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_SET_CHANGES_FIELD_NUMBER: _ClassVar[int]
    upsert_groups: _containers.RepeatedCompositeFieldContainer[FlowGroup]
    removed_groups: _containers.RepeatedScalarFieldContainer[int]
    upsert_ports: _containers.RepeatedCompositeFieldContainer[LocalPort]
    removed_ports: _containers.RepeatedScalarFieldContainer[str]
    upsert_networks: _containers.RepeatedCompositeFieldContainer[LocalNetwork]
    removed_networks: _containers.RepeatedScalarFieldContainer[str]
    peers: TunnelPeers
    l3: HostL3
    upsert_instances: _containers.RepeatedCompositeFieldContainer[_hypervisor_pb2.InstanceSpec]
    removed_instances: _containers.RepeatedScalarFieldContainer[str]
    removed_address_sets: _containers.RepeatedScalarFieldContainer[str]
    upsert_address_sets: _containers.RepeatedCompositeFieldContainer[AddressSet]
    address_set_changes: _containers.RepeatedCompositeFieldContainer[AddressSetChange]
    def __init__(self, upsert_groups: _Optional[_Iterable[_Union[FlowGroup, _Mapping]]] = ..., removed_groups: _Optional[_Iterable[int]] = ..., upsert_ports: _Optional[_Iterable[_Union[LocalPort, _Mapping]]] = ..., removed_ports: _Optional[_Iterable[str]] = ..., upsert_networks: _Optional[_Iterable[_Union[LocalNetwork, _Mapping]]] = ..., removed_networks: _Optional[_Iterable[str]] = ..., peers: _Optional[_Union[TunnelPeers, _Mapping]] = ..., l3: _Optional[_Union[HostL3, _Mapping]] = ..., upsert_instances: _Optional[_Iterable[_Union[_hypervisor_pb2.InstanceSpec, _Mapping]]] = ..., removed_instances: _Optional[_Iterable[str]] = ..., removed_address_sets: _Optional[_Iterable[str]] = ..., upsert_address_sets: _Optional[_Iterable[_Union[AddressSet, _Mapping]]] = ..., address_set_changes: _Optional[_Iterable[_Union[AddressSetChange, _Mapping]]] = ...) -> None: ...

class PortState(_message.Message):
    __slots__ = ("port_id", "vif_present", "ofport", "flows_installed", "dhcp_ready", "metadata_ready", "revision")
    PORT_ID_FIELD_NUMBER: _ClassVar[int]
    VIF_PRESENT_FIELD_NUMBER: _ClassVar[int]
    OFPORT_FIELD_NUMBER: _ClassVar[int]
    FLOWS_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    DHCP_READY_FIELD_NUMBER: _ClassVar[int]
    METADATA_READY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    port_id: str
    vif_present: bool
    ofport: int
    flows_installed: bool
    dhcp_ready: bool
    metadata_ready: bool
    revision: int
    def __init__(self, port_id: _Optional[str] = ..., vif_present: _Optional[bool] = ..., ofport: _Optional[int] = ..., flows_installed: _Optional[bool] = ..., dhcp_ready: _Optional[bool] = ..., metadata_ready: _Optional[bool] = ..., revision: _Optional[int] = ...) -> None: ...

class PortStatusReport(_message.Message):
    __slots__ = ("host", "ports")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    host: str
    ports: _containers.RepeatedCompositeFieldContainer[PortState]
    def __init__(self, host: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[PortState, _Mapping]]] = ...) -> None: ...

class PortStatusAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("host", "applied_revision", "flows_installed")
    HOST_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    FLOWS_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    host: str
    applied_revision: int
    flows_installed: int
    def __init__(self, host: _Optional[str] = ..., applied_revision: _Optional[int] = ..., flows_installed: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GatewayReport(_message.Message):
    __slots__ = ("host", "active_routers")
    HOST_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ROUTERS_FIELD_NUMBER: _ClassVar[int]
    host: str
    active_routers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, host: _Optional[str] = ..., active_routers: _Optional[_Iterable[str]] = ...) -> None: ...

class GatewayReportAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
