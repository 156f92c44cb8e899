"""Helpers for tests of the controller: a live server (thread or process) and a DB invariant checker.

Everything created lives under a ``/tmp/lf-*`` directory removed afterwards.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc

from controller import app
from controller.cli.client import ApiClient
from controller.config import ControllerConfig
from controller.main import Controller
from controller.model import RESOURCE_TYPES
from controller.ready_file import clear_ready_file, wait_ready_file
from dataplane.common.supervise import stop_child
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb

ROOT = Path(__file__).resolve().parents[2]
MAX_TAG = 2**31


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="lf-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class LiveController(ApiClient):
    """A controller serving in this process, and loomctl's client of its API (``server`` is its address)."""

    controller: Controller
    db_path: str

    @property
    def address(self) -> str:
        return self.server

    @property
    def store(self) -> Any:
        return self.controller.context.store


@contextlib.contextmanager
def live_controller(workdir: str, **config: Any) -> Iterator[LiveController]:
    cfg = ControllerConfig(listen="127.0.0.1:0", db_path=os.path.join(workdir, "controller.db"), workers=32)
    cfg = replace(cfg, **config)
    controller = app.build(cfg)  # what `loom-controller` runs: API, distributor, status tracker, agent service
    controller.start()
    live = LiveController(f"127.0.0.1:{controller.port}", controller, cfg.db_path)
    try:
        yield live
    finally:
        live.close()
        controller.stop(grace=1.0)


@dataclass
class ControllerProcess:
    """``python -m controller.app`` (``loom-controller``, or ``module``) in a subprocess, on a given database file."""

    workdir: str
    db_path: str
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    module: str = "controller.app"

    def start(self, timeout: float = 30.0) -> None:
        ready = os.path.join(self.workdir, "ready")
        clear_ready_file(ready)
        log = open(os.path.join(self.workdir, "controller.log"), "ab")  # noqa: SIM115 - the child keeps it
        cmd = [sys.executable, "-m", self.module, "--listen", "127.0.0.1:0", "--db", self.db_path]
        cmd += ["--ready-file", ready, "--log-level", "WARNING", *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=log, stdout=log)
        log.close()
        self.port = wait_ready_file(self.proc, ready, timeout, os.path.join(self.workdir, "controller.log"))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL, the way a crash or the OOM killer ends it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_child(self.proc)


# What the controller writes to a port by itself, as its agent reports and its flows compile.
_OUTPUT_ONLY = {"status": "", "stages": (), "revision_number": 0, "updated_at": 0.0}


def user_state(store: Any) -> dict[tuple[str, str], Any]:
    """Every stored object, minus the port fields the controller changes on its own (status, stages).

    The full controller's status tracker commits those a moment after a port is bound, whatever the
    test does meanwhile, so "nothing changed" has to be judged on this, not on the store's revision.
    """
    state: dict[tuple[str, str], Any] = {}
    for kind in RESOURCE_TYPES:
        for obj in store.list(kind):
            state[(kind, obj.id)] = replace(obj, **_OUTPUT_ONLY) if kind == "port" else obj
    return state


def expect(live: LiveController, code: grpc.StatusCode, call: Callable[[], Any], *fragments: str) -> str:
    """The call fails with ``code``, its message holds every fragment, and nothing was stored."""
    before = user_state(live.store)
    try:
        call()
    except grpc.RpcError as exc:
        assert exc.code() == code, exc.details()
        for fragment in fragments:
            assert fragment in exc.details(), exc.details()
        assert user_state(live.store) == before, "a failed request changed the store"
        return exc.details()
    raise AssertionError(f"expected {code.name}, the call succeeded")


def make_network(live: LiveController, **fields: Any) -> rpb.Network:
    return live.network.CreateNetwork(npb.CreateNetworkRequest(network=rpb.Network(**fields)))


def make_subnet(live: LiveController, network_id: str, cidr: str, **fields: Any) -> rpb.Subnet:
    subnet = rpb.Subnet(network_id=network_id, cidr=cidr, **fields)
    return live.network.CreateSubnet(npb.CreateSubnetRequest(subnet=subnet))


# ------------------------------------------------------------- invariants


def _read(db_path: str) -> tuple[dict[str, int], dict[str, dict[str, dict[str, Any]]], list[tuple], sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None)
    # One read transaction: the controller may still commit (its status tracker) while this reads, and
    # meta, objects and events must come from the same snapshot.
    conn.execute("BEGIN")
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    objects: dict[str, dict[str, dict[str, Any]]] = {}
    tables = [
        row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'obj_%'")
    ]
    for table in tables:
        kind = table[len("obj_") :]
        for tag, oid, revision, body in conn.execute(f"SELECT tag, id, revision, body FROM {table}"):
            data = json.loads(body)
            assert data["id"] == oid and data["tag"] == tag and data["revision_number"] == revision, (kind, oid)
            objects.setdefault(kind, {})[oid] = data
    events = conn.execute("SELECT revision, seq, type, kind, id, body FROM events ORDER BY revision, seq").fetchall()
    return meta, objects, events, conn


def check_db_invariants(db_path: str, dhcp_ports: bool = True) -> dict[str, int]:
    """Read the SQLite file directly and assert every model invariant; returns object counts per kind.

    ``dhcp_ports``: also check that each network with DHCP subnets has exactly
    one network:dhcp port holding one address per DHCP subnet (true unless a
    test deletes or fakes DHCP ports itself).
    """
    meta, objects, events, conn = _read(db_path)
    try:
        _check_log(meta, objects, events)
        _check_model(meta, objects, dhcp_ports)
        _check_derived_tables(conn, objects)
    finally:
        conn.close()
    return {kind: len(objs) for kind, objs in objects.items()}


def _check_log(meta: dict[str, int], objects: dict[str, dict[str, dict[str, Any]]], events: list[tuple]) -> None:
    revision, compacted = meta.get("revision", 0), meta.get("compacted", 0)
    revisions = sorted({e[0] for e in events})
    assert revisions == list(range(compacted + 1, revision + 1)), "event log has gaps or extra revisions"
    by_revision: dict[int, list[int]] = {}
    for rev, seq, *_ in events:
        by_revision.setdefault(rev, []).append(seq)
    for rev, seqs in by_revision.items():
        assert seqs == list(range(len(seqs))), f"revision {rev} has seqs {seqs}"
    last: dict[tuple[str, str], tuple] = {}
    for ev in events:
        last[(ev[3], ev[4])] = ev
    for (kind, oid), (rev, _seq, typ, _k, _i, body) in last.items():
        stored = objects.get(kind, {}).get(oid)
        if typ == "DELETED":
            assert stored is None, f"{kind} {oid} deleted at {rev} but still stored"
        else:
            assert stored is not None, f"{kind} {oid} written at {rev} but not stored"
            assert stored["revision_number"] == rev, (
                f"{kind} {oid}: revision_number {stored['revision_number']} != {rev}"
            )
            assert json.loads(body) == stored, f"{kind} {oid}: last event body differs from the object"
    for kind, objs in objects.items():
        tags = [o["tag"] for o in objs.values()]
        assert len(set(tags)) == len(tags), f"duplicate {kind} tags"
        assert all(0 < t <= meta.get(f"tag.{kind}", 0) < MAX_TAG for t in tags), f"{kind} tag out of range"
        for oid, o in objs.items():
            assert o["revision_number"] <= revision
            if o["revision_number"] > compacted:
                assert (kind, oid) in last, f"{kind} {oid} has no event for revision {o['revision_number']}"


def _net(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


def _check_model(meta: dict[str, int], objects: dict[str, dict[str, dict[str, Any]]], dhcp_ports: bool) -> None:
    networks = objects.get("network", {})
    subnets = objects.get("subnet", {})
    ports = objects.get("port", {})
    segments: set[tuple] = set()
    for n in networks.values():
        if n["network_type"] == "vxlan":
            key: tuple = ("vxlan", n["segmentation_id"])
            assert 1 <= n["segmentation_id"] < 2**24 and not n["physical_network"]
        elif n["network_type"] == "vlan":
            key = ("vlan", n["physical_network"], n["segmentation_id"])
            assert 1 <= n["segmentation_id"] <= 4094 and n["physical_network"]
        else:
            assert n["network_type"] == "flat" and n["segmentation_id"] == 0 and n["physical_network"]
            key = ("flat", n["physical_network"])
        assert key not in segments, f"segment {key} used twice"
        segments.add(key)
        assert 68 <= n["mtu"] <= 1500
    by_network: dict[str, list[ipaddress.IPv4Network]] = {}
    for s in subnets.values():
        assert s["network_id"] in networks, f"subnet {s['id']} on a missing network"
        cidr = _net(s["cidr"])
        for other in by_network.get(s["network_id"], []):
            assert not cidr.overlaps(other), f"{cidr} overlaps {other}"
        by_network.setdefault(s["network_id"], []).append(cidr)
        gw = ipaddress.IPv4Address(s["gateway_ip"]) if s["gateway_ip"] else None
        hosts = (cidr.network_address + 1, cidr.broadcast_address - 1)
        assert gw is None or hosts[0] <= gw <= hosts[1]
        pools = sorted(
            (ipaddress.IPv4Address(p["start"]), ipaddress.IPv4Address(p["end"])) for p in s["allocation_pools"]
        )
        for start, end in pools:
            assert hosts[0] <= start <= end <= hosts[1], f"pool {start}-{end} outside {cidr}"
            assert gw is None or not start <= gw <= end, "pool holds the gateway"
        for (_, e1), (s2, _) in itertools.pairwise(pools):
            assert e1 < s2, "pools overlap"
    macs: set[tuple[str, str]] = set()
    ips: set[tuple[str, str]] = set()
    ofports: set[tuple[str, int]] = set()
    for p in ports.values():
        assert p["network_id"] in networks, f"port {p['id']} on a missing network"
        mac = p["mac_address"]
        octets = bytes.fromhex(mac.replace(":", ""))
        assert len(octets) == 6 and not octets[0] & 1 and mac == mac.lower(), f"bad MAC {mac}"
        assert (p["network_id"], mac) not in macs, f"MAC {mac} twice on network {p['network_id']}"
        macs.add((p["network_id"], mac))
        for f in p["fixed_ips"]:
            s = subnets.get(f["subnet_id"])
            assert s is not None and s["network_id"] == p["network_id"], f"port {p['id']}: foreign subnet"
            assert ipaddress.IPv4Address(f["ip_address"]) in _net(s["cidr"])
            assert (f["subnet_id"], f["ip_address"]) not in ips, f"{f['ip_address']} allocated twice"
            ips.add((f["subnet_id"], f["ip_address"]))
        if p["binding_host_id"]:
            assert 100 <= p["binding_ofport"] <= 32767
            assert (p["binding_host_id"], p["binding_ofport"]) not in ofports, "ofport used twice on a host"
            ofports.add((p["binding_host_id"], p["binding_ofport"]))
        else:
            assert p["binding_ofport"] == 0
    _check_security_groups(objects)
    if dhcp_ports:
        for n in networks.values():
            dhcp_subnets = {s["id"] for s in subnets.values() if s["network_id"] == n["id"] and s["enable_dhcp"]}
            owners = [p for p in ports.values() if p["network_id"] == n["id"] and p["device_owner"] == "network:dhcp"]
            if not dhcp_subnets:
                assert not owners, f"network {n['id']} has a DHCP port but no DHCP subnet"
                continue
            assert len(owners) == 1, f"network {n['id']} has {len(owners)} DHCP ports"
            held = sorted(f["subnet_id"] for f in owners[0]["fixed_ips"])
            assert held == sorted(dhcp_subnets), f"DHCP port of {n['id']} holds {held}, not {sorted(dhcp_subnets)}"


def _check_security_groups(objects: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Groups a port lists exist in its project; rules name existing groups; one default group per project."""
    groups = objects.get("security_group", {})
    defaults: set[str] = set()
    for g in groups.values():
        if g["name"] == "default":
            assert g["project_id"] not in defaults, f"project {g['project_id']!r} has two default groups"
            defaults.add(g["project_id"])
    seen_rules: set[tuple] = set()
    for r in objects.get("security_group_rule", {}).values():
        assert r["security_group_id"] in groups, f"rule {r['id']} of a missing group"
        assert not r["remote_group_id"] or r["remote_group_id"] in groups, f"rule {r['id']}: missing remote group"
        assert not (r["remote_group_id"] and r["remote_ip_prefix"]), f"rule {r['id']}: prefix and group"
        key = tuple(
            r[k]
            for k in sorted(r)
            if k not in ("id", "tag", "revision_number", "created_at", "updated_at", "description")
        )
        assert key not in seen_rules, f"rule {r['id']} is a duplicate"
        seen_rules.add(key)
    for p in objects.get("port", {}).values():
        for gid in p.get("security_groups", ()):
            assert gid in groups, f"port {p['id']} lists missing group {gid}"
            assert groups[gid]["project_id"] == p["project_id"], f"port {p['id']}: group of another project"
        if not p["port_security_enabled"]:
            assert not p.get("security_groups") and not p.get("allowed_address_pairs"), p["id"]


def _check_derived_tables(conn: sqlite3.Connection, objects: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The store's invariant tables say exactly what the objects say."""
    networks = objects.get("network", {})
    segments = {
        (r[0], r[1], r[2], r[3])
        for r in conn.execute("SELECT network_id, network_type, physical_network, segmentation_id FROM net_segments")
    }
    assert segments == {
        (n["id"], n["network_type"], n["physical_network"], n["segmentation_id"]) for n in networks.values()
    }
    ranges = {r[0]: r[1:] for r in conn.execute("SELECT subnet_id, network_id, first_ip, last_ip FROM subnet_ranges")}
    expected = {}
    for s in objects.get("subnet", {}).values():
        cidr = _net(s["cidr"])
        expected[s["id"]] = (s["network_id"], int(cidr.network_address), int(cidr.broadcast_address))
    assert ranges == expected
    ports = objects.get("port", {}).values()
    assert set(conn.execute("SELECT network_id, mac_address, port_id FROM port_macs")) == {
        (p["network_id"], p["mac_address"], p["id"]) for p in ports
    }
    assert set(conn.execute("SELECT binding_host, binding_ofport, port_id FROM port_bindings")) == {
        (p["binding_host_id"], p["binding_ofport"], p["id"]) for p in ports if p["binding_host_id"]
    }
    assert set(conn.execute("SELECT subnet_id, ip, port_id, network_id FROM port_ips")) == {
        (f["subnet_id"], int(ipaddress.IPv4Address(f["ip_address"])), p["id"], p["network_id"])
        for p in ports
        for f in p["fixed_ips"]
    }
