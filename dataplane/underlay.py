"""The underlay bridge of the userspace datapath: br-phy holding the NIC and the tunnel IP.

ovs-vswitchd (netdev datapath) sends VXLAN packets by its own routing table,
which it learns from the kernel's routes over OVS bridge devices; it then
resolves the next hop by ARP itself (`ovs-appctl tnl/arp/show`). So the tunnel
IP moves from the NIC to br-phy's internal port, the NIC becomes a port of
br-phy (standalone: NORMAL switching), and routes through a gateway on the NIC
move along. br-phy keeps the NIC's MAC (other_config:hwaddr), so neighbours'
ARP caches stay right, and its MTU (mtu_request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataplane.common.constants import BR_PHY
from dataplane.common.logs import get_logger
from dataplane.ovs.types import LOOM_OWNER
from vif import link

if TYPE_CHECKING:
    from dataplane.ovs.driver import OvsDriver

log = get_logger(__name__)


class UnderlayError(RuntimeError):
    """The underlay could not be set up; the message names the NIC or bridge."""


def ensure(driver: OvsDriver, nic: str, ip_cidr: str, bridge: str = BR_PHY, datapath_type: str = "netdev") -> None:
    """Make ``bridge`` hold ``nic`` and carry ``ip_cidr``. Idempotent; acts in the calling thread's namespace."""
    nic_link = link.get_link(nic)
    if nic_link is None:
        raise UnderlayError(f"underlay NIC {nic} does not exist in this network namespace")
    routes = link.gateway_routes(nic)
    driver.ensure_bridge(
        bridge,
        datapath_type=datapath_type,
        fail_mode="standalone",
        other_config={"hwaddr": nic_link.mac, "disable-in-band": "true"},
        external_ids={LOOM_OWNER: "underlay"},
    )
    driver.ensure_port(bridge, bridge, type="internal", mtu_request=nic_link.mtu)
    ofport = driver.ensure_port(bridge, nic, external_ids={LOOM_OWNER: "underlay"})
    if ofport <= 0:
        raise UnderlayError(f"ovs-vswitchd could not add underlay NIC {nic} to {bridge} (ofport {ofport})")
    if link.get_link(bridge) is None:
        raise UnderlayError(f"bridge device {bridge} did not appear (is ovs-vswitchd running in this namespace?)")
    link.set_link(nic, up=True)
    link.set_addresses(bridge, [ip_cidr], exact=False)
    link.remove_address(nic, ip_cidr)
    link.set_link(bridge, up=True)
    for route in routes:
        link.add_route(route.dst, route.gateway, bridge)
    log.info("underlay ready", bridge=bridge, nic=nic, ip=ip_cidr, moved_routes=len(routes))
