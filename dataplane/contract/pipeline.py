"""The OpenFlow pipeline of br-int, declared once as data.

Every table has a stable number (operators read it in `ovs-ofctl dump-flows`),
a name, a purpose, the feature that owns it (and any other feature allowed to
write flows there), the priority band its flows use, the fields its flows may
match (and which of them masked), the fields they may set, the tables they may
continue to (goto_table, resubmit and ct(table=N) alike) and what a packet no
flow matches does (the table miss, compiled from this declaration).
:func:`check_flow` validates each compiled flow against it, so a compiler bug
that jumps backwards, matches a field a table does not own or writes into
another feature's table fails loudly at compile time, not silently in the
switch.

Registers carry the logical context between tables:

    metadata   network tag of the packet's logical network
    reg2       L3 scratch: the gateway a bundle_load chose (0xffff: this host)
    reg3       L3: the next hop's IPv4 address, set by routing, read by the neighbor table
    reg4       L3: tag of the router the packet is in (high bit: redirected to a gateway for SNAT)
    reg5       security groups: the conntrack zone
    reg6       tag of the logical port the packet came from (0: a tunnel or a provider network)
    reg7       tag of the logical port the packet goes to
    reg5       conntrack zone of the port whose security groups judge the packet
               (set in egress_ct / ingress_ct, read by the host-wide commits)

Conntrack zones are allocated by the controller, never read back from the
switch: a VIF's zone is its OpenFlow port number on its host (unique per host,
see ``dataplane.common.constants``), a router's zone comes from the router
zone range, the same on every host.

``docs/pipeline.md`` is the operator's guide to these tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataplane.contract.flow import Action, Conjunction, Ct, Flow, Move, Resubmit, SetField

REG_NETWORK = "metadata"
REG_SRC_PORT = "reg6"
REG_DST_PORT = "reg7"
REG_CT_ZONE = "reg5"
REG_ROUTER = "reg4"
REG_NEXT_HOP = "reg3"
REG_GATEWAY_CHOICE = "reg2"

# Features that own tables (controller.compiler.feature.Feature.name).
L2 = "l2"
SECGROUPS = "secgroups"
L3 = "l3"
NAT = "nat"
PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class Table:
    number: int
    name: str
    purpose: str
    owner: str  # the feature that owns the table (and its miss flow)
    match_fields: frozenset[str]
    next_tables: frozenset[int]  # goto_table, resubmit and ct(table=N) targets
    miss: int | None = None  # table a packet no flow matches continues to; None: dropped
    priorities: tuple[int, int] = (0, 200)  # the band every flow of the table uses
    masked_fields: frozenset[str] = frozenset()  # match fields that may carry a mask
    set_fields: frozenset[str] = frozenset()  # fields set_field / move / ct(exec) may write
    writers: frozenset[str] = frozenset()  # features other than the owner that add flows here
    rendered_by_agent: bool = False  # flows here that name OpenFlow ports come from the agent
    # Earlier tables a flow here may resubmit to on purpose (a loop the stages would not otherwise make);
    # every other target must be a later table.
    loops_to: frozenset[int] = frozenset()

    def may_write(self, feature: str) -> bool:
        return feature == self.owner or feature in self.writers


def _t(
    number: int,
    name: str,
    owner: str,
    purpose: str,
    fields: str,
    nxt: tuple[int, ...],
    *,
    miss: int | None = None,
    priorities: tuple[int, int] = (0, 200),
    masked: str = "",
    sets: str = "",
    writers: tuple[str, ...] = (),
    agent: bool = False,
    loops_to: tuple[int, ...] = (),
) -> Table:
    return Table(
        number,
        name,
        purpose,
        owner,
        frozenset(fields.split()),
        frozenset(nxt),
        miss,
        priorities,
        frozenset(masked.split()),
        frozenset(sets.split()),
        frozenset(writers),
        agent,
        frozenset(loops_to),
    )


CLASSIFY = 0
PROVIDER_INGRESS = 5
PORT_SECURITY = 10
EGRESS_CT = 15
EGRESS_ACL = 20
EGRESS_ACCEPT = 21
ARP_RESPONDER = 30
L3_LOOKUP = 40
DNAT = 41
ROUTING = 42
SNAT = 43
NEIGHBOR = 44
L2_LOOKUP = 50
INGRESS_CT = 55
INGRESS_ACL = 60
INGRESS_ACCEPT = 61
PROVIDER_EGRESS = 65
DELIVER = 70

_ACL_FIELDS = (
    "reg6 reg7 metadata eth_type ip_proto ipv4_src ipv4_dst tcp_src tcp_dst udp_src udp_dst icmpv4_type icmpv4_code "
    "ct_state ct_zone ct_mark ct_label conj_id"
)
_ACL_MASKED = "ipv4_src ipv4_dst tcp_dst udp_dst tcp_src udp_src ct_state ct_mark ct_label"

TABLES: dict[int, Table] = {
    t.number: t
    for t in (
        _t(
            CLASSIFY,
            "classify",
            L2,
            "Which logical port or network a packet belongs to: a VIF by in_port (sets metadata and reg6), "
            "the tunnel by VNI (sets metadata, reg6=0), a provider bridge's patch port by VLAN (popped), "
            "a gateway tunnel by the router its VNI names (redirected for SNAT: sets reg4, reg3 from the "
            "inner destination MAC). Anything else is dropped.",
            "in_port tunnel_id vlan_vid",
            (PROVIDER_INGRESS, PORT_SECURITY, ARP_RESPONDER, SNAT, L2_LOOKUP),
            masked="vlan_vid",
            sets="metadata reg6 reg4 reg3 reg2",
            writers=(PROVIDER, NAT),
            agent=True,
        ),
        _t(
            PROVIDER_INGRESS,
            "provider_ingress",
            PROVIDER,
            "Packets from a provider (flat/VLAN) network's physical bridge, tagged by classify: DHCP requests "
            "and anything for the localport are dropped (each host serves its own VMs), ARP requests go to "
            "the responder only for addresses this host owns there (floating IPs here, a router's external "
            "IP on its active gateway), everything else to routing admission and L2.",
            "metadata eth_type eth_dst arp_op arp_tpa ip_proto udp_dst",
            (ARP_RESPONDER, L3_LOOKUP, L2_LOOKUP),
            priorities=(0, 300),
            masked="eth_dst",
            sets="reg2",
            writers=(NAT,),
        ),
        _t(
            PORT_SECURITY,
            "port_security",
            L2,
            "Anti-spoofing for packets a VM sends: only its MAC and fixed IPs (and allowed address pairs), "
            "ARP only for them, DHCP client requests from 0.0.0.0, never DHCP server replies.",
            "reg6 eth_src eth_type ipv4_src ipv4_dst ip_proto udp_src udp_dst arp_spa arp_sha",
            (EGRESS_CT,),
            masked="ipv4_src arp_spa",
        ),
        _t(
            EGRESS_CT,
            "egress_ct",
            SECGROUPS,
            "Security groups, VM egress: IP packets of a port with port security go through conntrack in the "
            "port's zone (reg5 := zone), then to egress_acl. Other ports, ARP and DHCP requests pass untracked.",
            "reg6 metadata eth_type ip_proto udp_src udp_dst",
            (EGRESS_ACL,),
            miss=EGRESS_ACL,
            priorities=(0, 100),
            sets="reg5",
        ),
        _t(
            EGRESS_ACL,
            "egress_acl",
            SECGROUPS,
            "Security groups, VM egress: invalid packets drop; replies and related packets of allowed "
            "connections pass unless the connection is blocked; a request packet (new or established) goes "
            "to egress_accept when a rule allows it, else it is dropped (and an established connection is "
            "blocked, both ways).",
            _ACL_FIELDS,
            (EGRESS_ACCEPT, ARP_RESPONDER),
            miss=ARP_RESPONDER,
            priorities=(0, 65535),
            masked=_ACL_MASKED,
            sets="ct_mark ct_label",
        ),
        _t(
            EGRESS_ACCEPT,
            "egress_accept",
            SECGROUPS,
            "Security groups, VM egress: an allowed new connection is committed in the port's zone, an "
            "allowed packet of a blocked one unblocks it; then on to ARP/L3/L2.",
            "eth_type ct_state ct_mark",
            (ARP_RESPONDER,),
            miss=ARP_RESPONDER,
            priorities=(0, 100),
            masked="ct_state ct_mark",
            sets="ct_mark",
        ),
        _t(
            ARP_RESPONDER,
            "arp_responder",
            L2,
            "Answers ARP requests for addresses the controller knows (ports, the DHCP/metadata localport, "
            "router interfaces, floating IPs) on the spot, so ARP for known addresses never floods or "
            "crosses a tunnel.",
            "metadata eth_type arp_op arp_tpa arp_spa reg2",
            (L3_LOOKUP,),
            miss=L3_LOOKUP,
            sets="eth_src eth_dst arp_op arp_sha arp_spa arp_tha arp_tpa",
            writers=(L3, NAT),
        ),
        _t(
            L3_LOOKUP,
            "l3_lookup",
            L3,
            "Router admission: an IPv4 packet to a router port's MAC (an interface on its network, the "
            "gateway port or a floating IP on the external network) clears its conntrack state, sets reg4 to "
            "the router and goes to dnat; from the external network it is first un-SNATed in the router's "
            "SNAT zone (replies to connections SNATed on the way out). Any other frame to a router MAC is "
            "dropped, never flooded. Everything else continues to L2.",
            "metadata eth_dst eth_type",
            (DNAT, L2_LOOKUP),
            miss=L2_LOOKUP,
            sets="reg4",
            writers=(NAT,),
        ),
        _t(
            DNAT,
            "dnat",
            NAT,
            "Before routing, packets from the external network to a floating IP (un-SNATed already by "
            "admission): DNAT to the fixed IP in the router's DNAT zone.",
            "reg4 metadata eth_type ipv4_dst",
            (ROUTING,),
            miss=ROUTING,
        ),
        _t(
            ROUTING,
            "routing",
            L3,
            "Longest prefix match by priority (connected subnets, static routes): decrement TTL, source MAC := "
            "the router's port on the egress network, metadata := that network, reg6 := that router port, "
            "reg3 := the next hop. Towards the external network also: reg2 := the gateway host a bundle_load "
            "picks for SNAT, and an un-DNAT in the router's DNAT zone (replies of floating IP connections). "
            "ICMP echo to the router's own addresses is answered here.",
            "reg4 metadata eth_type ipv4_dst ip_proto icmpv4_type",
            (SNAT,),
            priorities=(0, 1000),
            masked="ipv4_dst",
            sets="metadata eth_src eth_dst reg2 reg3 reg6 ipv4_src ipv4_dst icmpv4_type",
        ),
        _t(
            SNAT,
            "snat",
            NAT,
            "After routing, towards the external network: a port with a floating IP is SNATed to it on its "
            "own host; other sources in the router's subnets go over a BFD-watched tunnel to the gateway "
            "host routing picked (reg2), or, when that is this host (0xffff), are SNATed here to the router's "
            "external IP.",
            "reg4 reg2 metadata eth_type ipv4_src",
            (NEIGHBOR,),
            miss=NEIGHBOR,
            priorities=(0, 1000),
            masked="ipv4_src",
            sets="eth_src eth_dst tunnel_id",
        ),
        _t(
            NEIGHBOR,
            "neighbor",
            L3,
            "The next hop (metadata + reg3) of a routed packet: destination MAC := the port that owns it, then "
            "to that port if it is here, through the tunnel to its host (the destination network's VNI), out "
            "the provider bridge (external network), or back into l3_lookup for a floating IP of this host "
            "(hairpin). An address no port owns is dropped, never flooded. External next hops (the upstream "
            "router) are rendered by the agent once it resolved their MAC.",
            "metadata reg3",
            (INGRESS_CT, PROVIDER_EGRESS),
            sets="eth_dst reg2 reg7 tunnel_id tun_ipv4_dst in_port",
            writers=(NAT, PROVIDER),
            agent=True,
            # Hairpin: a packet SNATed to one floating IP for another floating IP of this host re-enters
            # admission, as if it had come back from the external network.
            loops_to=(L3_LOOKUP,),
        ),
        _t(
            L2_LOOKUP,
            "l2_lookup",
            L2,
            "Known destination MAC: to a local port (sets reg7) or through the tunnel to the owning host. "
            "Broadcast and unknown: the network's local ports and the tunnels to hosts with that network.",
            "metadata eth_dst reg6 eth_type ip_proto udp_dst",
            (INGRESS_CT, PROVIDER_EGRESS),
            masked="eth_dst",
            sets="reg7 tunnel_id tun_ipv4_dst",
            writers=(L3, NAT, PROVIDER),
        ),
        _t(
            INGRESS_CT,
            "ingress_ct",
            SECGROUPS,
            "Security groups, VM ingress: IP packets to a port with port security go through conntrack in the "
            "destination port's zone (reg5 := zone), then to ingress_acl. Anything else loses the conntrack "
            "state an earlier zone gave it (ct_clear), so no other port's state is judged here.",
            "reg7 metadata eth_type ip_proto udp_src udp_dst",
            (INGRESS_ACL,),
            miss=INGRESS_ACL,
            priorities=(0, 100),
            sets="reg5",
        ),
        _t(
            INGRESS_ACL,
            "ingress_acl",
            SECGROUPS,
            "Security groups, VM ingress (default deny once port security applies): as egress_acl, for the "
            "destination port's ingress rules.",
            _ACL_FIELDS,
            (INGRESS_ACCEPT, DELIVER),
            miss=DELIVER,
            priorities=(0, 65535),
            masked=_ACL_MASKED,
            sets="ct_mark ct_label",
        ),
        _t(
            INGRESS_ACCEPT,
            "ingress_accept",
            SECGROUPS,
            "Security groups, VM ingress: commit allowed new connections, unblock allowed packets of blocked "
            "ones, then deliver.",
            "eth_type ct_state ct_mark",
            (DELIVER,),
            miss=DELIVER,
            priorities=(0, 100),
            masked="ct_state ct_mark",
            sets="ct_mark",
        ),
        _t(
            PROVIDER_EGRESS,
            "provider_egress",
            PROVIDER,
            "Out to a provider network's physical bridge: push its VLAN (if any) and output to the patch port "
            "of its physical network's bridge mapping.",
            "metadata",
            (),
            sets="vlan_vid",
        ),
        _t(
            DELIVER,
            "deliver",
            L2,
            "Output to the local port named by reg7.",
            "reg7",
            (),
            agent=True,
        ),
    )
}


class PipelineError(ValueError):
    """A compiled flow does not fit the declared pipeline."""


def check_flow(flow: Flow, feature: str | None = None) -> Flow:
    """Validate ``flow`` against the pipeline (and, given one, the feature writing it); return it unchanged."""
    table = TABLES.get(flow.table)
    if table is None:
        raise PipelineError(f"flow {flow.text()}: table {flow.table} is not declared")
    if feature is not None and not table.may_write(feature):
        raise PipelineError(f"flow {flow.text()}: feature {feature} may not write table {table.name}")
    low, high = table.priorities
    if not low <= flow.priority <= high:
        raise PipelineError(f"flow {flow.text()}: priority outside table {table.name}'s band {low}..{high}")
    for f in flow.match.fields:
        if f.name not in table.match_fields:
            raise PipelineError(f"flow {flow.text()}: table {table.name} does not match on {f.name}")
        if f.mask is not None and f.name not in table.masked_fields:
            raise PipelineError(f"flow {flow.text()}: table {table.name} does not mask {f.name}")
    # Actions come from shared, cached pieces (a tunnel output, a local delivery): each is checked
    # once per table, not once per flow holding it (a flood flow holds one per host of its network).
    checked = _CHECKED_ACTIONS.setdefault(flow.table, {})
    for action in flow.actions:
        if checked.get(id(action)) is action:
            continue
        _check_action(flow, table, action)
        if len(checked) >= _CHECKED_ACTIONS_MAX:
            checked.clear()
        checked[id(action)] = action  # holding the action keeps its id its own
    if flow.goto is not None:
        _check_target(flow, table, flow.goto)
    return flow


_CHECKED_ACTIONS: dict[int, dict[int, Action]] = {}  # table -> id(action) -> action
_CHECKED_ACTIONS_MAX = 1 << 16  # entries per table: a table past it is cleared and refills


def _check_action(flow: Flow, table: Table, action: Action) -> None:
    if isinstance(action, Resubmit):
        _check_target(flow, table, action.table)
    elif isinstance(action, Ct):
        if action.table is not None:
            _check_target(flow, table, action.table)
        _check_sets(flow, table, [a.field for a in action.actions])
    elif isinstance(action, SetField):
        _check_sets(flow, table, [action.field])
    elif isinstance(action, Move):
        _check_sets(flow, table, [action.dst])
    elif isinstance(action, Conjunction) and "conj_id" not in table.match_fields:
        raise PipelineError(f"flow {flow.text()}: table {table.name} has no conjunctive matches")


def _check_target(flow: Flow, table: Table, target: int) -> None:
    if target not in table.next_tables and target not in table.loops_to:
        raise PipelineError(f"flow {flow.text()}: table {table.name} may not continue to table {target}")


def _check_sets(flow: Flow, table: Table, fields: list[str]) -> None:
    for name in fields:
        if name not in table.set_fields:
            raise PipelineError(f"flow {flow.text()}: table {table.name} may not set {name}")


def miss_flows(cookie: int) -> tuple[Flow, ...]:
    """Every table's miss flow (priority 0), as declared: continue to the next stage, or drop."""
    return tuple(Flow(t.number, 0, goto=t.miss, cookie=cookie) for t in TABLES.values())


def table_name(number: int) -> str:
    table = TABLES.get(number)
    return table.name if table else f"table{number}"
