"""Flows the agent renders for an external network's next hops, once it has resolved their MACs itself.

The controller cannot know the MAC of the upstream router on a provider
network; the agent ARPs for it through the provider bridge (see
``dataplane.external``) and adds, per resolved next hop, the neighbor-table
flow that routing's ``reg3`` = next hop leads to. Pure, shared by the agent and
tests.
"""

from __future__ import annotations

from dataplane.contract import pipeline as p
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.fields import ipv4_to_int
from dataplane.contract.flow import Flow, Match, Resubmit, SetField

PRIO_EXTERNAL_NEIGHBOR = 100


def external_neighbor_flow(network_tag: int, ip: str, mac: str) -> Flow:
    """Next hop ``ip`` on external network ``network_tag`` is at ``mac``: out the provider bridge."""
    return Flow(
        p.NEIGHBOR,
        PRIO_EXTERNAL_NEIGHBOR,
        Match.of(metadata=network_tag, reg3=ipv4_to_int(ip)),
        (SetField.of("eth_dst", mac), Resubmit(p.PROVIDER_EGRESS)),
        cookie=make_cookie(CookieKind.EXTERNAL_NEIGHBOR, network_tag),
    )
