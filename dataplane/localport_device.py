"""Localports: the veth that attaches a per-network service namespace (DHCP, metadata) to br-int.

The host end is an ordinary port of br-int (external_ids:loom-owner=localport,
so the VIF monitor, which looks for iface-id, ignores it unless the caller
adds one); the other end sits in the namespace with the service's MAC and IPs,
which are the same on every host. TX checksum offload is off on both ends, or
DHCP replies would leave with bad UDP checksums through the userspace datapath.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from dataplane.common import netns as ns
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.ovs.idl import OvsdbError
from dataplane.ovs.types import LOOM_OWNER, LocalPort
from vif import link

if TYPE_CHECKING:
    from dataplane.ovs.driver import OvsDriver

log = get_logger(__name__)


def add_localport(
    driver: OvsDriver,
    name: str,
    netns: str,
    mac: str,
    ips: Sequence[str],
    mtu: int,
    ofport_request: int | None = None,
    bridge: str = BR_INT,
    *,
    ns_ifname: str | None = None,
    external_ids: Mapping[str, str] | None = None,
) -> LocalPort:
    """Create or repair localport ``name``: namespace, veth, addresses, OVS port. Idempotent.

    ``ips`` are CIDRs set exactly on the namespace end (e.g. "10.0.0.2/24",
    "169.254.169.254/32"); ``ns_ifname`` defaults to ``name``.
    """
    inner = ns_ifname or name
    link.ensure_veth_pair(name, netns, inner, peer_mac=mac, mtu=mtu)
    link.set_addresses(inner, ips, netns=netns, exact=True)
    ofport = driver.ensure_port(
        bridge,
        name,
        external_ids={LOOM_OWNER: "localport", **(external_ids or {})},
        ofport_request=ofport_request,
    )
    if ofport <= 0:
        raise OvsdbError(f"localport {name} on {bridge}: ovs-vswitchd gave ofport {ofport}")
    if ofport_request is not None and ofport != ofport_request:
        raise OvsdbError(f"localport {name} on {bridge} got ofport {ofport}, not the requested {ofport_request}")
    log.info("localport ready", name=name, netns=netns, ofport=ofport, ips=",".join(ips))
    return LocalPort(name=name, netns=netns, ns_ifname=inner, mac=mac.lower(), ips=tuple(ips), mtu=mtu, ofport=ofport)


def remove_localport(driver: OvsDriver, name: str, netns: str | None = None, *, delete_netns: bool = False) -> bool:
    """Remove the OVS port and the veth (and the namespace when asked); True if anything existed."""
    existed = driver.delete_port(name)
    existed = link.delete_link(name) or existed
    if netns is not None and delete_netns:
        existed = ns.delete(netns) or existed
    log.info("localport removed", name=name, netns=netns or "")
    return existed
