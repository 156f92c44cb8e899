"""The model's invariants, enforced by SQLite inside each commit's transaction.

Tables derived from the objects, whose keys, CHECKs, triggers and foreign keys
make SQLite itself refuse a commit that would break the model:

* ``net_segments``: one network per VXLAN VNI; per physical network, one per
  VLAN id and at most one flat network; segment ids in range.
* ``subnet_ranges``: a subnet's network exists; subnets of a network do not
  overlap; a subnet cannot move away from the addresses it has handed out.
* ``port_macs``: keyed by (network, MAC): one port per MAC on a network; the
  port's network exists and cannot be deleted under it.
* ``port_bindings``: keyed by (host, ofport): one port per OpenFlow port number
  on a host, in the VIF range.
* ``port_ips``: keyed by (subnet, IP): one port per address; the subnet exists,
  is on the port's network and holds the address.
* ``router_zones``: keyed by zone: one router per conntrack zone pair (an even
  zone in the router range; the next one is its SNAT zone).
* ``fip_fixed``: keyed by (port, fixed IP): at most one floating IP per fixed IP.

Each table is keyed by what must be unique, so uniqueness costs no extra index
(every page a commit touches is written to the WAL again). SQLite's error is
turned into a ``ConflictError`` / ``InvariantError`` naming the field.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.ipam import int_to_ip, ip_to_int
from controller.model import FloatingIP, Network, Port, Resource, Router, Subnet
from controller.store.base import ConflictError, EventType, InvariantError, StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS net_segments (
    network_id TEXT PRIMARY KEY,
    network_type TEXT NOT NULL,
    physical_network TEXT NOT NULL,
    segmentation_id INTEGER NOT NULL,
    CONSTRAINT segment_valid CHECK (
        (network_type = 'vxlan' AND segmentation_id BETWEEN 1 AND 16777215 AND physical_network = '')
        OR (network_type = 'vlan' AND segmentation_id BETWEEN 1 AND 4094 AND physical_network != '')
        OR (network_type = 'flat' AND segmentation_id = 0 AND physical_network != ''))
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS segment_vxlan ON net_segments (segmentation_id)
    WHERE network_type = 'vxlan';
CREATE UNIQUE INDEX IF NOT EXISTS segment_vlan ON net_segments (physical_network, segmentation_id)
    WHERE network_type = 'vlan';
CREATE UNIQUE INDEX IF NOT EXISTS segment_flat ON net_segments (physical_network)
    WHERE network_type = 'flat';

CREATE TABLE IF NOT EXISTS subnet_ranges (
    subnet_id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL REFERENCES net_segments (network_id),
    first_ip INTEGER NOT NULL,
    last_ip INTEGER NOT NULL,
    CHECK (first_ip <= last_ip)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subnet_ranges_network ON subnet_ranges (network_id, first_ip);

CREATE TRIGGER IF NOT EXISTS subnet_overlap_insert BEFORE INSERT ON subnet_ranges
WHEN EXISTS (SELECT 1 FROM subnet_ranges s WHERE s.network_id = NEW.network_id
             AND s.first_ip <= NEW.last_ip AND s.last_ip >= NEW.first_ip)
BEGIN SELECT RAISE(ABORT, 'subnet_overlap'); END;

CREATE TRIGGER IF NOT EXISTS subnet_overlap_update BEFORE UPDATE ON subnet_ranges
WHEN EXISTS (SELECT 1 FROM subnet_ranges s WHERE s.network_id = NEW.network_id AND s.subnet_id != NEW.subnet_id
             AND s.first_ip <= NEW.last_ip AND s.last_ip >= NEW.first_ip)
BEGIN SELECT RAISE(ABORT, 'subnet_overlap'); END;

CREATE TRIGGER IF NOT EXISTS subnet_keeps_ips BEFORE UPDATE ON subnet_ranges
WHEN EXISTS (SELECT 1 FROM port_ips i WHERE i.subnet_id = NEW.subnet_id
             AND (i.ip NOT BETWEEN NEW.first_ip AND NEW.last_ip OR i.network_id != NEW.network_id))
BEGIN SELECT RAISE(ABORT, 'subnet_strands_ips'); END;

CREATE TABLE IF NOT EXISTS port_macs (
    network_id TEXT NOT NULL REFERENCES net_segments (network_id),
    mac_address TEXT NOT NULL,
    port_id TEXT NOT NULL,
    PRIMARY KEY (network_id, mac_address)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS port_bindings (
    binding_host TEXT NOT NULL CHECK (binding_host != ''),
    binding_ofport INTEGER NOT NULL CONSTRAINT ofport_range CHECK (binding_ofport BETWEEN 100 AND 32767),
    port_id TEXT NOT NULL,
    PRIMARY KEY (binding_host, binding_ofport)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS port_ips (
    subnet_id TEXT NOT NULL REFERENCES subnet_ranges (subnet_id),
    ip INTEGER NOT NULL,
    port_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    PRIMARY KEY (subnet_id, ip)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS router_zones (
    zone INTEGER PRIMARY KEY CONSTRAINT zone_range CHECK (zone BETWEEN 32768 AND 65534 AND zone % 2 = 0),
    router_id TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS fip_fixed (
    port_id TEXT NOT NULL,
    fixed_ip TEXT NOT NULL,
    fip_id TEXT NOT NULL,
    PRIMARY KEY (port_id, fixed_ip)
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS port_ip_in_subnet BEFORE INSERT ON port_ips
WHEN NOT EXISTS (SELECT 1 FROM subnet_ranges s WHERE s.subnet_id = NEW.subnet_id
                 AND s.network_id = NEW.network_id AND NEW.ip BETWEEN s.first_ip AND s.last_ip)
BEGIN SELECT RAISE(ABORT, 'ip_outside_subnet'); END;
"""

KINDS = ("network", "subnet", "port", "router", "floatingip")  # the kinds with invariant tables


@dataclass(frozen=True, slots=True)
class Change:
    """One object in a commit being written."""

    type: EventType
    kind: str
    id: str
    old: Resource | None  # None for creates
    new: Resource | None  # None for deletes


# ------------------------------------------------------------------ rows


def segment_row(n: Network) -> tuple[Any, ...]:
    return (n.id, n.network_type, n.physical_network, n.segmentation_id)


def range_row(s: Subnet) -> tuple[Any, ...]:
    try:
        net = ipaddress.IPv4Network(s.cidr)
    except (ValueError, TypeError) as exc:
        raise InvariantError("subnet", "cidr", f"{s.cidr!r} is not an IPv4 CIDR") from exc
    return (s.id, s.network_id, int(net.network_address), int(net.broadcast_address))


def mac_rows(p: Port) -> list[tuple[Any, ...]]:
    return [(p.network_id, p.mac_address.lower(), p.id)]


def binding_rows(p: Port) -> list[tuple[Any, ...]]:
    if bool(p.binding_host_id) != bool(p.binding_ofport):
        raise InvariantError("port", "binding_ofport", "a bound port needs an ofport, an unbound port has none")
    return [(p.binding_host_id, p.binding_ofport, p.id)] if p.binding_host_id else []


def ip_rows(p: Port) -> list[tuple[Any, ...]]:
    rows = []
    for f in p.fixed_ips:
        try:
            ip = ip_to_int(f.ip_address)
        except ValueError as exc:
            raise InvariantError("port", "fixed_ips", f"{f.ip_address!r} is not an IPv4 address") from exc
        rows.append((f.subnet_id, ip, p.id, p.network_id))
    return rows


def zone_rows(r: Router) -> list[tuple[Any, ...]]:
    return [(r.zone, r.id)]


def fip_rows(f: FloatingIP) -> list[tuple[Any, ...]]:
    return [(f.port_id, f.fixed_ip_address, f.id)] if f.port_id else []


# Per router / floating IP table: its rows, and how to delete one row by its key.
_OTHER_TABLES: dict[str, tuple[tuple[str, Any, str], ...]] = {
    "router": (("router_zones", zone_rows, "DELETE FROM router_zones WHERE zone = ?"),),
    "floatingip": (("fip_fixed", fip_rows, "DELETE FROM fip_fixed WHERE port_id = ? AND fixed_ip = ?"),),
}

# Per port table: its rows for a port, and how to delete one row by its key.
_PORT_TABLES = (
    ("port_macs", mac_rows, "DELETE FROM port_macs WHERE network_id = ? AND mac_address = ?"),
    ("port_bindings", binding_rows, "DELETE FROM port_bindings WHERE binding_host = ? AND binding_ofport = ?"),
    ("port_ips", ip_rows, "DELETE FROM port_ips WHERE subnet_id = ? AND ip = ?"),
)


# ----------------------------------------------------------------- write


def write(cur: sqlite3.Cursor, changes: Iterable[Change]) -> None:
    """Bring the invariant tables in line with ``changes``; raise what SQLite refuses.

    Rows are touched only when the values they hold change, in an order that
    lets one commit move a value between objects: first every row that goes
    away (children before parents), then every row that appears or changes
    (parents before children). Foreign keys are checked per statement.
    """
    by_kind: dict[str, list[Change]] = {kind: [] for kind in KINDS}
    for c in changes:
        if c.kind in by_kind:
            by_kind[c.kind].append(c)

    port_adds: list[tuple[Change, str, list[tuple[Any, ...]]]] = []
    for c in by_kind["port"]:
        for table, rows_of, delete_sql in _PORT_TABLES:
            old = rows_of(c.old) if isinstance(c.old, Port) else []
            new = rows_of(c.new) if isinstance(c.new, Port) else []
            if old != new:
                for row in old:
                    cur.execute(delete_sql, row[:2])
                if new:
                    port_adds.append((c, table, new))
    for kind, tables in _OTHER_TABLES.items():
        for c in by_kind[kind]:
            for table, rows_of, delete_sql in tables:
                old = rows_of(c.old) if c.old is not None else []
                new = rows_of(c.new) if c.new is not None else []
                if old != new:
                    for row in old:
                        cur.execute(delete_sql, row[: len(row) - 1])
                    if new:
                        port_adds.append((c, table, new))
    for c in by_kind["subnet"]:
        if c.new is None:
            _run(cur, "DELETE FROM subnet_ranges WHERE subnet_id = ?", (c.id,), c)
    for c in by_kind["network"]:
        if c.new is None:
            _run(cur, "DELETE FROM net_segments WHERE network_id = ?", (c.id,), c)

    for c in by_kind["network"]:
        if isinstance(c.new, Network):
            row = segment_row(c.new)
            if c.old is None:
                _run(cur, "INSERT INTO net_segments VALUES (?, ?, ?, ?)", row, c)
            elif row != segment_row(c.old):  # type: ignore[arg-type]
                sql = (
                    "UPDATE net_segments SET network_type = ?, physical_network = ?, segmentation_id = ? "
                    "WHERE network_id = ?"
                )
                _run(cur, sql, (*row[1:], row[0]), c)
    for c in by_kind["subnet"]:
        if isinstance(c.new, Subnet):
            row = range_row(c.new)
            if c.old is None:
                _run(cur, "INSERT INTO subnet_ranges VALUES (?, ?, ?, ?)", row, c)
            elif row != range_row(c.old):  # type: ignore[arg-type]
                sql = "UPDATE subnet_ranges SET network_id = ?, first_ip = ?, last_ip = ? WHERE subnet_id = ?"
                _run(cur, sql, (*row[1:], row[0]), c)
    for c, table, rows in port_adds:
        placeholders = ", ".join("?" * len(rows[0]))
        for row in rows:
            _run(cur, f"INSERT INTO {table} VALUES ({placeholders})", row, c)


def _run(cur: sqlite3.Cursor, sql: str, params: tuple[Any, ...], change: Change) -> None:
    try:
        cur.execute(sql, params)
    except sqlite3.IntegrityError as exc:
        raise explain(str(exc), change, sql, params) from exc


def explain(message: str, change: Change, sql: str, params: tuple[Any, ...]) -> StoreError:
    """Turn SQLite's complaint about one statement into an error naming the field."""
    obj = change.new if change.new is not None else change.old
    if "port_macs.network_id, port_macs.mac_address" in message:
        return ConflictError("port", "mac_address", f"{params[1]} is already in use on network {params[0]}")
    if "port_bindings.binding_host, port_bindings.binding_ofport" in message:
        return ConflictError("port", "binding_ofport", f"ofport {params[1]} is already used on host {params[0]}")
    if "port_bindings" in sql and "CHECK" in message:
        return InvariantError("port", "binding_ofport", f"ofport {params[1]} is not in 100..32767")
    if "router_zones.zone" in message:
        return ConflictError("router", "zone", f"conntrack zone {params[0]} is already used by another router")
    if "zone_range" in message:
        return InvariantError("router", "zone", f"zone {params[0]} is not an even zone of the router range")
    if "fip_fixed.port_id, fip_fixed.fixed_ip" in message:
        return ConflictError(
            "floatingip", "fixed_ip_address", f"{params[1]} of port {params[0]} already has a floating IP"
        )
    if "port_ips.subnet_id, port_ips.ip" in message:
        return ConflictError("port", "fixed_ips", f"{int_to_ip(params[1])} is already allocated in subnet {params[0]}")
    if "ip_outside_subnet" in message:
        ip = int_to_ip(params[1])
        return InvariantError("port", "fixed_ips", f"{ip} is not inside subnet {params[0]} of the port's network")
    if "net_segments.physical_network, net_segments.segmentation_id" in message:
        assert isinstance(obj, Network)
        vlan = f"VLAN {obj.segmentation_id} of physical network {obj.physical_network}"
        return ConflictError("network", "segmentation_id", f"{vlan} is already in use")
    if "net_segments.segmentation_id" in message:
        assert isinstance(obj, Network)
        return ConflictError("network", "segmentation_id", f"VNI {obj.segmentation_id} is already in use")
    if "net_segments.physical_network" in message:
        assert isinstance(obj, Network)
        flat = f"physical network {obj.physical_network} already has a flat network"
        return ConflictError("network", "physical_network", flat)
    if "segment_valid" in message:
        return InvariantError("network", "segmentation_id", "invalid network_type / segmentation_id / physical_network")
    if "subnet_overlap" in message:
        assert isinstance(obj, Subnet)
        return ConflictError("subnet", "cidr", f"{obj.cidr} overlaps another subnet of network {obj.network_id}")
    if "subnet_strands_ips" in message:
        return InvariantError("subnet", "cidr", "the change leaves allocated IPs outside the subnet")
    if "FOREIGN KEY" in message:
        if change.type is EventType.DELETED:
            return InvariantError(change.kind, "id", f"{change.kind} {change.id} is still in use")
        if "port_ips" in sql:
            return InvariantError("port", "fixed_ips", f"subnet {params[0]} does not exist")
        return InvariantError(change.kind, "network_id", f"network {getattr(obj, 'network_id', '?')} does not exist")
    return InvariantError(change.kind, "id", message)
