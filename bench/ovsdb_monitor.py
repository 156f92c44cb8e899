"""How fast is a newly plugged VIF noticed? Loom's python-ovs IDL monitor vs ovsdbapp's RowEvent, side by side.

A private OVS runs in namespace lv-bench (so other users of the system OVS
add no noise). For each of N VIFs (a tap made beforehand), the main process
adds the port with external_ids:iface-id, without waiting; t0 is taken just
before that transaction is sent. Each watcher runs in a process of its own
(no GIL shared with the other or with the writer), sees the same change over
its own connection and reports (CLOCK_MONOTONIC is machine-wide):

- ``row``: the Interface row with the iface-id is seen (ovsdbapp: create event),
- ``ofport``: the row has the ofport ovs-vswitchd assigned (Loom: the
  InterfaceMonitor's present event, which is what the agent acts on).

Prints medians/p90s and writes bench/results/ovsdb_monitor.json.
Run: .venv/bin/python bench/ovsdb_monitor.py [N]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.stats import percentile
from dataplane.common import netns as ns
from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.idl import OvsdbClient, TxnContext
from dataplane.ovs.types import InterfaceEvent
from lab.mininet.ovs_instance import OvsInstance
from vif import link

NETNS = "lv-bench"
BRIDGE = "br-int"


class Stamps:
    """iface-id -> first time each watcher saw each stage."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str, str], float] = {}
        self.cond = threading.Condition()

    def mark(self, who: str, stage: str, iface_id: str, at: float) -> None:
        with self.cond:
            self.times.setdefault((who, stage, iface_id), at)
            self.cond.notify_all()

    def wait(self, keys: list[tuple[str, str, str]], timeout: float = 10.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: all(k in self.times for k in keys), timeout):
                missing = [k for k in keys if k not in self.times]
                raise TimeoutError(f"not seen: {missing}")


def report(stage: str, iface_id: str) -> None:
    """A watcher's line to the main process: stage, iface-id, monotonic time."""
    print(f"{stage} {iface_id} {time.monotonic():.9f}", flush=True)


def watch_loom(remote: str) -> None:
    def on_event(ev: InterfaceEvent) -> None:
        if ev.present:
            report("ofport", ev.iface_id)

    def on_changes(idl: Any, changes: Any, resync: bool) -> None:
        for c in changes:
            if c.table == "Interface" and "iface-id" in c.row.external_ids:
                report("row", c.row.external_ids["iface-id"])

    client = OvsdbClient(remote).start()
    client.add_listener(on_changes)
    OvsDriver(client).monitor_interfaces(callback=on_event, bridge=BRIDGE)
    print("ready", flush=True)
    sys.stdin.read()  # until the main process closes our stdin


def watch_ovsdbapp(remote: str) -> None:
    """ovsdbapp's way: an OvsdbIdl connection whose notify() feeds a RowEventHandler (own thread)."""
    from ovsdbapp.backend.ovs_idl import connection, event
    from ovsdbapp.schema.open_vswitch import impl_idl

    class VifEvent(event.RowEvent):
        def __init__(self) -> None:
            super().__init__((self.ROW_CREATE, self.ROW_UPDATE), "Interface", None)

        def match_fn(self, ev: str, row: Any, old: Any = None) -> bool:
            return "iface-id" in row.external_ids

        def run(self, ev: str, row: Any, old: Any) -> None:
            iface_id = row.external_ids["iface-id"]
            report("row", iface_id)
            if row.ofport and row.ofport[0] > 0:
                report("ofport", iface_id)

    handler = event.RowEventHandler()
    handler.watch_event(VifEvent())

    class NotifyingIdl(connection.OvsdbIdl):
        def notify(self, ev: str, row: Any, updates: Any = None) -> None:
            handler.notify(ev, row, updates)

    tables = ["Open_vSwitch", "Bridge", "Port", "Interface"]
    idl = NotifyingIdl.from_server(remote, "Open_vSwitch", helper_tables=tables)
    impl_idl.OvsdbIdl(connection.Connection(idl, timeout=10))
    print("ready", flush=True)
    sys.stdin.read()


def start_watcher(who: str, remote: str, stamps: Stamps) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--watch", who, remote],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"watcher {who} did not start")

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            stage, iface_id, at = line.split()
            stamps.mark(who, stage, iface_id, float(at))

    threading.Thread(target=pump, daemon=True).start()
    return proc


def add_port(name: str, iface_id: str) -> Callable[[TxnContext], None]:
    def body(ctx: TxnContext) -> None:
        br = ctx.find("Bridge", name=BRIDGE)
        iface = ctx.insert("Interface")
        iface.name = name
        iface.external_ids = {"iface-id": iface_id}
        port = ctx.insert("Port")
        port.name = name
        port.interfaces = [iface]
        ctx.add_ref(br, "ports", port)

    return body


def main(n: int = 60) -> dict[str, float]:
    ns.create(NETNS)
    root = tempfile.mkdtemp(prefix="lv-bench-")
    instance = OvsInstance(root, NETNS, "bench")
    names = [f"lvb{i:04d}" for i in range(n)]
    try:
        instance.start()
        remote = f"unix:{instance.paths.db_socket}"
        with OvsDriver(remote) as setup:
            setup.ensure_integration_bridge("netdev", bridge=BRIDGE)
        for name in names:
            link.ensure_tap(name, mac="fe:16:3e:00:00:01", mtu=1450, netns=NETNS)

        stamps = Stamps()
        watchers = [start_watcher(who, remote, stamps) for who in ("loom", "ovsdbapp")]
        writer = OvsdbClient(remote).start()

        samples: dict[str, list[float]] = {f"{w}_{s}": [] for w in ("loom", "ovsdbapp") for s in ("row", "ofport")}
        for i, name in enumerate(names):
            iface_id = f"bench-{i}"
            t0 = time.monotonic()
            writer.transact(add_port(name, iface_id), what=f"bench add {name}", wait_vswitchd=False)
            keys = [(w, s, iface_id) for w in ("loom", "ovsdbapp") for s in ("row", "ofport")]
            stamps.wait(keys)
            for w, s, _ in keys:
                samples[f"{w}_{s}"].append((stamps.times[(w, s, iface_id)] - t0) * 1000)
            time.sleep(0.02)  # let the system settle between plugs
        writer.close()
        for proc in watchers:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(10)

        results: dict[str, float] = {"vifs": n}
        print(f"VIF noticed after the plugging transaction is sent, {n} VIFs (ms)")
        print(f"{'watcher':<10} {'stage':<8} {'p50':>8} {'p90':>8} {'max':>8}")
        for key, values in samples.items():
            who, stage = key.split("_")
            p50, p90 = statistics.median(values), percentile(values, 0.9)
            print(f"{who:<10} {stage:<8} {p50:8.2f} {p90:8.2f} {max(values):8.2f}")
            results[f"{key}_p50_ms"] = round(p50, 3)
            results[f"{key}_p90_ms"] = round(p90, 3)
        ratio = statistics.median(samples["loom_ofport"]) / statistics.median(samples["ovsdbapp_ofport"])
        results["ratio_loom_to_ovsdbapp_ofport_p50"] = round(ratio, 3)
        print(f"loom / ovsdbapp (ofport p50): {ratio:.2f}")
        os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
        with open(os.path.join(os.path.dirname(__file__), "results", "ovsdb_monitor.json"), "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        return results
    finally:
        instance.stop()
        ns.delete(NETNS)
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--watch":
        {"loom": watch_loom, "ovsdbapp": watch_ovsdbapp}[sys.argv[2]](sys.argv[3])
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
