"""Build the DHCP side's dataclasses from the agent's protobuf desired state (``loom.v1.LocalNetwork``/``LocalPort``).

The agent names the localport namespace and its interface; everything else comes from the controller.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from dataplane.common.addresses import is_ipv4_interface
from dataplane.common.logs import get_logger
from protos.loom.v1 import agent_pb2

from .model import DEFAULT_LEASE_SECONDS, DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig, Route

log = get_logger(__name__)


def network_config_from_proto(
    network: agent_pb2.LocalNetwork,
    namespace: str,
    interface: str,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> DhcpNetworkConfig:
    """The network's DHCP config: its DHCP-enabled IPv4 subnets that the localport has an address in."""
    localport_ips = [ipaddress.IPv4Interface(ip) for ip in network.localport_ips if is_ipv4_interface(ip)]
    subnets: list[DhcpSubnetConfig] = []
    for subnet in network.subnets:
        if not subnet.enable_dhcp:
            continue
        try:
            cidr = ipaddress.ip_network(subnet.cidr, strict=False)
        except ValueError:
            log.warning(
                "dhcp subnet with a bad cidr skipped", network_id=network.network_id, subnet_id=subnet.subnet_id
            )
            continue
        if cidr.version != 4:
            continue
        server = next((ip.ip for ip in localport_ips if ip.ip in cidr), None)
        if server is None:
            # dnsmasq serves a static range only on a subnet its interface has an address in.
            log.warning(
                "dhcp subnet skipped: the localport has no address in it",
                network_id=network.network_id,
                subnet_id=subnet.subnet_id,
                cidr=str(cidr),
            )
            continue
        subnets.append(
            DhcpSubnetConfig(
                subnet_id=subnet.subnet_id,
                cidr=str(cidr),
                server_ip=str(server),
                gateway_ip=subnet.gateway_ip,
                dns_nameservers=tuple(subnet.dns_nameservers),
                host_routes=tuple(Route(r.destination, r.nexthop) for r in subnet.host_routes),
            )
        )
    return DhcpNetworkConfig(
        network_id=network.network_id,
        namespace=namespace,
        interface=interface,
        subnets=tuple(subnets),
        mtu=network.mtu,
        dns_domain=network.dns_domain,
        lease_seconds=lease_seconds,
    )


def host_entry_from_proto(port: agent_pb2.LocalPort, network: DhcpNetworkConfig) -> DhcpHostEntry:
    """The port's static leases: its IPv4 addresses that fall in the network's served subnets."""
    ips = tuple(ip for ip in port.ip_addresses if network.subnet_of(ip) is not None)
    return DhcpHostEntry(port_id=port.port_id, mac=port.mac_address, ips=ips, hostname=port.hostname)


def configs_from_proto(
    networks: Iterable[agent_pb2.LocalNetwork],
    ports: Iterable[agent_pb2.LocalPort],
    locate: Callable[[str], tuple[str, str]],
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> tuple[list[DhcpNetworkConfig], dict[str, list[DhcpHostEntry]]]:
    """Everything ``DhcpManager.sync`` takes, from a host's desired state.

    ``locate(network_id)`` returns the (namespace, interface) the agent created for the network's localport.
    Ports of networks not in ``networks`` are ignored; the network's own ``network:dhcp`` port is not leased.
    """
    configs: dict[str, DhcpNetworkConfig] = {}
    localport_ids: set[str] = set()
    for network in networks:
        namespace, interface = locate(network.network_id)
        configs[network.network_id] = network_config_from_proto(network, namespace, interface, lease_seconds)
        localport_ids.add(network.localport_id)
    hosts: dict[str, list[DhcpHostEntry]] = {network_id: [] for network_id in configs}
    for port in ports:
        config = configs.get(port.network_id)
        if config is None or port.port_id in localport_ids:
            continue
        hosts[port.network_id].append(host_entry_from_proto(port, config))
    return list(configs.values()), hosts
