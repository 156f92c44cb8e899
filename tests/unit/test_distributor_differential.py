"""Differential test of incremental compilation: what agents hold always equals a compile from scratch.

A hypothesis state machine drives the real API (NetworkApi, InstanceApi) over a
real SQLite store with random mutations — networks, subnets, ports bound,
unbound and moved between hosts, MAC and IP changes, admin state, instances,
agents joining, leaving and moving their tunnel endpoint, gaining or losing
their bridge mapping and gateway role; security groups, rules (protocols, port
ranges, prefixes, remote groups) created and deleted, ports joining and leaving
groups, allowed address pairs, port security turned off and on; routers with
interfaces added and removed, gateways set and cleared, static routes, the
active gateway a host reports, floating IPs created, associated, moved and
deleted — while simulated
agents follow the distributor's Sync streams, disconnect, reconnect (getting a
merged delta or a snapshot) and see the controller restart. After every step,
every connected agent's state (flows per cookie, local ports, local networks,
tunnel peers, the L3 state: external networks, floating IPs, gateway routers
and tunnels) must equal ``compile_host`` of the store from scratch, flow for
flow. A dependency a feature forgets to declare (``affected``/``membership``)
makes some agent keep a stale flow, and this test fail.

CI runs a bounded number of examples; ``make fuzz`` (LOOM_FUZZ_EXAMPLES=N) runs many more.
"""

from __future__ import annotations

import collections
import os
import queue
import tempfile
from dataclasses import replace
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from compute.core import ComputeCore
from compute.instance_api import InstanceApi
from controller.api.errors import ApiError
from controller.api.network_api import NetworkApi
from controller.api.routers import GatewayInfo
from controller.compiler.host import FEATURES, compile_host, host_peers
from controller.compiler.topology import Topology
from controller.distributor.distributor import Distributor, in_dataplane
from controller.distributor.hoststate import l3_to_proto, network_to_proto, port_to_proto
from controller.model import Agent, Port, PortStage
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


def expected(store: SqliteStore, host: str, metadata_url: str) -> tuple[dict, dict, dict, tuple[str, ...], object]:
    """What ``host`` must hold, compiled from the whole store at once."""
    topo = Topology(metadata_url=metadata_url)
    for kind in (
        "agent",
        "network",
        "subnet",
        "instance",
        "security_group",
        "security_group_rule",
        "port",
        "router",
        "floatingip",
    ):
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
    return groups, ports, networks, host_peers(topo, host), l3_to_proto(state.l3)


def held(agent: SimAgent) -> tuple[dict, dict, dict, tuple[str, ...], object]:
    s = agent.state
    groups = {cookie: collections.Counter(flows) for cookie, flows in s.flow_groups().items()}
    return groups, dict(s.ports), dict(s.networks), s.peers, s.l3


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
        self.external = ""
        self.routers: list[str] = []
        self.fips: list[str] = []
        self.ports: list[str] = []
        self.instance_ids: list[str] = []
        self.groups: list[str] = []
        self.rules: list[str] = []
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
            self.store.commit(
                puts=[self._agent(host, f"198.51.100.{i * 10}", i % 2 == 0, gateway=10 * i if i > 2 else 0)]
            )
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
        ext = self.api.networks.create(
            {"name": "ext", "network_type": "flat", "physical_network": "external", "router_external": True}
        )
        self.api.subnets.create({"network_id": ext.id, "cidr": "203.0.113.0/24", "enable_dhcp": False})
        self.external = ext.id

    @staticmethod
    def _agent(host: str, tunnel_ip: str, mapped: bool, gateway: int = 0) -> Agent:
        return Agent(
            id=host, tunnel_ip=tunnel_ip, physical_networks=("external",) if mapped else (), gateway_priority=gateway
        )

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

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), status=st.sampled_from(("ACTIVE", "DOWN", "BUILD")))
    def agent_reports_status(self, data: st.DataObject, status: str) -> None:
        """An agent's report: only status and stages change, which the distributor skips (the topology keeps an
        older copy of the port, so later events' old objects differ from it)."""
        stages = (PortStage("accepted", True), PortStage("flows_installed", status == "ACTIVE"))
        self._try(self.api.ports.update_status, data.draw(st.sampled_from(self.ports)), status, stages)

    # ---------------------------------------------------------------- security groups

    @rule(name=st.sampled_from(("web", "db", "ssh")))
    def create_security_group(self, name: str) -> None:
        group = self.api.security_groups.create({"name": name})
        self.groups.append(group.id)
        self.rules.extend(self.api.core.secgroups.rules_of(group.id))

    @precondition(lambda self: self.groups)
    @rule(
        data=st.data(),
        direction=st.sampled_from(("ingress", "egress")),
        proto=st.sampled_from(("", "tcp", "udp", "icmp", "47")),
        ports=st.sampled_from((None, (22, 22), (1000, 1999), (1500, 2500))),
        prefix=st.sampled_from(("", "10.0.0.0/24", "10.0.0.12/32", "0.0.0.0/0")),
        remote=st.booleans(),
    )
    def create_rule(
        self,
        data: st.DataObject,
        direction: str,
        proto: str,
        ports: tuple[int, int] | None,
        prefix: str,
        remote: bool,
    ) -> None:
        groups = [*self.groups, *self._default_groups()]
        fields: dict[str, object] = {
            "security_group_id": data.draw(st.sampled_from(groups)),
            "direction": direction,
            "protocol": proto,
        }
        if ports is not None and proto in ("tcp", "udp"):
            fields["port_range_min"], fields["port_range_max"] = ports
        if remote:
            fields["remote_group_id"] = data.draw(st.sampled_from(groups))
        elif prefix:
            fields["remote_ip_prefix"] = prefix
        created = self._try(self.api.security_group_rules.create, fields)
        if created is not None:
            self.rules.append(created.id)  # type: ignore[attr-defined]

    @precondition(lambda self: self.rules)
    @rule(data=st.data())
    def delete_rule(self, data: st.DataObject) -> None:
        rule_id = data.draw(st.sampled_from(self.rules))
        self._try(self.api.security_group_rules.delete, rule_id)
        self.rules.remove(rule_id)

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), n=st.integers(min_value=0, max_value=2))
    def set_port_groups(self, data: st.DataObject, n: int) -> None:
        """A port leaves and joins groups (none: with port security on, it drops everything)."""
        groups = [*self.groups, *self._default_groups()]
        chosen = data.draw(st.lists(st.sampled_from(groups), max_size=n)) if groups else []
        changes = {"security_groups": chosen, "port_security_enabled": True}
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), changes)

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), security=st.booleans())
    def port_security_only(self, data: st.DataObject, security: bool) -> None:
        """Port security off takes the groups and pairs with it; on again, it has none."""
        changes: dict[str, object] = {"port_security_enabled": security}
        if not security:
            changes |= {"security_groups": [], "allowed_address_pairs": []}
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), changes)

    @precondition(lambda self: self.ports)
    @rule(
        data=st.data(),
        pairs=st.lists(
            st.sampled_from(
                (
                    ("10.0.0.200", ""),
                    ("10.0.0.12", ""),
                    ("10.0.0.128/25", ""),
                    ("10.0.0.200", "fa:16:3e:aa:bb:cc"),
                    ("0.0.0.0/0", ""),
                )
            ),
            max_size=2,
            unique=True,
        ),
    )
    def set_address_pairs(self, data: st.DataObject, pairs: list[tuple[str, str]]) -> None:
        self._try(self.api.ports.update, data.draw(st.sampled_from(self.ports)), {"allowed_address_pairs": pairs})

    @precondition(lambda self: self.groups)
    @rule(data=st.data())
    def delete_security_group(self, data: st.DataObject) -> None:
        group_id = data.draw(st.sampled_from(self.groups))
        rules = self.api.core.secgroups.rules_of(group_id)
        if self._try(self.api.security_groups.delete, group_id) is not None:
            self.groups.remove(group_id)
            self.rules = [r for r in self.rules if r not in rules]

    def _default_groups(self) -> list[str]:
        return [g.id for g in self.store.list("security_group") if g.name == "default"]  # type: ignore[attr-defined]

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

    @rule(
        host=st.sampled_from(HOSTS),
        n=st.integers(min_value=1, max_value=3),
        mapped=st.booleans(),
        gateway=st.sampled_from((0, 0, 5, 20)),
    )
    def register_agent(self, host: str, n: int, mapped: bool, gateway: int) -> None:
        # A (re)registration, possibly with a new tunnel endpoint, bridge mapping or gateway role.
        current = self.store.get("agent", host)
        agent = self._agent(host, f"198.51.100.{HOSTS.index(host) * 10 + n}", mapped, gateway)
        if current is not None:
            agent = replace(agent, tag=current.tag)
        self.store.commit(puts=[agent])

    # ---------------------------------------------------------------- routers and floating IPs

    @rule(gateway=st.booleans(), snat=st.booleans())
    def create_router(self, gateway: bool, snat: bool) -> None:
        fields: dict[str, object] = {"name": f"r{len(self.routers)}"}
        if gateway:
            fields["external_gateway_info"] = GatewayInfo(self.external, snat)
        router = self._try(self.api.routers.create, fields)
        if router is not None:
            self.routers.append(router.id)  # type: ignore[attr-defined]

    @precondition(lambda self: self.routers and self.networks)
    @rule(data=st.data())
    def add_router_interface(self, data: st.DataObject) -> None:
        subnets = self.api.subnet_ids(data.draw(st.sampled_from(self.networks)))
        if subnets:
            router_id = data.draw(st.sampled_from(self.routers))
            self._try(self.api.routers.add_interface, router_id, data.draw(st.sampled_from(subnets)))

    @precondition(lambda self: self.routers)
    @rule(data=st.data())
    def remove_router_interface(self, data: st.DataObject) -> None:
        router_id = data.draw(st.sampled_from(self.routers))
        ports = self.api.routers.interface_ports(router_id)
        if ports:
            self._try(self.api.routers.remove_interface, router_id, "", data.draw(st.sampled_from(ports)).id)

    @precondition(lambda self: self.routers)
    @rule(data=st.data(), gateway=st.booleans(), snat=st.booleans(), up=st.booleans())
    def change_router(self, data: st.DataObject, gateway: bool, snat: bool, up: bool) -> None:
        info = GatewayInfo(self.external, snat) if gateway else None
        changes = {"external_gateway_info": info, "admin_state_up": up}
        self._try(self.api.routers.update, data.draw(st.sampled_from(self.routers)), changes)

    @precondition(lambda self: self.routers)
    @rule(data=st.data(), hop=st.sampled_from(("10.0.0.9", "10.0.1.9", "203.0.113.1", "172.16.0.9")))
    def router_routes(self, data: st.DataObject, hop: str) -> None:
        routes = [("192.168.0.0/16", hop), ("0.0.0.0/0", hop)][: data.draw(st.integers(0, 2))]
        self._try(self.api.routers.update, data.draw(st.sampled_from(self.routers)), {"routes": routes})

    @precondition(lambda self: self.routers)
    @rule(data=st.data(), host=st.sampled_from(HOSTS))
    def gateway_reports_active(self, data: st.DataObject, host: str) -> None:
        self.api.routers.set_active_gateway(host, [data.draw(st.sampled_from(self.routers))])

    @precondition(lambda self: self.routers)
    @rule(data=st.data())
    def delete_router(self, data: st.DataObject) -> None:
        router_id = data.draw(st.sampled_from(self.routers))
        if self._try(self.api.routers.delete, router_id) is not None:
            self.routers.remove(router_id)

    @rule(data=st.data(), associate=st.booleans())
    def create_floating_ip(self, data: st.DataObject, associate: bool) -> None:
        fields: dict[str, object] = {"floating_network_id": self.external}
        if associate and self.ports:
            fields["port_id"] = data.draw(st.sampled_from(self.ports))
        fip = self._try(self.api.floating_ips.create, fields)
        if fip is not None:
            self.fips.append(fip.id)  # type: ignore[attr-defined]

    @precondition(lambda self: self.fips)
    @rule(data=st.data(), associate=st.booleans())
    def move_floating_ip(self, data: st.DataObject, associate: bool) -> None:
        fip_id = data.draw(st.sampled_from(self.fips))
        if associate and self.ports:
            self._try(self.api.floating_ips.associate, fip_id, data.draw(st.sampled_from(self.ports)))
        else:
            self._try(self.api.floating_ips.disassociate, fip_id)

    @precondition(lambda self: self.fips)
    @rule(data=st.data())
    def delete_floating_ip(self, data: st.DataObject) -> None:
        fip_id = data.draw(st.sampled_from(self.fips))
        if self._try(self.api.floating_ips.delete, fip_id) is not None:
            self.fips.remove(fip_id)

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
            for part, w, g in zip(("flows", "ports", "networks", "peers", "l3"), want, got, strict=True):
                assert g == w, f"{agent.host}: {part} differ from a compile from scratch"


DistributorMachine.TestCase.settings = settings(
    max_examples=FUZZ_EXAMPLES or 100,
    stateful_step_count=60 if FUZZ_EXAMPLES else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDistributorDifferential = DistributorMachine.TestCase
