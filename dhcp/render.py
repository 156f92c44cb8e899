"""Pure rendering of one network's dnsmasq: its command line, its options file and its per-port host files.

What goes where decides what a change costs (see ``docs`` in ``dhcp/__init__.py``):

- the command line holds what dnsmasq only reads at start: the interface, one ``dhcp-range`` per served
  subnet (static leases only) and the forced MTU option. A change there restarts dnsmasq.
- the options file (``--dhcp-optsfile``) holds router, DNS servers, domain and classless static routes. A
  change there is a rewrite plus SIGHUP.
- the hosts directory (``--dhcp-hostsdir``) holds one file per port. dnsmasq reads new and changed files via
  inotify, so a new port costs nothing else; a changed or removed file needs a SIGHUP, because dnsmasq only
  ever adds host records until it re-reads everything.

DNS is off (``--port=0``): the localport namespace has no path to any upstream resolver, so guests get the
subnet's ``dns_nameservers`` directly, and no DNS option when there are none.
"""

from __future__ import annotations

import ipaddress
import re

from dataplane.common.addresses import is_ipv4
from dataplane.common.constants import METADATA_IP

from .model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig, Route
from .paths import NetworkPaths

METADATA_ROUTE_DESTINATION = f"{METADATA_IP}/32"
DEFAULT_ROUTE_DESTINATION = "0.0.0.0/0"
# dnsmasq refuses more leases than this; computed from the served subnets' sizes, within these bounds.
MIN_LEASE_MAX = 1000
MAX_LEASE_MAX = 1 << 20

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]")


def subnet_tag(subnet_id: str) -> str:
    """The dnsmasq tag that ties a subnet's options to its ``dhcp-range``."""
    return "s-" + _TAG_UNSAFE.sub("_", subnet_id)


def dhcp_hostname(name: str) -> str:
    """A hostname dnsmasq accepts (one DNS label), or "" when ``name`` has none.

    The domain goes out separately (option 15), and dnsmasq drops a dhcp-host whose name has a domain part
    that differs from its own ``--domain``, so only the first label is kept.
    """
    label = name.strip().split(".", 1)[0].lower()
    label = _LABEL_UNSAFE.sub("-", label).strip("-")
    return label[:63].rstrip("-")


def classless_routes(subnet: DhcpSubnetConfig) -> list[Route]:
    """Option 121 for a subnet, in order: its host routes, the metadata route, the default route.

    RFC 3442 clients that get option 121 ignore option 3, so the default route via the gateway must be in
    it. A destination listed twice keeps its first next hop: an explicit host route wins.
    """
    routes: list[Route] = []
    seen: set[str] = set()

    def add(destination: str, nexthop: str) -> None:
        key = str(ipaddress.IPv4Network(destination, strict=False))
        if key not in seen and nexthop:
            seen.add(key)
            routes.append(Route(key, nexthop))

    for route in subnet.host_routes:
        add(route.destination, route.nexthop)
    add(METADATA_ROUTE_DESTINATION, subnet.server_ip)
    if subnet.gateway_ip:
        add(DEFAULT_ROUTE_DESTINATION, subnet.gateway_ip)
    return routes


def render_opts(network: DhcpNetworkConfig) -> str:
    """The ``--dhcp-optsfile`` content: per-subnet router, DNS, domain and classless routes."""
    lines: list[str] = []
    domain = network.dns_domain.strip().rstrip(".")
    for subnet in network.subnets:
        tag = f"tag:{subnet_tag(subnet.subnet_id)}"
        # An empty router option stops dnsmasq from offering its own address as the router.
        lines.append(f"{tag},option:router" + (f",{subnet.gateway_ip}" if subnet.gateway_ip else ""))
        v4_dns = [ip for ip in subnet.dns_nameservers if is_ipv4(ip)]
        if v4_dns:
            lines.append(f"{tag},option:dns-server," + ",".join(v4_dns))
        if domain:
            lines.append(f"{tag},option:domain-name,{domain}")
        routes = ",".join(f"{r.destination},{r.nexthop}" for r in classless_routes(subnet))
        if routes:
            lines.append(f"{tag},option:classless-static-route,{routes}")
            # The same list as option 249, which older Windows clients request instead of 121.
            lines.append(f"{tag},249,{routes}")
    return "".join(line + "\n" for line in lines)


def render_host_file(entry: DhcpHostEntry) -> str:
    """One port's ``dhcp-host`` lines (one per IPv4 address), or "" when it has no address to lease."""
    mac = entry.mac.lower()
    hostname = dhcp_hostname(entry.hostname)
    lines = []
    for ip in entry.ips:
        fields = [mac, ip]
        if hostname:
            fields.append(hostname)
        lines.append(",".join(fields))
    return "".join(line + "\n" for line in lines)


def lease_max(network: DhcpNetworkConfig) -> int:
    total = sum(subnet.network.num_addresses for subnet in network.subnets)
    return max(MIN_LEASE_MAX, min(MAX_LEASE_MAX, total))


def dnsmasq_argv(network: DhcpNetworkConfig, paths: NetworkPaths, binary: str, quiet_dhcp: bool = False) -> list[str]:
    """dnsmasq's full command line for a network (it also identifies the process when the agent restarts)."""
    argv = [
        binary,
        "--conf-file=/dev/null",  # never /etc/dnsmasq.conf
        "--no-hosts",
        "--no-resolv",
        "--port=0",  # DHCP only: see the module docstring
        f"--interface={network.interface}",
        "--except-interface=lo",
        f"--pid-file={paths.pid_file}",
        f"--dhcp-hostsdir={paths.hosts_dir}",
        f"--dhcp-optsfile={paths.opts_file}",
        f"--dhcp-leasefile={paths.lease_file}",
        f"--log-facility={paths.log_file}",
        # The only DHCP server on this segment: answer requests for unknown leases at once (after a restart
        # or a lease-file loss) instead of making clients time out.
        "--dhcp-authoritative",
        f"--dhcp-lease-max={lease_max(network)}",
    ]
    if quiet_dhcp:
        argv.append("--quiet-dhcp")
    for subnet in network.subnets:
        tag = subnet_tag(subnet.subnet_id)
        net = subnet.network
        argv.append(
            f"--dhcp-range=set:{tag},{net.network_address},static,{net.netmask},{network.lease_seconds}s",
        )
        if network.mtu > 0:
            # Forced: many clients (busybox udhcpc by default) never ask for option 26, and a guest that keeps
            # MTU 1500 on a VXLAN overlay loses every full-size packet. The options file cannot force options.
            argv.append(f"--dhcp-option-force=tag:{tag},option:mtu,{network.mtu}")
    return argv
