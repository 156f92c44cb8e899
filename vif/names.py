"""Host-side device names, derived from port ids so every tool finds the same device.

Linux allows 15 characters. Like Neutron, a VIF is ``tap`` + the first 11
characters of its port id (``tap3f2a9c1e-7b``); an OVS port has the same name.
"""

from __future__ import annotations

import re

IFNAMSIZ = 15
VIF_PREFIX = "tap"
ID_CHARS = 11

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def vif_device_name(port_id: str, prefix: str = VIF_PREFIX) -> str:
    """The host-side device (and OVS port) name of a port's VIF."""
    safe = _UNSAFE.sub("", port_id)
    if not safe:
        raise ValueError(f"port id {port_id!r} has no characters usable in a device name")
    name = prefix + safe[:ID_CHARS]
    if len(name) > IFNAMSIZ:
        raise ValueError(f"device name {name} for port {port_id} is longer than {IFNAMSIZ} characters")
    return name


def tap_mac(vm_mac: str) -> str:
    """The MAC of the host end of a tap: the VM's with the first octet fe (libvirt's convention),
    so the host end never answers for the VM's address."""
    return "fe" + vm_mac.lower()[2:]
