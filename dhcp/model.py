"""What the DHCP side of the agent needs to know: one network's dnsmasq and its ports' static leases.

These dataclasses are the input of the pure renderer (``dhcp.render``) and of ``DhcpManager.sync``. They are
built from the agent's protobuf desired state by ``dhcp.convert``. Only IPv4 is served (DHCPv6 and router
advertisements are future work).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

DEFAULT_LEASE_SECONDS = 86400


@dataclass(frozen=True, slots=True)
class Route:
    """A classless static route: ``destination`` is a CIDR, ``nexthop`` an IPv4 address."""

    destination: str
    nexthop: str


@dataclass(frozen=True, slots=True)
class DhcpSubnetConfig:
    """One DHCP-enabled IPv4 subnet served on the network's localport.

    ``server_ip`` is the localport's address in this subnet: dnsmasq answers from it, and it is the next hop
    of the route to 169.254.169.254 (the metadata proxy listens in the same namespace).
    """

    subnet_id: str
    cidr: str
    server_ip: str
    gateway_ip: str = ""
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[Route, ...] = ()

    @property
    def network(self) -> ipaddress.IPv4Network:
        return _ipv4_network(self.cidr)


@dataclass(frozen=True, slots=True)
class DhcpNetworkConfig:
    """One network's dnsmasq: where it runs and what every lease on it carries."""

    network_id: str
    namespace: str  # the localport namespace the agent created
    interface: str  # the localport veth end inside that namespace
    subnets: tuple[DhcpSubnetConfig, ...] = ()
    mtu: int = 0  # 0: no MTU option
    dns_domain: str = ""
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    def subnet_of(self, ip: str) -> DhcpSubnetConfig | None:
        """The served subnet holding ``ip``, or None."""
        try:
            address = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        for subnet in self.subnets:
            if address in subnet.network:
                return subnet
        return None


@dataclass(frozen=True, slots=True)
class DhcpHostEntry:
    """One port's static leases on one network.

    ``ips`` holds only the port's IPv4 addresses in served subnets; it may be empty (a port with DHCP off
    still counts as "DHCP ready").
    """

    port_id: str
    mac: str
    ips: tuple[str, ...] = ()
    hostname: str = ""


@functools.lru_cache(maxsize=4096)
def _ipv4_network(cidr: str) -> ipaddress.IPv4Network:
    # Parsed once per CIDR: subnet_of runs for every address of every port on every agent reconcile.
    return ipaddress.IPv4Network(cidr, strict=False)
