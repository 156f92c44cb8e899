"""Building blocks for L3 tests on a Loom lab with an external network: routers, floating IPs, probes.

The lab (``l3_config``) has four hypervisors: hv1 and hv2 run VMs, hv3 and hv4
are gateway hosts (``--gateway 20`` and ``10``); every agent maps the physical
network "external" to br-ext holding its ext0, and the external network has an
upstream router and a server "on the internet" (``lab.mininet.external``).
``L3Scenario`` removes what a test made — floating IPs, interfaces, routers —
before the base scenario removes VMs, ports and networks.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from lab.mininet.config import LabConfig
from lab.mininet.external import ExternalWorld
from lab.mininet.lab import Vm
from lab.mininet.loom import LabNetwork, LoomLab
from protos.loom.v1 import network_pb2, resources_pb2, router_pb2, security_pb2
from tests.lab.conftest import slot_config
from tests.lab.scenario import Scenario

GATEWAYS = {"hv3": 20, "hv4": 10}
POOL_START, POOL_END = "203.0.113.100", "203.0.113.200"


def l3_config() -> LabConfig:
    """The L3 lab of this test session's slot (role "r" of slot_config); LOOM_L3LAB_PREFIX renames it."""
    config = slot_config("r", hypervisors=4)
    prefix = os.environ.get("LOOM_L3LAB_PREFIX")
    return dataclasses.replace(config, prefix=prefix) if prefix else config


class L3Scenario(Scenario):
    def __init__(self, loom: LoomLab, workdir: Path) -> None:
        super().__init__(loom, workdir)
        self.routers: list[str] = []
        self.fips: list[str] = []
        self._external: LabNetwork | None = None

    @property
    def world(self) -> ExternalWorld:
        assert self.loom.external is not None
        return self.loom.external

    # ------------------------------------------------------------ the external network (shared by the module)

    def external(self) -> LabNetwork:
        """The lab's external network: flat on "external", the upstream router as gateway, no DHCP."""
        if self._external is None:
            found = [n for n in self.loom.network.ListNetworks(network_pb2.ListNetworksRequest(name="public")).networks]
            if found:
                net = found[0]
                (subnet_id,) = net.subnets
                sub = self.loom.network.GetSubnet(network_pb2.GetRequest(id=subnet_id))
            else:
                net = self.loom.network.CreateNetwork(
                    network_pb2.CreateNetworkRequest(
                        network=resources_pb2.Network(
                            name="public", network_type="flat", physical_network="external", router_external=True
                        )
                    )
                )
                sub = self.loom.network.CreateSubnet(
                    network_pb2.CreateSubnetRequest(
                        subnet=resources_pb2.Subnet(
                            network_id=net.id,
                            cidr=self.world.external_cidr,
                            gateway_ip=self.world.gateway_ip,
                            enable_dhcp=False,
                            allocation_pools=[resources_pb2.AllocationPool(start=POOL_START, end=POOL_END)],
                        )
                    )
                )
            self._external = LabNetwork(net, sub)
        return self._external

    # ------------------------------------------------------------ VMs reachable from outside

    def open_group(self) -> str:
        """A security group letting any IPv4 in (shared by the module's tests, as "public" is).

        Routed and floating-IP traffic comes from other networks and the internet, which the
        default group (ingress from its own members only) refuses: a user opens the ports a
        floating IP is for, and these tests open everything.
        """
        sec = self.loom.security
        found = sec.ListSecurityGroups(security_pb2.ListSecurityGroupsRequest(name="l3-open"), timeout=10)
        if found.security_groups:
            return found.security_groups[0].id
        group = sec.CreateSecurityGroup(
            security_pb2.CreateSecurityGroupRequest(security_group=resources_pb2.SecurityGroup(name="l3-open")),
            timeout=10,
        )
        rule = resources_pb2.SecurityGroupRule(security_group_id=group.id, direction="ingress")
        sec.CreateSecurityGroupRule(security_pb2.CreateSecurityGroupRuleRequest(security_group_rule=rule), timeout=10)
        return group.id

    def vm(self, *args: Any, **kwargs: Any) -> Vm:  # type: ignore[override]
        """A VM as the base scenario boots it, in the open group unless ``groups`` says otherwise."""
        kwargs.setdefault("groups", [self.open_group()])
        return super().vm(*args, **kwargs)

    # ------------------------------------------------------------ routers

    def router(self, name: str = "r", gateway: bool = True, snat: bool = True) -> resources_pb2.Router:
        r = resources_pb2.Router(name=self.unique(name))
        if gateway:
            r.external_gateway_info.network_id = self.external().id
            r.external_gateway_info.enable_snat = snat
        router = self.loom.routers.CreateRouter(router_pb2.CreateRouterRequest(router=r), timeout=10)
        self.routers.append(router.id)
        return router

    def add_interface(self, router: resources_pb2.Router, net: LabNetwork) -> router_pb2.RouterInterface:
        request = router_pb2.RouterInterfaceRequest(router_id=router.id, subnet_id=net.subnet.id)
        return self.loom.routers.AddRouterInterface(request, timeout=10)

    def remove_interface(self, router: resources_pb2.Router, net: LabNetwork) -> router_pb2.RouterInterface:
        request = router_pb2.RouterInterfaceRequest(router_id=router.id, subnet_id=net.subnet.id)
        return self.loom.routers.RemoveRouterInterface(request, timeout=10)

    def get_router(self, router_id: str) -> resources_pb2.Router:
        return self.loom.routers.GetRouter(network_pb2.GetRequest(id=router_id), timeout=10)

    def external_ip(self, router: resources_pb2.Router) -> str:
        return self.get_router(router.id).external_gateway_info.external_fixed_ips[0].ip_address

    def floating_ip(self, port_id: str = "", address: str = "") -> resources_pb2.FloatingIp:
        fip = resources_pb2.FloatingIp(
            floating_network_id=self.external().id, port_id=port_id, floating_ip_address=address
        )
        created = self.loom.routers.CreateFloatingIp(router_pb2.CreateFloatingIpRequest(floating_ip=fip), timeout=10)
        self.fips.append(created.id)
        return created

    def associate(self, fip_id: str, port_id: str) -> resources_pb2.FloatingIp:
        return self.loom.routers.AssociateFloatingIp(
            router_pb2.AssociateFloatingIpRequest(id=fip_id, port_id=port_id), timeout=10
        )

    def disassociate(self, fip_id: str) -> resources_pb2.FloatingIp:
        return self.loom.routers.DisassociateFloatingIp(network_pb2.GetRequest(id=fip_id), timeout=10)

    def move_port(self, port_id: str, host: str) -> resources_pb2.Port:
        update = network_pb2.UpdatePortRequest(
            port=resources_pb2.Port(id=port_id, binding_host_id=host), update_mask=FieldMask(paths=["binding_host_id"])
        )
        return self.loom.network.UpdatePort(update, timeout=10)

    def cleanup(self) -> None:
        api = self.loom.routers
        for fip_id in self.fips:
            _ignore_missing(lambda f=fip_id: api.DeleteFloatingIp(network_pb2.DeleteRequest(id=f), timeout=10))
        for router_id in self.routers:
            try:
                router = api.GetRouter(network_pb2.GetRequest(id=router_id), timeout=10)
            except grpc.RpcError:
                continue
            for port_id in router.interfaces:
                _ignore_missing(
                    lambda p=port_id, r=router_id: api.RemoveRouterInterface(
                        router_pb2.RouterInterfaceRequest(router_id=r, port_id=p), timeout=10
                    )
                )
            _ignore_missing(lambda r=router_id: api.DeleteRouter(network_pb2.DeleteRequest(id=r), timeout=10))
        super().cleanup()


def _ignore_missing(call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise


# ---------------------------------------------------------------- probes


@dataclass
class Outage:
    """What a fast ping saw: every sequence number, answered or not, and the longest run without answer."""

    interval: float
    sent: int = 0
    answered: set[int] = field(default_factory=set)
    output: str = ""
    sent_times: dict[int, float] = field(default_factory=dict)  # answered seq -> when it was sent

    @property
    def lost(self) -> int:
        return self.sent - len(self.answered & set(range(1, self.sent + 1)))

    @property
    def longest_gap_ms(self) -> float:
        """The longest time between two answered probes' sending, less one interval (0: none missing),
        in milliseconds; measured from ping's own timestamps, not by counting intervals."""
        times = sorted(self.sent_times.values())
        if len(times) < 2:
            return float("inf")
        widest = max(b - a for a, b in itertools.pairwise(times))
        return max(0.0, widest - self.interval) * 1000

    def sent_at(self, seq: int) -> float:
        """When probe ``seq`` was sent (time.time()): measured for answered ones, interpolated for the rest
        (ping falls behind its interval on a busy machine, so counting intervals would drift)."""
        if seq in self.sent_times:
            return self.sent_times[seq]
        before = max((q for q in self.sent_times if q < seq), default=None)
        after = min((q for q in self.sent_times if q > seq), default=None)
        if before is not None and after is not None:
            t0, t1 = self.sent_times[before], self.sent_times[after]
            return t0 + (t1 - t0) * (seq - before) / (after - before)
        if before is not None:
            return self.sent_times[before] + (seq - before) * self.interval
        if after is not None:
            return self.sent_times[after] - (after - seq) * self.interval
        return 0.0

    def last_answer_sent_at(self) -> float | None:
        """When the last probe that got an answer was sent (time.time())."""
        return self.sent_at(max(self.answered)) if self.answered else None


_REPLY = re.compile(r"icmp_seq=(\d+) ttl=(\d+)")
_STAMPED = re.compile(r"\[(\d+\.\d+)\] .*icmp_seq=(\d+) ttl=(\d+) time=([\d.]+) ms")
_SENT = re.compile(r"(\d+) packets transmitted")


@contextmanager
def fast_ping(netns: str, address: str, interval: float = 0.01, settle: float = 0.5) -> Iterator[Outage]:
    """Ping ``address`` from ``netns`` every ``interval`` s while the block runs; then count the gaps."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "ping", "-D", "-n", "-i", str(interval), "-W", "1", address],
        stdout=subprocess.PIPE,
        text=True,
    )
    outage = Outage(interval)
    time.sleep(settle)
    try:
        yield outage
    finally:
        time.sleep(1.2)  # replies still in flight count as answered
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
        outage.output = out[-2000:]
        replies = [(float(m.group(1)), int(m.group(2)), float(m.group(4))) for m in _STAMPED.finditer(out)]
        outage.answered = {seq for _, seq, _ in replies}
        outage.sent_times = {seq: at - rtt / 1000 for at, seq, rtt in replies}
        sent = _SENT.search(out)
        outage.sent = int(sent.group(1)) if sent else max(outage.answered, default=0)


def ping_ttl(netns: str, address: str, timeout: float = 1.0) -> int | None:
    """One ping; the TTL of its reply (None: no reply)."""
    proc = subprocess.run(
        ["ip", "netns", "exec", netns, "ping", "-n", "-c", "1", "-W", str(timeout), address],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    m = _REPLY.search(proc.stdout)
    return int(m.group(2)) if m else None


def wait_until(predicate: object, timeout: float, step: float = 0.05) -> float | None:
    """Seconds until ``predicate()`` held (None: not within ``timeout``)."""
    start = time.monotonic()
    while True:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(step)
