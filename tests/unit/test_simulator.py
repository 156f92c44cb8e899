"""The flow-table simulator, one behaviour at a time.

Each behaviour here is also held against the real switch by
tests/integration/test_simulator_vs_ovs.py; these tests pin it without OVS.
"""

from __future__ import annotations

import pytest

from controller.compiler.sim import (
    ACK,
    CS_DST_NAT,
    CS_ESTABLISHED,
    CS_INVALID,
    CS_NEW,
    CS_RELATED,
    CS_REPLY_DIR,
    CS_SRC_NAT,
    CS_TRACKED,
    FIN,
    PSH,
    RST,
    SYN,
    BundleEvent,
    ConjunctionEvent,
    CtEvent,
    DropEvent,
    Fabric,
    FlowTable,
    GroupEvent,
    Packet,
    SimulationError,
    Trace,
    ct_state_text,
    follow,
    icmp_echo,
    icmp_error,
    parse_ct_state,
    reply,
    tcp,
    udp,
)
from controller.compiler.sim.hashing import flow_hash_fields, hrw_pick
from dataplane.common.constants import TUNNEL_OFPORT
from dataplane.contract.fields import OFPP_IN_PORT, int_to_ipv4, ipv4_to_int, mac_to_int
from dataplane.contract.flow import (
    Action,
    Bucket,
    Bundle,
    Conjunction,
    Ct,
    CtClear,
    DecTtl,
    Flow,
    Group,
    GroupDef,
    Match,
    Move,
    Nat,
    Output,
    Resubmit,
    SetField,
)

MAC1, MAC2, MAC3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"
IP1, IP2, IP3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
EXT, FIP, SNAT_IP = "198.18.99.20", "203.0.113.10", "203.0.113.5"
IPV4 = 0x0800
TRK = (CS_TRACKED, CS_TRACKED)
TRK_NEW = (CS_TRACKED | CS_NEW, CS_TRACKED | CS_NEW)
TRK_EST = (CS_TRACKED | CS_ESTABLISHED, CS_TRACKED | CS_ESTABLISHED)
TRK_INV = (CS_TRACKED | CS_INVALID, CS_TRACKED | CS_INVALID)


def F(table: int, priority: int, *actions: Action, goto: int | None = None, **match: object) -> Flow:
    return Flow(table, priority, Match.of(**match), tuple(actions), goto)  # type: ignore[arg-type]


def states(trace: Trace) -> list[str]:
    """The ct_state every ct action gave the packet, in order."""
    return [ct_state_text(e.state) for e in trace.events if isinstance(e, CtEvent)]


def tcp12(flags: int = SYN, sport: int = 40000, **kw: int) -> Packet:
    return tcp(MAC1, MAC2, IP1, IP2, sport, 80, flags, **kw)


@pytest.fixture
def firewall() -> FlowTable:
    """Ports 1 and 2 through zone 5: new from 1 committed to 2, tracked replies cross, invalid to 4,
    new from 2 to 3 (not committed)."""
    return FlowTable(
        [
            F(0, 10, Ct(zone=5, table=1), in_port=1, eth_type=IPV4),
            F(0, 10, Ct(zone=5, table=1), in_port=2, eth_type=IPV4),
            F(1, 30, Output(4), eth_type=IPV4, ct_state=TRK_INV),
            F(1, 20, Ct(commit=True, zone=5), Output(2), in_port=1, eth_type=IPV4, ct_state=TRK_NEW),
            F(1, 20, Output(3), in_port=2, eth_type=IPV4, ct_state=TRK_NEW),
            F(1, 10, Output(2), in_port=1, eth_type=IPV4, ct_state=TRK),
            F(1, 10, Output(1), in_port=2, eth_type=IPV4, ct_state=TRK),
        ]
    )


# ---------------------------------------------------------------- conntrack: TCP


def test_tcp_handshake_data_and_reply_states(firewall: FlowTable) -> None:
    syn = tcp12(wscale=7)
    synack = reply(syn, wscale=7)
    ack = reply(synack)
    data = follow(ack, PSH | ACK, payload=100)
    answer = reply(data, payload=40)
    assert synack["tcp_ack"] == syn["tcp_seq"] + 1 and ack["tcp_seq"] == syn["tcp_seq"] + 1

    t = firewall.process(syn, 1)
    assert t.outputs() == [2] and states(t) == ["new|trk", "new|trk"]
    (conn,) = firewall.conntrack.connections()
    assert conn.text().endswith("zone=5,protoinfo=(state=SYN_SENT)")
    assert states(firewall.process(synack, 2)) == ["est|rpl|trk"]
    assert states(firewall.process(ack, 1)) == ["est|trk"]
    assert firewall.process(data, 1).outputs() == [2]
    assert firewall.process(answer, 2).outputs() == [1]
    assert firewall.conntrack.dump() == [
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40000,dport=80),"
        "reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40000),zone=5,protoinfo=(state=ESTABLISHED)"
    ]
    # A segment far outside the window the peer announced is invalid.
    assert firewall.process(follow(data, payload=10) | {"tcp_seq": 0x7000_0000}, 1).outputs() == [4]


@pytest.mark.parametrize(
    ("flags", "outcome"),
    [
        (ACK, "new|trk"),  # userspace conntrack picks connections up mid-stream
        (RST, "new|trk"),
        (FIN | ACK, "new|trk"),
        (RST | ACK, "new|trk"),
        (PSH | ACK, "new|trk"),
        (FIN, "inv|trk"),  # FIN without ACK: invalid flags
        (SYN | ACK, "inv|trk"),  # a half-open reply may not start a connection
        (SYN | RST, "inv|trk"),
    ],
)
def test_tcp_without_a_connection(firewall: FlowTable, flags: int, outcome: str) -> None:
    assert states(firewall.process(tcp12(flags, ack=1), 1))[0] == outcome


def test_syn_after_close_starts_a_new_connection(firewall: FlowTable) -> None:
    syn = tcp12()
    synack = reply(syn)
    fin = follow(reply(synack), FIN | ACK)
    fin_back = reply(fin, FIN | ACK)
    for pkt, port in ((syn, 1), (synack, 2), (reply(synack), 1), (fin, 1), (fin_back, 2), (reply(fin_back), 1)):
        firewall.process(pkt, port)
    assert firewall.conntrack.dump()[0].endswith("protoinfo=(state=TIME_WAIT)")
    assert states(firewall.process(tcp12(seq=90000), 1)) == ["new|trk", "new|trk"]
    assert firewall.conntrack.dump()[0].endswith("protoinfo=(state=SYN_SENT)")


# ---------------------------------------------------------------- conntrack: ICMP, UDP, related


def test_icmp_echo_states(firewall: FlowTable) -> None:
    ping = icmp_echo(MAC1, MAC2, IP1, IP2, ident=7)
    assert states(firewall.process(ping, 1)) == ["new|trk", "new|trk"]
    assert states(firewall.process(ping | {"icmp_seq": 2}, 1))[0] == "new|trk"  # no answer yet: still new
    assert states(firewall.process(reply(ping), 2)) == ["est|rpl|trk"]
    assert states(firewall.process(ping | {"icmp_seq": 3}, 1)) == ["est|trk"]
    # An echo reply nobody asked for is invalid; another id is another connection.
    assert firewall.process(icmp_echo(MAC2, MAC1, IP2, IP1, ident=8, reply=True), 2).outputs() == [4]


def test_udp_is_new_until_answered(firewall: FlowTable) -> None:
    query = udp(MAC1, MAC2, IP1, IP2, 5353, 53)
    assert states(firewall.process(query, 1)) == ["new|trk", "new|trk"]
    assert states(firewall.process(query, 1))[0] == "new|trk"
    assert states(firewall.process(reply(query), 2)) == ["est|rpl|trk"]
    assert states(firewall.process(query, 1)) == ["est|trk"]


def test_icmp_errors_about_a_connection_are_related(firewall: FlowTable) -> None:
    query = udp(MAC1, MAC2, IP1, IP2, 5353, 53)
    firewall.process(query, 1)
    unreachable = icmp_error(MAC2, MAC1, "10.0.0.254", query)
    assert unreachable["ipv4_dst"] == ipv4_to_int(IP1) and unreachable["inner_dport"] == 53
    t = firewall.process(unreachable, 2)
    assert states(t) == ["rel|rpl|trk"] and t.outputs() == [1]
    # About the answer, travelling the original direction: related, not reply.
    about_answer = icmp_error(MAC1, MAC2, "10.0.0.253", reply(query), icmp_type=11, code=0)
    assert states(firewall.process(about_answer, 1)) == ["rel|trk"]
    # About a packet of no connection: invalid.
    assert firewall.process(icmp_error(MAC2, MAC1, "10.0.0.254", query | {"udp_src": 9}), 2).outputs() == [4]


# ---------------------------------------------------------------- conntrack: zones, mark, clear


def test_zones_keep_identical_tuples_apart() -> None:
    table = FlowTable(
        [
            F(0, 10, SetField("reg5", 1), Ct(zone_field="reg5", table=1), in_port=1, eth_type=IPV4),
            F(0, 10, SetField("reg5", 3), Ct(zone_field="reg5", table=1), in_port=3, eth_type=IPV4),
            F(1, 20, Ct(commit=True, zone_field="reg5"), Output(2), eth_type=IPV4, ct_state=TRK_NEW, in_port=1),
            F(1, 20, Output(4), eth_type=IPV4, ct_state=TRK_NEW, in_port=3),
        ]
    )
    syn = tcp12()
    table.process(syn, 1)
    t = table.process(syn, 3)
    assert t.outputs() == [4] and t.passes[1].ct_zone == 3
    assert [c.key.zone for c in table.conntrack.connections()] == [1]


def test_ct_mark_blocks_and_label_sticks() -> None:
    table = FlowTable(
        [
            F(0, 10, Ct(zone=4, table=1), eth_type=IPV4),
            F(1, 30, Output(4), eth_type=IPV4, ct_mark=(1, 1)),
            F(
                1,
                20,
                Ct(commit=True, zone=4, actions=(SetField("ct_label", 1 << 70),)),
                Output(2),
                eth_type=IPV4,
                ct_state=TRK_NEW,
            ),
            # A rule change no longer allows the connection: its next packet marks it blocked.
            F(
                1,
                15,
                Ct(commit=True, zone=4, actions=(SetField("ct_mark", 1),)),
                Output(3),
                eth_type=IPV4,
                ct_state=TRK_EST,
                in_port=1,
            ),
            F(1, 10, Output(1), eth_type=IPV4, ct_state=TRK_EST, in_port=2),
        ]
    )
    syn = tcp12()
    table.process(syn, 1)
    t = table.process(reply(syn), 2)
    assert t.outputs() == [1] and t.passes[1].ct_label == 1 << 70
    assert table.process(reply(reply(syn)), 1).outputs() == [3]
    assert table.process(reply(reply(reply(syn))), 2).outputs() == [4]
    assert table.conntrack.dump()[0].endswith(",mark=1,labels=0x400000000000000000,protoinfo=(state=ESTABLISHED)")


def test_ct_clear_untracks_and_a_new_zone_starts_afresh() -> None:
    table = FlowTable(
        [
            F(0, 10, Ct(commit=True, zone=1, table=1), eth_type=IPV4),
            F(1, 10, CtClear(), Resubmit(2), Ct(zone=2, table=3), eth_type=IPV4, ct_zone=1),
            F(2, 10, Output(9), eth_type=IPV4, ct_state=(0, CS_TRACKED)),  # untracked after ct_clear
            F(3, 10, Output(2), eth_type=IPV4, ct_zone=2, ct_state=TRK_NEW),
        ]
    )
    t = table.process(tcp12(), 1)
    assert t.outputs() == [9, 2]
    assert states(t) == ["new|trk", "new|trk"]


def test_ct_without_table_continues_untracked() -> None:
    table = FlowTable(
        [
            F(0, 10, Ct(commit=True, zone=3), Resubmit(1), eth_type=IPV4),
            F(1, 20, Output(3), eth_type=IPV4, ct_state=TRK),
            F(1, 10, Output(2), eth_type=IPV4),
        ]
    )
    t = table.process(tcp12(), 1)
    assert t.outputs() == [2] and len(t.passes) == 1 and states(t) == ["new|trk"]


# ---------------------------------------------------------------- NAT


def fip_table() -> FlowTable:
    """VM 10.0.0.1 (port 1) is 203.0.113.10 outside (port 2), zone 7."""
    return FlowTable(
        [
            F(0, 10, Ct(zone=7, table=1, nat=Nat()), eth_type=IPV4),
            F(
                1,
                20,
                Ct(commit=True, zone=7, table=2, nat=Nat(src=True, ip_min=FIP)),
                in_port=1,
                eth_type=IPV4,
                ct_state=TRK_NEW,
            ),
            F(
                1,
                20,
                Ct(commit=True, zone=7, table=2, nat=Nat(dst=True, ip_min=IP1)),
                in_port=2,
                eth_type=IPV4,
                ct_state=TRK_NEW,
                ipv4_dst=FIP,
            ),
            F(1, 10, goto=2, eth_type=IPV4, ct_state=TRK),
            F(2, 10, Output(2), in_port=1),
            F(2, 10, Output(1), in_port=2),
        ]
    )


def test_snat_round_trip_keeps_the_port_and_un_nats_the_reply() -> None:
    table = fip_table()
    syn = tcp(MAC1, MAC2, IP1, EXT, 40000, 443)
    out = table.process(syn, 1)
    (leaving,) = out.emitted
    assert (int_to_ipv4(leaving.packet["ipv4_src"]), leaving.packet["tcp_src"]) == (FIP, 40000)
    assert out.passes[-1].ct_state == CS_TRACKED | CS_NEW | CS_SRC_NAT
    answer = reply(leaving.packet)
    back = table.process(answer, 2)
    assert back.outputs() == [1]
    assert int_to_ipv4(back.emitted[0].packet["ipv4_dst"]) == IP1
    assert back.passes[1].ct_state == CS_TRACKED | CS_ESTABLISHED | CS_REPLY_DIR | CS_DST_NAT
    assert table.conntrack.dump() == [
        "tcp,orig=(src=10.0.0.1,dst=198.18.99.20,sport=40000,dport=443),"
        "reply=(src=198.18.99.20,dst=203.0.113.10,sport=443,dport=40000),zone=7,protoinfo=(state=ESTABLISHED)"
    ]


def test_dnat_round_trip_for_a_floating_ip() -> None:
    table = fip_table()
    syn = tcp(MAC2, MAC1, EXT, FIP, 51000, 22)
    inside = table.process(syn, 2).emitted[0].packet
    assert int_to_ipv4(inside["ipv4_dst"]) == IP1
    out = table.process(reply(inside), 1).emitted[0].packet
    assert (int_to_ipv4(out["ipv4_src"]), int_to_ipv4(out["ipv4_dst"]), out["tcp_src"]) == (FIP, EXT, 22)


def test_nat_rewrites_the_packet_an_icmp_error_quotes() -> None:
    table = fip_table()
    leaving = table.process(tcp(MAC1, MAC2, IP1, EXT, 40000, 443), 1).emitted[0].packet
    error = icmp_error(MAC2, MAC1, EXT, leaving)  # quotes 203.0.113.10:40000 -> EXT:443
    t = table.process(error, 2)
    inside = t.emitted[0].packet
    assert t.outputs() == [1] and t.passes[1].ct_state & CS_RELATED
    assert int_to_ipv4(inside["ipv4_dst"]) == IP1 and int_to_ipv4(inside["inner_ipv4_src"]) == IP1
    assert inside["inner_sport"] == 40000


def test_output_after_nat_without_recirculation_sends_the_translated_packet() -> None:
    table = FlowTable(
        [
            F(
                0,
                10,
                Ct(commit=True, zone=8, nat=Nat(src=True, ip_min=SNAT_IP)),
                Output(2),
                Resubmit(1),
                SetField.of("ipv4_src", IP3),
                Output(3),
                in_port=1,
                eth_type=IPV4,
            ),
            # The translation still sees the original source: this flow matches after the NAT.
            F(1, 10, Output(4), eth_type=IPV4, ipv4_src=IP1),
        ]
    )
    t = table.process(udp(MAC1, MAC2, IP1, EXT, 7000, 53), 1)
    assert t.outputs() == [2, 4, 3]
    assert [int_to_ipv4(e.packet["ipv4_src"]) for e in t.emitted] == [SNAT_IP, SNAT_IP, IP3]


def test_snat_port_collision_takes_the_next_port_of_the_same_class() -> None:
    table = FlowTable(
        [
            F(0, 10, Ct(commit=True, zone=6, table=1, nat=Nat(src=True, ip_min=SNAT_IP)), eth_type=IPV4),
            F(1, 10, Output(2), eth_type=IPV4),
        ]
    )
    ports = []
    for src_ip, sport in ((IP1, 7000), (IP3, 7000), (IP3, 80), (IP1, 80), (IP2, 511)):
        ports.append(table.process(udp(MAC1, MAC2, src_ip, EXT, sport, 53), 1).emitted[0].packet["udp_src"])
    assert ports == [7000, 7001, 80, 81, 511]


@pytest.mark.parametrize(
    ("nat", "message"),
    [
        (Nat(src=True, ip_min="203.0.113.1", ip_max="203.0.113.9"), "address range"),
        (Nat(src=True, ip_min=SNAT_IP, port_min=1000, port_max=2000), "port range"),
        (Nat(), "without src/dst"),
    ],
)
def test_nat_choices_ovs_makes_by_random_hash_are_refused(nat: Nat, message: str) -> None:
    table = FlowTable([F(0, 10, Ct(commit=True, zone=1, nat=nat), Output(2), eth_type=IPV4)])
    with pytest.raises(SimulationError, match=message):
        table.process(tcp12(), 1)


# ---------------------------------------------------------------- conjunction


def test_conjunction_with_two_and_three_dimensions() -> None:
    table = FlowTable(
        [
            F(0, 50, Conjunction(7, 1, 2), eth_type=IPV4, ipv4_src=IP1),
            F(0, 50, Conjunction(7, 1, 2), eth_type=IPV4, ipv4_src=IP3),
            F(0, 50, Conjunction(7, 2, 2), eth_type=IPV4, ip_proto=6, tcp_dst=80),
            F(0, 40, Conjunction(8, 1, 3), eth_type=IPV4, ipv4_src=IP1),
            F(0, 40, Conjunction(8, 2, 3), eth_type=IPV4, ipv4_dst=IP2),
            F(0, 40, Conjunction(8, 3, 3), eth_type=IPV4, ip_proto=17),
            F(0, 10, Output(2), conj_id=7, eth_type=IPV4),
            F(0, 10, Output(3), conj_id=8, eth_type=IPV4),
            F(0, 1, Output(4)),
        ]
    )
    t = table.process(tcp12(), 1)
    assert t.outputs() == [2]
    assert [(e.conj_id, e.priority) for e in t.events if isinstance(e, ConjunctionEvent)] == [(7, 50)]
    assert table.process(tcp(MAC3, MAC2, IP3, IP2, 1, 80), 1).outputs() == [2]
    assert table.process(udp(MAC1, MAC2, IP1, IP2, 1, 53), 1).outputs() == [3]
    assert table.process(udp(MAC1, MAC2, IP1, IP3, 1, 53), 1).outputs() == [4]  # dimension 2 of 3 missing
    assert table.process(tcp12() | {"tcp_dst": 22}, 1).outputs() == [4]


def test_one_dimension_flow_can_serve_two_conjunctions() -> None:
    table = FlowTable(
        [
            F(0, 50, Conjunction(11, 1, 2), Conjunction(12, 1, 2), eth_type=IPV4, ipv4_src=IP1),
            F(0, 50, Conjunction(11, 2, 2), eth_type=IPV4, ip_proto=6, tcp_dst=22),
            F(0, 50, Conjunction(12, 2, 2), eth_type=IPV4, ip_proto=6, tcp_dst=80),
            F(0, 30, Output(2), conj_id=11, eth_type=IPV4),
            F(0, 30, Output(3), conj_id=12, eth_type=IPV4),
        ]
    )
    assert table.process(tcp12() | {"tcp_dst": 22}, 1).outputs() == [2]
    assert table.process(tcp12(), 1).outputs() == [3]
    assert table.process(tcp12() | {"tcp_dst": 25}, 1).outputs() == []


def test_conjunction_priority_rules() -> None:
    table = FlowTable(
        [
            # 21 completes at 60 with no conj_id flow anywhere: its flows fall back to lower twins (conj 24).
            F(0, 60, Conjunction(21, 1, 2), eth_type=IPV4, ipv4_src=IP1),
            F(0, 60, Conjunction(21, 2, 2), eth_type=IPV4, ipv4_dst="10.0.0.8"),
            F(0, 30, Conjunction(24, 1, 2), eth_type=IPV4, ipv4_src=IP1),
            F(0, 30, Conjunction(24, 2, 2), eth_type=IPV4, ip_proto=6),
            F(0, 6, Output(2), conj_id=24, eth_type=IPV4),
            # 22 completes at 50, above the ordinary match at 45; the conj_id search, at any priority, prefers
            # that ordinary flow (it matches conj_id=22 too) to the conj_id flow at 5.
            F(0, 50, Conjunction(22, 1, 2), eth_type=IPV4, ipv4_src=IP3),
            F(0, 50, Conjunction(22, 2, 2), eth_type=IPV4, ip_proto=17),
            F(0, 45, Output(4), eth_type=IPV4, ipv4_dst=IP2),
            F(0, 5, Output(3), conj_id=22, eth_type=IPV4),
            # 23 at 30 loses to an ordinary match at 40.
            F(0, 40, Output(1), eth_type=IPV4, ipv4_dst="10.0.0.7"),
            F(0, 30, Conjunction(23, 1, 2), eth_type=IPV4, ipv4_dst="10.0.0.7"),
            F(0, 30, Conjunction(23, 2, 2), eth_type=IPV4, ip_proto=17),
            F(0, 7, Output(3), conj_id=23, eth_type=IPV4),
        ]
    )
    assert table.process(tcp(MAC1, MAC2, IP1, "10.0.0.8", 1, 80), 1).outputs() == [2]
    assert table.process(udp(MAC3, MAC2, IP3, IP2, 1, 53), 2).outputs() == [4]
    assert table.process(udp(MAC3, MAC2, IP3, "10.0.0.9", 1, 53), 2).outputs() == [3]
    assert table.process(udp(MAC3, MAC2, IP3, "10.0.0.7", 1, 53), 2).outputs() == [1]


def test_overlapping_conjunctions_are_refused() -> None:
    table = FlowTable(
        [
            F(0, 50, Conjunction(1, 1, 2), eth_type=IPV4, ipv4_src=IP1),
            F(0, 50, Conjunction(1, 2, 2), eth_type=IPV4, ip_proto=6),
            F(0, 50, Conjunction(2, 1, 2), eth_type=IPV4, ipv4_dst=IP2),
            F(0, 50, Conjunction(2, 2, 2), eth_type=IPV4, ip_proto=6, tcp_dst=80),
            F(0, 10, Output(2), conj_id=1, eth_type=IPV4),
            F(0, 10, Output(3), conj_id=2, eth_type=IPV4),
        ]
    )
    with pytest.raises(SimulationError, match="overlapping conjunctive"):
        table.process(tcp12(), 1)
    # The same two conjunctions leading to flows that do the same: OVS's pick changes nothing.
    alike = FlowTable([*table.flows[:4], F(0, 10, Output(2), conj_id=1, eth_type=IPV4), F(0, 10, Output(2), conj_id=2)])
    assert alike.process(tcp12(), 1).outputs() == [2]
    # One of them has no conj_id flow: OVS may pick it and fall through, or pick the other: unpredictable.
    half = FlowTable([*table.flows[:4], F(0, 10, Output(2), conj_id=1, eth_type=IPV4)])
    with pytest.raises(SimulationError, match="overlapping conjunctive"):
        half.process(tcp12(), 1)
    with pytest.raises(SimulationError, match="no other action"):
        FlowTable([F(0, 50, Conjunction(1, 1, 2), Output(2), eth_type=IPV4)])


# ---------------------------------------------------------------- dec_ttl, rewrites, outputs


def test_routing_rewrites_and_dec_ttl() -> None:
    table = FlowTable(
        [
            F(0, 10, SetField("metadata", 3), SetField("reg6", 7), goto=40, in_port=1),
            F(
                40,
                10,
                DecTtl(),
                SetField.of("eth_src", "fa:16:3e:00:00:fe"),
                SetField.of("eth_dst", MAC3),
                Move("reg6", "reg7", 16),
                Resubmit(70),
                metadata=3,
                eth_type=IPV4,
            ),
            F(70, 10, Output(5), reg7=7),
        ]
    )
    (out,) = table.process(tcp12(ttl=9), 1).emitted
    assert out.port == 5 and out.packet["nw_ttl"] == 8 and out.packet["reg7"] == 7
    assert out.packet["eth_src"] == mac_to_int("fa:16:3e:00:00:fe") and out.packet["eth_dst"] == mac_to_int(MAC3)


def test_ttl_expiry_ends_only_the_current_action_list() -> None:
    table = FlowTable(
        [
            F(0, 10, Resubmit(1), Output(3), in_port=1, eth_type=IPV4),
            F(1, 10, Output(4), DecTtl(), Output(2), goto=2, eth_type=IPV4),
            F(2, 10, Output(6), eth_type=IPV4),
        ]
    )
    t = table.process(tcp12(ttl=1), 1)
    assert t.outputs() == [4, 3] and any(isinstance(e, DropEvent) for e in t.events)
    assert t.emitted[1].packet["nw_ttl"] == 1
    assert table.process(tcp12(ttl=2), 1).outputs() == [4, 2, 6, 3]
    with pytest.raises(SimulationError, match="needs eth_type"):
        FlowTable([F(0, 10, DecTtl(), eth_type=0x0806)])  # OVS refuses dec_ttl on what may not be IP


def test_in_port_and_loops() -> None:
    table = FlowTable([F(0, 10, Output(1), Output(OFPP_IN_PORT), Output(2), in_port=1)])
    assert table.process(tcp12(), 1).outputs() == [1, 2]
    with pytest.raises(SimulationError, match="translation depth"):
        FlowTable([F(0, 1, Resubmit(0))]).process(tcp12(), 1)
    with pytest.raises(SimulationError, match="backwards"):
        FlowTable([F(0, 1, goto=6), Flow(6, 1, Match(), (), 5)]).process(tcp12(), 1)
    loop = FlowTable([F(0, 1, Ct(zone=1, table=0), eth_type=IPV4)])
    with pytest.raises(SimulationError, match="recirculation deeper"):
        loop.process(tcp12(), 1)
    with pytest.raises(SimulationError, match="ambiguous"):
        FlowTable([F(0, 5, Output(2), in_port=1), F(0, 5, eth_type=IPV4)]).process(tcp12(), 1)
    # Two flows at one priority that do the same: whichever OVS picks, the packet goes the same way.
    same = FlowTable([F(0, 5, Output(2), in_port=1), F(0, 5, Output(2), eth_type=IPV4)])
    assert same.process(tcp12(), 1).outputs() == [2]
    with pytest.raises(SimulationError, match="NORMAL"):
        FlowTable([F(0, 5, Output(0xFFFFFFFA))]).process(tcp12(), 1)


# ---------------------------------------------------------------- bundles and groups


def test_bundle_active_backup_fails_over() -> None:
    table = FlowTable([F(0, 10, Bundle((2, 3)), in_port=1)], ports={2: True, 3: True})
    assert table.process(tcp12(), 1).outputs() == [2]
    table.set_port(2, False)  # BFD says the primary gateway is gone
    t = table.process(tcp12(), 1)
    assert t.outputs() == [3] and t.events == [BundleEvent(Bundle((2, 3)), 3)]
    table.set_port(3, False)
    assert table.process(tcp12(), 1).outputs() == []
    with pytest.raises(SimulationError, match="liveness of port 9"):
        FlowTable([F(0, 10, Bundle((9,)))]).process(tcp12(), 1)


def test_bundle_hrw_uses_ovs_hashes() -> None:
    # What Open vSwitch 3.1 picks for this packet and bundle (the row "bundle-active-backup-and-hrw" of
    # tests/integration/test_simulator_vs_ovs.py checks the same computation against ofproto/trace).
    pkt = tcp(MAC1, MAC2, "10.0.0.1", IP2, 1000, 80)
    members = (3, 4, 1, 2)
    table = FlowTable([F(0, 10, Bundle(members, "hrw", "symmetric_l4"), in_port=9)], ports=dict.fromkeys(members, True))
    assert table.process(pkt, 9).outputs() == [2]
    assert table.process(reply(pkt), 9).outputs() == [2]  # symmetric: both directions pick the same member
    table.set_port(2, False)
    assert table.process(pkt, 9).outputs() == [4]
    assert flow_hash_fields(pkt, "symmetric_l4", 0) == flow_hash_fields(reply(pkt), "symmetric_l4", 0)
    assert hrw_pick(flow_hash_fields(pkt, "symmetric_l4", 0), [False] * 4) is None


def groups_table(**ports: bool) -> FlowTable:
    return FlowTable(
        [
            F(0, 10, Group(1), Output(4), in_port=1),
            F(0, 10, Group(2), Output(4), in_port=2),
            F(0, 10, Group(3), in_port=3),
            F(5, 10, SetField.of("eth_dst", MAC3), Output(1)),
        ],
        [
            GroupDef(1, "fast_failover", (Bucket((Output(2),), watch_port=2), Bucket((Output(3),), watch_port=3))),
            GroupDef(
                2,
                "all",
                (
                    Bucket((Output(3), SetField.of("eth_dst", MAC1), Output(1))),
                    Bucket((SetField.of("eth_dst", MAC3), Resubmit(5))),
                    Bucket((SetField("reg1", 1),)),
                ),
            ),
            GroupDef(
                3, "select", (Bucket((Output(2),), watch_port=2), Bucket((Output(1),), weight=0), Bucket((Output(4),)))
            ),
        ],
        ports={int(k[1:]): v for k, v in ports.items()},
    )


def test_fast_failover_group_takes_the_first_live_bucket() -> None:
    table = groups_table(p2=True, p3=True)
    t = table.process(tcp12(), 1)
    assert t.outputs() == [2, 4] and t.events == [GroupEvent(1, (0,))]
    table.set_port(2, False)
    assert table.process(tcp12(), 1).outputs() == [3, 4]
    table.set_port(3, False)
    assert table.process(tcp12(), 1).outputs() == [4]


def test_all_group_buckets_are_action_sets_on_clones() -> None:
    t = groups_table(p2=True).process(tcp12(), 2)
    # Bucket 0 runs its set_field then only its last output; bucket 2 has no output and does nothing; the
    # flow's own output:4 sees none of the buckets' rewrites.
    assert [(e.port, e.packet["eth_dst"]) for e in t.emitted] == [
        (1, mac_to_int(MAC1)),
        (1, mac_to_int(MAC3)),
        (4, mac_to_int(MAC2)),
    ]


def test_select_group_needs_exactly_one_live_bucket() -> None:
    assert groups_table(p2=False).process(tcp12(), 3).outputs() == [4]
    with pytest.raises(SimulationError, match="datapath hash"):
        groups_table(p2=True).process(tcp12(), 3)
    with pytest.raises(SimulationError, match="not defined"):
        FlowTable([F(0, 1, Group(9))]).process(tcp12(), 1)


# ---------------------------------------------------------------- trace mode


def test_trace_mode_follows_ct_next_like_ofproto_trace() -> None:
    table = FlowTable(
        [
            F(0, 10, Ct(zone=2, table=1), Resubmit(5), eth_type=IPV4),
            F(5, 10, Ct(zone=3, table=2), eth_type=IPV4),
            F(
                1,
                10,
                Ct(commit=True, zone=2, table=3, nat=Nat(src=True, ip_min=SNAT_IP, port_min=4000)),
                eth_type=IPV4,
                ct_state=TRK_NEW,
            ),
            F(1, 5, Output(9), eth_type=IPV4),
            F(2, 10, Output(2), eth_type=IPV4, ct_zone=3),
            F(3, 10, Output(3), eth_type=IPV4),
        ]
    )
    # Recirculations run after the pass that made them: zone 2 (-> table 1), zone 3 (-> table 2), then table 3.
    t = table.process(tcp12(), 1, ct_next=["trk,new", "trk,est", "trk,new"])
    assert [(p.table, ct_state_text(p.ct_state)) for p in t.passes] == [
        (0, ""),
        (1, "new|trk"),
        (2, "est|trk"),
        (3, "new|trk"),
    ]
    nat = t.emitted[-1].packet
    assert (int_to_ipv4(nat["ipv4_src"]), nat["tcp_src"]) == (SNAT_IP, 4000)
    assert table.conntrack.connections() == []
    assert parse_ct_state("+trk+est") == CS_TRACKED | CS_ESTABLISHED


# ---------------------------------------------------------------- fabric


def test_fabric_keeps_each_hosts_conntrack_across_sends() -> None:
    """h1 SNATs its VM's traffic and tunnels it to h2 (the gateway side); the reply comes back and is un-NATed."""
    fabric = Fabric()
    fabric.add_host(
        "h1",
        "198.51.100.1",
        [
            F(0, 10, Ct(zone=7, table=1, nat=Nat()), in_port=1, eth_type=IPV4),
            F(0, 10, Ct(zone=7, table=1, nat=Nat()), in_port=TUNNEL_OFPORT, tunnel_id=100, eth_type=IPV4),
            F(
                1,
                20,
                Ct(commit=True, zone=7, table=2, nat=Nat(src=True, ip_min=FIP)),
                in_port=1,
                eth_type=IPV4,
                ct_state=TRK_NEW,
            ),
            F(1, 10, goto=2, eth_type=IPV4, ct_state=TRK_EST),
            F(
                2,
                10,
                SetField("tunnel_id", 100),
                SetField.of("tun_ipv4_dst", "198.51.100.2"),
                Output(TUNNEL_OFPORT),
                in_port=1,
            ),
            F(2, 10, Output(1), in_port=TUNNEL_OFPORT),
        ],
    )
    fabric.add_host(
        "h2",
        "198.51.100.2",
        [
            F(0, 10, Output(5), in_port=TUNNEL_OFPORT, tunnel_id=100),
            F(
                0,
                10,
                SetField("tunnel_id", 100),
                SetField.of("tun_ipv4_dst", "198.51.100.1"),
                Output(TUNNEL_OFPORT),
                in_port=5,
            ),
        ],
    )
    out = fabric.trace("h1", 1, tcp(MAC1, MAC2, IP1, EXT, 40000, 443))
    (there,) = out.deliveries
    assert (there.host, there.port, int_to_ipv4(there.packet["ipv4_src"])) == ("h2", 5, FIP)
    assert "tun_ipv4_src" not in there.packet and [h.host for h in out.hops] == ["h1", "h2"]
    assert out.hops[1].packet["tun_ipv4_src"] == ipv4_to_int("198.51.100.1")
    (back,) = fabric.send("h2", 5, reply(there.packet))
    assert (back.host, back.port, int_to_ipv4(back.packet["ipv4_dst"])) == ("h1", 1, IP1)
    assert len(fabric.conntrack("h1").connections()) == 1 and fabric.conntrack("h2").connections() == []
    fabric.set_host_down("h2")
    lost = fabric.trace("h1", 1, tcp(MAC1, MAC2, IP1, EXT, 40001, 443))
    assert lost.deliveries == [] and len(lost.lost) == 1


def test_fabric_point_to_point_tunnel_ports() -> None:
    fabric = Fabric()
    fabric.add_host("gw1", "198.51.100.11", [F(0, 10, Output(7), in_port=20)], tunnel_ports={20: "198.51.100.1"})
    fabric.add_host("gw2", "198.51.100.12", [F(0, 10, Output(7), in_port=TUNNEL_OFPORT)])
    fabric.add_host(
        "h1",
        "198.51.100.1",
        [F(0, 10, Bundle((20, 21)), in_port=1)],
        tunnel_ports={20: "198.51.100.11", 21: "198.51.100.12"},
        ports={20: True, 21: True},
    )
    # The receiver sees the packet on its port for the sender when it has one, else on the flow-based port.
    assert [(d.host, d.port) for d in fabric.send("h1", 1, tcp12())] == [("gw1", 7)]
    fabric.set_port("h1", 20, False)
    assert [(d.host, d.port) for d in fabric.send("h1", 1, tcp12())] == [("gw2", 7)]


# ---------------------------------------------------------------- packets


def test_packet_builders() -> None:
    syn = tcp12(seq=100)
    synack = reply(syn)
    assert (synack["tcp_flags"], synack["tcp_seq"], synack["tcp_ack"]) == (SYN | ACK, 5000, 101)
    ack = reply(synack)
    assert (ack["tcp_flags"], ack["tcp_seq"], ack["tcp_ack"]) == (ACK, 101, 5001)
    data = follow(ack, PSH | ACK, payload=10)
    assert (data["tcp_seq"], follow(data)["tcp_seq"]) == (101, 111)
    assert reply(data)["tcp_ack"] == 111
    ping = icmp_echo(MAC1, MAC2, IP1, IP2, ident=5)
    assert (reply(ping)["icmpv4_type"], reply(ping)["icmp_id"]) == (0, 5)
    err = icmp_error(MAC2, MAC1, "10.0.0.254", ping, icmp_type=11, code=0)
    assert (err["inner_icmp_type"], err["inner_icmp_id"], err["ipv4_dst"]) == (8, 5, ipv4_to_int(IP1))
    with pytest.raises(ValueError, match="echo requests"):
        reply(reply(ping))


def test_flows_ovs_would_refuse_are_refused() -> None:
    with pytest.raises(SimulationError, match="needs eth_type"):
        FlowTable([F(0, 1, Ct(zone=1))])
    with pytest.raises(SimulationError, match="needs ip_proto"):
        FlowTable([F(0, 1, SetField("tcp_dst", 80), eth_type=IPV4)])
    with pytest.raises(SimulationError, match="share table, priority and match"):
        FlowTable([F(0, 1, Output(1)), F(0, 1, Output(2))])
    with pytest.raises(SimulationError, match="exec"):
        FlowTable([F(0, 1, Ct(zone=1, actions=(SetField("ct_mark", 1),)), eth_type=IPV4)]).process(tcp12(), 1)
    with pytest.raises(SimulationError, match="ct_mark"):
        FlowTable([F(0, 1, SetField("ct_mark", 1))]).process(tcp12(), 1)
