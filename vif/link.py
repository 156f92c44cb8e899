"""Network devices over netlink (pyroute2): veth pairs into namespaces, taps, addresses, routes.

Every function acts in the calling thread's namespace unless given ``netns``,
so the same code works in the root namespace, in a lab hypervisor's namespace,
or from a thread that entered one. Functions are idempotent: they look first
and change only what differs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dataplane.common import netns as ns
from dataplane.common.logs import get_logger
from vif.names import IFNAMSIZ
from vif.offload import disable_tx_checksum

log = get_logger(__name__)


class LinkError(RuntimeError):
    """A device operation failed; the message names the device and namespace."""


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What we need to know about one device."""

    name: str
    index: int
    kind: str  # "veth", "tun", "openvswitch", "" for physical/unknown
    mac: str
    mtu: int
    up: bool
    peer_index: int  # veth: the peer's ifindex (in the peer's namespace); else 0


def _where(netns: str | None) -> str:
    return f"netns {netns}" if netns else "this namespace"


@contextmanager
def iproute(netns: str | None = None) -> Iterator[IPRoute]:
    """An IPRoute whose socket lives in ``netns`` (or the calling thread's namespace)."""
    with ns.entered(netns):
        ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _info(msg: object) -> LinkInfo:
    kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""  # type: ignore[attr-defined]
    return LinkInfo(
        name=msg.get("IFLA_IFNAME"),  # type: ignore[attr-defined]
        index=msg["index"],  # type: ignore[index]
        kind=kind,
        mac=(msg.get("IFLA_ADDRESS") or "").lower(),  # type: ignore[attr-defined]
        mtu=msg.get("IFLA_MTU") or 0,  # type: ignore[attr-defined]
        up=bool(msg["flags"] & 1),  # type: ignore[index]
        peer_index=(msg.get("IFLA_LINK") or 0) if kind == "veth" else 0,  # type: ignore[attr-defined]
    )


def _get(ipr: IPRoute, ifname: str) -> LinkInfo | None:
    try:
        msgs = ipr.link("get", ifname=ifname)
    except NetlinkError as exc:
        if exc.code == 19:  # ENODEV
            return None
        raise
    return _info(msgs[0]) if msgs else None


def _require(ipr: IPRoute, ifname: str, netns: str | None) -> LinkInfo:
    """The device ``ifname``; LinkError when it does not exist."""
    link = _get(ipr, ifname)
    if link is None:
        raise LinkError(f"device {ifname} does not exist in {_where(netns)}")
    return link


def get_link(ifname: str, netns: str | None = None) -> LinkInfo | None:
    """The device ``ifname``, or None when it does not exist."""
    with iproute(netns) as ipr:
        return _get(ipr, ifname)


def list_links(netns: str | None = None) -> list[LinkInfo]:
    with iproute(netns) as ipr:
        return [_info(m) for m in ipr.link("dump")]


def delete_link(ifname: str, netns: str | None = None) -> bool:
    """Delete a device (a veth takes its peer with it); True if it existed."""
    with iproute(netns) as ipr:
        link = _get(ipr, ifname)
        if link is None:
            return False
        try:
            ipr.link("del", index=link.index)
        except NetlinkError as exc:
            if exc.code == 19:
                return False
            raise LinkError(f"cannot delete {ifname} in {_where(netns)}: {exc}") from exc
    log.debug("link deleted", ifname=ifname, netns=netns or "")
    return True


def set_link(
    ifname: str,
    netns: str | None = None,
    *,
    mac: str | None = None,
    mtu: int | None = None,
    up: bool | None = True,
) -> LinkInfo:
    """Set MAC, MTU and state of a device where they differ."""
    with iproute(netns) as ipr:
        return _set_link(ipr, ifname, netns, mac=mac, mtu=mtu, up=up)


def _set_link(
    ipr: IPRoute,
    ifname: str,
    netns: str | None,
    *,
    mac: str | None = None,
    mtu: int | None = None,
    up: bool | None = True,
    link: LinkInfo | None = None,
) -> LinkInfo:
    """set_link on an open handle; ``link`` (if the caller just read it) saves a netlink round trip."""
    link = link or _require(ipr, ifname, netns)
    changes: dict[str, object] = {}
    if mac is not None and link.mac != mac.lower():
        changes["address"] = mac.lower()
    if mtu is not None and link.mtu != mtu:
        changes["mtu"] = mtu
    if changes:
        try:
            ipr.link("set", index=link.index, **changes)
        except NetlinkError as exc:
            raise LinkError(f"cannot set {changes} on {ifname} in {_where(netns)}: {exc}") from exc
    if up is not None and link.up != up:
        ipr.link("set", index=link.index, state="up" if up else "down")
    if not changes and (up is None or link.up == up):
        return link  # nothing changed: what we read is still true
    return _get(ipr, ifname) or link


def disable_ipv6(ifname: str, netns: str | None = None) -> None:
    """No IPv6 on a host-side port device: the host must not talk on the VM's wire."""
    with ns.entered(netns):
        try:
            with open(f"/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6", "w") as f:
                f.write("1")
        except FileNotFoundError:
            pass  # IPv6 disabled on this machine altogether


def ensure_veth_pair(
    host_ifname: str,
    netns: str,
    peer_ifname: str,
    *,
    peer_mac: str,
    mtu: int,
    host_netns: str | None = None,
) -> LinkInfo:
    """A veth pair: ``host_ifname`` here (or in ``host_netns``), ``peer_ifname`` in ``netns``.

    Both ends get ``mtu``, the peer gets ``peer_mac``; both are up, with TX
    checksum offload off; the host end has no IPv6. An existing pair is
    reused when its ends still point at each other, else it is rebuilt.
    """
    if len(host_ifname) > IFNAMSIZ or len(peer_ifname) > IFNAMSIZ:
        raise LinkError(f"device names must be at most {IFNAMSIZ} characters: {host_ifname}, {peer_ifname}")
    ns.create(netns)
    with iproute(host_netns) as host, iproute(netns) as guest:
        have = _get(host, host_ifname)
        peer = _get(guest, peer_ifname)
        paired = (
            have is not None
            and have.kind == "veth"
            and peer is not None
            and peer.kind == "veth"
            and have.peer_index == peer.index
            and peer.peer_index == have.index
        )
        if not paired:
            if have is not None:
                host.link("del", index=have.index)
            if peer is not None:
                guest.link("del", index=peer.index)
            try:
                host.link(
                    "add",
                    ifname=host_ifname,
                    kind="veth",
                    mtu=mtu,
                    peer={"ifname": peer_ifname, "address": peer_mac.lower(), "mtu": mtu, "net_ns_fd": ns.path(netns)},
                )
            except NetlinkError as exc:
                raise LinkError(
                    f"cannot create veth {host_ifname} ({_where(host_netns)}) <-> {peer_ifname} (netns {netns}): {exc}"
                ) from exc
            log.debug("veth created", ifname=host_ifname, peer=peer_ifname, netns=netns)
            have = peer = None  # just made: read them back below
        disable_ipv6(host_ifname, host_netns)
        disable_tx_checksum(host_ifname, host_netns)
        disable_tx_checksum(peer_ifname, netns)
        # The same two handles for the rest: opening a pyroute2 socket costs more than the checks.
        _set_link(guest, peer_ifname, netns, mac=peer_mac, mtu=mtu, up=True, link=peer)
        return _set_link(host, host_ifname, host_netns, mtu=mtu, up=True, link=have)


def ensure_tap(ifname: str, *, mac: str, mtu: int, netns: str | None = None) -> LinkInfo:
    """A persistent tap (for qemu to open later), up, with ``mac``, ``mtu``, TX checksum offload off."""
    if len(ifname) > IFNAMSIZ:
        raise LinkError(f"device name {ifname} is longer than {IFNAMSIZ} characters")
    # The whole block runs inside the namespace: pyroute2 creates taps by an ioctl on
    # /dev/net/tun, which puts the device in the namespace of the calling thread.
    with ns.entered(netns), IPRoute() as ipr:
        have = _get(ipr, ifname)
        if have is not None and have.kind != "tun":
            ipr.link("del", index=have.index)
            have = None
        if have is None:
            try:
                ipr.link("add", ifname=ifname, kind="tuntap", mode="tap")
            except NetlinkError as exc:
                raise LinkError(f"cannot create tap {ifname} in {_where(netns)}: {exc}") from exc
            log.debug("tap created", ifname=ifname)
    disable_ipv6(ifname, netns)
    disable_tx_checksum(ifname, netns)
    return set_link(ifname, netns, mac=mac, mtu=mtu, up=True)


def _addresses(ipr: IPRoute, index: int) -> set[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    found = set()
    for msg in ipr.get_addr(index=index):
        found.add(ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"))
    return found


def set_addresses(ifname: str, cidrs: Sequence[str], netns: str | None = None, *, exact: bool = True) -> None:
    """Give ``ifname`` the addresses ``cidrs``; with ``exact`` remove the others (not link-local IPv6)."""
    wanted = {ipaddress.ip_interface(c) for c in cidrs}
    with iproute(netns) as ipr:
        link = _require(ipr, ifname, netns)
        have = _addresses(ipr, link.index)
        # Remove first: deleting a subnet's primary address takes its secondaries with it.
        if exact:
            for addr in have - wanted:
                if addr.version == 6 and addr.ip.is_link_local:
                    continue
                ipr.addr("del", index=link.index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
        for addr in sorted(wanted - have, key=str):
            try:
                ipr.addr("add", index=link.index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
            except NetlinkError as exc:
                raise LinkError(f"cannot add {addr} to {ifname} in {_where(netns)}: {exc}") from exc


def remove_address(ifname: str, cidr: str, netns: str | None = None) -> bool:
    addr = ipaddress.ip_interface(cidr)
    with iproute(netns) as ipr:
        link = _get(ipr, ifname)
        if link is None or addr not in _addresses(ipr, link.index):
            return False
        ipr.addr("del", index=link.index, address=str(addr.ip), prefixlen=addr.network.prefixlen)
        return True


def set_default_route(gateway: str, netns: str | None = None) -> None:
    """Point the default route of ``netns`` at ``gateway``."""
    dst = "0.0.0.0/0" if ipaddress.ip_address(gateway).version == 4 else "::/0"
    with iproute(netns) as ipr:
        try:
            ipr.route("replace", dst=dst, gateway=gateway)
        except NetlinkError as exc:
            raise LinkError(f"cannot route default via {gateway} in {_where(netns)}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RouteInfo:
    dst: str  # CIDR
    gateway: str
    ifname: str


def gateway_routes(ifname: str, netns: str | None = None) -> list[RouteInfo]:
    """IPv4 routes through a gateway that leave by ``ifname`` (the ones to move with its address)."""
    with iproute(netns) as ipr:
        link = _get(ipr, ifname)
        if link is None:
            return []
        routes = []
        for msg in ipr.route("dump", family=2, oif=link.index):
            gateway = msg.get("RTA_GATEWAY")
            if not gateway or msg["table"] != 254:
                continue
            dst = msg.get("RTA_DST") or "0.0.0.0"
            routes.append(RouteInfo(f"{dst}/{msg['dst_len']}", gateway, ifname))
        return routes


def add_route(dst: str, gateway: str, ifname: str, netns: str | None = None) -> None:
    with iproute(netns) as ipr:
        link = _require(ipr, ifname, netns)
        ipr.route("replace", dst=dst, gateway=gateway, oif=link.index)


def routes(netns: str | None = None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Destinations of the main routing table (default routes as 0.0.0.0/0 and ::/0)."""
    found = []
    with iproute(netns) as ipr:
        for family, any_addr in ((2, "0.0.0.0"), (10, "::")):
            for msg in ipr.route("dump", family=family):
                if msg["table"] != 254:
                    continue
                dst = msg.get("RTA_DST") or any_addr
                found.append(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
    return found
