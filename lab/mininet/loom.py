"""Loom deployed in the lab: the controller in the root namespace, an agent on every hypervisor.

    with LoomLab(hypervisors=3) as loom:
        net = loom.create_network("red", "10.0.0.0/24")
        vm1 = loom.boot_vm("vm1", "hv1", net)          # port bound to hv1, VIF plugged, ACTIVE
        vm2 = loom.boot_vm("vm2", "hv2", net, dhcp=True)
        assert probes.ping(vm1.netns, vm2.address)

The controller listens on the management network (``config.controller_ip``)
for the API and for the agents, and serves metadata there too. Everything it
and the agents write lives in the lab's state directory, so ``stop()`` (or
``python -m lab.mininet clean`` after a crash) removes it all.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc

from controller.cli.client import ApiClient
from controller.ready_file import ControllerNotReady, clear_ready_file, wait_ready_file
from dataplane.common.logs import get_logger
from lab.mininet.config import API_PORT, EXTERNAL_NIC, LabConfig
from lab.mininet.external import ExternalWorld
from lab.mininet.lab import Hypervisor, Lab, LabError, Vm
from lab.mininet.libvirt_instance import LibvirtInstance
from protos.loom.v1 import (
    compute_pb2,
    compute_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    resources_pb2,
    router_pb2_grpc,
    security_pb2_grpc,
)

log = get_logger(__name__)

METADATA_PORT = 8775


@dataclass(frozen=True)
class LabNetwork:
    network: resources_pb2.Network
    subnet: resources_pb2.Subnet

    @property
    def id(self) -> str:
        return self.network.id

    @property
    def name(self) -> str:
        return self.network.name


class LoomLab:
    """A Lab with Loom running on it. ``start()`` returns once every agent has registered."""

    def __init__(
        self,
        hypervisors: int = 3,
        config: LabConfig | None = None,
        *,
        external: bool = False,
        gateways: Mapping[str, int] | None = None,
        agent_args: Sequence[str] = (),
        compute: bool = False,
    ) -> None:
        """``external``: every agent maps physical network "external" to br-ext holding its ext0, and the
        lab's external network gets its upstream router and internet server; ``gateways``: host -> the
        ``--gateway`` priority of its agent; ``compute``: every hypervisor runs its own libvirtd and its
        agent boots guests (lab/mininet/libvirt_instance.py)."""
        self.lab = Lab(hypervisors, config)
        self.config = self.lab.config
        self.external: ExternalWorld | None = ExternalWorld(self.lab) if external else None
        self.gateways = dict(gateways or {})
        self.agent_args = tuple(agent_args)
        self.compute_enabled = compute
        self.libvirt: dict[str, LibvirtInstance] = {}
        self.secret = secrets.token_hex(16)
        self.controller: subprocess.Popen[bytes] | None = None
        self._controller_log = None
        self.api = ApiClient(self.api_address)

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> LoomLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_address(self) -> str:
        return f"{self.config.controller_ip}:{API_PORT}"

    @property
    def hypervisors(self) -> list[Hypervisor]:
        return self.lab.hypervisors

    def start(self, agents: bool = True) -> None:
        t0 = time.monotonic()
        try:
            self.lab.start()
            if self.external is not None:
                self.external.start()
            if self.compute_enabled:
                self.start_libvirt()
            self.start_controller()
            if agents:
                for hv in self.hypervisors:
                    self.start_agent(hv.name)
                self.wait_agents()
        except BaseException:
            self.stop()
            raise
        log.info("loom lab up", hypervisors=len(self.hypervisors), seconds=round(time.monotonic() - t0, 2))

    def stop(self) -> None:
        for hv in self.hypervisors:
            try:
                self.lab.stop_agent(hv.name, signal.SIGTERM, timeout=10)
            except Exception as exc:
                log.warning("agent did not stop cleanly", host=hv.name, error=str(exc))
        for lv in self.libvirt.values():
            try:
                lv.stop()
            except Exception as exc:
                log.warning("libvirtd did not stop cleanly", host=lv.name, error=str(exc))
        self.stop_controller()
        self.api.close()
        # The lab's teardown also removes what agents leave running on purpose
        # (dnsmasq, metadata proxies, localport namespaces): all carry its prefix.
        self.lab.stop()

    # ------------------------------------------------------------ controller

    @property
    def state_dir(self) -> str:
        return self.config.state_dir

    def start_controller(self) -> None:
        if self.controller is not None and self.controller.poll() is None:
            raise LabError("the controller is already running")
        ctl = self.config.controller_ip
        ready = os.path.join(self.state_dir, "controller.ready")
        clear_ready_file(ready)
        argv = [
            sys.executable,
            "-m",
            "controller.app",
            "--listen",
            self.api_address,
            "--db",
            os.path.join(self.state_dir, "controller.db"),
            "--underlay-mtu",
            str(self.config.underlay_mtu),
            "--metadata-listen",
            f"{ctl}:{METADATA_PORT}",
            "--ready-file",
            ready,
            "--image-dir",
            os.path.join(self.state_dir, "images"),
            # The volumes' file backend: a directory "every hypervisor mounts" (here: the one disk).
            "--volume-dir",
            os.path.join(self.state_dir, "volumes"),
        ]
        env = {**os.environ, "LOOM_METADATA_SECRET": self.secret, "PYTHONPATH": _project_root()}
        self._controller_log = open(os.path.join(self.state_dir, "controller.log"), "ab")  # noqa: SIM115
        self.controller = subprocess.Popen(
            argv, stdout=self._controller_log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_ready_file(self.controller, ready, 30, os.path.join(self.state_dir, "controller.log"))
        except ControllerNotReady as exc:
            raise LabError(str(exc)) from exc

    def stop_controller(self, sig: int = signal.SIGTERM) -> None:
        proc, self.controller = self.controller, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._controller_log is not None:
            self._controller_log.close()
            self._controller_log = None

    # ------------------------------------------------------------ agents

    def agent_argv(self, hv: Hypervisor) -> list[str]:
        root = os.path.join(self.state_dir, hv.name)
        return [
            sys.executable,
            "-m",
            "dataplane.main",
            "--host",
            hv.name,
            "--controller",
            self.api_address,
            "--tunnel-ip",
            hv.tunnel_ip,
            "--datapath-type",
            self.config.datapath_type,
            "--ovs-rundir",
            hv.ovs_rundir,
            "--state-dir",
            os.path.join(root, "agent"),
            "--run-dir",
            os.path.join(root, "run"),
            "--netns-prefix",
            f"{self.config.prefix}{hv.name}-",
            *(["--bridge-mappings", f"external:br-ext:{EXTERNAL_NIC}"] if self.external is not None else []),
            *(["--gateway", str(self.gateways[hv.name])] if hv.name in self.gateways else []),
            *(self.compute_argv(hv) if self.compute_enabled else []),
            *self.agent_args,
        ]

    # ------------------------------------------------------------ compute

    SHUTDOWN_TIMEOUT = 15.0  # a guest that ignores the power button is powered off after this

    def compute_argv(self, hv: Hypervisor) -> list[str]:
        root = os.path.join(self.state_dir, hv.name)
        return [
            "--libvirt-uri",
            self.libvirt[hv.name].uri,
            "--instances-dir",
            os.path.join(root, "instances"),
            "--image-cache-dir",
            os.path.join(root, "image-cache"),
            "--virt-type",
            "qemu",  # KVM hangs booting Linux on these machines (a HLT probe passes, so auto cannot tell)
            "--shutdown-timeout",
            str(self.SHUTDOWN_TIMEOUT),
        ]

    def start_libvirt(self) -> None:
        """A libvirtd (and virtlogd) in each hypervisor's namespace, started side by side."""
        for hv in self.hypervisors:
            self.libvirt[hv.name] = LibvirtInstance(os.path.join(self.state_dir, hv.name), hv.netns, hv.name)
        with ThreadPoolExecutor(len(self.hypervisors)) as pool:
            for future in [pool.submit(lv.start) for lv in self.libvirt.values()]:
                future.result()

    def start_agent(self, hv: str) -> subprocess.Popen[bytes]:
        h = self.lab.hv(hv)
        env = {"LOOM_METADATA_SECRET": self.secret, "PYTHONPATH": _project_root()}
        return self.lab.start_agent(h, self.agent_argv(h), env)

    def stop_agent(self, hv: str, sig: int = signal.SIGTERM) -> int | None:
        return self.lab.stop_agent(hv, sig)

    def wait_agents(self, timeout: float = 30.0, hosts: list[str] | None = None) -> None:
        """Until the agents of ``hosts`` (default: all) are alive and have applied their host's revision."""
        want = set(hosts or (hv.name for hv in self.hypervisors))
        deadline = time.monotonic() + timeout
        while True:
            agents = {a.host: a for a in self.network.ListAgents(network_pb2.ListAgentsRequest(), timeout=5).agents}
            ready = {
                h
                for h in want
                if h in agents and agents[h].alive and agents[h].applied_revision >= agents[h].host_revision
            }
            if ready == want:
                return
            if time.monotonic() > deadline:
                raise LabError(f"agents not ready after {timeout} s: {sorted(want - ready)}")
            time.sleep(0.1)

    # ------------------------------------------------------------ API

    @property
    def network(self) -> network_pb2_grpc.NetworkServiceStub:
        return self.api.network

    @property
    def compute(self) -> compute_pb2_grpc.ComputeServiceStub:
        return self.api.compute

    @property
    def security(self) -> security_pb2_grpc.SecurityGroupServiceStub:
        return self.api.security

    @property
    def routers(self) -> router_pb2_grpc.RouterServiceStub:
        return self.api.routers

    def create_network(self, name: str, cidr: str, **subnet: object) -> LabNetwork:
        net = self.network.CreateNetwork(
            network_pb2.CreateNetworkRequest(network=resources_pb2.Network(name=name)), timeout=10
        )
        sub = self.network.CreateSubnet(
            network_pb2.CreateSubnetRequest(subnet=resources_pb2.Subnet(network_id=net.id, cidr=cidr, **subnet)),
            timeout=10,
        )
        return LabNetwork(net, sub)

    def create_port(
        self,
        net: LabNetwork,
        host: str,
        name: str,
        ip: str = "",
        mac: str = "",
        device_id: str = "",
        device_owner: str = "compute:lab",
        security_groups: Sequence[str] | None = None,
        port_security: bool | None = None,
    ) -> resources_pb2.Port:
        """``security_groups``: None gives the project's default group, [] none at all."""
        fixed = [resources_pb2.FixedIP(subnet_id=net.subnet.id, ip_address=ip)] if ip else []
        port = resources_pb2.Port(
            network_id=net.id,
            name=name,
            mac_address=mac,
            fixed_ips=fixed,
            binding_host_id=host,
            device_id=device_id,
            device_owner=device_owner,
            security_groups=security_groups or [],
        )
        if port_security is not None:
            port.port_security_enabled = port_security
        request = network_pb2.CreatePortRequest(port=port, no_security_groups=security_groups is not None)
        return self.network.CreatePort(request, timeout=10)

    def create_instance(self, name: str, user_data: bytes = b"", **fields: object) -> resources_pb2.Instance:
        inst = resources_pb2.Instance(name=name, user_data=user_data, **fields)
        return self.compute.CreateInstance(compute_pb2.CreateInstanceRequest(instance=inst), timeout=10)

    def get_port(self, port_id: str) -> resources_pb2.Port:
        return self.network.GetPort(network_pb2.GetRequest(id=port_id), timeout=10)

    def wait_port(self, port_id: str, status: str = "ACTIVE", timeout: float = 20.0) -> resources_pb2.Port:
        """Follow Watch (no polling) until the port reaches ``status``."""
        return self._wait_port(port_id, lambda p: p.status == status, status, timeout)

    def wait_port_stage(self, port_id: str, stage: str, timeout: float = 20.0) -> resources_pb2.Port:
        """Follow Watch until the port's ``stage`` (e.g. flows_installed) is done."""
        return self._wait_port(port_id, lambda p: any(s.name == stage and s.done for s in p.stages), stage, timeout)

    def _wait_port(
        self, port_id: str, reached: Callable[[resources_pb2.Port], bool], what: str, timeout: float
    ) -> resources_pb2.Port:
        port = self.get_port(port_id)
        if reached(port):
            return port
        stream = self.network.Watch(
            network_pb2.WatchRequest(since_revision=port.revision_number, kinds=["port"], id=port_id),
            timeout=timeout,
        )
        try:
            for ev in stream:
                if ev.type == network_pb2.WatchEvent.DELETED:
                    raise LabError(f"port {port_id} was deleted while waiting for {what}")
                if reached(ev.port):
                    return ev.port
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            stream.cancel()
        last = self.get_port(port_id)
        stages = ", ".join(f"{s.name}={'yes' if s.done else 'no'}" for s in last.stages)
        raise LabError(f"port {port_id} did not reach {what} in {timeout} s (status {last.status}; {stages})")

    # ------------------------------------------------------------ VMs

    def plug(self, name: str, port: resources_pb2.Port, static_ip: bool = True, routed: bool = False) -> Vm:
        """A VM namespace plugged as ``port``'s VIF on its host, asking for the port's OpenFlow number.

        ``routed``: its default route points at the subnet's gateway (as DHCP's router option would)."""
        details: Mapping[str, str] = port.binding_vif_details
        ip = gateway = None
        if static_ip and port.fixed_ips:
            subnet = self.network.GetSubnet(network_pb2.GetRequest(id=port.fixed_ips[0].subnet_id), timeout=10)
            ip = f"{port.fixed_ips[0].ip_address}/{subnet.cidr.split('/')[1]}"
            gateway = subnet.gateway_ip if routed and subnet.gateway_ip else None
        return self.lab.add_vm(
            port.binding_host_id,
            name,
            port.id,
            port.mac_address,
            mtu=int(details.get("mtu", "0")) or None,
            ofport=int(details.get("ofport", "0")) or None,
            ip=ip,
            gateway=gateway,
        )

    def boot_vm(
        self,
        name: str,
        host: str,
        net: LabNetwork,
        ip: str = "",
        mac: str = "",
        dhcp: bool = False,
        instance: resources_pb2.Instance | None = None,
        wait: bool = True,
        security_groups: Sequence[str] | None = None,
        port_security: bool | None = None,
        routed: bool = False,
    ) -> Vm:
        """Create a port bound to ``host``, plug a VM for it, and wait until the port is ACTIVE.

        A VM that cannot be plugged takes its new port with it, so a failed boot leaves nothing behind.
        """
        port = self.create_port(
            net,
            host,
            name,
            ip=ip,
            mac=mac,
            device_id=instance.id if instance else "",
            device_owner="compute:lab",
            security_groups=security_groups,
            port_security=port_security,
        )
        try:
            vm = self.plug(name, port, static_ip=not dhcp, routed=routed)
        except BaseException:
            self.network.DeletePort(network_pb2.DeleteRequest(id=port.id), timeout=10)
            raise
        if wait:
            self.wait_port(port.id)
        return vm

    def subnet_prefix(self, subnet_id: str) -> int:
        sub = self.network.GetSubnet(network_pb2.GetRequest(id=subnet_id), timeout=10)
        return int(sub.cidr.split("/")[1])


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
