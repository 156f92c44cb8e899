"""Differential test of incremental compilation: what agents hold always equals a compile from scratch.

A hypothesis state machine drives the real API (NetworkApi, InstanceApi) over a
real SQLite store with random mutations — networks, subnets, ports bound,
unbound and moved between hosts, MAC and IP changes, admin state, instances,
agents joining, leaving and moving their tunnel endpoint — while simulated
agents follow the distributor's Sync streams, disconnect, reconnect (getting a
merged delta or a snapshot) and see the controller restart. After every step,
every connected agent's state (flows per cookie, local ports, local networks,
tunnel peers) must equal ``compile_host`` of the store from scratch, flow for
flow. A dependency a feature forgets to declare (``affected``/``membership``)
makes some agent keep a stale flow, and this test fail.

CI runs a bounded number of examples; ``make fuzz`` (LOOM_FUZZ_EXAMPLES=N) runs many more.
"""

from __future__ import annotations

import collections
import os
import queue
import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from compute.core import ComputeCore
from compute.instance_api import InstanceApi
from controller.api.errors import ApiError
from controller.api.network_api import NetworkApi
from controller.compiler.host import FEATURES, compile_host
from controller.compiler.topology import Topology
from controller.distributor.distributor import Distributor, in_dataplane
from controller.distributor.hoststate import network_to_proto, port_to_proto
from controller.model import Agent, Port
from controller.store.sqlite import SqliteStore
from dataplane.contract.encode import to_wire
from dataplane.desired import DesiredState

HOSTS = ("h1", "h2", "h3", "h4")
CIDRS = ("10.0.0.0/24", "10.0.1.0/24", "10.0.0.0/24")  # the same CIDR twice: tenants overlap
FUZZ_EXAMPLES = int(os.environ.get("LOOM_FUZZ_EXAMPLES", "0") or 0)  # make fuzz


class SimAgent:
    """An agent as the distributor sees it: a Sync stream it drains, or a position it reconnects from."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.state = DesiredState()
        self.stream: queue.SimpleQueue | None = None

    def connect(self, dist: Distributor) -> None:
        self.stream, catch_up = dist.open_stream(self.host, self.state.revision, self.state.epoch)
        for msg in catch_up:
            self.state.apply(msg)

    def disconnect(self, dist: Distributor) -> None:
        if self.stream is not None:
            dist.close_stream(self.host, self.stream)
            self.stream = None

    def drain(self) -> None:
        while self.stream is not None:
            try:
                msg = self.stream.get_nowait()
            except queue.Empty:
                return
            if msg is None:  # the distributor stopped: the stream ended
                self.stream = None
                return
            self.state.apply(msg)


def expected(store: SqliteStore, host: str, metadata_url: str) -> tuple[dict, dict, dict, tuple[str, ...]]:
    """What ``host`` must hold, compiled from the whole store at once."""
    topo = Topology(metadata_url=metadata_url)
    for kind in ("agent", "network", "subnet", "instance", "port"):
        for obj in store.list(kind):
            if isinstance(obj, Port) and not in_dataplane(obj):
                continue
            topo.put(obj)
    state = compile_host(topo, host)
    groups = {
        FEATURES.cookie(topo, key): collections.Counter(to_wire(f) for f in flows)
        for key, flows in state.groups.items()
    }
    ports = {pid: port_to_proto(spec) for pid, spec in state.ports.items()}
    networks = {nid: network_to_proto(spec) for nid, spec in state.networks.items()}
    return groups, ports, networks, topo.tunnel_peers(host)


def held(agent: SimAgent) -> tuple[dict, dict, dict, tuple[str, ...]]:
    s = agent.state
    groups = {cookie: collections.Counter(flows) for cookie, flows in s.groups.items()}
    return groups, dict(s.ports), dict(s.networks), s.peers


class DistributorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory(prefix="loom-differential-")
        self.store = SqliteStore(str(Path(self.tmp.name) / "loom.db"))
        self.api = NetworkApi(self.store)
        self.instances = InstanceApi(ComputeCore(self.store, self.api))
        self.dist = Distributor(self.store, Topology())
        self.dist.start()
        self.agents = {h: SimAgent(h) for h in HOSTS}
        self.networks: list[str] = []
        self.ports: list[str] = []
        self.instance_ids: list[str] = []
        self.macs = 0

    def teardown(self) -> None:
        self.dist.stop()
        self.api.close()
        self.store.close()
        self.tmp.cleanup()

    # ---------------------------------------------------------------- helpers

    def _try(self, call, *args) -> object | None:  # type: ignore[no-untyped-def]
        """Run an API call; refusals (ApiError) are part of the game and change nothing."""
        try:
            return call(*args)
        except ApiError:
            return None

    def _settle(self) -> None:
        assert self.dist.wait_for(self.store.revision, timeout=10), "the distributor fell behind"
        for agent in self.agents.values():
            agent.drain()

    # ---------------------------------------------------------------- a world to start from

    @initialize(connected=st.sets(st.sampled_from(HOSTS), min_size=1), ports=st.integers(min_value=1, max_value=6))
    def a_small_cloud(self, connected: set[str], ports: int) -> None:
        """Registered hosts, agents following some of them, two networks with ports spread over the hosts."""
        for i, host in enumerate(HOSTS, 1):
            self.store.commit(puts=[Agent(id=host, tunnel_ip=f"198.51.100.{i * 10}")])
        for host in sorted(connected):
            self.agents[host].connect(self.dist)
        for i, cidr in enumerate(CIDRS[:2]):
            net = self.api.networks.create({"name": f"base{i}"})
            self.api.subnets.create({"network_id": net.id, "cidr": cidr})
            self.networks.append(net.id)
        for n in range(ports):
            port = self.api.ports.create(
                {"network_id": self.networks[n % 2], "binding_host_id": HOSTS[n % len(HOSTS)], "device_owner": "x:y"}
            )
            self.ports.append(port.id)

    # ---------------------------------------------------------------- model mutations

    @rule(cidr=st.sampled_from(CIDRS), dhcp=st.booleans(), second=st.booleans())
    def create_network(self, cidr: str, dhcp: bool, second: bool) -> None:
        net = self.api.networks.create({"name": f"n{len(self.networks)}"})
        self.api.subnets.create({"network_id": net.id, "cidr": cidr, "enable_dhcp": dhcp})
        if second:
            self.api.subnets.create({"network_id": net.id, "cidr": "172.16.0.0/24", "enable_dhcp": not dhcp})
        self.networks.append(net.id)

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), host=st.sampled_from(("", *HOSTS)), with_instance=st.booleans())
    def create_port(self, data: st.DataObject, host: str, with_instance: bool) -> None:
        net_id = data.draw(st.sampled_from(self.networks))
        fields: dict[str, object] = {"network_id": net_id, "binding_host_id": host, "device_owner": "compute:nova"}
        if with_instance and self.instance_ids:
            fields["device_id"] = data.draw(st.sampled_from(self.instance_ids))
        port = self._try(self.api.ports.create, fields)
        if port is not None:
            self.ports.append(port.id)  # type: ignore[attr-defined]

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), host=st.sampled_from(("", *HOSTS)))
    def move_port(self, data: st.DataObject, host: str) -> None:
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), {"binding_host_id": host})

    @precondition(lambda self: self.ports)
    @rule(data=st.data())
    def change_port_mac(self, data: st.DataObject) -> None:
        self.macs += 1
        mac = f"fa:16:3e:7f:{self.macs >> 8:02x}:{self.macs & 0xFF:02x}"
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), {"mac_address": mac})

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), last_octet=st.integers(min_value=3, max_value=40))
    def change_port_ip(self, data: st.DataObject, last_octet: int) -> None:
        port = self.store.get("port", data.draw(st.sampled_from(self.ports)))
        if port is None or not port.fixed_ips:  # type: ignore[attr-defined]
            return
        subnet = self.store.get("subnet", port.fixed_ips[0].subnet_id)  # type: ignore[attr-defined]
        ip = subnet.cidr.rsplit(".", 1)[0] + f".{last_octet}"  # type: ignore[attr-defined]
        self._try(self.api.ports.update, port.id, {"fixed_ips": [(subnet.id, ip)]})  # type: ignore[attr-defined]

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), up=st.booleans(), security=st.booleans())
    def port_flags(self, data: st.DataObject, up: bool, security: bool) -> None:
        changes = {"admin_state_up": up, "port_security_enabled": security}
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), changes)

    @precondition(lambda self: self.ports)
    @rule(data=st.data())
    def delete_port(self, data: st.DataObject) -> None:
        port_id = data.draw(st.sampled_from(self.ports))
        if self._try(self.api.ports.delete, port_id) is not None:
            self.ports.remove(port_id)

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), up=st.booleans(), mtu=st.sampled_from((1400, 1450)))
    def network_flags(self, data: st.DataObject, up: bool, mtu: int) -> None:
        self._try(
            self.api.networks.update, data.draw(st.sampled_from(self.networks)), {"admin_state_up": up, "mtu": mtu}
        )

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), dhcp=st.booleans(), dns=st.sampled_from(((), ("10.0.0.53",), ("9.9.9.9", "1.1.1.1"))))
    def subnet_change(self, data: st.DataObject, dhcp: bool, dns: tuple[str, ...]) -> None:
        subnets = self.api.subnet_ids(data.draw(st.sampled_from(self.networks)))
        if subnets:
            sid = data.draw(st.sampled_from(subnets))
            self._try(self.api.subnets.update, sid, {"enable_dhcp": dhcp, "dns_nameservers": list(dns)})

    @precondition(lambda self: self.networks)
    @rule(data=st.data())
    def delete_network(self, data: st.DataObject) -> None:
        net_id = data.draw(st.sampled_from(self.networks))
        if self._try(self.api.networks.delete, net_id) is not None:
            self.networks.remove(net_id)

    @rule(name=st.sampled_from(("web", "db", "cache")))
    def create_instance(self, name: str) -> None:
        self.instance_ids.append(self.instances.create_instance({"name": name}).id)

    @precondition(lambda self: self.instance_ids)
    @rule(data=st.data(), hostname=st.sampled_from(("alpha", "beta", "gamma")))
    def rename_instance(self, data: st.DataObject, hostname: str) -> None:
        self.instances.update_instance(data.draw(st.sampled_from(self.instance_ids)), {"hostname": hostname})

    @precondition(lambda self: self.instance_ids)
    @rule(data=st.data())
    def delete_instance(self, data: st.DataObject) -> None:
        instance_id = data.draw(st.sampled_from(self.instance_ids))
        self.instances.delete_instance(instance_id)
        self.instance_ids.remove(instance_id)

    @rule(host=st.sampled_from(HOSTS), n=st.integers(min_value=1, max_value=3))
    def register_agent(self, host: str, n: int) -> None:
        # A (re)registration, possibly with a new tunnel endpoint.
        self.store.commit(puts=[Agent(id=host, tunnel_ip=f"198.51.100.{HOSTS.index(host) * 10 + n}")])

    @rule(host=st.sampled_from(HOSTS))
    def forget_agent(self, host: str) -> None:
        if self.store.get("agent", host) is not None:
            self.store.commit(deletes=[("agent", host)])

    # ---------------------------------------------------------------- agents

    @rule(host=st.sampled_from(HOSTS))
    def agent_connects(self, host: str) -> None:
        self._settle()
        agent = self.agents[host]
        if agent.stream is None:
            agent.connect(self.dist)

    @rule(host=st.sampled_from(HOSTS))
    def agent_disconnects(self, host: str) -> None:
        self._settle()
        self.agents[host].disconnect(self.dist)

    @rule()
    def controller_restarts(self) -> None:
        """A new distributor (new epoch) over the same store; agents reconnect and get snapshots."""
        self._settle()
        connected = [a for a in self.agents.values() if a.stream is not None]
        for agent in connected:
            agent.disconnect(self.dist)
        self.dist.stop()
        self.dist = Distributor(self.store, Topology())
        self.dist.start()
        for agent in connected:
            agent.connect(self.dist)

    # ---------------------------------------------------------------- the property

    @invariant()
    def agents_hold_what_a_full_compile_gives(self) -> None:
        self._settle()
        for agent in self.agents.values():
            if agent.stream is None:
                continue
            want = expected(self.store, agent.host, self.dist.topo.metadata_url)
            got = held(agent)
            for part, w, g in zip(("flows", "ports", "networks", "peers"), want, got, strict=True):
                assert g == w, f"{agent.host}: {part} differ from a compile from scratch"


DistributorMachine.TestCase.settings = settings(
    max_examples=FUZZ_EXAMPLES or 100,
    stateful_step_count=60 if FUZZ_EXAMPLES else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDistributorDifferential = DistributorMachine.TestCase
