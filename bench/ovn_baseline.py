"""OVN 23.03 as a side-by-side baseline for bench/time_to_ping.py: time to the first reply of a new port.

What runs: a one-hypervisor lab (lab.mininet.Lab, prefix "labo", management
network 198.18.5.0/24) whose namespace ``labohv1`` holds a private OVS 3.1 in
userspace mode (``datapath_type=netdev``, as for Loom) and, started by us with
private run/db/log dirs under the lab's state dir: the NB and SB
ovsdb-servers, ovn-northd and ovn-controller (Debian's ovn-central/ovn-host
23.03 binaries; their init scripts are never used). The OVS instance carries
``external_ids`` ovn-remote=unix:<SB socket>, ovn-encap-type=geneve,
ovn-encap-ip=<the hypervisor's underlay address>, ovn-bridge=br-int,
ovn-bridge-datapath-type=netdev; ovn-controller creates br-int itself. Start-up
waits for the chassis to appear in the SB, for br-int to exist, and for an
``ovn-nbctl --wait=hv sync`` round trip. Nothing touches the system OVS.

The model: one logical switch; every port has ``addresses`` and
``port_security`` = "MAC IP" (Neutron sets both; Loom enforces port security
too), no ACLs. VMs are namespaces plugged with vif.plug.plug_veth, whose
``iface-id`` is the logical switch port's name; the target is an ACTIVE VM on
the same chassis (its LSP ``up``). The NB writes go through one persistent
ovsdbapp connection (what Neutron's ML2/OVN uses), so no ``ovn-nbctl`` process
start-up is inside any measurement (one ``ovn-nbctl lsp-add`` costs ~7 ms here,
the same transaction through ovsdbapp ~2 ms), and they never wait (no
``--wait``): the clock runs to the first echo reply anyway. The same prober and helpers as
Loom's side (bench/first_ping.py) time everything.

(a) bind: the VIF is plugged first (its iface-id names an LSP that does not
    exist yet), static ARP entries on both sides; the clock runs from the start
    of one NB transaction (lsp-add with addresses and port security) to the
    first echo reply: northd -> SB -> ovn-controller claims the port and
    installs its flows.
(b) plug: the LSP is created first and ``ovn-nbctl --wait=hv sync`` waits until
    ovn-controller has processed it (the analogue of Loom's flows_installed);
    then the VIF is attached to br-int and the clock runs from the start of
    that attach to the first reply; the prober starts the moment the attach
    returns. Measured twice: with the guest's dynamic ARP (replies >= 900 ms
    count as "first ARP lost": Linux retries ARP after 1 s) and with static ARP
    on both sides.

Between rounds the port is deleted, its VIF unplugged, and an ``ovn-nbctl
--wait=hv sync`` lets OVN settle (untimed), so no round pays for the last
one's clean-up. Every port gets a fresh IP and MAC. Everything the baseline
starts (daemons, namespaces, dirs) is removed at the end, even on failure.

    .venv/bin/python bench/ovn_baseline.py --ports 10     # OVN only, prints a table and JSON
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.first_ping import (
    ARP_LOST_MS,
    arp_lost,
    claimed_netns,
    fire,
    forget_neighbor,
    ms_to_first_reply,
    prepare_vif,
    prober,
    static_arp,
)
from bench.stats import percentile
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from lab.mininet.config import LabConfig
from lab.mininet.lab import Hypervisor, Lab, Vm
from lab.mininet.ovs_instance import DAEMON_ARGS, DaemonDirs, kill_daemon
from vif.names import vif_device_name
from vif.plug import plug_veth, unplug

with warnings.catch_warnings():
    # python-ovs imports eventlet (when installed) only to check for monkey patching; eventlet warns on import.
    warnings.simplefilter("ignore")
    from ovsdbapp.backend.ovs_idl import connection as ovsdb_connection
    from ovsdbapp.schema.ovn_northbound import impl_idl as nb_impl

log = get_logger(__name__)

LAB_CONFIG = LabConfig(hypervisors=1, prefix="labo", mgmt_cidr="198.18.5.0/24", integration_bridge=False)
HOST = "hv1"
SWITCH = "ls-ttp"
PORT_GROUP = "pg_sg"  # bench/secgroups.py: the port group of the security-group baseline
CIDR = "10.0.0.0/22"
VM_MTU = 1442  # geneve overhead, what Neutron gives OVN networks on a 1500 underlay

NB_SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"
SB_SCHEMA = "/usr/share/ovn/ovn-sb.ovsschema"
BINARIES = ("ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl")
DAEMONS = ("ovn-controller", "ovn-northd", "ovsdb-server-sb", "ovsdb-server-nb")  # stop order


class OvnError(RuntimeError):
    """OVN could not be set up or did not do what was asked; the message says what and where to look."""


def ovn_version() -> str:
    """The installed OVN's version ("23.03.1"); raises OvnError naming the packages if it is missing."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    missing += [f for f in (NB_SCHEMA, SB_SCHEMA) if not os.path.exists(f)]
    if missing:
        raise OvnError(f"OVN is not installed ({', '.join(missing)} missing): apt-get install -y ovn-central ovn-host")
    out = subprocess.run(["ovn-controller", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1] if out.startswith("ovn-controller") else out.strip()


@dataclass(frozen=True, slots=True)
class OvnPaths(DaemonDirs):
    """Where the OVN daemons keep their files: one private tree inside the lab's state dir."""

    def db_file(self, which: str) -> str:
        return os.path.join(self.dbdir, f"ovn{which}_db.db")

    def db_socket(self, which: str) -> str:
        return os.path.join(self.rundir, f"ovn{which}_db.sock")

    @property
    def nb_remote(self) -> str:
        return f"unix:{self.db_socket('nb')}"

    @property
    def sb_remote(self) -> str:
        return f"unix:{self.db_socket('sb')}"

    def ctl(self, daemon: str) -> str:
        return os.path.join(self.rundir, f"{daemon}.ctl")

    @property
    def env(self) -> dict[str, str]:
        """OVN_* variables so no OVN tool falls back to the system's /var/run/ovn."""
        return {"OVN_RUNDIR": self.rundir, "OVN_DBDIR": self.dbdir, "OVN_LOGDIR": self.logdir}


@dataclass(frozen=True, slots=True)
class OvnPort:
    """A logical switch port as the bench creates it."""

    name: str
    mac: str
    ip: str  # without prefix length
    prefixlen: int

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"

    @property
    def address(self) -> str:
        """The "MAC IP" string of addresses and port_security."""
        return f"{self.mac} {self.ip}"


@dataclass
class OvnResults:
    """Milliseconds per round of each case, and what was measured."""

    ports: int
    version: str = ""
    bind: list[float] = field(default_factory=list)
    plug: list[float] = field(default_factory=list)  # dynamic ARP
    plug_attach: list[float] = field(default_factory=list)  # of which: the attach itself
    plug_static_arp: list[float] = field(default_factory=list)

    @property
    def plug_arp_lost(self) -> int:
        return arp_lost(self.plug)

    def metrics(self) -> dict[str, float | int]:
        """The ovn_* keys of bench/results/time_to_ping.json."""
        return {
            "ovn_p50_ms": round(statistics.median(self.bind), 2),
            "ovn_p99_ms": round(percentile(self.bind, 0.99), 2),
            "ovn_plug_p50_ms": round(statistics.median(self.plug), 2),
            "ovn_plug_p99_ms": round(percentile(self.plug, 0.99), 2),
            "ovn_plug_attach_p50_ms": round(statistics.median(self.plug_attach), 2),
            "ovn_plug_static_arp_p50_ms": round(statistics.median(self.plug_static_arp), 2),
            "ovn_plug_static_arp_p99_ms": round(percentile(self.plug_static_arp, 0.99), 2),
            "ovn_plug_arp_lost": self.plug_arp_lost,
        }


class OvnChassis:
    """OVN central + one chassis on a one-hypervisor lab. ``with OvnChassis() as ovn: ...``; stop() leaves nothing."""

    def __init__(self, config: LabConfig = LAB_CONFIG) -> None:
        self.lab = Lab(config=config)
        self.config = config
        self.paths = OvnPaths(os.path.join(config.state_dir, "ovn"))
        self.nb: Any = None  # the ovsdbapp OVN_Northbound API
        self._nb_conn: Any = None
        self._network = ipaddress.ip_network(CIDR)
        self._next_host = 10  # .1-.9 stay free, as a gateway would
        self.version = ""
        self.port_group: str | None = None  # set by enable_port_group

    # -- life cycle -------------------------------------------------------------

    def __enter__(self) -> OvnChassis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> OvnChassis:
        t0 = time.monotonic()
        self.version = ovn_version()
        try:
            self.lab.start()
            for d in (self.paths.rundir, self.paths.dbdir, self.paths.logdir):
                os.makedirs(d, exist_ok=True)
            self._start_db("nb", NB_SCHEMA)
            self._start_db("sb", SB_SCHEMA)
            self._start_northd()
            self._configure_chassis()
            self._start_controller()
            self._wait_chassis()
            self._connect_nb()
            self.nb.ls_add(SWITCH).execute(check_error=True)
            self.sync()
        except BaseException:
            self.stop()
            raise
        log.info("ovn chassis up", host=HOST, netns=self.hv.netns, seconds=round(time.monotonic() - t0, 2))
        return self

    def stop(self) -> None:
        """Close the NB connection, stop the OVN daemons, then the lab (namespaces, OVS, state dir)."""
        if self._nb_conn is not None:
            try:
                self._nb_conn.stop(timeout=5)
            except Exception as exc:
                log.warning("ovn nb connection did not stop cleanly", error=str(exc))
            self._nb_conn, self.nb = None, None
        for daemon in DAEMONS:
            if (pid := kill_daemon(self.paths.pidfile(daemon), self.paths.root)) is not None:
                log.debug("ovn daemon stopped", daemon=daemon, pid=pid)
        # The lab's teardown kills anything still running from its state dir (our daemons'
        # command lines name it) or inside its namespaces, then removes both.
        self.lab.stop()

    @property
    def hv(self) -> Hypervisor:
        return self.lab.hv(HOST)

    def _run(self, argv: list[str], timeout: float = 60) -> str:
        """Run an OVS/OVN command inside the hypervisor, with its OVS_* and our OVN_* environment."""
        proc = self.lab.run(HOST, argv, check=False, timeout=timeout, env=self.paths.env)
        if proc.returncode != 0:
            raise OvnError(
                f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr.strip()} (logs in {self.paths.logdir})"
            )
        return proc.stdout

    def _start_db(self, which: str, schema: str) -> None:
        daemon = f"ovsdb-server-{which}"
        db = self.paths.db_file(which)
        if not os.path.exists(db):
            self._run(["ovsdb-tool", "create", db, schema])
        self._run(
            [
                "ovsdb-server",
                db,
                f"--remote=punix:{self.paths.db_socket(which)}",
                f"--pidfile={self.paths.pidfile(daemon)}",
                f"--unixctl={self.paths.ctl(daemon)}",
                f"--log-file={self.paths.logfile(daemon)}",
                *DAEMON_ARGS,
            ]
        )

    def _start_northd(self) -> None:
        self._run(
            [
                "ovn-northd",
                f"--ovnnb-db={self.paths.nb_remote}",
                f"--ovnsb-db={self.paths.sb_remote}",
                f"--pidfile={self.paths.pidfile('ovn-northd')}",
                f"--unixctl={self.paths.ctl('ovn-northd')}",
                f"--log-file={self.paths.logfile('ovn-northd')}",
                *DAEMON_ARGS,
            ]
        )

    def _configure_chassis(self) -> None:
        """The Open_vSwitch external_ids ovn-controller reads (system-id is the lab's: hv1)."""
        hv = self.hv
        self._run(
            [
                "ovs-vsctl",
                f"--db=unix:{hv.ovsdb_socket}",
                "set",
                "Open_vSwitch",
                ".",
                f"external_ids:ovn-remote={self.paths.sb_remote}",
                "external_ids:ovn-encap-type=geneve",
                f"external_ids:ovn-encap-ip={hv.tunnel_ip}",
                f"external_ids:ovn-bridge={BR_INT}",
                f"external_ids:ovn-bridge-datapath-type={self.config.datapath_type}",
            ]
        )

    def _start_controller(self) -> None:
        # OVS_RUNDIR (from the lab's environment) is the hypervisor's: ovn-controller speaks
        # OpenFlow to $OVS_RUNDIR/br-int.mgmt of that private ovs-vswitchd.
        self._run(
            [
                "ovn-controller",
                f"unix:{self.hv.ovsdb_socket}",
                f"--pidfile={self.paths.pidfile('ovn-controller')}",
                f"--log-file={self.paths.logfile('ovn-controller')}",
                *DAEMON_ARGS,
            ]
        )

    def _wait_chassis(self, timeout: float = 30.0) -> None:
        """Until the chassis is registered in the SB with its geneve encap and br-int exists with its OpenFlow
        socket. (The ``--wait=hv sync`` that follows in start() proves ovn-controller installs flows: it
        reports an NB sequence number only once the flows computed for it are in OVS.)"""
        deadline = time.monotonic() + timeout
        driver = self.lab.driver(HOST)
        waiting_for = "ovn-sbctl"
        while time.monotonic() < deadline:
            chassis = self._run(
                [
                    "ovn-sbctl",
                    f"--db={self.paths.sb_remote}",
                    "--bare",
                    "--columns=name",
                    "find",
                    "Chassis",
                    f"name={HOST}",
                ]
            ).strip()
            encaps = self._run(
                ["ovn-sbctl", f"--db={self.paths.sb_remote}", "--bare", "--columns=ip", "find", "Encap", "type=geneve"]
            ).split()
            if chassis != HOST or self.hv.tunnel_ip not in encaps:
                waiting_for = "the chassis (and its geneve encap) in the SB"
            elif not driver.bridge_exists(BR_INT):
                waiting_for = f"{BR_INT} in the hypervisor's OVS"
            elif not os.path.exists(self.hv.mgmt_socket(BR_INT)):
                waiting_for = f"{BR_INT}'s OpenFlow socket"
            else:
                return
            time.sleep(0.05)
        raise OvnError(f"OVN not ready after {timeout} s: waiting for {waiting_for} (logs in {self.paths.logdir})")

    def _connect_nb(self) -> None:
        idl = ovsdb_connection.OvsdbIdl.from_server(self.paths.nb_remote, "OVN_Northbound")
        self._nb_conn = ovsdb_connection.Connection(idl, timeout=30)
        # ovsdbapp keeps the connection in a class attribute: a fresh subclass per chassis keeps a second
        # OvnChassis in the same process from reusing a stopped connection.
        api_class = type("BenchNbApi", (nb_impl.OvnNbApiIdlImpl,), {"_ovsdb_connection": None})
        self.nb = api_class(self._nb_conn)

    # -- operations -------------------------------------------------------------

    def sync(self, timeout: float = 30.0) -> None:
        """``ovn-nbctl --wait=hv sync``: until northd and ovn-controller have processed every NB change so far."""
        self._run(
            ["ovn-nbctl", f"--db={self.paths.nb_remote}", f"--timeout={int(timeout)}", "--wait=hv", "sync"],
            timeout=timeout + 5,
        )

    def new_port(self, name: str) -> OvnPort:
        """A port description with a fresh IP (and a MAC derived from it); nothing is created."""
        if self._next_host >= self._network.num_addresses - 1:
            raise OvnError(f"no addresses left in {CIDR}")
        ip = self._network.network_address + self._next_host
        self._next_host += 1
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in ip.packed[1:])
        return OvnPort(name, mac, str(ip), self._network.prefixlen)

    def add_port(self, port: OvnPort) -> None:
        """One NB transaction: lsp-add with addresses and port_security (and, once ``enable_port_group`` ran,
        the port joins the group in the same transaction, as Neutron adds a port with its security group).
        Returns when the NB committed it."""
        add = self.nb.lsp_add(SWITCH, port.name, addresses=[port.address], port_security=[port.address])
        if self.port_group is None:
            add.execute(check_error=True)
            return
        with self.nb.transaction(check_error=True) as txn:
            txn.add(add)
            txn.add(self.nb.pg_add_ports(self.port_group, add))

    def enable_port_group(self, members: list[str]) -> None:
        """What Neutron makes of a project's default security group on OVN: one port group (``members`` join
        it now, later ports as they are added) and two allow-related ACLs: every IPv4 packet out, and in from
        the group's own addresses (the address set northd keeps for the group)."""
        self.nb.pg_add(PORT_GROUP, may_exist=True).execute(check_error=True)
        with self.nb.transaction(check_error=True) as txn:
            txn.add(
                self.nb.pg_acl_add(PORT_GROUP, "from-lport", 1002, f"inport == @{PORT_GROUP} && ip4", "allow-related")
            )
            txn.add(
                self.nb.pg_acl_add(
                    PORT_GROUP,
                    "to-lport",
                    1002,
                    f"outport == @{PORT_GROUP} && ip4 && ip4.src == ${PORT_GROUP}_ip4",
                    "allow-related",
                )
            )
        rows = [self.nb.lsp_get(name).execute(check_error=True) for name in members]
        if rows:
            self.nb.pg_add_ports(PORT_GROUP, rows).execute(check_error=True)
        self.port_group = PORT_GROUP
        self.sync()

    def delete_port(self, name: str) -> None:
        self.nb.lsp_del(name, SWITCH, if_exists=True).execute(check_error=True)

    def wait_up(self, name: str, timeout: float = 30.0) -> None:
        """Until the LSP is ``up`` in the NB (ovn-controller claimed it and installed its flows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nb.lsp_get_up(name).execute(check_error=True):
                return
            time.sleep(0.02)
        raise OvnError(f"logical switch port {name} not up after {timeout} s (logs in {self.paths.logdir})")

    def boot_vm(self, port: OvnPort) -> Vm:
        """Create the LSP, plug a VM namespace for it, wait until the LSP is up."""
        self.add_port(port)
        vm = self.lab.add_vm(HOST, port.name, port.name, port.mac, mtu=VM_MTU, ip=port.cidr)
        self.wait_up(port.name)
        return vm


# -- the cases ----------------------------------------------------------------------


def bind_case(ovn: OvnChassis, target: Vm, n: int, tag: str = "bind") -> list[float]:
    """(a): VIF first (iface-id names a port not created yet), then one NB transaction; static ARP."""
    times = []
    for i in range(n):
        port = ovn.new_port(f"{tag}{i}")
        vm = ovn.lab.add_vm(HOST, port.name, port.name, port.mac, mtu=VM_MTU, ip=port.cidr)
        try:
            static_arp(vm.netns, target.address or "", target.mac)
            static_arp(target.netns, port.ip, port.mac)
            with prober(vm.netns, target.address or "") as probe:
                fire(probe)
                time.sleep(0.02)  # probing, unanswered: the port does not exist yet (as on Loom's side)
                t0 = time.time()
                ovn.add_port(port)
                times.append(ms_to_first_reply(probe, t0, f"ovn {port.name}"))
        finally:
            forget_neighbor(target.netns, port.ip)
            ovn.lab.remove_vm(vm.name)
            ovn.delete_port(port.name)
        ovn.sync()  # untimed: OVN has settled before the next round
    return times


def plug_case(
    ovn: OvnChassis, target: Vm, n: int, tag: str = "plug", static: bool = False
) -> tuple[list[float], list[float]]:
    """(b): LSP first (processed by ovn-controller), then attach the VIF; dynamic ARP unless ``static``.

    Returns (ms to first reply, ms the attach itself took) per round.
    """
    times, attach = [], []
    hv = ovn.hv
    driver = ovn.lab.driver(HOST)
    for i in range(n):
        port = ovn.new_port(f"{tag}{i}")
        vm_ns = ovn.config.vm_netns(port.name)
        device = vif_device_name(port.name)
        ovn.add_port(port)
        ovn.sync()  # northd and ovn-controller have processed the new port before its VIF exists
        try:
            with claimed_netns(ovn.lab, vm_ns):
                ovn.lab.call(hv, prepare_vif, vm_ns, device, port.mac, port.cidr, VM_MTU)
                if static:
                    static_arp(vm_ns, target.address or "", target.mac)
                    static_arp(target.netns, port.ip, port.mac)
                with prober(vm_ns, target.address or "") as probe:
                    t0 = time.time()
                    ovn.lab.call(hv, plug_veth, port.name, port.mac, VM_MTU, vm_ns, ovsdb=driver)
                    t_attached = time.time()
                    fire(probe)  # the guest starts sending once its NIC is attached
                    times.append(ms_to_first_reply(probe, t0, f"ovn {port.name}"))
                attach.append((t_attached - t0) * 1000)
        finally:
            forget_neighbor(target.netns, port.ip)
            ovn.lab.call(hv, unplug, port.name, ovsdb=driver)
            ovn.delete_port(port.name)
        ovn.sync()
    return times, attach


def run_baseline(ports: int, config: LabConfig = LAB_CONFIG) -> OvnResults:
    """Start OVN, measure (a), (b) with dynamic ARP and (b) with static ARP, ``ports`` rounds each; tear down."""
    results = OvnResults(ports)
    with OvnChassis(config) as ovn:
        results.version = ovn.version
        target = ovn.boot_vm(ovn.new_port("target"))
        results.bind = bind_case(ovn, target, ports)
        results.plug, results.plug_attach = plug_case(ovn, target, ports, "plug")
        results.plug_static_arp, _ = plug_case(ovn, target, ports, "plugs", static=True)
    return results


@contextmanager
def quiet_ovsdbapp() -> Iterator[None]:
    """ovsdbapp forwards python-ovs's connection chatter to logging at INFO; the bench's output is its table."""
    import logging

    level = logging.getLogger("ovsdbapp").level
    logging.getLogger("ovsdbapp").setLevel(logging.WARNING)
    try:
        yield
    finally:
        logging.getLogger("ovsdbapp").setLevel(level)


def main() -> int:
    parser = argparse.ArgumentParser(description="OVN 23.03 time to first ping, alone (time_to_ping.py runs both)")
    parser.add_argument("--ports", type=int, default=10, help="ports per case (default 10)")
    args = parser.parse_args()
    with quiet_ovsdbapp():
        res = run_baseline(args.ports)
    print(f"OVN {res.version} time to first ping ({args.ports} ports per case)")
    print(f"  {'case':<46} {'p50 ms':>8} {'p99 ms':>8}")
    for case, times in (
        ("(a) VIF first, then lsp-add (static ARP)", res.bind),
        ("(b) lsp-add first, then plug (dynamic ARP)", res.plug),
        ("    of which attaching the VIF to br-int", res.plug_attach),
        ("(b) same, static ARP", res.plug_static_arp),
    ):
        print(f"  {case:<46} {statistics.median(times):>8.2f} {percentile(times, 0.99):>8.2f}")
    print(f"  first ARP lost (>= {ARP_LOST_MS:.0f} ms): {res.plug_arp_lost} of {len(res.plug)}")
    print(json.dumps(res.metrics(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
