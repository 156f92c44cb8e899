"""Address checks the agent's services share: the model carries addresses as text, IPv4 and IPv6 alike."""

from __future__ import annotations

import ipaddress


def is_ipv4(text: str) -> bool:
    """True if ``text`` is one IPv4 address ("10.0.0.5")."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def is_ipv4_interface(text: str) -> bool:
    """True if ``text`` is an IPv4 address, with or without a prefix length ("10.0.0.2/24")."""
    try:
        ipaddress.IPv4Interface(text)
    except ValueError:
        return False
    return True
