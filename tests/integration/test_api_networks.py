"""NetworkService over real gRPC: networks and subnets, their defaults, errors and cascades."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import (
    LiveController,
    check_db_invariants,
    expect,
    live_controller,
    make_network,
    make_subnet,
    scratch_dir,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def ports_of(live: LiveController, network_id: str) -> list[rpb.Port]:
    return list(live.network.ListPorts(npb.ListPortsRequest(network_id=network_id)).ports)


# ---------------------------------------------------------------- networks


def test_network_defaults(live: LiveController) -> None:
    a = make_network(live, name="a", project_id="p1")
    b = make_network(live, name="b")
    assert a.network_type == "vxlan" and a.mtu == 1450 and a.admin_state_up and a.port_security_enabled
    assert a.segmentation_id >= 1 and b.segmentation_id >= 1 and a.segmentation_id != b.segmentation_id
    assert a.status == "ACTIVE" and a.tag and b.tag > a.tag and b.revision_number > a.revision_number
    got = live.network.GetNetwork(npb.GetRequest(id=a.id))
    assert got == a


def test_network_explicit_segments_and_conflicts(live: LiveController) -> None:
    n = make_network(live, segmentation_id=777000)
    assert n.segmentation_id == 777000
    expect(
        live,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: make_network(live, segmentation_id=777000),
        "network.segmentation_id",
        "777000",
    )
    vlan = make_network(live, network_type="vlan", physical_network="physnet1", segmentation_id=100)
    assert vlan.mtu == 1500
    make_network(live, network_type="vlan", physical_network="physnet2", segmentation_id=100)
    expect(
        live,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: make_network(live, network_type="vlan", physical_network="physnet1", segmentation_id=100),
        "VLAN 100",
    )
    flat = make_network(live, network_type="flat", physical_network="ext", mtu=1400)
    assert flat.mtu == 1400 and flat.segmentation_id == 0
    expect(
        live,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: make_network(live, network_type="flat", physical_network="ext"),
        "network.physical_network",
    )


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"network_type": "gre"}, "network.network_type: unknown network type 'gre'"),
        ({"mtu": 1451}, "network.mtu: 1451 is above the 1450"),
        ({"network_type": "vlan", "physical_network": "p", "segmentation_id": 7, "mtu": 1501}, "network.mtu: 1501"),
        ({"mtu": 50}, "network.mtu"),
        ({"network_type": "vlan", "segmentation_id": 5}, "network.physical_network: is required"),
        ({"network_type": "vlan", "physical_network": "p", "segmentation_id": 4095}, "network.segmentation_id"),
        ({"segmentation_id": 16777216}, "network.segmentation_id"),
        ({"network_type": "flat", "physical_network": "p", "segmentation_id": 3}, "network.segmentation_id"),
        ({"physical_network": "p"}, "network.physical_network: must be empty"),
        ({"name": "x" * 256}, "network.name: longer than 255"),
    ],
)
def test_network_invalid(live: LiveController, fields: dict[str, Any], fragment: str) -> None:
    expect(live, INVALID, lambda: make_network(live, **fields), fragment)


def test_network_update(live: LiveController) -> None:
    n = make_network(live, name="before")
    updated = live.network.UpdateNetwork(
        npb.UpdateNetworkRequest(
            network=rpb.Network(id=n.id, name="after", mtu=1300, admin_state_up=False),
            update_mask=FieldMask(paths=["name", "mtu", "admin_state_up"]),
        )
    )
    assert (updated.name, updated.mtu, updated.admin_state_up) == ("after", 1300, False)
    assert updated.segmentation_id == n.segmentation_id and updated.tag == n.tag and updated.created_at == n.created_at
    assert updated.revision_number > n.revision_number

    def update(paths: list[str], **fields: Any) -> Callable[[], Any]:
        return lambda: live.network.UpdateNetwork(
            npb.UpdateNetworkRequest(network=rpb.Network(id=n.id, **fields), update_mask=FieldMask(paths=paths))
        )

    expect(live, INVALID, update(["segmentation_id"], segmentation_id=5), "network.segmentation_id: cannot be changed")
    expect(live, INVALID, update(["network_type"], network_type="vlan"), "cannot be changed")
    expect(live, INVALID, update(["status"], status="DOWN"), "network.status: is output only")
    expect(live, INVALID, update([]), "update_mask: is required")
    expect(live, INVALID, update(["bogus"]), "update_mask: unknown field 'bogus'")
    expect(live, INVALID, update(["mtu"], mtu=9000), "network.mtu")
    expect(
        live,
        grpc.StatusCode.NOT_FOUND,
        lambda: live.network.UpdateNetwork(
            npb.UpdateNetworkRequest(network=rpb.Network(id="missing", name="x"), update_mask=FieldMask(paths=["name"]))
        ),
    )


def test_get_and_delete_missing(live: LiveController) -> None:
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.network.GetNetwork(npb.GetRequest(id="nope")), "'nope'")
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.network.DeleteNetwork(npb.DeleteRequest(id="nope")))
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.network.GetSubnet(npb.GetRequest(id="")))


def test_vni_range_exhaustion() -> None:
    with scratch_dir() as workdir, live_controller(workdir, vni_range=(100, 102)) as live:
        nets = [make_network(live, name=f"n{i}") for i in range(3)]
        assert sorted(n.segmentation_id for n in nets) == [100, 101, 102]
        expect(
            live,
            grpc.StatusCode.FAILED_PRECONDITION,
            lambda: make_network(live),
            "network.segmentation_id: the VNI range 100..102 is exhausted",
        )
        assert make_network(live, segmentation_id=5000).segmentation_id == 5000  # explicit VNIs outside the range
        live.network.DeleteNetwork(npb.DeleteRequest(id=nets[1].id))
        assert make_network(live).segmentation_id == 101
        check_db_invariants(live.db_path)


# ----------------------------------------------------------------- subnets


def test_subnet_defaults_and_dhcp_port(live: LiveController) -> None:
    n = make_network(live, project_id="proj")
    s = make_subnet(live, n.id, "10.1.0.0/24", dns_nameservers=["8.8.8.8"])
    assert s.gateway_ip == "10.1.0.1" and s.HasField("gateway_ip")
    assert [(p.start, p.end) for p in s.allocation_pools] == [("10.1.0.2", "10.1.0.254")]
    assert s.enable_dhcp and s.ip_version == 4 and s.project_id == "proj"
    [dhcp] = ports_of(live, n.id)
    assert dhcp.device_owner == "network:dhcp" and dhcp.device_id == f"dhcp-{n.id}"
    assert [(f.subnet_id, f.ip_address) for f in dhcp.fixed_ips] == [(s.id, "10.1.0.2")]
    assert dhcp.mac_address.startswith("fa:16:3e:") and not dhcp.binding_host_id and dhcp.status == "DOWN"
    # A second DHCP subnet adds an address to the same port; a non-DHCP one does not.
    s2 = make_subnet(live, n.id, "10.2.0.0/24", gateway_ip="10.2.0.254")
    s3 = make_subnet(live, n.id, "10.3.0.0/24", enable_dhcp=False)
    [dhcp] = ports_of(live, n.id)
    assert [(f.subnet_id, f.ip_address) for f in dhcp.fixed_ips] == [(s.id, "10.1.0.2"), (s2.id, "10.2.0.1")]
    assert list(live.network.GetNetwork(npb.GetRequest(id=n.id)).subnets) == [s.id, s2.id, s3.id]


def test_subnet_without_gateway_and_without_dhcp(live: LiveController) -> None:
    n = make_network(live)
    s = make_subnet(live, n.id, "10.4.0.0/29", gateway_ip="", enable_dhcp=False)
    assert s.gateway_ip == ""
    assert [(p.start, p.end) for p in s.allocation_pools] == [("10.4.0.1", "10.4.0.6")]
    assert ports_of(live, n.id) == []


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"cidr": "10.0.0.0/33"}, "subnet.cidr: '10.0.0.0/33' is not a valid IPv4 CIDR"),
        ({"cidr": "10.0.0.1/24"}, "subnet.cidr: '10.0.0.1/24' has host bits set"),
        ({"cidr": ""}, "subnet.cidr: is required"),
        ({"cidr": "10.9.0.0/24", "gateway_ip": "10.8.0.1"}, "subnet.gateway_ip: '10.8.0.1' is outside 10.9.0.0/24"),
        ({"cidr": "10.9.0.0/24", "gateway_ip": "10.9.0.255"}, "subnet.gateway_ip"),
        (
            {"cidr": "10.9.0.0/24", "allocation_pools": [rpb.AllocationPool(start="10.9.0.200", end="10.9.1.5")]},
            "subnet.allocation_pools[0]",
        ),
        (
            {"cidr": "10.9.0.0/24", "allocation_pools": [rpb.AllocationPool(start="10.9.0.1", end="10.9.0.5")]},
            "includes the gateway 10.9.0.1",
        ),
        ({"cidr": "10.9.0.0/24", "ip_version": 6}, "subnet.ip_version"),
        ({"cidr": "10.9.0.0/24", "ip_version": 7}, "unknown ip_version 7"),
        ({"cidr": "10.9.0.0/24", "dns_nameservers": ["8.8.8"]}, "subnet.dns_nameservers[0]"),
        (
            {"cidr": "10.9.0.0/24", "host_routes": [rpb.HostRoute(destination="1.2.3.0/33", nexthop="10.9.0.1")]},
            "subnet.host_routes[0].destination",
        ),
    ],
)
def test_subnet_invalid(live: LiveController, fields: dict[str, Any], fragment: str) -> None:
    n = make_network(live)
    expect(live, INVALID, lambda: make_subnet(live, n.id, **fields), fragment)
    assert ports_of(live, n.id) == []  # no DHCP port left behind


def test_subnet_overlap_and_missing_network(live: LiveController) -> None:
    n = make_network(live)
    s = make_subnet(live, n.id, "10.5.0.0/24")
    expect(
        live,
        grpc.StatusCode.ALREADY_EXISTS,
        lambda: make_subnet(live, n.id, "10.5.0.0/16"),
        "subnet.cidr: 10.5.0.0/16 overlaps subnet",
        s.id,
    )
    other = make_network(live)
    make_subnet(live, other.id, "10.5.0.0/24")  # another network may reuse the range
    expect(
        live,
        grpc.StatusCode.NOT_FOUND,
        lambda: make_subnet(live, "missing", "10.6.0.0/24"),
        "subnet.network_id: network 'missing' not found",
    )
    expect(
        live,
        INVALID,
        lambda: live.network.CreateSubnet(npb.CreateSubnetRequest(subnet=rpb.Subnet(cidr="10.6.0.0/24"))),
        "subnet.network_id: is required",
    )


def test_subnet_update(live: LiveController) -> None:
    n = make_network(live)
    s = make_subnet(live, n.id, "10.7.0.0/24")

    def update(paths: list[str], **fields: Any) -> rpb.Subnet:
        return live.network.UpdateSubnet(
            npb.UpdateSubnetRequest(subnet=rpb.Subnet(id=s.id, **fields), update_mask=FieldMask(paths=paths))
        )

    u = update(
        ["dns_nameservers", "host_routes", "name"],
        name="renamed",
        dns_nameservers=["1.1.1.1"],
        host_routes=[rpb.HostRoute(destination="0.0.0.0/0", nexthop="10.7.0.1")],
    )
    assert u.name == "renamed" and list(u.dns_nameservers) == ["1.1.1.1"] and u.host_routes[0].nexthop == "10.7.0.1"
    # Moving the gateway into the pool needs new pools too.
    expect(live, INVALID, lambda: update(["gateway_ip"], gateway_ip="10.7.0.100"), "includes the gateway 10.7.0.100")
    u = update(
        ["gateway_ip", "allocation_pools"],
        gateway_ip="10.7.0.254",
        allocation_pools=[rpb.AllocationPool(start="10.7.0.1", end="10.7.0.200")],
    )
    assert u.gateway_ip == "10.7.0.254" and u.allocation_pools[0].end == "10.7.0.200"
    assert update(["gateway_ip"]).gateway_ip == ""  # in the mask, absent: no gateway
    expect(live, INVALID, lambda: update(["cidr"], cidr="10.7.0.0/16"), "subnet.cidr: cannot be changed")
    expect(live, INVALID, lambda: update(["network_id"], network_id=n.id), "subnet.network_id: cannot be changed")
    # DHCP off: the DHCP port goes (its only address was here); on again: it comes back.
    assert ports_of(live, n.id)
    update(["enable_dhcp"], enable_dhcp=False)
    assert ports_of(live, n.id) == []
    update(["enable_dhcp"], enable_dhcp=True)
    [dhcp] = ports_of(live, n.id)
    assert dhcp.fixed_ips[0].ip_address == "10.7.0.1"  # the lowest free address of the new pools
    check_db_invariants(live.db_path)


def test_subnet_delete(live: LiveController) -> None:
    n = make_network(live)
    s1 = make_subnet(live, n.id, "10.10.0.0/24")
    s2 = make_subnet(live, n.id, "10.11.0.0/24")
    port = live.network.CreatePort(
        npb.CreatePortRequest(port=rpb.Port(network_id=n.id, fixed_ips=[rpb.FixedIP(subnet_id=s2.id)]))
    )
    expect(
        live,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: live.network.DeleteSubnet(npb.DeleteRequest(id=s2.id)),
        f"subnet {s2.id} still has allocated IP addresses",
        port.id,
    )
    live.network.DeleteSubnet(npb.DeleteRequest(id=s1.id))  # only the DHCP port had an address there
    dhcp = [p for p in ports_of(live, n.id) if p.device_owner == "network:dhcp"]
    assert [f.subnet_id for f in dhcp[0].fixed_ips] == [s2.id]
    live.network.DeletePort(npb.DeleteRequest(id=port.id))
    live.network.DeleteSubnet(npb.DeleteRequest(id=s2.id))
    assert ports_of(live, n.id) == []


def test_network_delete_cascades_in_one_revision(live: LiveController) -> None:
    n = make_network(live)
    make_subnet(live, n.id, "10.12.0.0/24")
    make_subnet(live, n.id, "10.13.0.0/24")
    p = live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=n.id)))
    expect(
        live,
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda: live.network.DeleteNetwork(npb.DeleteRequest(id=n.id)),
        "still has 1 port(s)",
        p.id,
    )
    live.network.DeletePort(npb.DeleteRequest(id=p.id))
    revision = live.network.DeleteNetwork(npb.DeleteRequest(id=n.id)).revision
    events = live.store.events_since(revision - 1)
    assert sorted((e.kind, e.type.value) for e in events) == [
        ("network", "DELETED"),
        ("port", "DELETED"),
        ("subnet", "DELETED"),
        ("subnet", "DELETED"),
    ]
    assert {e.revision for e in events} == {revision}
    expect(live, grpc.StatusCode.NOT_FOUND, lambda: live.network.GetNetwork(npb.GetRequest(id=n.id)))


def test_list_filters_and_pages(live: LiveController) -> None:
    made = [make_network(live, name="paged", project_id=f"pp{i % 2}") for i in range(7)]
    seen: list[str] = []
    token = ""
    while True:
        page = live.network.ListNetworks(npb.ListNetworksRequest(name="paged", limit=3, page_token=token))
        assert len(page.networks) <= 3 and page.revision >= made[-1].revision_number
        seen += [x.id for x in page.networks]
        token = page.next_page_token
        if not token:
            break
    assert seen == [m.id for m in made]
    only = live.network.ListNetworks(npb.ListNetworksRequest(name="paged", project_id="pp1")).networks
    assert [x.id for x in only] == [m.id for m in made[1::2]]
    expect(
        live, INVALID, lambda: live.network.ListNetworks(npb.ListNetworksRequest(page_token="garbage")), "page_token"
    )
    subnets = live.network.ListSubnets(npb.ListSubnetsRequest(network_id=made[0].id))
    assert list(subnets.subnets) == []
