"""The multi-hypervisor lab: N emulated hypervisors, each with its own Open vSwitch, plus VMs.

    with Lab(hypervisors=3) as lab:
        hv1, hv2 = lab.hypervisors[:2]
        vm = lab.add_vm("hv1", "vm1", port_id, mac, ip="10.0.0.1/24", ofport=100)
        lab.run("hv1", ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br-int"])
        lab.vm_run(vm, ["ping", "-c1", "10.0.0.2"])

Networks: management (the root namespace is at ``config.controller_ip``, so a
controller in the root namespace is reachable from every hypervisor), underlay
(the tunnel IP sits on each hypervisor's br-phy) and external (reserved). No
default routes, no NAT: nothing reaches the machine's uplink.

Work "inside" a hypervisor happens in a thread that entered its namespace
(``call``), or in a subprocess started there with its OVS environment
(``run``/``popen``/``start_agent``). Teardown removes everything, and
``lab.mininet.cleanup.clean`` removes what a crashed run left.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dataplane import underlay
from dataplane.common import netns as ns
from dataplane.common.constants import BR_INT
from dataplane.common.logs import get_logger
from dataplane.ovs.driver import OvsDriver
from lab.mininet import cleanup, topology
from lab.mininet.config import EXTERNAL_NIC, MGMT_NIC, UNDERLAY_NIC, LabConfig
from lab.mininet.ovs_instance import OvsInstance, OvsPaths
from lab.mininet.state import LabState
from vif import link
from vif.plug import PluggedVif, plug_veth, unplug

log = get_logger(__name__)

T = TypeVar("T")


class LabError(RuntimeError):
    """The lab could not do what was asked; the message names the hypervisor or VM."""


@dataclass(frozen=True, slots=True)
class Hypervisor:
    """One emulated hypervisor: a namespace with its own OVS, on the management and underlay networks."""

    index: int
    name: str  # host name, e.g. "hv1": what its agent registers as
    netns: str  # e.g. "labhv1": `ip netns exec labhv1 ...`
    mgmt_ip: str
    tunnel_ip: str
    ovs: OvsPaths

    @property
    def ovsdb_socket(self) -> str:
        return self.ovs.db_socket

    @property
    def ovs_rundir(self) -> str:
        return self.ovs.rundir

    def mgmt_socket(self, bridge: str = BR_INT) -> str:
        """unix socket for OpenFlow to ``bridge`` (what the agent connects to)."""
        return self.ovs.mgmt_socket(bridge)

    @property
    def env(self) -> dict[str, str]:
        """OVS_* variables for this hypervisor's OVS, and LOOM_LAB_* facts for processes started here."""
        return {
            **self.ovs.env,
            "LOOM_LAB_HOST": self.name,
            "LOOM_LAB_MGMT_IP": self.mgmt_ip,
            "LOOM_LAB_TUNNEL_IP": self.tunnel_ip,
            "LOOM_LAB_OVSDB": f"unix:{self.ovs.db_socket}",
        }


@dataclass(frozen=True, slots=True)
class Vm:
    """A VM: a namespace whose eth0 is a veth plugged into a hypervisor's br-int."""

    name: str
    hypervisor: str
    netns: str
    vif: PluggedVif
    ip: str | None = None

    @property
    def port_id(self) -> str:
        return self.vif.port_id

    @property
    def mac(self) -> str:
        return self.vif.mac

    @property
    def address(self) -> str | None:
        """The VM's IP without prefix length."""
        return self.ip.split("/")[0] if self.ip else None


@dataclass
class _HvRuntime:
    """What the lab keeps per hypervisor while running."""

    instance: OvsInstance
    executor: ns.NetnsExecutor | None = None
    driver: OvsDriver | None = None
    agent: subprocess.Popen[bytes] | None = None
    agent_log: Any = None
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Lab:
    """Start with ``start()`` (or ``with Lab(...)``); ``stop()`` leaves nothing behind."""

    def __init__(self, hypervisors: int = 3, config: LabConfig | None = None) -> None:
        self.config = config or LabConfig(hypervisors=hypervisors)
        self.hypervisors: list[Hypervisor] = [
            Hypervisor(
                index=i,
                name=self.config.hv_name(i),
                netns=self.config.hv_netns(i),
                mgmt_ip=self.config.mgmt_ip(i),
                tunnel_ip=self.config.tunnel_ip(i),
                ovs=OvsPaths(os.path.join(self.config.state_dir, self.config.hv_name(i))),
            )
            for i in range(1, self.config.hypervisors + 1)
        ]
        self.vms: dict[str, Vm] = {}
        self.started_in: float | None = None  # seconds start() took
        self._net: Any = None
        self._state: LabState | None = None
        self._rt: dict[str, _HvRuntime] = {
            hv.name: _HvRuntime(OvsInstance(hv.ovs.root, hv.netns, hv.name)) for hv in self.hypervisors
        }

    # -- life cycle -------------------------------------------------------------

    def start(self) -> Lab:
        t0 = time.monotonic()
        report = cleanup.clean(self.config.prefix, state_root=self.config.state_root)
        if self.config.state_dir in report.skipped_live:
            raise LabError(f"a lab with prefix {self.config.prefix} is running already ({self.config.state_dir})")
        taken = [hv.netns for hv in self.hypervisors if ns.exists(hv.netns)]
        taken += [b for b in self.config.linux_bridges if link.get_link(b) is not None]
        if taken:
            raise LabError(f"names of lab {self.config.prefix} are in use ({', '.join(taken)}); pick another prefix")
        self._check_addresses()
        self._state = LabState.for_this_process(self.config.prefix, self.config.state_dir)
        self._state.hypervisor_netns = [hv.netns for hv in self.hypervisors]
        self._state.linux_bridges = list(self.config.linux_bridges)
        self._state.save()
        try:
            self._net = topology.build(self.config)
            for hv in self.hypervisors:
                ns.attach(hv.netns, self._net.get(hv.netns).pid)
            link.set_addresses(
                self.config.mgmt_bridge,
                [f"{self.config.controller_ip}/{self.config.prefixlen(self.config.mgmt_cidr)}"],
            )
            with ThreadPoolExecutor(max_workers=len(self.hypervisors)) as pool:
                for future in [pool.submit(self._start_hypervisor, hv) for hv in self.hypervisors]:
                    future.result()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        log.info(
            "lab started",
            prefix=self.config.prefix,
            hypervisors=len(self.hypervisors),
            seconds=round(self.started_in, 2),
        )
        return self

    def _check_addresses(self) -> None:
        """The management network gets an address in the root namespace: it must not touch any existing route."""
        mgmt = ipaddress.ip_network(self.config.mgmt_cidr)
        for route in link.routes():
            if route.version == mgmt.version and route.overlaps(mgmt) and route.prefixlen > 0:
                raise LabError(
                    f"lab management network {mgmt} overlaps route {route} of the root namespace "
                    "(the machine's own network?); choose another LabConfig.mgmt_cidr"
                )

    def _start_hypervisor(self, hv: Hypervisor) -> None:
        rt = self._rt[hv.name]
        rt.executor = ns.NetnsExecutor(hv.netns)
        rt.executor.submit(self._configure_nics, hv).result()
        rt.instance.start()
        rt.driver = OvsDriver(hv.ovs.db_socket).start()
        rt.executor.submit(self._configure_ovs, hv, rt.driver).result()

    def _configure_nics(self, hv: Hypervisor) -> None:
        """In the hypervisor's namespace: loopback, management address, underlay and external NICs up."""
        link.set_link("lo", up=True)
        link.set_addresses(MGMT_NIC, [f"{hv.mgmt_ip}/{self.config.prefixlen(self.config.mgmt_cidr)}"])
        link.set_link(MGMT_NIC, up=True)
        link.set_link(UNDERLAY_NIC, mtu=self.config.underlay_mtu, up=True)
        link.set_link(EXTERNAL_NIC, up=True)

    def _configure_ovs(self, hv: Hypervisor, driver: OvsDriver) -> None:
        underlay.ensure(
            driver,
            UNDERLAY_NIC,
            f"{hv.tunnel_ip}/{self.config.prefixlen(self.config.underlay_cidr)}",
            datapath_type=self.config.datapath_type,
        )
        if self.config.integration_bridge:
            driver.ensure_integration_bridge(self.config.datapath_type)
            driver.ensure_tunnel_port(hv.tunnel_ip)

    def stop(self) -> None:
        """Tear everything down; safe to call twice and after a failed start."""
        for hv in self.hypervisors:
            rt = self._rt[hv.name]
            for proc in [*([rt.agent] if rt.agent else []), *rt.extra]:
                _terminate(proc)
            if rt.agent_log is not None:
                rt.agent_log.close()
            rt.agent, rt.agent_log, rt.extra = None, None, []
        for name in list(self.vms):
            _quietly(lambda n=name: ns.delete(self.vms.pop(n).netns), "delete vm netns")
        for hv in self.hypervisors:
            rt = self._rt[hv.name]
            if rt.driver is not None:
                _quietly(rt.driver.close, "close ovsdb driver")
                rt.driver = None
            if rt.executor is not None:
                rt.executor.shutdown(wait=True)
                rt.executor = None
            _quietly(rt.instance.stop, "stop ovs")
        if self._net is not None:
            _quietly(self._stop_mininet, "stop mininet")
            self._net = None
        for hv in self.hypervisors:
            _quietly(lambda n=hv.netns: ns.delete(n), "delete hypervisor netns")
        # Whatever is left (e.g. after a failed start) goes with the lab's own record.
        if self._state is not None:
            if os.path.exists(self._state.path):
                os.remove(self._state.path)
            self._state = None
        _quietly(
            lambda: cleanup.clean(self.config.prefix, force=False, state_root=self.config.state_root), "clean leftovers"
        )
        shutil.rmtree(self.config.state_dir, ignore_errors=True)
        log.info("lab stopped", prefix=self.config.prefix)

    def _stop_mininet(self) -> None:
        """Mininet's own stop talks to every node's shell; if one died (killed from outside), it would
        hang, so then we only kill the shells and let the cleanup sweep remove bridges and veths."""
        nodes = [*self._net.hosts, *self._net.switches]
        if all(n.shell is not None and n.shell.poll() is None for n in nodes):
            self._net.stop()
            return
        log.warning("a mininet shell died; tearing down without mininet", prefix=self.config.prefix)
        for node in nodes:
            if node.shell is not None and node.shell.poll() is None:
                _signal_group(node.shell, signal.SIGKILL)
                node.shell.wait(5)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hypervisors ------------------------------------------------------------

    def hv(self, name: str | Hypervisor) -> Hypervisor:
        """A hypervisor by host name ("hv1"), namespace name ("labhv1") or itself."""
        if isinstance(name, Hypervisor):
            return name
        for hv in self.hypervisors:
            if name in (hv.name, hv.netns):
                return hv
        raise LabError(f"no hypervisor {name} in lab {self.config.prefix}")

    def driver(self, hv: str | Hypervisor) -> OvsDriver:
        """The lab's OVSDB driver for that hypervisor."""
        rt = self._rt[self.hv(hv).name]
        if rt.driver is None:
            raise LabError(f"lab {self.config.prefix} is not started")
        return rt.driver

    def call(self, hv: str | Hypervisor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in a thread inside the hypervisor's namespace and return its result."""
        rt = self._rt[self.hv(hv).name]
        if rt.executor is None:
            raise LabError(f"lab {self.config.prefix} is not started")
        return rt.executor.submit(fn, *args, **kwargs).result()

    def run(
        self,
        hv: str | Hypervisor,
        argv: Sequence[str],
        check: bool = True,
        timeout: float | None = 60,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the hypervisor with its OVS environment; a failure raises naming it."""
        h = self.hv(hv)
        proc = subprocess.run(
            ["ip", "netns", "exec", h.netns, *argv],
            env={**os.environ, **h.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise LabError(f"{h.name}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def popen(
        self, hv: str | Hypervisor, argv: Sequence[str], env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start a process inside the hypervisor (own session); stop() kills it if still running."""
        h = self.hv(hv)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", h.netns, *argv],
            env={**os.environ, **h.env, **(env or {})},
            start_new_session=True,
            **kwargs,
        )
        self._rt[h.name].extra.append(proc)
        return proc

    # -- agents -----------------------------------------------------------------

    def start_agent(
        self, hv: str | Hypervisor, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start the hypervisor's agent (any command) with its OVS environment; output to agent.log."""
        h = self.hv(hv)
        rt = self._rt[h.name]
        if rt.agent is not None and rt.agent.poll() is None:
            raise LabError(f"{h.name}: an agent is running already (pid {rt.agent.pid})")
        if rt.agent_log is None:
            rt.agent_log = open(self.agent_log_path(h), "ab")  # noqa: SIM115 - kept open while the agent runs
        # nsenter, not `ip netns exec`: the latter gives the process a mount namespace of its
        # own, and the namespaces the agent creates (localports) would be invisible outside it.
        rt.agent = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{h.netns}", "--", *argv],
            env={**os.environ, **h.env, **(env or {})},
            stdout=rt.agent_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.info("agent started", host=h.name, pid=rt.agent.pid)
        return rt.agent

    def stop_agent(self, hv: str | Hypervisor, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the agent (SIGKILL: no grace) and wait; returns its exit status (None if none ran)."""
        h = self.hv(hv)
        rt = self._rt[h.name]
        if rt.agent is None:
            return None
        proc, rt.agent = rt.agent, None
        if proc.poll() is None:
            _signal_group(proc, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
        log.info("agent stopped", host=h.name, pid=proc.pid, signal=sig, status=proc.returncode)
        return proc.returncode

    def restart_vswitchd(self, hv: str | Hypervisor) -> None:
        """Stop and start the hypervisor's ovs-vswitchd (an OVS upgrade or crash): every flow is gone after."""
        rt = self._rt[self.hv(hv).name]
        rt.instance.stop_daemon("ovs-vswitchd")
        rt.instance.start_vswitchd()

    def agent_running(self, hv: str | Hypervisor) -> bool:
        agent = self._rt[self.hv(hv).name].agent
        return agent is not None and agent.poll() is None

    def stop_vswitchd(self, hv: str | Hypervisor) -> None:
        """Stop the hypervisor's ovs-vswitchd (a crash): its datapath, flows and BFD sessions go with it."""
        self._rt[self.hv(hv).name].instance.stop_daemon("ovs-vswitchd")

    def start_vswitchd(self, hv: str | Hypervisor) -> None:
        self._rt[self.hv(hv).name].instance.start_vswitchd()

    def agent_log_path(self, hv: str | Hypervisor) -> str:
        return os.path.join(self.hv(hv).ovs.root, "agent.log")

    # -- VMs --------------------------------------------------------------------

    def add_vm(
        self,
        hv: str | Hypervisor,
        name: str,
        port_id: str,
        mac: str,
        mtu: int | None = None,
        ofport: int | None = None,
        ip: str | None = None,
        gateway: str | None = None,
    ) -> Vm:
        """A VM namespace ``<prefix>-<name>`` plugged into the hypervisor's br-int with vif.plug_veth."""
        h = self.hv(hv)
        if name in self.vms:
            raise LabError(f"VM {name} exists already (on {self.vms[name].hypervisor})")
        netns = self.config.vm_netns(name)
        self._record_vm_netns(netns, add=True)
        vif = self.call(
            h,
            plug_veth,
            port_id,
            mac,
            mtu or self.config.vm_mtu,
            netns,
            ofport=ofport,
            ovsdb=self.driver(h),
            vm_id=name,
            ips=[ip] if ip else (),
            gateway=gateway,
        )
        vm = Vm(name=name, hypervisor=h.name, netns=netns, vif=vif, ip=ip)
        self.vms[name] = vm
        return vm

    def remove_vm(self, name: str) -> None:
        """Unplug the VM's VIF and delete its namespace."""
        vm = self.vms.pop(name, None)
        if vm is None:
            raise LabError(f"no VM {name} in lab {self.config.prefix}")
        self.call(vm.hypervisor, unplug, vm.port_id, ovsdb=self.driver(vm.hypervisor), delete_netns=vm.netns)
        self._record_vm_netns(vm.netns, add=False)

    def vm(self, name: str) -> Vm:
        try:
            return self.vms[name]
        except KeyError:
            raise LabError(f"no VM {name} in lab {self.config.prefix}") from None

    def vm_run(
        self, vm: str | Vm, argv: Sequence[str], check: bool = True, timeout: float | None = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a VM's namespace."""
        v = vm if isinstance(vm, Vm) else self.vm(vm)
        proc = subprocess.run(
            ["ip", "netns", "exec", v.netns, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise LabError(f"VM {v.name}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def claim_netns(self, netns: str) -> None:
        """Record a namespace made outside ``add_vm`` as this lab's, so no other lab's cleanup takes it."""
        self._record_vm_netns(netns, add=True)

    def release_netns(self, netns: str) -> None:
        self._record_vm_netns(netns, add=False)

    def _record_vm_netns(self, netns: str, add: bool) -> None:
        if self._state is None:
            raise LabError(f"lab {self.config.prefix} is not started")
        names = set(self._state.vm_netns)
        names = names | {netns} if add else names - {netns}
        self._state.vm_netns = sorted(names)
        self._state.save()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait(3)


def _quietly(fn: Callable[[], object], what: str) -> None:
    """Teardown steps go on when one fails; the failure is logged."""
    try:
        fn()
    except Exception:
        log.exception("lab teardown step failed", step=what)
