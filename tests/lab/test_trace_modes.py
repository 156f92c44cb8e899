"""`loomctl trace` (the controller's compiled flows) and `loomctl trace --switch` (the real switches) agree.

On the Loom lab, for packets that cross the tunnel, stay on a host, are
answered by the ARP responder, are flooded on their own network only, or are
dropped, both traces must deliver the packet to the same ports on the same
hosts (the switch trace following the tunnel with ``--hv-rundir``), and the
controller's must reach exactly what the VMs see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from lab.mininet import probes
from lab.mininet.lab import Vm
from lab.mininet.loom import LoomLab
from protos.loom.v1 import network_pb2, resources_pb2
from tests.docs_commands import ROOT
from tests.lab.scenario import Scenario

pytestmark = pytest.mark.lab


def loomctl(loom: LoomLab, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "controller.cli", "--server", loom.api_address, "--json", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"loomctl {' '.join(args)}: {result.stderr}"
    return json.loads(result.stdout)


def both(loom: LoomLab, src: Vm, dst: Vm, *extra: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]], dict]:
    """The deliveries (host, port id) of the controller's trace and of the switch trace, and the former's reply."""
    ask = ["trace", "--from-port", src.port_id, "--to-port", dst.port_id, *extra]
    ctl = loomctl(loom, *ask)
    rundirs = [a for hv in loom.hypervisors for a in ("--hv-rundir", f"{hv.name}={hv.ovs_rundir}")]
    here = loom.lab.hv(src.hypervisor).ovs_rundir
    sw = loomctl(loom, *ask, "--switch", *rundirs, env={"OVS_RUNDIR": here})
    by_ctl = {(d["host"], d.get("port_id", "")) for d in ctl.get("deliveries", [])}
    by_switch = {(d["host"], d["port_id"]) for d in sw["deliveries"]}
    return by_ctl, by_switch, ctl


def localport(loom: LoomLab, net_id: str) -> str:
    ports = loom.network.ListPorts(network_pb2.ListPortsRequest(network_id=net_id, device_owner="network:dhcp"))
    (dhcp,) = ports.ports
    return dhcp.id


def test_both_traces_deliver_where_the_packets_go(scenario: Scenario) -> None:
    loom = scenario.loom
    a = scenario.network("ta")
    b = scenario.network("tb")
    iso = scenario.network("ti", "10.9.0.0/24", enable_dhcp=False)
    a1, a2 = scenario.vm("hv1", a, "a"), scenario.vm("hv2", a, "a")
    b1 = scenario.vm("hv3", b, "b", ip="10.0.0.99")  # same CIDR as a: an address only b has
    i1 = scenario.vm("hv1", iso, "i")
    assert probes.ping(a1.netns, a2.address), "the positive control: a1 reaches a2"
    lp_a = localport(loom, a.id)

    for extra in ([], ["--proto", "tcp", "--dport", "22"], ["--proto", "udp", "--dport", "53"]):
        ctl, switch, reply = both(loom, a1, a2, *extra)
        assert ctl == switch == {("hv2", a2.port_id)}, extra
        assert reply["reached_destination"]
        assert [h["host"] for h in reply["hops"]] == ["hv1", "hv2"]
        tunnel = reply["hops"][0]["outputs"][0]
        assert (tunnel["kind"], tunnel["remote_host"], tunnel["vni"]) == ("TUNNEL", "hv2", a.network.segmentation_id)

    ctl, switch, _ = both(loom, a2, a1)
    assert ctl == switch == {("hv1", a1.port_id)}

    # ARP for a known address: the responder on the sender's host answers, back out the sender's port.
    ctl, switch, reply = both(loom, a1, a2, "--proto", "arp")
    assert ctl == switch == {("hv1", a1.port_id)}
    assert "arp_op=2" in reply["deliveries"][0]["packet"]

    # Another network's port: a's flood reaches a's ports (and DHCP localports) only, never b1.
    ctl, switch, reply = both(loom, a1, b1)
    assert ctl == switch == {("hv1", lp_a), ("hv2", a2.port_id), ("hv2", lp_a)}
    assert not reply.get("reached_destination", False)
    assert not probes.ping(a1.netns, b1.address, timeout=0.5)

    # Alone on its network (no DHCP, no other port anywhere): dropped by both, nothing delivered.
    ctl, switch, reply = both(loom, i1, a1)
    assert ctl == switch == set()
    (hop,) = reply["hops"]
    assert hop["dropped"] and hop["drop_table"] == 70 and "in_port" in hop["drop_reason"]

    # An administratively down port: its agent removed its binding, both drop at classify.
    loom.network.UpdatePort(
        network_pb2.UpdatePortRequest(
            port=resources_pb2.Port(id=a1.port_id, admin_state_up=False),
            update_mask=FieldMask(paths=["admin_state_up"]),
        )
    )
    loom.wait_agents()
    ctl, switch, reply = both(loom, a1, a2)
    assert ctl == switch == set()
    assert reply["hops"][0].get("drop_table", 0) == 0 and "no binding here" in reply["hops"][0]["drop_reason"]
    assert not probes.ping(a1.netns, a2.address, timeout=0.5)
