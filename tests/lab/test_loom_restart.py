"""Hitless restarts on the Loom lab: agents and the controller come and go, the dataplane does not notice."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from dataplane.contract.cookie import CookieKind, make_cookie
from lab.mininet import probes
from lab.mininet.lab import Vm
from lab.mininet.loom import LoomLab
from protos.loom.v1 import network_pb2
from tests.lab.scenario import Scenario

pytestmark = pytest.mark.lab


def flows(loom: LoomLab, hv: str) -> list[str]:
    """br-int's flows without counters, sorted: what the switch does, not what it counted."""
    out = loom.lab.run(hv, ["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", "br-int"]).stdout
    return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


def cookies(lines: list[str]) -> set[int]:
    return {int(m.group(1), 16) for line in lines if (m := re.search(r"cookie=(0x[0-9a-f]+)", line))}


@dataclass
class PingTally:
    """What a background ping saw of the packets it sent inside the measured window."""

    sent: int = 0
    lost: list[tuple[float, int]] = field(default_factory=list)  # (sent at, icmp_seq), unanswered

    @property
    def received(self) -> int:
        return self.sent - len(self.lost)


_REPLY = re.compile(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms")
_NO_ANSWER = re.compile(r"\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)")


@contextmanager
def pinging(src: Vm, dst: Vm, rate_hz: int = 50, reply_timeout: float = 1.0) -> Iterator[PingTally]:
    """Ping dst from src at ``rate_hz`` for the duration of the block; fills the tally afterwards.

    Only packets sent inside the block are judged, and each gets ``reply_timeout`` to come back:
    ping keeps running that long after the block, because an interrupted ping counts the replies
    still in flight as lost (a slow reply on two busy cores is not a dropped packet)."""
    interval = 1 / rate_hz
    proc = subprocess.Popen(
        ["ip", "netns", "exec", src.netns, "ping", "-n", "-D", "-O", "-i", str(interval), dst.address or ""],
        stdout=subprocess.PIPE,
        text=True,
    )
    tally = PingTally()
    time.sleep(0.5)
    try:
        yield tally
    finally:
        window_end = time.time()
        time.sleep(reply_timeout + 0.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        sent_at: dict[int, float] = {}
        answered: set[int] = set()
        for m in _REPLY.finditer(out):
            seq = int(m.group(2))
            answered.add(seq)
            sent_at.setdefault(seq, float(m.group(1)) - float(m.group(3)) / 1000)
        for m in _NO_ANSWER.finditer(out):
            # ping -O reports a missing answer as it sends the next packet, one interval later.
            sent_at.setdefault(int(m.group(2)), float(m.group(1)) - interval)
        last = max((seq for seq, at in sent_at.items() if at <= window_end), default=0)
        assert last, out
        # Sequence numbers are consecutive from 1: one that ping printed nothing about (a send
        # error) is lost too, stamped with the time of the packet before it.
        tally.sent = last
        previous = 0.0
        for seq in range(1, last + 1):
            previous = sent_at.get(seq, previous)
            if seq not in answered:
                tally.lost.append((previous, seq))


def agent_log_since(loom: LoomLab, hv: str, since: float) -> str:
    """The agent's log lines from ``since`` on, each stamped with seconds after it (for failure messages)."""
    from datetime import datetime

    lines = []
    with open(loom.lab.agent_log_path(hv), errors="replace") as f:
        for line in f:
            try:
                at = datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            except ValueError:
                continue
            if at >= since:
                lines.append(f"{at - since:+.3f} {line[24:].rstrip()}")
    return "\n".join(lines[:60])


def synced(loom: LoomLab, hosts: list[str]) -> None:
    loom.wait_agents(timeout=30, hosts=hosts)


def test_agent_sigkill_and_restart_loses_no_packets_and_leaves_no_stale_flows(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("agentrestart")
    a, b = scenario.vm("hv1", net), scenario.vm("hv2", net)
    doomed = scenario.vm("hv1", net)  # its port is deleted while hv1's agent is dead
    doomed_port = loom.get_port(doomed.port_id)
    with pinging(a, b) as tally:
        killed_at = time.time()
        loom.stop_agent("hv1", signal.SIGKILL)
        loom.network.DeletePort(network_pb2.DeleteRequest(id=doomed.port_id), timeout=10)
        time.sleep(1.0)  # the controller moved on; hv1's switch still holds the old state
        assert make_cookie(CookieKind.PORT, doomed_port.tag) in cookies(flows(loom, "hv1"))
        started_at = time.time()
        loom.start_agent("hv1")
        synced(loom, ["hv1"])
        time.sleep(1.0)
    assert tally.sent >= 100
    lost = [f"seq {seq} sent {t - started_at:+.3f} s after the restart" for t, seq in tally.lost]
    assert tally.received == tally.sent, (
        f"lost {len(tally.lost)} of {tally.sent} (killed {started_at - killed_at:.2f} s "
        f"before the restart): {lost}\n" + agent_log_since(loom, "hv1", started_at)
    )
    left = cookies(flows(loom, "hv1"))
    for kind in (CookieKind.PORT, CookieKind.PORT_BINDING):
        assert make_cookie(kind, doomed_port.tag) not in left, f"stale {kind.name} flows of the deleted port"
    compiled = loom.network.GetHostFlows(network_pb2.GetHostFlowsRequest(host="hv1"), timeout=10)
    # Everything on the switch is either compiled by the controller or a binding flow the agent renders.
    agent_kinds = {CookieKind.PORT_BINDING, CookieKind.LOCALPORT}
    assert all((c >> 48) & 0xFF in agent_kinds or c in {f.cookie for f in compiled.flows} for c in left)
    assert probes.ping(a.netns, b.address)


def test_controller_restart_changes_nothing_in_the_dataplane(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("ctlrestart")
    a, b, c = (scenario.vm(hv, net) for hv in ("hv1", "hv2", "hv3"))
    hosts = ["hv1", "hv2", "hv3"]
    before = {hv: flows(loom, hv) for hv in hosts}
    agents_before = {x.host: x for x in loom.network.ListAgents(network_pb2.ListAgentsRequest()).agents}
    with pinging(a, c) as tally:
        loom.stop_controller(signal.SIGKILL)
        time.sleep(1.0)
        started_at = time.time()
        loom.start_controller()
        synced(loom, hosts)
        time.sleep(0.5)
    lost = [f"seq {seq} sent {t - started_at:+.3f} s after the restart" for t, seq in tally.lost]
    assert tally.received == tally.sent, f"lost {len(tally.lost)} of {tally.sent}: {lost}\n" + "\n".join(
        f"--- {hv}\n" + agent_log_since(loom, hv, started_at) for hv in ("hv1", "hv3")
    )
    after = {hv: flows(loom, hv) for hv in hosts}
    for hv in hosts:
        assert after[hv] == before[hv], f"flows on {hv} changed across a controller restart"
    agents_after = {x.host: x for x in loom.network.ListAgents(network_pb2.ListAgentsRequest()).agents}
    assert all(agents_after[h].alive for h in hosts)
    assert all(agents_after[h].applied_revision >= agents_before[h].applied_revision for h in hosts)
    # The ports kept their status, and the agents follow new changes again.
    assert loom.get_port(b.port_id).status == "ACTIVE"
    d = scenario.vm("hv2", net)
    assert probes.ping(a.netns, d.address)


def wait_ping(src: Vm, dst: Vm, within: float) -> float:
    """Seconds until src can ping dst again (fails the test after ``within``)."""
    start = time.monotonic()
    while not probes.ping(src.netns, dst.address or "", timeout=0.3):
        assert time.monotonic() - start < within, f"{src.name} cannot reach {dst.name} after {within} s"
    return time.monotonic() - start


def test_an_ovs_restart_is_repaired_without_the_controller(scenario: Scenario) -> None:
    loom = scenario.loom
    net = scenario.network("ovsrestart")
    a, b = scenario.vm("hv1", net), scenario.vm("hv2", net)
    assert probes.ping(a.netns, b.address)
    time.sleep(2.0)  # let hv1's agent persist its state (written a moment after each change)
    loom.stop_controller()
    try:
        # 1. vswitchd restarts under a running agent: it reprograms from what it holds in memory.
        loom.lab.restart_vswitchd("hv1")
        wait_ping(a, b, within=10)
        # 2. Agent and vswitchd both restart, controller still down: the agent finds an empty
        #    switch and programs it from the state it persisted.
        loom.stop_agent("hv1", signal.SIGKILL)
        loom.lab.restart_vswitchd("hv1")
        assert not cookies(flows(loom, "hv1")), "a restarted vswitchd starts empty"
        loom.start_agent("hv1")
        wait_ping(a, b, within=10)
    finally:
        loom.start_controller()
        synced(loom, ["hv1", "hv2", "hv3"])
