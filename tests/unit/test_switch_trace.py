"""Reading the real switch's ofproto/trace: outputs, tunnels, drops, annotations; the flows loomctl asks it for.

The traces in ``data/`` were recorded on the lab (OVS 3.1, userspace datapath):
a TCP SYN into the tunnel and its arrival on the other hypervisor, a flooded
ARP request, an ARP request the responder answers, and a frame whose only way
out was its own input port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli.cmd_trace import Delivery, _final_packet, _summary
from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.trace import (
    Endpoint,
    SwitchOutput,
    annotate,
    build_flow,
    default_rundir,
    flow_in_port,
    parse_trace,
    tunnel_flow,
)

DATA = Path(__file__).parent / "data"


def recorded(name: str) -> str:
    return (DATA / name).read_text()


def test_a_tunnelled_packet_names_its_vni_and_destination() -> None:
    t = parse_trace(recorded("trace_tunnel.txt"), in_port=100)
    assert t.outputs == [SwitchOutput(65200, vni=1, remote_ip="198.51.100.2")]
    assert t.last_table == 50, "br-phy's NORMAL step is not br-int's table 0"
    assert not t.dropped


def test_arriving_from_the_tunnel_it_is_delivered() -> None:
    t = parse_trace(recorded("trace_from_tunnel.txt"), in_port=65200)
    assert t.outputs == [SwitchOutput(100)]
    assert t.last_table == 70


def test_a_flood_goes_to_the_localport_and_the_tunnel_but_not_back_to_its_sender() -> None:
    t = parse_trace(recorded("trace_flood.txt"), in_port=100)
    assert t.outputs == [SwitchOutput(65001), SwitchOutput(65200, vni=1, remote_ip="198.51.100.2")]
    assert t.skipped_in_port


def test_an_arp_answer_goes_back_out_the_in_port() -> None:
    t = parse_trace(recorded("trace_arp_reply.txt"), in_port=100)
    assert t.outputs == [SwitchOutput(100)]
    assert t.last_table == 30


def test_nowhere_to_go_but_back_is_a_drop() -> None:
    t = parse_trace(recorded("trace_drop_in_port.txt"), in_port=101)
    assert t.dropped and t.skipped_in_port and t.last_table == 70


def test_annotation_names_br_int_tables_owners_and_ports_only() -> None:
    owners = {
        make_cookie(CookieKind.PORT_BINDING, 2): "binding of port vm1",
        make_cookie(CookieKind.PORT, 3): "port vm2",
    }
    text = annotate(recorded("trace_tunnel.txt"), owners, {65200: "tunnel"})
    assert "cookie 0x4c04000000000002  [classify: binding of port vm1]" in text
    assert "cookie 0x4c03000000000003  [l2_lookup: port vm2]" in text
    assert "cookie 0x4c01000000000000  [egress_ct: pipeline]" in text
    assert "output:65200  [tunnel]" in text
    br_phy = text.split('bridge("br-phy")')[1]
    assert "[" not in br_phy.split("Final flow")[0], "br-phy's steps are not Loom's tables"


def test_flows_are_exact_packets_ofproto_trace_accepts() -> None:
    src, dst = Endpoint("fa:16:3e:00:00:01", "10.0.0.11", 100), Endpoint("fa:16:3e:00:00:02", "10.0.0.12")
    tcp = build_flow(src, dst, "tcp", 22)
    assert "tcp_flags=syn" in tcp and "+syn" not in tcp, "a trace flow takes exact flags, not a match"
    assert tcp.startswith("tcp,in_port=100,") and "tp_dst=22" in tcp and "nw_ttl=64" in tcp
    assert build_flow(src, dst, "icmp").endswith("icmp_type=8,icmp_code=0"), "an echo request, as ping sends"
    udp = build_flow(src, dst, "udp", 53)
    assert "udp_dst=53" in udp and "tp_" not in udp, "ofproto/trace refuses tp_src on a UDP packet"
    assert "udp_src=40000" in tunnel_flow("udp,in_port=3,tp_src=40000,tp_dst=53", 7, "1.1.1.1", "2.2.2.2")
    arp = build_flow(src, dst, "arp")
    assert "arp_op=1" in arp and "arp_tpa=10.0.0.12" in arp and "dl_dst=ff:ff:ff:ff:ff:ff" in arp
    assert flow_in_port(tcp) == 100


def test_the_packet_crosses_the_tunnel_as_the_next_switch_sees_it() -> None:
    flow = build_flow(
        Endpoint("fa:16:3e:00:00:01", "10.0.0.11", 100), Endpoint("fa:16:3e:00:00:02", "10.0.0.12"), "tcp"
    )
    remote = tunnel_flow(flow, 1001, "198.51.100.1", "198.51.100.2")
    assert remote.startswith("in_port=65200,tun_id=0x3e9,tun_src=198.51.100.1,tun_dst=198.51.100.2,tcp,")
    assert "in_port=100" not in remote and flow_in_port(remote) == 65200
    # After rewrites, the "Final flow" is what crosses; registers and tunnel metadata do not.
    final = _final_packet(recorded("trace_tunnel.txt"))
    assert final.startswith("tcp,vlan_tci=0x0000,dl_src=fa:16:3e:5e:ea:15,")
    assert "reg6" not in final and "tun_" not in final and "metadata" not in final and "gtpu" not in final
    assert "in_port" not in final and final.endswith("tcp_flags=syn")


def test_the_switch_is_found_by_ovs_rundir_like_every_ovs_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVS_RUNDIR", raising=False)
    assert default_rundir() == "/var/run/openvswitch"
    monkeypatch.setenv("OVS_RUNDIR", "/tmp/loom-lab/hv1/run")
    assert default_rundir() == "/tmp/loom-lab/hv1/run"


def test_output_to_a_port_the_switch_does_not_have_is_no_delivery() -> None:
    """The compiled flows deliver to the OpenFlow port a VIF will request; before it is plugged, there is none."""
    t = parse_trace(recorded("trace_unplugged.txt"), in_port=65200)
    assert t.dropped and t.missing_ports == [100] and t.last_table == 70


def test_both_traces_end_with_one_result_in_the_same_words() -> None:
    vm2 = Delivery("hv2", 100, "p2", "vm2")
    assert _summary([vm2], [], [], "vm2", "p2") == "result: delivered to vm2 on hv2"
    back = Delivery("hv1", 100, "p1", "vm1", back=True)
    assert _summary([back], [], [], "vm2", "p2") == "result: answered on hv1: the reply goes back to vm1"
    lp = Delivery("hv1", 65001, "d1", "localport of network blue")
    assert _summary([lp], [], [], "red1", "r1").splitlines() == [
        "result: red1 is NOT reached",
        "        delivered to localport of network blue on hv1",
    ]
    dropped = _summary([], ["on hv1 in table 0 (classify): no binding"], [], "vm2", "p2")
    assert dropped.splitlines()[1] == "        dropped on hv1 in table 0 (classify): no binding"
    stopped = _summary([], [], ["stopped at the tunnel to hv2"], "vm2", "p2")
    assert stopped.splitlines()[1] == "        stopped at the tunnel to hv2"


def test_a_trace_through_conntrack_is_read_in_every_pass() -> None:
    """Security groups send the packet through ct(table=20): it leaves br-int in the recirculated pass."""
    t = parse_trace(recorded("trace_secgroups_recirc.txt"), in_port=100)
    assert t.outputs == [SwitchOutput(65200, vni=1, remote_ip="198.51.100.2")]
    assert t.last_table == 50
    packet = _final_packet(recorded("trace_secgroups_recirc.txt"))
    assert packet.startswith("tcp,vlan_tci=0x0000,dl_src=") and ",eth," not in f",{packet},"
