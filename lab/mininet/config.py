"""The lab's shape: how many hypervisors, its address plan, and the names of everything it creates.

Every name the lab puts on the machine starts with ``prefix`` (default
"lab"): namespaces, Linux bridges, the veths Mininet makes, the state
directory /tmp/loom-<prefix>. That is what lets ``clean`` find leftovers and
leave everything else alone. Address ranges are documentation/benchmarking
ones (RFC 5737, RFC 2544) and are never routed to the machine's uplink; the
lab refuses to start if the management range overlaps a route the root
namespace already has.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

from dataplane.common.constants import VXLAN_OVERHEAD

STATE_ROOT = "/tmp"
STATE_DIR_PREFIX = "loom-"

MGMT_NIC = "mgmt0"
UNDERLAY_NIC = "phy0"
EXTERNAL_NIC = "ext0"

DEFAULT_MGMT_CIDR = "198.18.0.0/24"
API_PORT = 9696  # the controller's gRPC port, on config.controller_ip

_PREFIX = re.compile(r"^lab[a-z0-9]{0,2}$")


@dataclass(frozen=True, slots=True)
class LabConfig:
    """Parameters of one lab. Two labs at once need different prefixes and address ranges."""

    hypervisors: int = 3
    prefix: str = "lab"
    # Root namespace: .254 (the controller listens there). Not 192.0.2.0/24: on these machines
    # the uplink itself is 192.0.2.2/24, and the lab must never share a route with the uplink.
    mgmt_cidr: str = DEFAULT_MGMT_CIDR
    underlay_cidr: str = "198.51.100.0/24"  # tunnel endpoints, on each hypervisor's br-phy
    external_cidr: str = "203.0.113.0/24"  # the external network: its .1 is the upstream router (lab.mininet.external)
    internet_cidr: str = "198.19.100.0/24"  # behind the upstream router; only inside the lab's own namespaces
    underlay_mtu: int = 1500
    datapath_type: str = "netdev"
    integration_bridge: bool = True  # create br-int + the VXLAN port at start (the agent re-ensures them)
    state_root: str = STATE_ROOT

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"lab prefix {self.prefix!r} must be 'lab' plus up to 2 lowercase letters/digits")
        if not 1 <= self.hypervisors <= 99:
            raise ValueError("a lab has 1 to 99 hypervisors")
        for cidr in (self.mgmt_cidr, self.underlay_cidr, self.external_cidr):
            if ipaddress.ip_network(cidr).num_addresses < self.hypervisors + 3:
                raise ValueError(f"{cidr} is too small for {self.hypervisors} hypervisors")

    # -- names ----------------------------------------------------------------

    @property
    def state_dir(self) -> str:
        return os.path.join(self.state_root, f"{STATE_DIR_PREFIX}{self.prefix}")

    def hv_name(self, index: int) -> str:
        """The hypervisor's host name (what its agent registers as): hv1, hv2, ..."""
        return f"hv{index}"

    def hv_netns(self, index: int) -> str:
        return f"{self.prefix}hv{index}"

    def vm_netns(self, vm_name: str) -> str:
        return f"{self.prefix}-{vm_name}"

    @property
    def mgmt_bridge(self) -> str:
        return f"{self.prefix}mgmt"

    @property
    def underlay_bridge(self) -> str:
        return f"{self.prefix}ul"

    @property
    def external_bridge(self) -> str:
        return f"{self.prefix}ext"

    @property
    def linux_bridges(self) -> tuple[str, str, str]:
        return (self.mgmt_bridge, self.underlay_bridge, self.external_bridge)

    # -- addresses ------------------------------------------------------------

    def _host(self, cidr: str, index: int) -> str:
        return str(ipaddress.ip_network(cidr).network_address + index)

    def mgmt_ip(self, index: int) -> str:
        return self._host(self.mgmt_cidr, index)

    def tunnel_ip(self, index: int) -> str:
        return self._host(self.underlay_cidr, index)

    @property
    def controller_ip(self) -> str:
        """The root namespace's address on the management network."""
        net = ipaddress.ip_network(self.mgmt_cidr)
        return str(net.broadcast_address - 1)

    def prefixlen(self, cidr: str) -> int:
        return ipaddress.ip_network(cidr).prefixlen

    @property
    def vm_mtu(self) -> int:
        """The MTU a VM gets on this lab's overlay."""
        return self.underlay_mtu - VXLAN_OVERHEAD
