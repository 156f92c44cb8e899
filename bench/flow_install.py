"""Benchmark: the agent's flow installer against ``ovs-ofctl --bundle``, side by side in one run.

Each case runs on fresh userspace (netdev) bridges whose default NORMAL flow
is removed first. Both sides are timed from the same point: the agent's time
includes opening its OpenFlow connection (and the hello handshake), as
``ovs-ofctl``'s includes starting the process and connecting. Nothing is set
up for one side outside the clock that the other does inside it.

* install 10k and 100k realistic Loom flows into an empty table: the agent
  (``FlowInstaller.sync`` fed by a cold ``FlowEncoder`` turning ``Flow``
  dataclasses into wire bytes; and again from pre-encoded WireFlows, what the
  agent receives from the controller) against ``ovs-ofctl -O OpenFlow13
  --bundle add-flows`` of the same flows as text;
* change 1% of 100k (0.5% modified, 0.5% deleted and as many new ones
  added: 1,500 flow mods), both sides starting from what the switch holds
  and going the same way (base -> changed): the agent on a new connection (dump the switch, diff, one bundle:
  what a restarted agent does) against ``ovs-ofctl -O OpenFlow13 --bundle
  replace-flows``, which also dumps, diffs and sends one bundle. Their ratio
  is the headline ``ratio_update_1pct``.
* the same change as the running agent makes it: diffing against the state it
  holds in memory, on the connection it holds (``agent_memory_update_1pct_s``,
  ``ratio_memory_update_1pct``). ``ovs-ofctl`` has no such mode, so this ratio
  is not like for like: it says what the agent's steady state saves;
* dump 100k flows: the agent (connect + dump) against ``ovs-ofctl dump-flows``.

After every case the two bridges are compared flow by flow (``dump-flows
--no-stats``), so a fast wrong answer cannot pass. Each case is repeated and
the median kept. Prints a table; writes ``bench/results/flow_install.json``.

    .venv/bin/python bench/flow_install.py [--repeats 3] [--sizes 10000,100000] [--prefix lt12345-]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataplane.contract.cookie import CookieKind, make_cookie
from dataplane.contract.encode import FlowEncoder, WireFlow
from dataplane.contract.fields import ETH_TYPE_ARP, ETH_TYPE_IPV4, OFPP_IN_PORT, int_to_ipv4, int_to_mac
from dataplane.contract.flow import Flow, Match, Move, Output, Resubmit, SetField
from dataplane.openflow.connection import OFConnection, mgmt_target
from dataplane.openflow.installer import FlowInstaller

# Bridges are named PREFIX + a sequence number (<= 15 characters); the default prefix holds this process's id,
# so two runs on one machine (other engineers share it) never touch each other's bridges.
DEFAULT_PREFIX = f"lt{os.getpid() % 100000}-"
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
    """The n-flow table with 1% of its flows changed: 0.5% modified, 0.5% deleted, and as many new ones."""
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


@dataclass
class BridgeNames:
    """Names for this run's bridges: prefix + a sequence number."""

    prefix: str = DEFAULT_PREFIX
    seq: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    def next(self) -> str:
        name = f"{self.prefix}{next(self.seq)}"
        assert len(name) <= 15, f"bridge name {name!r} is longer than an interface name may be"
        return name


BRIDGES = BridgeNames()


@contextmanager
def fresh_bridge() -> Iterator[str]:
    """A new netdev bridge with an empty flow table; always deleted."""
    name = BRIDGES.next()
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


def agent_sync(bridge: str, desired: Callable[[], Iterable[WireFlow]]) -> float:
    """Seconds for an agent that starts now: connect, first sync (dump the switch, diff, one bundle)."""

    def run() -> None:
        with OFConnection(mgmt_target(bridge), timeout=60) as conn:
            FlowInstaller(conn).sync(desired())

    return timed(run)


def run_install(n: int, tmp: Path, metrics: dict[str, list[float]]) -> None:
    flows = make_flows(n)
    wire = [FlowEncoder().to_wire(f) for f in flows]
    path = tmp / f"install-{n}.txt"
    write_flow_file(flows, path)
    label = f"{n // 1000}k"

    def encoded() -> Iterable[WireFlow]:
        encoder = FlowEncoder()  # cold cache: the agent's cost includes encoding every flow
        return (encoder.to_wire(f) for f in flows)

    with fresh_bridge() as ours, fresh_bridge() as theirs, fresh_bridge() as ours_wire:
        metrics.setdefault(f"ofctl_{label}_s", []).append(timed(ofctl("add-flows", theirs, path)))
        metrics.setdefault(f"agent_{label}_s", []).append(agent_sync(ours, encoded))
        metrics.setdefault(f"agent_wire_{label}_s", []).append(agent_sync(ours_wire, lambda: wire))
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
    label = f"{n // 1000}k"
    with fresh_bridge() as ours, fresh_bridge() as theirs, fresh_bridge() as ours_memory:
        # Every bridge holds the base table, put there outside the clock.
        ofctl("add-flows", theirs, base_path)()
        agent_sync(ours, lambda: base_wire)
        # Like for like: each side starts from what the switch holds and goes base -> changed.
        metrics.setdefault("ofctl_update_1pct_s", []).append(timed(ofctl("replace-flows", theirs, changed_path)))
        metrics.setdefault("agent_update_1pct_s", []).append(agent_sync(ours, lambda: changed_wire))
        same_tables(ours, theirs)
        # The running agent: the same change, diffed against the state it holds, on its open connection.
        with OFConnection(mgmt_target(ours_memory), timeout=60) as conn:
            installer = FlowInstaller(conn)
            installer.sync(base_wire)
            result = installer.sync(changed_wire)
            assert not result.from_dump and (result.added, result.modified, result.deleted) == (n // 200,) * 3, result
            metrics.setdefault("agent_memory_update_1pct_s", []).append(result.seconds)
        same_tables(ours_memory, theirs)

    # Reading a full table: connect + dump on both sides.
    with fresh_bridge() as bridge:
        ofctl("add-flows", bridge, base_path)()

        def agent_dump() -> None:
            with OFConnection(mgmt_target(bridge), timeout=60) as conn:
                assert len(conn.dump_flows()) == n

        metrics.setdefault(f"agent_dump_{label}_s", []).append(timed(agent_dump))
        metrics.setdefault(f"ofctl_dump_{label}_s", []).append(
            timed(lambda: _run("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge))
        )


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
    ap.add_argument("--prefix", default=DEFAULT_PREFIX, help="bridge name prefix (names are prefix + a number)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args()
    BRIDGES.prefix = args.prefix
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
    for n in sizes:
        label = f"{n // 1000}k"
        result[f"ratio_{label}"] = round(result[f"agent_{label}_s"] / result[f"ofctl_{label}_s"], 3)
        result[f"ratio_wire_{label}"] = round(result[f"agent_wire_{label}_s"] / result[f"ofctl_{label}_s"], 3)
    big = f"{max(sizes) // 1000}k"
    result[f"ratio_dump_{big}"] = round(result[f"agent_dump_{big}_s"] / result[f"ofctl_dump_{big}_s"], 3)
    result["ratio_update_1pct"] = round(result["agent_update_1pct_s"] / result["ofctl_update_1pct_s"], 3)
    result["ratio_memory_update_1pct"] = round(result["agent_memory_update_1pct_s"] / result["ofctl_update_1pct_s"], 3)
    result["repeats"] = args.repeats
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in result)
    print(f"{'metric':<{width}}  median of {args.repeats}")
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
