"""Benchmark: the agent's flow installer against ``ovs-ofctl --bundle``, side by side in one run.

Each case runs on a fresh userspace (netdev) bridge whose default NORMAL flow
is removed first, so both sides start from an empty table:

* install 10k and 100k realistic Loom flows: the agent (``FlowInstaller.sync``
  fed by a cold ``FlowEncoder`` turning ``Flow`` dataclasses into wire bytes,
  and again from pre-encoded WireFlows, the controller's usual path) against
  ``ovs-ofctl -O OpenFlow13 --bundle add-flows`` of the same flows as text;
* change 1% of 100k (modify 0.5%, delete 0.25%, add 0.25%): the agent's
  normal sync (diff against its in-memory state), a restarted agent's first
  sync (dump + diff, what ``replace-flows`` does), against
  ``ovs-ofctl -O OpenFlow13 --bundle replace-flows``.

After every case the two bridges are compared flow by flow (``dump-flows
--no-stats``), so a fast wrong answer cannot pass. Each case is repeated and
the median kept. Prints a table; writes ``bench/results/flow_install.json``.

    .venv/bin/python bench/flow_install.py [--repeats 3] [--sizes 10000,100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.encode import FlowEncoder, WireFlow
from dataplane.contract.fields import ETH_TYPE_ARP, ETH_TYPE_IPV4, OFPP_IN_PORT, int_to_ipv4, int_to_mac
from dataplane.contract.flow import Flow, Match, Move, Output, Resubmit, SetField
from dataplane.openflow.connection import OFConnection, mgmt_target
from dataplane.openflow.installer import FlowInstaller

BRIDGE_PREFIX = "lt-b"
RESULTS = Path(__file__).resolve().parent / "results" / "flow_install.json"
TUNNEL_OFPORT = 65200
PORTS_PER_NETWORK = 200
GATEWAY_MAC = "fa:16:3e:ff:00:01"

# ---------------------------------------------------------------- realistic Loom flows


def _mac(i: int) -> str:
    return int_to_mac(0xFA163E000000 + i)


def _ip(i: int) -> str:
    return int_to_ipv4((10 << 24) + i + 10)


def make_flow(i: int, variant: int = 0) -> Flow:
    """The i-th flow of a table mixing the four flow kinds a Loom host holds most of.

    ``variant`` changes the actions (not the key), as a port update would.
    """
    network = i // PORTS_PER_NETWORK + 1
    port_tag = i + 1
    cookie = make_cookie(CookieKind.PORT, port_tag)
    kind = i % 4
    if kind == 0:  # L2 lookup of a local port: network + MAC -> output register, then the delivery table
        return Flow(
            table=30,
            priority=100,
            match=Match.of(metadata=network, eth_dst=_mac(i)),
            actions=(SetField("reg7", 100 + i % 60000 + variant), Resubmit(40)),
            cookie=cookie,
        )
    if kind == 1:  # L2 lookup of a remote port: into the tunnel, VNI and remote host per flow
        return Flow(
            table=31,
            priority=100,
            match=Match.of(metadata=network, eth_dst=_mac(i)),
            actions=(
                SetField("tunnel_id", 5000 + network),
                SetField("tun_ipv4_dst", int_to_ipv4((192 << 24) + (0 << 16) + (2 << 8) + (i + variant) % 250 + 1)),
                Output(TUNNEL_OFPORT),
            ),
            cookie=cookie,
        )
    if kind == 2:  # port security: the port may only send from its MAC and fixed IP
        return Flow(
            table=10,
            priority=100,
            match=Match.of(reg6=port_tag, eth_src=_mac(i), eth_type=ETH_TYPE_IPV4, ipv4_src=_ip(i)),
            goto=20 + variant % 2,
            cookie=cookie,
        )
    # ARP responder: answer "who has IP" in place, with moves and set-fields
    answer_mac = GATEWAY_MAC if not variant else _mac(i + 1_000_000)
    return Flow(
        table=25,
        priority=100,
        match=Match.of(metadata=network, eth_type=ETH_TYPE_ARP, arp_op=1, arp_tpa=_ip(i)),
        actions=(
            Move("eth_src", "eth_dst", 48),
            SetField("eth_src", answer_mac),
            SetField("arp_op", 2),
            Move("arp_sha", "arp_tha", 48),
            Move("arp_spa", "arp_tpa", 32),
            SetField("arp_sha", answer_mac),
            SetField("arp_spa", _ip(i)),
            Output(OFPP_IN_PORT),
        ),
        cookie=cookie,
    )


def make_flows(n: int) -> list[Flow]:
    return [make_flow(i) for i in range(n)]


def change_one_percent(n: int, seed: int = 7) -> list[Flow]:
    """The n-flow table with 1% changed: 0.5% modified, 0.25% deleted, 0.25% new."""
    rng = random.Random(seed)
    changed = rng.sample(range(n), n // 100)
    modified = set(changed[: n // 200])
    deleted = set(changed[n // 200 :])
    flows = [make_flow(i, 1 if i in modified else 0) for i in range(n) if i not in deleted]
    flows += [make_flow(n + j) for j in range(len(deleted))]
    return flows


# ---------------------------------------------------------------- bridges and ovs-ofctl


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


_bridge_seq = iter(range(1, 1_000_000))


@contextmanager
def fresh_bridge() -> Iterator[str]:
    """A new netdev bridge with an empty flow table; always deleted."""
    name = f"{BRIDGE_PREFIX}{next(_bridge_seq)}"
    _run("ovs-vsctl", "--may-exist", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
    try:
        _run("ovs-ofctl", "-O", "OpenFlow13", "del-flows", name)
        yield name
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", name], check=False)


def write_flow_file(flows: Sequence[Flow], path: Path) -> None:
    path.write_text("".join(f.text() + "\n" for f in flows))


def dump_text(bridge: str) -> list[str]:
    out = _run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "--no-stats", bridge)
    return sorted(line.strip() for line in out.splitlines() if line.strip() and "_FLOW reply" not in line)


def same_tables(a: str, b: str) -> None:
    da, db = dump_text(a), dump_text(b)
    if da != db:
        diff = sorted(set(da) ^ set(db))[:5]
        raise SystemExit(f"bridges {a} and {b} differ ({len(da)} vs {len(db)} flows), e.g. {diff}")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ofctl(command: str, bridge: str, path: Path) -> Callable[[], object]:
    return lambda: _run("ovs-ofctl", "-O", "OpenFlow13", "--bundle", command, bridge, str(path))


# ---------------------------------------------------------------- the cases


def agent_install(bridge: str, flows: Sequence[Flow] | None, wire: Sequence[WireFlow] | None) -> float:
    """Seconds for a fresh agent to install the table (connection set up beforehand, not timed)."""
    with OFConnection(mgmt_target(bridge), timeout=60) as conn:
        installer = FlowInstaller(conn)
        if wire is not None:
            return timed(lambda: installer.sync(wire))
        assert flows is not None
        encoder = FlowEncoder()  # cold cache
        return timed(lambda: installer.sync(encoder.to_wire(f) for f in flows))


def run_install(n: int, tmp: Path, metrics: dict[str, list[float]]) -> None:
    flows = make_flows(n)
    wire = [FlowEncoder().to_wire(f) for f in flows]
    path = tmp / f"install-{n}.txt"
    write_flow_file(flows, path)
    label = f"{n // 1000}k"
    with fresh_bridge() as ours, fresh_bridge() as theirs, fresh_bridge() as ours_wire:
        metrics.setdefault(f"ofctl_{label}_s", []).append(timed(ofctl("add-flows", theirs, path)))
        metrics.setdefault(f"agent_{label}_s", []).append(agent_install(ours, flows, None))
        metrics.setdefault(f"agent_wire_{label}_s", []).append(agent_install(ours_wire, None, wire))
        same_tables(ours, theirs)
        same_tables(ours_wire, theirs)


def run_update(n: int, tmp: Path, metrics: dict[str, list[float]]) -> None:
    base = make_flows(n)
    changed = change_one_percent(n)
    base_wire = [FlowEncoder().to_wire(f) for f in base]
    changed_wire = [FlowEncoder().to_wire(f) for f in changed]
    base_path, changed_path = tmp / f"base-{n}.txt", tmp / f"changed-{n}.txt"
    write_flow_file(base, base_path)
    write_flow_file(changed, changed_path)
    with fresh_bridge() as ours, fresh_bridge() as theirs, fresh_bridge() as ours_wire:
        ofctl("add-flows", theirs, base_path)()
        metrics.setdefault("ofctl_update_1pct_s", []).append(timed(ofctl("replace-flows", theirs, changed_path)))
        with OFConnection(mgmt_target(ours), timeout=60) as conn:
            installer = FlowInstaller(conn)
            installer.sync(base_wire)
            encoder = FlowEncoder()  # cold: the agent's cost includes encoding every desired flow
            result = installer.sync(encoder.to_wire(f) for f in changed)
            metrics.setdefault("agent_update_1pct_s", []).append(result.seconds)
        with OFConnection(mgmt_target(ours_wire), timeout=60) as conn:
            installer = FlowInstaller(conn)
            installer.sync(base_wire)
            metrics.setdefault("agent_wire_update_1pct_s", []).append(timed(lambda: installer.sync(changed_wire)))
        same_tables(ours, theirs)
        same_tables(ours_wire, theirs)
        # A restarted agent: new connection, no memory; it dumps and diffs (what replace-flows does).
        ofctl("replace-flows", theirs, base_path)()
        with OFConnection(mgmt_target(ours), timeout=60) as conn:
            installer = FlowInstaller(conn)
            metrics.setdefault("agent_restart_update_1pct_s", []).append(timed(lambda: installer.sync(base_wire)))
            metrics.setdefault(f"agent_dump_{n // 1000}k_s", []).append(timed(conn.dump_flows))
        metrics.setdefault(f"ofctl_dump_{n // 1000}k_s", []).append(
            timed(lambda: _run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", theirs))
        )
        same_tables(ours, theirs)


def run_encode(n: int, metrics: dict[str, list[float]]) -> None:
    """Encoding alone, Flow -> WireFlow: a cold encoder, then the same flows again (warm)."""
    flows = make_flows(n)
    encoder = FlowEncoder()
    label = f"{n // 1000}k"
    metrics.setdefault(f"encode_{label}_cold_s", []).append(timed(lambda: [encoder.to_wire(f) for f in flows]))
    metrics.setdefault(f"encode_{label}_warm_s", []).append(timed(lambda: [encoder.to_wire(f) for f in flows]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="10000,100000")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    metrics: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lt-bench-") as tmpdir:
        tmp = Path(tmpdir)
        for rep in range(args.repeats):
            for n in sizes:
                run_install(n, tmp, metrics)
            run_update(max(sizes), tmp, metrics)
            run_encode(max(sizes), metrics)
            print(f"repetition {rep + 1}/{args.repeats} done", file=sys.stderr)
    result = {k: round(statistics.median(v), 4) for k, v in sorted(metrics.items())}
    big = f"{max(sizes) // 1000}k"
    result[f"ratio_{big}"] = round(result[f"agent_{big}_s"] / result[f"ofctl_{big}_s"], 3)
    result[f"ratio_wire_{big}"] = round(result[f"agent_wire_{big}_s"] / result[f"ofctl_{big}_s"], 3)
    for n in sizes:
        label = f"{n // 1000}k"
        result[f"ratio_{label}"] = round(result[f"agent_{label}_s"] / result[f"ofctl_{label}_s"], 3)
    result["ratio_update_1pct"] = round(result["agent_update_1pct_s"] / result["ofctl_update_1pct_s"], 3)
    result["ratio_wire_update_1pct"] = round(result["agent_wire_update_1pct_s"] / result["ofctl_update_1pct_s"], 3)
    result["ratio_restart_update_1pct"] = round(
        result["agent_restart_update_1pct_s"] / result["ofctl_update_1pct_s"], 3
    )
    result["repeats"] = args.repeats
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  median of {args.repeats}")
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
