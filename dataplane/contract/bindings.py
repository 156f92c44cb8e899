"""Port binding flows: the only flows that name a VIF's OpenFlow port number.

The controller allocates each bound port an OpenFlow port number that the VIF
requests, but only the agent knows the number OVS really assigned, so the agent
renders these flows (with the requested number before the VIF exists, so a VM's
first packet already finds its flows). Pure, shared by the agent and tests.
"""

from __future__ import annotations

from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.flow import Flow, Match, Output, SetField

PRIO_BINDING = 100


def _binding_flows(kind: CookieKind, port_tag: int, network_tag: int, ofport: int, first: int) -> tuple[Flow, ...]:
    cookie = make_cookie(kind, port_tag)
    return (
        Flow(
            p.CLASSIFY,
            PRIO_BINDING,
            Match.of(in_port=ofport),
            (SetField(p.REG_NETWORK, network_tag), SetField(p.REG_SRC_PORT, port_tag)),
            goto=first,
            cookie=cookie,
        ),
        Flow(p.DELIVER, PRIO_BINDING, Match.of(reg7=port_tag), (Output(ofport),), cookie=cookie),
    )


def vif_binding_flows(port_tag: int, network_tag: int, ofport: int) -> tuple[Flow, ...]:
    """A VM's VIF: its packets enter port security; packets for it leave on it."""
    return _binding_flows(CookieKind.PORT_BINDING, port_tag, network_tag, ofport, p.PORT_SECURITY)


def localport_binding_flows(port_tag: int, network_tag: int, ofport: int) -> tuple[Flow, ...]:
    """The DHCP/metadata namespace's port: trusted, so it skips port security."""
    return _binding_flows(CookieKind.LOCALPORT, port_tag, network_tag, ofport, p.ARP_RESPONDER)
