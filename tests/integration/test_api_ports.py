"""NetworkService over real gRPC: ports, fixed IPs, MACs, binding, status."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from controller.api.errors import ApiError, ErrorCode
from controller.model import PortStage
from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import (
    LiveController,
    expect,
    make_network,
    make_subnet,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def net(live: LiveController) -> tuple[rpb.Network, rpb.Subnet, rpb.Subnet]:
    """A network with two DHCP subnets: 10.50.0.0/24 and 10.51.0.0/28."""
    n = make_network(live)
    return n, make_subnet(live, n.id, "10.50.0.0/24"), make_subnet(live, n.id, "10.51.0.0/28")


def create(live: LiveController, **fields: Any) -> rpb.Port:
    return live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(**fields)))


def update(live: LiveController, port_id: str, paths: list[str], **fields: Any) -> rpb.Port:
    return live.network.UpdatePort(
        npb.UpdatePortRequest(port=rpb.Port(id=port_id, **fields), update_mask=FieldMask(paths=paths))
    )


def ips(port: rpb.Port) -> list[str]:
    return [f.ip_address for f in port.fixed_ips]


def test_port_defaults(live: LiveController, net: tuple) -> None:
    n, s1, s2 = net
    p = create(live, network_id=n.id, name="vm", device_id="i-1", device_owner="compute:nova")
    assert p.mac_address.startswith("fa:16:3e:") and len(p.mac_address) == 17
    # One address per subnet; the DHCP port took the first of each pool.
    assert [(f.subnet_id, f.ip_address) for f in p.fixed_ips] == [(s1.id, "10.50.0.3"), (s2.id, "10.51.0.3")]
    assert p.status == "DOWN" and [(s.name, s.done) for s in p.stages] == [("accepted", True)]
    assert p.admin_state_up and p.port_security_enabled and not p.binding_vif_details
    assert live.network.GetPort(npb.GetRequest(id=p.id)) == p
    assert create(live, network_id=n.id, port_security_enabled=False).port_security_enabled is False


def test_port_requested_addresses(live: LiveController, net: tuple) -> None:
    n, s1, s2 = net
    p = create(
        live,
        network_id=n.id,
        mac_address="FA:16:3E:AA:BB:CC",
        fixed_ips=[
            rpb.FixedIP(ip_address="10.50.0.77"),
            rpb.FixedIP(subnet_id=s1.id, ip_address="10.50.0.78"),
            rpb.FixedIP(subnet_id=s1.id),
        ],
    )
    assert p.mac_address == "fa:16:3e:aa:bb:cc"
    assert [(f.subnet_id, f.ip_address) for f in p.fixed_ips] == [
        (s1.id, "10.50.0.77"),
        (s1.id, "10.50.0.78"),
        (s1.id, "10.50.0.3"),
    ]
    assert [f.subnet_id for f in create(live, network_id=n.id, fixed_ips=[rpb.FixedIP(subnet_id=s2.id)]).fixed_ips] == [
        s2.id
    ]
    exists = grpc.StatusCode.ALREADY_EXISTS
    expect(
        live,
        exists,
        lambda: create(live, network_id=n.id, fixed_ips=[rpb.FixedIP(ip_address="10.50.0.77")]),
        "port.fixed_ips[0].ip_address: 10.50.0.77 is already allocated to port",
        p.id,
    )
    expect(
        live,
        exists,
        lambda: create(live, network_id=n.id, mac_address="fa:16:3e:aa:bb:cc"),
        "port.mac_address: fa:16:3e:aa:bb:cc is used by port",
        p.id,
    )
    other = make_network(live)
    assert create(live, network_id=other.id, mac_address="fa:16:3e:aa:bb:cc").mac_address == "fa:16:3e:aa:bb:cc"


@pytest.mark.parametrize(
    ("fields", "code", "fragment"),
    [
        ({"mac_address": "fa:16:3e:aa:bb"}, INVALID, "port.mac_address: 'fa:16:3e:aa:bb' is not a valid MAC"),
        ({"mac_address": "01:00:5e:00:00:01"}, INVALID, "is a multicast MAC"),
        ({"fixed_ips": [rpb.FixedIP(ip_address="10.99.0.5")]}, INVALID, "is not inside any subnet"),
        ({"fixed_ips": [rpb.FixedIP(ip_address="10.50.0.1")]}, INVALID, "is the gateway"),
        ({"fixed_ips": [rpb.FixedIP(ip_address="10.50.0.255")]}, INVALID, "network or broadcast"),
        ({"fixed_ips": [rpb.FixedIP(ip_address="10.50.0.999")]}, INVALID, "port.fixed_ips[0].ip_address"),
        ({"fixed_ips": [rpb.FixedIP()]}, INVALID, "needs a subnet_id, an ip_address or both"),
        ({"fixed_ips": [rpb.FixedIP(subnet_id="nope")]}, grpc.StatusCode.NOT_FOUND, "port.fixed_ips[0].subnet_id"),
        (
            {"fixed_ips": [rpb.FixedIP(ip_address="10.50.0.9"), rpb.FixedIP(ip_address="10.50.0.9")]},
            INVALID,
            "requested twice",
        ),
        ({"name": "bad\x00name"}, INVALID, "port.name: contains control characters"),
    ],
)
def test_port_invalid(
    live: LiveController, net: tuple, fields: dict[str, Any], code: grpc.StatusCode, fragment: str
) -> None:
    n, _, _ = net
    expect(live, code, lambda: create(live, network_id=n.id, **fields), fragment)


def test_port_on_foreign_or_missing_things(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    other = make_network(live)
    foreign = make_subnet(live, other.id, "10.60.0.0/24")
    expect(
        live,
        INVALID,
        lambda: create(live, network_id=n.id, fixed_ips=[rpb.FixedIP(subnet_id=foreign.id)]),
        f"subnet {foreign.id} is not on network {n.id}",
    )
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: create(live, network_id="missing"), "port.network_id")
    expect(live, INVALID, lambda: create(live), "port.network_id: is required")


def test_router_interface_may_take_the_gateway(live: LiveController, net: tuple) -> None:
    n, s1, _ = net
    p = create(
        live,
        network_id=n.id,
        device_owner="network:router_interface",
        fixed_ips=[rpb.FixedIP(subnet_id=s1.id, ip_address="10.50.0.1")],
    )
    assert ips(p) == ["10.50.0.1"]


def test_port_without_subnets_and_pool_exhaustion(live: LiveController) -> None:
    n = make_network(live)
    assert ips(create(live, network_id=n.id)) == []
    make_subnet(live, n.id, "10.70.0.0/29", enable_dhcp=False)  # pool .2-.6
    made = [create(live, network_id=n.id) for _ in range(5)]
    assert sorted(ip for p in made for ip in ips(p)) == [f"10.70.0.{i}" for i in range(2, 7)]
    expect(
        live,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: create(live, network_id=n.id),
        "has no free address in its allocation pools",
    )
    live.network.DeletePort(npb.DeleteRequest(id=made[2].id))
    assert ips(create(live, network_id=n.id)) == ips(made[2])  # the released address is reused


def test_update_fixed_ips_reallocates(live: LiveController, net: tuple) -> None:
    n, s1, _ = net
    p = create(live, network_id=n.id)
    old = ips(p)
    # Subnet-only entry keeps the address the port has there; an explicit one moves it.
    u = update(live, p.id, ["fixed_ips"], fixed_ips=[rpb.FixedIP(subnet_id=s1.id), rpb.FixedIP(ip_address="10.51.0.9")])
    assert ips(u) == [old[0], "10.51.0.9"]
    assert old[1] != "10.51.0.9"
    # The released address is free for others.
    q = create(live, network_id=n.id, fixed_ips=[rpb.FixedIP(ip_address=old[1])])
    assert ips(q) == [old[1]]
    assert ips(update(live, p.id, ["fixed_ips"])) == []  # in the mask and empty: no addresses
    expect(
        live,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: update(live, p.id, ["fixed_ips"], fixed_ips=[rpb.FixedIP(ip_address=old[1])]),
        "already allocated",
    )
    assert ips(live.network.GetPort(npb.GetRequest(id=p.id))) == []


def test_update_rules(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    p = create(live, network_id=n.id, name="a")
    u = update(
        live,
        p.id,
        ["name", "device_id", "admin_state_up", "mac_address"],
        name="b",
        device_id="d",
        admin_state_up=False,
        mac_address="fa:16:3e:00:11:22",
    )
    assert (u.name, u.device_id, u.admin_state_up, u.mac_address) == ("b", "d", False, "fa:16:3e:00:11:22")
    assert u.tag == p.tag and u.created_at == p.created_at
    expect(
        live, INVALID, lambda: update(live, p.id, ["network_id"], network_id="x"), "port.network_id: cannot be changed"
    )
    expect(live, INVALID, lambda: update(live, p.id, ["status"], status="ACTIVE"), "port.status: is output only")
    expect(live, INVALID, lambda: update(live, p.id, ["binding_vif_details"]), "is output only")
    expect(live, INVALID, lambda: update(live, p.id, ["tag"]), "port.tag: is output only")
    expect(live, INVALID, lambda: update(live, p.id, ["fixed_ips.ip_address"]), "update_mask: unknown field")
    expect(live, INVALID, lambda: update(live, p.id, ["mac_address"]), "port.mac_address: is required")
    before = live.store.revision
    update(live, p.id, ["name"], name="b")  # nothing changes: no new revision
    assert live.store.revision == before


def test_binding_allocates_ofports(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    host = f"h-{n.id[:8]}"
    a = create(live, network_id=n.id, binding_host_id=host)
    b = create(live, network_id=n.id, binding_host_id=host)
    c = create(live, network_id=n.id, binding_host_id=host + "-other")
    assert dict(a.binding_vif_details) == {"bridge": "br-int", "ofport": "100", "mtu": "1450"}
    assert b.binding_vif_details["ofport"] == "101" and c.binding_vif_details["ofport"] == "100"
    # Unbind clears it; rebinding elsewhere allocates there and resets what the old host reported.
    live.controller.context.network.ports.update_status(a.id, "ACTIVE", [PortStage("up", True, 1.0)])
    u = update(live, a.id, ["binding_host_id"], binding_host_id=host + "-other")
    assert (
        u.binding_vif_details["ofport"] == "101" and u.status == "DOWN" and [s.name for s in u.stages] == ["accepted"]
    )
    assert not update(live, a.id, ["binding_host_id"]).binding_vif_details
    d = create(live, network_id=n.id, binding_host_id=host + "-other")
    assert d.binding_vif_details["ofport"] == "101"  # freed by the unbind


def test_vif_details_follow_the_network_mtu(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    p = create(live, network_id=n.id, binding_host_id="mtu-host")
    live.network.UpdateNetwork(
        npb.UpdateNetworkRequest(network=rpb.Network(id=n.id, mtu=1400), update_mask=FieldMask(paths=["mtu"]))
    )
    assert live.network.GetPort(npb.GetRequest(id=p.id)).binding_vif_details["mtu"] == "1400"


def test_update_port_status(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    api = live.controller.context.network
    p = create(live, network_id=n.id)
    stages = [PortStage("accepted", True, 1.0), PortStage("flows_installed", True, 2.0, "42 flows")]
    updated = api.ports.update_status(p.id, "ACTIVE", stages)
    assert updated.status == "ACTIVE" and updated.stages == tuple(stages)
    revision = live.store.revision
    assert api.ports.update_status(p.id, "ACTIVE", stages) is live.store.get("port", p.id)
    assert live.store.revision == revision  # unchanged: no commit
    got = live.network.GetPort(npb.GetRequest(id=p.id))
    assert got.status == "ACTIVE" and got.stages[1].detail == "42 flows"
    with pytest.raises(ApiError) as info:
        api.ports.update_status(p.id, "GREEN", [])
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    with pytest.raises(ApiError) as info:
        api.ports.update_status("missing", "ACTIVE", [])
    assert info.value.code is ErrorCode.NOT_FOUND


def test_list_ports_filters(live: LiveController, net: tuple) -> None:
    n, _, _ = net
    a = create(live, network_id=n.id, device_id="inst-a", binding_host_id="lh1")
    create(live, network_id=n.id, device_id="inst-b")
    assert [p.id for p in live.network.ListPorts(npb.ListPortsRequest(device_id="inst-a")).ports] == [a.id]
    assert [p.id for p in live.network.ListPorts(npb.ListPortsRequest(binding_host_id="lh1")).ports] == [a.id]
    by_mac = live.network.ListPorts(npb.ListPortsRequest(mac_address=a.mac_address.upper())).ports
    assert [p.id for p in by_mac] == [a.id]
    dhcp = live.network.ListPorts(npb.ListPortsRequest(network_id=n.id, device_owner="network:dhcp")).ports
    assert len(dhcp) == 1
