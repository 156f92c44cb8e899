"""The host side of a qemu tap: a tap that is not an OVS port, a veth that is, and tc between them.

Why: a virtio-net guest on a tap opened with qemu's (and libvirt's) default
options uses the tap's virtio-net header to hand the host unfinished work:
TCP/UDP checksums left for "hardware" (CHECKSUM_PARTIAL) and TCP segments up
to 64 KiB (GSO). OVS's userspace datapath (netdev, the only one on machines
without the openvswitch module) reads its ports through AF_PACKET and
forwards such packets as they are: ping works, TCP never opens. OVS 3.1's
``userspace-tso-enable`` handles them between local ports, but drops them at
the VXLAN tunnel ("Tunneling packets with HW offload flags is not
supported").

So the kernel finishes the work before OVS sees the packet::

    qemu ── tap<id> ──tc ingress: mirred redirect──▶ lvt<id> ══veth══ lvo<id> ── br-int (iface-id, ofport)
            tap<id> ◀──tc ingress: mirred redirect── lvt<id>

``lvt`` has TX checksum offload off (so no TSO either): when tc sends the
guest's packet out of it, the kernel's transmit path (validate_xmit_skb)
completes the checksum and cuts GSO packets into MTU-sized segments. ``lvo``
is the OVS port and carries the VIF's external_ids, so flows installed
before the guest exists apply at once. Everything ``lvo`` receives from OVS
comes back through ``lvt`` and is redirected into the tap. Guests need no
special options; ``tc -s filter show dev tap<id> ingress`` counts the
packets each way.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.protocols import ETH_P_ALL

from dataplane.common.logs import get_logger
from vif import link
from vif.names import IFNAMSIZ, vif_device_name
from vif.offload import disable_tx_checksum

log = get_logger(__name__)

TAP_SIDE_PREFIX = "lvt"  # the veth end tc redirects the tap's packets out of
OVS_SIDE_PREFIX = "lvo"  # the veth end that is the VIF's OVS port

INGRESS = 0xFFFF0000  # the ingress qdisc's handle, "ffff:" in tc's notation
_FILTER_PRIO = 1
_MATCH_ALL = ["0x0/0x0+0"]  # u32 matching every packet (cls_matchall is not built on every kernel)
_ENOENT = 2
_ENODEV = 19


class TapError(RuntimeError):
    """Setting up or reading the tap's redirect failed; the message names the device."""


@dataclass(frozen=True, slots=True)
class TapDevices:
    """The three devices of one qemu VIF."""

    tap: str  # what qemu or libvirt opens (-netdev tap,ifname=...)
    tap_side: str  # veth end in the tap's path: TX offloads off
    ovs_side: str  # veth end on br-int: the VIF's OVS port

    @classmethod
    def for_port(cls, port_id: str, tap: str | None = None) -> TapDevices:
        return cls(
            tap or vif_device_name(port_id),
            vif_device_name(port_id, TAP_SIDE_PREFIX),
            vif_device_name(port_id, OVS_SIDE_PREFIX),
        )


def _where(netns: str | None) -> str:
    return f"netns {netns}" if netns else "this namespace"


def _index(ipr: IPRoute, ifname: str, netns: str | None) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise TapError(f"device {ifname} does not exist in {_where(netns)}")
    return found[0]


def _redirect_ifindex(ipr: IPRoute, index: int) -> int | None:
    """The ifindex the ingress filter of device ``index`` redirects to; None without one."""
    try:
        filters = ipr.get_filters(index, parent=INGRESS)
    except NetlinkError as exc:
        if exc.code in (_ENOENT, 22):  # no ingress qdisc (EINVAL on some kernels)
            return None
        raise
    for msg in filters:
        opts = msg.get_attr("TCA_OPTIONS")
        acts = opts.get_attr("TCA_U32_ACT") if opts is not None else None
        if acts is None:
            continue
        for _, act in acts["attrs"]:
            if act.get_attr("TCA_ACT_KIND") != "mirred":
                continue
            parms = act.get_attr("TCA_ACT_OPTIONS").get_attr("TCA_MIRRED_PARMS")
            if parms is not None:
                return int(parms["ifindex"])
    return None


def _ensure_redirect(ipr: IPRoute, src: int, dst: int, what: str) -> None:
    """Everything arriving on ``src`` leaves by ``dst`` (ingress qdisc, u32 match-all, mirred redirect)."""
    if _redirect_ifindex(ipr, src) == dst:
        return
    try:
        ipr.tc("del", "ingress", src, INGRESS)  # a stale or foreign filter set goes with its qdisc
    except NetlinkError as exc:
        if exc.code not in (_ENOENT, 22):
            raise
    try:
        ipr.tc("add", "ingress", src, INGRESS)
        ipr.tc(
            "add-filter",
            "u32",
            src,
            parent=INGRESS,
            prio=_FILTER_PRIO,
            protocol=ETH_P_ALL,
            keys=_MATCH_ALL,
            target=0x1,
            action={"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": dst},
        )
    except NetlinkError as exc:
        raise TapError(f"cannot redirect {what}: {exc}") from exc


def _ensure_local_veth(ipr: IPRoute, a: str, b: str, mtu: int, netns: str | None) -> None:
    """A veth pair ``a`` <-> ``b``, both in this namespace; rebuilt if the names exist otherwise paired."""
    have_a, have_b = link.get_link(a, netns), link.get_link(b, netns)
    paired = (
        have_a is not None
        and have_b is not None
        and have_a.kind == have_b.kind == "veth"
        and have_a.peer_index == have_b.index
        and have_b.peer_index == have_a.index
    )
    if paired:
        return
    for have in (have_a, have_b):
        if have is not None:
            ipr.link("del", index=have.index)
    try:
        ipr.link("add", ifname=a, kind="veth", mtu=mtu, peer={"ifname": b, "mtu": mtu})
    except NetlinkError as exc:
        raise TapError(f"cannot create veth {a} <-> {b} in {_where(netns)}: {exc}") from exc
    log.debug("tap veth created", tap_side=a, ovs_side=b)


def ensure(devices: TapDevices, *, mac: str, mtu: int, netns: str | None = None) -> None:
    """The tap (for qemu, with ``mac`` on the host end), the veth, and the redirects both ways. Idempotent.

    Afterwards ``devices.ovs_side`` is ready to become the VIF's OVS port.
    """
    for name in (devices.tap, devices.tap_side, devices.ovs_side):
        if len(name) > IFNAMSIZ:
            raise TapError(f"device name {name} is longer than {IFNAMSIZ} characters")
    link.ensure_tap(devices.tap, mac=mac, mtu=mtu, netns=netns)
    with link.iproute(netns) as ipr:
        _ensure_local_veth(ipr, devices.tap_side, devices.ovs_side, mtu, netns)
    for name in (devices.tap_side, devices.ovs_side):
        link.disable_ipv6(name, netns)  # the host must not speak on the VM's wire
        # Off on the tap side is the point (it makes the kernel finish checksums and segment);
        # off on the OVS side too, like every other port of the userspace datapath.
        disable_tx_checksum(name, netns)
        link.set_link(name, netns, mtu=mtu, up=True)
    with link.iproute(netns) as ipr:
        tap = _index(ipr, devices.tap, netns)
        tap_side = _index(ipr, devices.tap_side, netns)
        _ensure_redirect(ipr, tap, tap_side, f"{devices.tap} -> {devices.tap_side}")
        _ensure_redirect(ipr, tap_side, tap, f"{devices.tap_side} -> {devices.tap}")
    log.debug("tap redirect ready", tap=devices.tap, tap_side=devices.tap_side, ovs_side=devices.ovs_side)


def ensure_direct(devices: TapDevices, *, mac: str, mtu: int, netns: str | None = None) -> None:
    """Only the tap, to be an OVS port itself: no veth, no redirect (left from an earlier plug). Idempotent."""
    link.ensure_tap(devices.tap, mac=mac, mtu=mtu, netns=netns)
    link.delete_link(devices.tap_side, netns)
    with link.iproute(netns) as ipr:
        try:
            ipr.tc("del", "ingress", _index(ipr, devices.tap, netns), INGRESS)
        except NetlinkError as exc:
            if exc.code not in (_ENOENT, 22):
                raise TapError(f"cannot remove the redirect of {devices.tap}: {exc}") from exc


def redirect_target(ifname: str, netns: str | None = None) -> str | None:
    """The device ``ifname``'s ingress is redirected to (None: no redirect, or no such device)."""
    with link.iproute(netns) as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        target = _redirect_ifindex(ipr, found[0])
        if target is None:
            return None
        msgs = ipr.link("get", index=target)
        return msgs[0].get_attr("IFLA_IFNAME") if msgs else None


def devices_of(ifname: str, netns: str | None = None) -> TapDevices | None:
    """The devices of the tap VIF that ``ifname`` (its tap) belongs to, read from the system; None if not one."""
    tap_side = redirect_target(ifname, netns)
    if tap_side is None or redirect_target(tap_side, netns) != ifname:
        return None
    info = link.get_link(tap_side, netns)
    if info is None or info.kind != "veth":
        return None
    with link.iproute(netns) as ipr:
        msgs = ipr.link("get", index=info.peer_index)
        ovs_side = msgs[0].get_attr("IFLA_IFNAME") if msgs else None
    return TapDevices(ifname, tap_side, ovs_side) if ovs_side else None


def remove(devices: TapDevices, netns: str | None = None) -> bool:
    """Delete the tap and the veth (their tc filters go with them); True if anything existed."""
    existed = False
    for name in (devices.tap, devices.tap_side, devices.ovs_side):  # one end of a veth takes the other
        existed = link.delete_link(name, netns) or existed
    return existed
