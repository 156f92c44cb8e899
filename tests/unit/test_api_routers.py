"""The router and floating IP API: Neutron's semantics and refusals, each error naming its field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api.errors import ApiError, ErrorCode
from controller.api.network_api import NetworkApi
from controller.api.routers import GatewayInfo
from controller.model import OWNER_FLOATINGIP, OWNER_ROUTER_GATEWAY, OWNER_ROUTER_INTERFACE, Agent, Network, Subnet
from controller.store.sqlite import SqliteStore
from dataplane.common.constants import ROUTER_ZONE_MIN


@pytest.fixture
def api(tmp_path: Path) -> Iterator[NetworkApi]:
    store = SqliteStore(str(tmp_path / "loom.db"))
    api = NetworkApi(store)
    try:
        yield api
    finally:
        api.close()
        store.close()


def external(api: NetworkApi, cidr: str = "203.0.113.0/24") -> tuple[Network, Subnet]:
    net = api.networks.create(
        {"name": "ext", "network_type": "flat", "physical_network": f"ext{cidr[:3]}", "router_external": True}
    )
    return net, api.subnets.create({"network_id": net.id, "cidr": cidr, "enable_dhcp": False})


def tenant(api: NetworkApi, cidr: str, **subnet: object) -> tuple[Network, Subnet]:
    net = api.networks.create({"name": cidr})
    return net, api.subnets.create({"network_id": net.id, "cidr": cidr, **subnet})


def refused(code: ErrorCode, field: str, call, *args) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as info:
        call(*args)
    assert info.value.code is code, info.value.message
    assert field in info.value.message, info.value.message
    return info.value.message


def test_a_router_gets_a_zone_pair_and_a_gateway_port_on_the_external_network(api: NetworkApi) -> None:
    ext, esub = external(api)
    r1 = api.routers.create({"name": "r1", "external_gateway_info": GatewayInfo(ext.id)})
    r2 = api.routers.create({"name": "r2"})
    assert {r1.zone, r2.zone} == {ROUTER_ZONE_MIN, ROUTER_ZONE_MIN + 2}
    gw = api.store.get("port", r1.gateway_port_id)
    assert gw.device_owner == OWNER_ROUTER_GATEWAY and gw.device_id == r1.id  # type: ignore[union-attr]
    assert gw.fixed_ips[0].subnet_id == esub.id and gw.fixed_ips[0].ip_address != esub.gateway_ip  # type: ignore[union-attr]


def test_the_gateway_must_be_external_and_its_ips_inside_it(api: NetworkApi) -> None:
    ext, _ = external(api)
    net, _ = tenant(api, "10.0.0.0/24")
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "router.external_gateway_info.network_id",
        api.routers.create,
        {"external_gateway_info": GatewayInfo(net.id)},
    )
    refused(
        ErrorCode.NOT_FOUND,
        "router.external_gateway_info.network_id",
        api.routers.create,
        {"external_gateway_info": GatewayInfo("nope")},
    )
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "router.external_gateway_info.external_fixed_ips",
        api.routers.create,
        {"external_gateway_info": GatewayInfo(ext.id, True, (("", "198.51.100.7"),))},
    )
    r = api.routers.create({"external_gateway_info": GatewayInfo(ext.id, True, (("", "203.0.113.77"),))})
    assert api.store.get("port", r.gateway_port_id).ips == ("203.0.113.77",)  # type: ignore[union-attr]


def test_only_provider_networks_can_be_external(api: NetworkApi) -> None:
    refused(ErrorCode.INVALID_ARGUMENT, "network.router_external", api.networks.create, {"router_external": True})


def test_interfaces_by_subnet_and_by_port(api: NetworkApi) -> None:
    r = api.routers.create({"name": "r"})
    _, s1 = tenant(api, "10.0.0.0/24")
    net2, s2 = tenant(api, "10.0.1.0/24")
    info = api.routers.add_interface(r.id, subnet_id=s1.id)
    port = api.store.get("port", info.port_id)
    assert port.device_owner == OWNER_ROUTER_INTERFACE and port.ips == (s1.gateway_ip,)  # type: ignore[union-attr]
    free = api.ports.create({"network_id": net2.id, "fixed_ips": [(s2.id, "10.0.1.5")]})
    info2 = api.routers.add_interface(r.id, port_id=free.id)
    assert info2.subnet_id == s2.id and api.routers.interface_ports(r.id)[1].id == free.id
    api.routers.remove_interface(r.id, port_id=free.id)
    api.routers.remove_interface(r.id, subnet_id=s1.id)
    assert api.routers.interface_ports(r.id) == [] and api.store.get("port", free.id) is None


def test_interface_refusals(api: NetworkApi) -> None:
    r = api.routers.create({"name": "r"})
    _, s1 = tenant(api, "10.0.0.0/24")
    _, overlapping = tenant(api, "10.0.0.0/23")
    _, no_gateway = tenant(api, "10.0.5.0/24", gateway_ip="")
    api.routers.add_interface(r.id, subnet_id=s1.id)
    refused(ErrorCode.INVALID_ARGUMENT, "overlaps", api.routers.add_interface, r.id, overlapping.id)
    refused(ErrorCode.INVALID_ARGUMENT, "no gateway IP", api.routers.add_interface, r.id, no_gateway.id)
    refused(ErrorCode.ALREADY_EXISTS, "subnet_id", api.routers.add_interface, r.id, s1.id)
    other = api.routers.create({"name": "other"})
    refused(ErrorCode.ALREADY_EXISTS, "held by port", api.routers.add_interface, other.id, s1.id)
    refused(ErrorCode.INVALID_ARGUMENT, "exactly one", api.routers.add_interface, r.id, "", "")
    refused(ErrorCode.NOT_FOUND, "subnet_id", api.routers.add_interface, r.id, "nope")
    flat = api.networks.create({"network_type": "flat", "physical_network": "phys"})
    fsub = api.subnets.create({"network_id": flat.id, "cidr": "192.168.9.0/24"})
    refused(ErrorCode.INVALID_ARGUMENT, "VXLAN networks only", api.routers.add_interface, r.id, fsub.id)
    bound = api.ports.create({"network_id": flat.id, "binding_host_id": "h1"})
    refused(ErrorCode.FAILED_PRECONDITION, "in use", api.routers.add_interface, r.id, "", bound.id)


def test_a_router_in_use_cannot_be_deleted(api: NetworkApi) -> None:
    r = api.routers.create({"name": "r"})
    _, s1 = tenant(api, "10.0.0.0/24")
    api.routers.add_interface(r.id, subnet_id=s1.id)
    refused(ErrorCode.FAILED_PRECONDITION, "interface", api.routers.delete, r.id)
    api.routers.remove_interface(r.id, subnet_id=s1.id)
    api.routers.delete(r.id)
    assert api.store.get("router", r.id) is None


def test_static_routes_need_a_connected_next_hop(api: NetworkApi) -> None:
    r = api.routers.create({"name": "r"})
    _, s1 = tenant(api, "10.0.0.0/24")
    api.routers.add_interface(r.id, subnet_id=s1.id)
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "router.routes[0].nexthop",
        api.routers.update,
        r.id,
        {"routes": [("192.168.0.0/16", "10.9.9.9")]},
    )
    refused(
        ErrorCode.INVALID_ARGUMENT, "router.routes[0].destination", api.routers.update, r.id, {"routes": [("x", "1")]}
    )
    updated = api.routers.update(r.id, {"routes": [("192.168.0.0/16", "10.0.0.9")]})
    assert [(x.destination, x.nexthop) for x in updated.routes] == [("192.168.0.0/16", "10.0.0.9")]


def fip_world(api: NetworkApi) -> tuple[Network, object, object]:
    ext, _ = external(api)
    r = api.routers.create({"name": "r", "external_gateway_info": GatewayInfo(ext.id)})
    net, s1 = tenant(api, "10.0.0.0/24")
    api.routers.add_interface(r.id, subnet_id=s1.id)
    vm = api.ports.create({"network_id": net.id, "binding_host_id": "h1", "device_owner": "compute:x"})
    return ext, r, vm


def test_floating_ip_create_associate_disassociate_delete(api: NetworkApi) -> None:
    ext, r, vm = fip_world(api)
    fip = api.floating_ips.create({"floating_network_id": ext.id, "floating_ip_address": "203.0.113.50"})
    holder = api.store.get("port", fip.floating_port_id)
    assert holder.device_owner == OWNER_FLOATINGIP and holder.ips == ("203.0.113.50",)  # type: ignore[union-attr]
    fip = api.floating_ips.associate(fip.id, vm.id)  # type: ignore[attr-defined]
    assert fip.router_id == r.id and fip.fixed_ip_address == vm.ips[0] and fip.status == "ACTIVE"  # type: ignore[attr-defined]
    refused(ErrorCode.FAILED_PRECONDITION, "in use", api.routers.delete, r.id)  # type: ignore[attr-defined]
    fip = api.floating_ips.disassociate(fip.id)
    assert (fip.port_id, fip.router_id, fip.status) == ("", "", "DOWN")
    api.floating_ips.delete(fip.id)
    assert api.store.get("port", fip.floating_port_id) is None


def test_floating_ip_refusals(api: NetworkApi) -> None:
    ext, _, vm = fip_world(api)
    tenant_net, _ = tenant(api, "10.7.0.0/24")
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "floating_ip.floating_network_id",
        api.floating_ips.create,
        {"floating_network_id": tenant_net.id},
    )
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "floating_ip.floating_ip_address",
        api.floating_ips.create,
        {"floating_network_id": ext.id, "floating_ip_address": "198.51.100.9"},
    )
    api.floating_ips.create({"floating_network_id": ext.id, "floating_ip_address": "203.0.113.60"})
    refused(
        ErrorCode.ALREADY_EXISTS,
        "floating_ip.floating_ip_address",
        api.floating_ips.create,
        {"floating_network_id": ext.id, "floating_ip_address": "203.0.113.60"},
    )
    # A port whose network no router connects to the external network: FAILED_PRECONDITION.
    lonely = api.ports.create({"network_id": tenant_net.id, "binding_host_id": "h1"})
    refused(
        ErrorCode.FAILED_PRECONDITION,
        "no router",
        api.floating_ips.create,
        {"floating_network_id": ext.id, "port_id": lonely.id},
    )
    refused(
        ErrorCode.INVALID_ARGUMENT,
        "floating_ip.fixed_ip_address",
        api.floating_ips.create,
        {"floating_network_id": ext.id, "port_id": vm.id, "fixed_ip_address": "10.0.0.250"},  # type: ignore[attr-defined]
    )
    api.floating_ips.create({"floating_network_id": ext.id, "port_id": vm.id})  # type: ignore[attr-defined]
    refused(
        ErrorCode.ALREADY_EXISTS,
        "floating_ip.fixed_ip_address",
        api.floating_ips.create,
        {"floating_network_id": ext.id, "port_id": vm.id},  # type: ignore[attr-defined]
    )


def test_interface_and_gateway_removal_are_refused_while_floating_ips_need_them(api: NetworkApi) -> None:
    ext, r, vm = fip_world(api)
    api.floating_ips.create({"floating_network_id": ext.id, "port_id": vm.id})  # type: ignore[attr-defined]
    subnet_id = vm.fixed_ips[0].subnet_id  # type: ignore[attr-defined]
    refused(ErrorCode.FAILED_PRECONDITION, "disassociate", api.routers.remove_interface, r.id, subnet_id)  # type: ignore[attr-defined]
    refused(
        ErrorCode.FAILED_PRECONDITION,
        "external gateway",
        api.routers.update,
        r.id,  # type: ignore[attr-defined]
        {"external_gateway_info": None},
    )
    refused(ErrorCode.FAILED_PRECONDITION, "router_external", api.networks.update, ext.id, {"router_external": False})


def test_deleting_a_vm_port_disassociates_its_floating_ip(api: NetworkApi) -> None:
    ext, _, vm = fip_world(api)
    fip = api.floating_ips.create({"floating_network_id": ext.id, "port_id": vm.id})  # type: ignore[attr-defined]
    api.ports.delete(vm.id)  # type: ignore[attr-defined]
    fip = api.floating_ips.get(fip.id)
    assert (fip.port_id, fip.router_id, fip.status) == ("", "", "DOWN")


def test_l3_owned_ports_are_not_deleted_through_the_port_api(api: NetworkApi) -> None:
    ext, r, _ = fip_world(api)
    fip = api.floating_ips.create({"floating_network_id": ext.id})
    for port_id in (r.gateway_port_id, fip.floating_port_id, api.routers.interface_ports(r.id)[0].id):  # type: ignore[attr-defined]
        refused(ErrorCode.FAILED_PRECONDITION, "router", api.ports.delete, port_id)


def test_the_active_gateway_goes_first_in_the_router_view(api: NetworkApi) -> None:
    ext, r, _ = fip_world(api)
    for i, (host, prio) in enumerate((("g1", 20), ("g2", 10), ("h1", 0)), 1):
        api.store.commit(
            puts=[
                Agent(
                    id=host,
                    tunnel_ip=f"198.51.100.{i}",
                    physical_networks=(ext.physical_network,),
                    gateway_priority=prio,
                )
            ]
        )
    order = [g.host for g in api.router_details(r).gateway_hosts]  # type: ignore[arg-type]
    assert order == ["g1", "g2"]
    api.routers.set_active_gateway("g2", [r.id])  # type: ignore[attr-defined]
    router = api.routers.get(r.id)  # type: ignore[attr-defined]
    assert router.active_gateway == "g2"
    assert [(g.host, g.active) for g in api.router_details(router).gateway_hosts] == [("g2", True), ("g1", False)]
