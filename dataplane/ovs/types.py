"""What the OVSDB driver reports: ports on a bridge, interface events, localports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# external_ids keys on Interface rows (Neutron's and OVN's spelling, so tools know them).
IFACE_ID = "iface-id"
ATTACHED_MAC = "attached-mac"
VM_ID = "vm-id"
IFACE_STATUS = "iface-status"
# Marks rows Loom created for its own purposes ("localport", "tunnel", "underlay").
LOOM_OWNER = "loom-owner"


@dataclass(frozen=True, slots=True)
class PortInfo:
    """One port (with its single interface) as OVSDB and ovs-vswitchd see it now."""

    name: str
    bridge: str
    ofport: int  # -1: ovs-vswitchd failed to open it; 0: not assigned yet
    type: str  # "" (system device), "internal", "vxlan", ...
    iface_id: str
    attached_mac: str
    ofport_request: int | None
    error: str | None
    external_ids: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    bfd: Mapping[str, str] = field(default_factory=dict)
    bfd_status: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InterfaceEvent:
    """A VIF (an Interface with external_ids:iface-id on the watched bridge) appeared, changed or went.

    ``present`` is True once ovs-vswitchd has given it an OpenFlow port number
    (ofport > 0): flows can use it. False when it left the bridge or failed; a
    failure has ``error`` set (and ofport -1 when vswitchd could not open it).
    """

    iface_id: str
    ofport: int
    name: str
    attached_mac: str
    present: bool
    error: str | None = None
    external_ids: Mapping[str, str] = field(default_factory=dict)
    # time.monotonic() when the monitor saw the change; not part of the event's identity (==).
    seen_at: float = field(default=0.0, compare=False)

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True)
class LocalPort:
    """A veth attaching a per-network service namespace (DHCP, metadata) to br-int."""

    name: str  # host-side device and OVS port name
    netns: str
    ns_ifname: str  # the device's name inside the namespace
    mac: str
    ips: tuple[str, ...]
    mtu: int
    ofport: int
