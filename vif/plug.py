"""Plug and unplug VIFs: a veth into a "VM" namespace, or a tap for qemu, as a port of br-int.

The OVS port carries the external_ids the agent's monitor looks for
(``iface-id`` = the port id, ``attached-mac``, ``vm-id``, ``iface-status``)
and, when the controller allocated one, ``ofport_request``, so the port's
flows, installed earlier, apply the moment it appears. The device exists
before the OVS port, so ovs-vswitchd numbers it at once.

A tap is not an OVS port itself: its OVS port is a veth that the kernel
finishes the guest's checksums and TCP segments on (``vif/tap.py`` says why),
so guests work with qemu's and libvirt's default tap options.

Everything happens in the calling thread's network namespace (the one
ovs-vswitchd runs in) and in the VM's namespace; the OVSDB connection is a
parameter: a socket path/remote, or an open ``OvsDriver`` to reuse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from dataplane.common import netns as ns
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.types import ATTACHED_MAC, IFACE_ID, IFACE_STATUS, VM_ID
from vif import link
from vif import tap as tapdev
from vif.names import tap_mac, vif_device_name

log = get_logger(__name__)

KIND_VETH = "veth"
KIND_TAP = "tap"


class PlugError(RuntimeError):
    """Plugging failed; the message names the port and device."""


@dataclass(frozen=True, slots=True)
class PluggedVif:
    """A VIF as plugged: host device = OVS port name, and where its other end is."""

    port_id: str
    device: str  # veth: host end, the OVS port; tap: the tap qemu opens
    kind: str  # "veth" or "tap"
    mac: str  # the VM's MAC (attached-mac)
    mtu: int
    ofport: int
    bridge: str
    netns: str | None = None  # veth: the VM namespace
    ifname: str | None = None  # veth: the device inside it
    ovs_port: str = ""  # the OVS port's name when it is not ``device`` (a tap's veth)


@contextmanager
def _driver(ovsdb: str | OvsDriver | None) -> Iterator[OvsDriver]:
    if isinstance(ovsdb, OvsDriver):
        yield ovsdb
        return
    with OvsDriver(ovsdb) as driver:
        yield driver


def _external_ids(port_id: str, mac: str, vm_id: str) -> dict[str, str]:
    return {IFACE_ID: port_id, ATTACHED_MAC: mac.lower(), VM_ID: vm_id, IFACE_STATUS: "active"}


def _require_bridge(driver: OvsDriver, bridge: str, port_id: str) -> None:
    if not driver.bridge_exists(bridge):
        raise PlugError(f"port {port_id}: bridge {bridge} does not exist in {driver.remote}")


def _add_to_bridge(
    driver: OvsDriver, bridge: str, device: str, port_id: str, mac: str, vm_id: str, ofport: int | None
) -> int:
    got = driver.ensure_port(bridge, device, external_ids=_external_ids(port_id, mac, vm_id), ofport_request=ofport)
    if got <= 0:
        raise PlugError(f"port {port_id}: ovs-vswitchd could not open {device} on {bridge} (ofport {got})")
    if ofport is not None and got != ofport:
        holder = next((p.name for p in driver.list_ports(bridge) if p.ofport == ofport), "another port")
        driver.delete_port(device)
        raise PlugError(f"port {port_id}: ofport {ofport} requested for {device} is taken by {holder} on {bridge}")
    return got


def plug_veth(
    port_id: str,
    mac: str,
    mtu: int,
    netns: str,
    ifname: str = "eth0",
    ofport: int | None = None,
    ovsdb: str | OvsDriver | None = None,
    bridge: str = BR_INT,
    vm_id: str = "",
    ips: Sequence[str] = (),
    gateway: str | None = None,
    device: str | None = None,
) -> PluggedVif:
    """Plug a veth whose peer is ``ifname`` in namespace ``netns`` (created if missing). Idempotent.

    The peer gets ``mac`` and ``mtu`` and is up (so is the namespace's lo);
    TX checksum offload is off on both ends. ``ips`` (CIDRs) and ``gateway``
    optionally configure the namespace, for tests without DHCP.
    """
    dev = device or vif_device_name(port_id)
    with _driver(ovsdb) as driver:
        _require_bridge(driver, bridge, port_id)
        try:
            link.ensure_veth_pair(dev, netns, ifname, peer_mac=mac, mtu=mtu)
            if ips:
                link.set_addresses(ifname, ips, netns=netns)
            if gateway:
                link.set_default_route(gateway, netns=netns)
        except (link.LinkError, ns.NetnsError, OSError) as exc:
            raise PlugError(f"port {port_id}: cannot set up veth {dev} <-> {netns}/{ifname}: {exc}") from exc
        got = _add_to_bridge(driver, bridge, dev, port_id, mac, vm_id, ofport)
    log.info("port plugged", port_id=port_id, device=dev, kind=KIND_VETH, netns=netns, ofport=got, bridge=bridge)
    return PluggedVif(port_id, dev, KIND_VETH, mac.lower(), mtu, got, bridge, netns, ifname)


def plug_tap(
    port_id: str,
    mac: str,
    mtu: int,
    ofport: int | None = None,
    ovsdb: str | OvsDriver | None = None,
    bridge: str = BR_INT,
    vm_id: str = "",
    device: str | None = None,
    direct: bool = False,
) -> PluggedVif:
    """Plug a persistent tap for qemu (``-netdev tap,ifname=DEV,script=no``). Idempotent.

    The tap's own MAC is ``mac`` with first octet fe; ``mac`` is the guest's.
    Its OVS port is the veth ``lvo<id>``, which tc connects to the tap through
    ``lvt<id>`` (``vif/tap.py``). ``direct`` makes the tap itself the OVS port,
    as before: then TCP works only for guests that finish their own checksums
    and segments (qemu ``vnet_hdr=off``, or virtio-net ``csum=off``).
    """
    devices = tapdev.TapDevices.for_port(port_id, device)
    ovs_port, stale = (devices.tap, devices.ovs_side) if direct else (devices.ovs_side, devices.tap)
    with _driver(ovsdb) as driver:
        _require_bridge(driver, bridge, port_id)
        driver.delete_port(stale)  # a re-plug that switches modes leaves no second OVS port behind
        try:
            if direct:
                tapdev.ensure_direct(devices, mac=tap_mac(mac), mtu=mtu)
            else:
                tapdev.ensure(devices, mac=tap_mac(mac), mtu=mtu)
        except (link.LinkError, tapdev.TapError, OSError) as exc:
            raise PlugError(f"port {port_id}: cannot set up tap {devices.tap}: {exc}") from exc
        got = _add_to_bridge(driver, bridge, ovs_port, port_id, mac, vm_id, ofport)
    log.info(
        "port plugged",
        port_id=port_id,
        device=devices.tap,
        kind=KIND_TAP,
        ovs_port=ovs_port,
        ofport=got,
        bridge=bridge,
        direct=direct,
    )
    return PluggedVif(port_id, devices.tap, KIND_TAP, mac.lower(), mtu, got, bridge, ovs_port=ovs_port)


def unplug(
    port_id: str | None = None,
    *,
    ifname: str | None = None,
    ovsdb: str | OvsDriver | None = None,
    delete_netns: str | None = None,
) -> bool:
    """Remove a VIF's OVS port(s) and device, by port id or host device name; True if anything existed.

    By port id, every OVS port whose iface-id is the port id goes, as do the
    devices named after it. A tap's veth and the tap are found from each other
    through their redirects, whatever their names. ``delete_netns`` also
    removes that namespace.
    """
    if port_id is None and ifname is None:
        raise ValueError("unplug needs a port id or a device name")
    devices = {ifname} if ifname else {vif_device_name(port_id or "")}
    with _driver(ovsdb) as driver:
        if port_id is not None:
            derived = tapdev.TapDevices.for_port(port_id)
            devices |= {derived.tap_side, derived.ovs_side}
            devices |= {p.name for p in driver.find_ports(port_id, bridge=None)}
        for dev in list(devices):
            if (found := tapdev.devices_of(dev)) is not None:  # a tap: its veth
                devices |= {found.tap_side, found.ovs_side}
            if (tap := tapdev.redirect_target(dev)) is not None:  # a tap's veth: the tap (under any name)
                devices.add(tap)
        existed = False
        for dev in sorted(devices):
            existed = driver.delete_port(dev) or existed
            existed = link.delete_link(dev) or existed
    if delete_netns:
        existed = ns.delete(delete_netns) or existed
    log.info("port unplugged", port_id=port_id or "", devices=",".join(sorted(devices)), existed=existed)
    return existed
