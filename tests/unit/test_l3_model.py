"""Random clouds, simulated, against a reference model of routing and NAT written from the API's semantics.

Hypothesis builds topologies the API allows — hosts (two of them gateways),
tenant networks (overlapping CIDRs across routers), one or two routers with
interfaces, an external gateway or none, SNAT on or off, VMs spread over the
hosts, floating IPs on some of them, a gateway host possibly down — compiles
every host, and sends traffic between VMs, to floating IPs, to the internet
and back, through the simulated switches (``controller.compiler.sim``) and the
external segment (``tests.unit.l3_world``). ``Model`` says, from Neutron's L3
semantics alone and knowing nothing of flows, where each packet must arrive
and with which addresses; the replies must then reach the sender, un-NATed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from controller.compiler.sim import SYN, reply, tcp
from controller.model import Network, Port, Router
from dataplane.contract.fields import int_to_ipv4, mac_to_int
from tests.unit.compiler_world import UPSTREAM_MAC, World
from tests.unit.l3_world import Cloud, Outcome

INTERNET = "100.64.0.10"
UPSTREAM = "203.0.113.1"
EXT_CIDR = "203.0.113.0/24"
CIDRS = ("10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "172.16.0.0/24")
COMPUTE = ("h1", "h2", "h3")


@dataclass
class Spec:
    routers: list[tuple[bool, bool]]  # (has a gateway, SNAT)
    networks: list[tuple[int, int | None]]  # (CIDR index, router index or None)
    vms: list[tuple[int, str, bool]]  # (network index, host, has a floating IP)
    g1_down: bool


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    routers = draw(st.lists(st.tuples(st.booleans(), st.sampled_from((True, True, False))), min_size=1, max_size=2))
    networks: list[tuple[int, int | None]] = []
    used: dict[int, set[int]] = {}
    for _ in range(draw(st.integers(2, 4))):
        cidr = draw(st.integers(0, len(CIDRS) - 1))
        router = draw(st.one_of(st.none(), st.integers(0, len(routers) - 1)))
        if router is not None and cidr in used.setdefault(router, set()):
            router = None  # the API refuses overlapping subnets on one router
        if router is not None:
            used[router].add(cidr)
        networks.append((cidr, router))
    vms = draw(
        st.lists(
            st.tuples(st.integers(0, len(networks) - 1), st.sampled_from(COMPUTE), st.booleans()),
            min_size=2,
            max_size=6,
        )
    )
    return Spec(routers, networks, vms, draw(st.booleans()))


@dataclass
class Vm:
    port: Port
    net: Network
    router: Router | None
    fip: str | None = None

    @property
    def ip(self) -> str:
        return self.port.ips[0]


@dataclass
class Built:
    world: World
    vms: list[Vm] = field(default_factory=list)
    routers: list[Router] = field(default_factory=list)
    router_macs: dict[tuple[str, str], str] = field(default_factory=dict)  # (router, network) -> MAC


def build(spec: Spec) -> Built:
    w = World()
    for i, name in enumerate(COMPUTE, 1):
        w.host(name, f"198.51.100.{i}", physnets=("external",))
    w.host("g1", "198.51.100.11", physnets=("external",), gateway=20)
    w.host("g2", "198.51.100.12", physnets=("external",), gateway=10)
    ext = w.external("ext", EXT_CIDR)
    b = Built(w)
    for i, (gateway, snat) in enumerate(spec.routers):
        b.routers.append(
            w.router(f"r{i}", gateway=ext if gateway else None, external_ip=f"203.0.113.{2 + i}", snat=snat)
        )
    nets = []
    for i, (cidr, router) in enumerate(spec.networks):
        net = w.network(f"n{i}", vni=5000 + i, cidr=CIDRS[cidr])
        nets.append((net, b.routers[router] if router is not None else None))
        if router is not None:
            port = w.interface(b.routers[router], net)
            b.router_macs[(b.routers[router].id, net.id)] = port.mac_address
    for i, (net_index, host, wants_fip) in enumerate(spec.vms):
        net, router = nets[net_index]
        cidr = ipaddress.IPv4Network(w.topo.subnets[f"sub-{net.name}"].cidr)
        port = w.port(f"v{i}", net, host, f"fa:16:3e:10:00:{i:02x}", str(cidr.network_address + 10 + i))
        vm = Vm(port, net, router)
        if wants_fip and router is not None and router.gateway_network_id:
            vm.fip = f"203.0.113.{100 + i}"
            w.floating_ip(f"f{i}", router, ext, vm.fip, port)
        b.vms.append(vm)
    return b


class Model:
    """Neutron's L3 semantics, nothing else: what a packet from a VM to an address becomes."""

    def __init__(self, built: Built, g1_down: bool) -> None:
        self.b = built
        self.gateway_up = True  # g2 takes over when g1 is down: there is always a live gateway

    def _router_subnets(self, router: Router) -> list[tuple[ipaddress.IPv4Network, Network]]:
        out = []
        for (router_id, net_id), _mac in self.b.router_macs.items():
            if router_id == router.id:
                net = self.b.world.topo.networks[net_id]
                out.append((ipaddress.IPv4Network(self.b.world.topo.subnets[f"sub-{net.name}"].cidr), net))
        return out

    def source_outside(self, vm: Vm) -> str | None:
        """The address ``vm``'s packets carry on the external network (None: they cannot leave)."""
        if vm.router is None or not vm.router.gateway_network_id:
            return None
        if vm.fip:
            return vm.fip
        return ext_ip(vm.router) if vm.router.enable_snat else vm.ip

    def expect(self, src: Vm, dst_ip: str) -> tuple[str, object, str, str, int] | None:
        """("vm", target Vm, seen src, seen dst, ttl) or ("internet", None, src, dst, ttl), or None: dropped.

        A reply comes back un-NATed whenever the packet was seen with a public source (its floating IP or
        the router's external IP) or routed between the router's own subnets. Without SNAT, a port with no
        floating IP shows its private address outside: nothing routes the reply back (as in Neutron).
        """
        router = src.router
        if router is None:
            return None
        dst = ipaddress.IPv4Address(dst_ip)
        for subnet, net in self._router_subnets(router):
            if dst in subnet:
                target = next((v for v in self.b.vms if v.net.id == net.id and v.ip == dst_ip), None)
                return ("vm", target, src.ip, dst_ip, 63) if target is not None else None
        outside = self.source_outside(src)
        if outside is None:
            return None
        if dst in ipaddress.IPv4Network(EXT_CIDR):
            target = next((v for v in self.b.vms if v.fip == dst_ip), None)
            if target is not None:
                return ("vm", target, outside, target.ip, 62)
            if dst_ip == UPSTREAM:
                return ("internet", None, outside, dst_ip, 63)
            return None  # an external address nobody holds (or a router's own): nothing answers ARP for it
        return ("internet", None, outside, dst_ip, 63)


def ext_ip(router: Router) -> str:
    return f"203.0.113.{2 + int(router.name[1:])}"


def make_cloud(built: Built, g1_down: bool) -> Cloud:
    w = built.world
    down: frozenset[tuple[str, str]] = frozenset()
    if g1_down:
        down = frozenset((h, "g1") for h in (*COMPUTE, "g2"))
    c = Cloud(w, down)
    if g1_down:
        c.host_down("g1")
    for vm in built.vms:
        if vm.fip:
            c.locate(w.topo.ports[f"fipport-f{vm.port.id[len('port-v') :]}"].mac_address, vm.port.binding_host_id)
    for router in built.routers:
        gw = w.topo.l3.gateway_ports.get(router.id)
        if gw is not None:
            c.locate(gw.mac_address, "g2" if g1_down else "g1")
    return c


def vm_delivery(out: Outcome, vm: Vm) -> list[dict[str, int]]:
    return [d.packet for d in out.vifs if (d.host, d.port) == (vm.port.binding_host_id, vm.port.binding_ofport)]


def ip(value: int) -> str:
    return int_to_ipv4(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), data=st.data())
def test_random_clouds_route_and_nat_as_the_model_says(spec: Spec, data: st.DataObject) -> None:
    built = build(spec)
    model = Model(built, spec.g1_down)
    cloud = make_cloud(built, spec.g1_down)
    targets = sorted({v.ip for v in built.vms} | {v.fip for v in built.vms if v.fip} | {INTERNET, UPSTREAM})
    sport = 30000
    for src in built.vms:
        if src.router is None:
            continue
        for dst_ip in data.draw(st.lists(st.sampled_from(targets), min_size=1, max_size=4, unique=True)):
            if dst_ip == src.ip:
                continue
            sport += 1
            gw_mac = built.router_macs[(src.router.id, src.net.id)]
            syn = tcp(src.port.mac_address, gw_mac, src.ip, dst_ip, sport, 80, SYN)
            want = model.expect(src, dst_ip)
            out = cloud.from_port(src.port.id, syn)
            where = f"{src.port.id} ({src.ip}) -> {dst_ip}"
            if want is None:
                assert not out.vifs and not out.internet, f"{where}: should be dropped, got {out}"
                continue
            kind, target, seen_src, seen_dst, ttl = want
            public = (seen_src == src.ip and kind == "vm" and ttl == 63) or seen_src != src.ip
            if kind == "internet":
                (left,) = out.internet
                assert (ip(left.packet["ipv4_src"]), ip(left.packet["ipv4_dst"])) == (seen_src, seen_dst), where
                assert left.packet["nw_ttl"] == ttl, where
                if src.fip is None:
                    assert left.host == ("g2" if spec.g1_down else "g1"), f"{where}: SNAT left from {left.host}"
                else:
                    assert left.host == src.port.binding_host_id, f"{where}: FIP traffic left from {left.host}"
                if not public:
                    continue
                answer = reply(left.packet)
                answer["eth_dst"] = left.packet["eth_src"]
                answer["eth_src"] = mac_to_int(UPSTREAM_MAC)
                back = cloud.from_internet(answer)
            else:
                assert isinstance(target, Vm)
                (got,) = vm_delivery(out, target) or [None]
                assert got is not None, f"{where}: not delivered to {target.port.id}: {out}"
                assert (ip(got["ipv4_src"]), ip(got["ipv4_dst"])) == (seen_src, seen_dst), where
                assert got["nw_ttl"] == ttl, where
                assert len(out.vifs) == 1, f"{where}: delivered more than once: {out.vifs}"
                if not public:
                    continue
                answer = reply(got)
                answer["eth_dst"] = mac_to_int(built.router_macs[(target.router.id, target.net.id)])  # type: ignore[union-attr]
                back = cloud.from_port(target.port.id, answer)
            (returned,) = vm_delivery(back, src) or [None]
            assert returned is not None, f"{where}: the reply did not come back: {back}"
            assert (ip(returned["ipv4_src"]), ip(returned["ipv4_dst"])) == (dst_ip, src.ip), f"{where}: reply"
            assert returned["tcp_flags"] & 0x12 == 0x12, where


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs())
def test_random_clouds_take_connections_to_floating_ips_from_the_internet(spec: Spec) -> None:
    built = build(spec)
    cloud = make_cloud(built, spec.g1_down)
    for i, vm in enumerate(v for v in built.vms if v.fip):
        mac = built.world.topo.ports[f"fipport-f{vm.port.id[len('port-v') :]}"].mac_address
        syn = tcp(UPSTREAM_MAC, mac, INTERNET, vm.fip or "", 20000 + i, 22, SYN)
        out = cloud.from_internet(syn)
        (got,) = vm_delivery(out, vm)
        assert (ip(got["ipv4_src"]), ip(got["ipv4_dst"])) == (INTERNET, vm.ip)
        answer = reply(got)
        answer["eth_dst"] = mac_to_int(built.router_macs[(vm.router.id, vm.net.id)])  # type: ignore[union-attr]
        (left,) = cloud.from_port(vm.port.id, answer).internet
        assert left.host == vm.port.binding_host_id
        assert (ip(left.packet["ipv4_src"]), ip(left.packet["ipv4_dst"])) == (vm.fip, INTERNET)
