"""The OpenFlow pipeline of br-int, declared once as data.

Every table has a stable number (operators read it in `ovs-ofctl dump-flows`),
a name, a purpose, the match fields its flows may use and the tables its flows
may continue to. :func:`check_flow` validates each compiled flow against this
declaration, so a compiler bug that jumps backwards or matches a field a table
does not own fails loudly at compile time, not silently in the switch.

Registers carry the logical context between tables:

    metadata   network tag of the packet's logical network
    reg6       tag of the logical port the packet came from (0: a tunnel)
    reg7       tag of the logical port the packet goes to

``docs/pipeline.md`` is the operator's guide to these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataplane.contract.flow import Flow, Resubmit

REG_NETWORK = "metadata"
REG_SRC_PORT = "reg6"
REG_DST_PORT = "reg7"


@dataclass(frozen=True, slots=True)
class Table:
    number: int
    name: str
    purpose: str
    match_fields: frozenset[str]
    next_tables: frozenset[int]  # goto_table and resubmit targets
    rendered_by_agent: bool = False  # flows here that name OpenFlow ports come from the agent


def _t(number: int, name: str, purpose: str, fields: str, nxt: tuple[int, ...], agent: bool = False) -> Table:
    return Table(number, name, purpose, frozenset(fields.split()), frozenset(nxt), agent)


CLASSIFY = 0
PORT_SECURITY = 10
EGRESS_ACL = 20
ARP_RESPONDER = 30
L3_LOOKUP = 40
L2_LOOKUP = 50
INGRESS_ACL = 60
DELIVER = 70

TABLES: dict[int, Table] = {
    t.number: t
    for t in (
        _t(
            CLASSIFY,
            "classify",
            "Which logical port or network a packet belongs to: a VIF by in_port (sets metadata and reg6), "
            "the tunnel by VNI (sets metadata, reg6=0). Anything else is dropped.",
            "in_port tunnel_id",
            (PORT_SECURITY, ARP_RESPONDER, L2_LOOKUP),
            agent=True,
        ),
        _t(
            PORT_SECURITY,
            "port_security",
            "Anti-spoofing for packets a VM sends: only its MAC and fixed IPs, ARP only for them, DHCP "
            "client requests from 0.0.0.0, never DHCP server replies.",
            "reg6 eth_src eth_type ipv4_src ipv4_dst ip_proto udp_src udp_dst arp_spa arp_sha",
            (EGRESS_ACL,),
        ),
        _t(
            EGRESS_ACL,
            "egress_acl",
            "Security groups, VM egress direction.",
            "reg6 metadata eth_type ip_proto ipv4_dst tcp_dst udp_dst ct_state ct_zone ct_mark conj_id",
            (ARP_RESPONDER,),
        ),
        _t(
            ARP_RESPONDER,
            "arp_responder",
            "Answers ARP requests for addresses the controller knows (ports, the DHCP/metadata localport) "
            "on the spot, so ARP for known addresses never floods or crosses a tunnel.",
            "metadata eth_type arp_op arp_tpa arp_spa",
            (L3_LOOKUP,),
        ),
        _t(
            L3_LOOKUP,
            "l3_lookup",
            "Distributed routing (router interfaces); until routers exist every packet continues to L2.",
            "metadata eth_dst eth_type ipv4_dst",
            (L2_LOOKUP,),
        ),
        _t(
            L2_LOOKUP,
            "l2_lookup",
            "Known destination MAC: to a local port (sets reg7) or through the tunnel to the owning host. "
            "Broadcast and unknown: the network's local ports and the tunnels to hosts with that network.",
            "metadata eth_dst reg6 eth_type ip_proto udp_dst",
            (INGRESS_ACL,),
        ),
        _t(
            INGRESS_ACL,
            "ingress_acl",
            "Security groups, VM ingress direction (default deny once groups apply).",
            "reg7 metadata eth_type ip_proto ipv4_src tcp_dst udp_dst ct_state ct_zone ct_mark conj_id",
            (DELIVER,),
        ),
        _t(
            DELIVER,
            "deliver",
            "Output to the local port named by reg7.",
            "reg7",
            (),
            agent=True,
        ),
    )
}


class PipelineError(ValueError):
    """A compiled flow does not fit the declared pipeline."""


def check_flow(flow: Flow) -> Flow:
    """Validate ``flow`` against the pipeline and return it unchanged."""
    table = TABLES.get(flow.table)
    if table is None:
        raise PipelineError(f"flow {flow.text()}: table {flow.table} is not declared")
    for f in flow.match.fields:
        if f.name not in table.match_fields:
            raise PipelineError(f"flow {flow.text()}: table {table.name} does not match on {f.name}")
    targets = [a.table for a in flow.actions if isinstance(a, Resubmit)]
    if flow.goto is not None:
        targets.append(flow.goto)
    for target in targets:
        if target not in table.next_tables:
            raise PipelineError(f"flow {flow.text()}: table {table.name} may not continue to table {target}")
    return flow


def table_name(number: int) -> str:
    table = TABLES.get(number)
    return table.name if table else f"table{number}"
