"""SecurityGroupService and the ports' security fields over real gRPC: defaults, validation, deletion, Watch."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import resources_pb2 as rpb
from protos.loom.v1 import security_pb2 as spb
from tests.integration.controller_harness import LiveController, expect, make_network, make_subnet

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXISTS = grpc.StatusCode.ALREADY_EXISTS
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION

_projects = itertools.count(1)


@pytest.fixture
def project() -> str:
    return f"proj{next(_projects)}"


@pytest.fixture
def net(live: LiveController, project: str) -> rpb.Network:
    n = make_network(live, project_id=project)
    make_subnet(live, n.id, "10.60.0.0/24")
    return n


def port(live: LiveController, no_groups: bool = False, **fields: Any) -> rpb.Port:
    return live.network.CreatePort(npb.CreatePortRequest(port=rpb.Port(**fields), no_security_groups=no_groups))


def update_port(live: LiveController, port_id: str, paths: list[str], **fields: Any) -> rpb.Port:
    request = npb.UpdatePortRequest(port=rpb.Port(id=port_id, **fields), update_mask=FieldMask(paths=paths))
    return live.network.UpdatePort(request)


def group(live: LiveController, name: str, project: str) -> rpb.SecurityGroup:
    sg = rpb.SecurityGroup(name=name, project_id=project)
    return live.security.CreateSecurityGroup(spb.CreateSecurityGroupRequest(security_group=sg))


def rule(live: LiveController, group_id: str, direction: str = "ingress", **fields: Any) -> rpb.SecurityGroupRule:
    r = rpb.SecurityGroupRule(security_group_id=group_id, direction=direction, **fields)
    return live.security.CreateSecurityGroupRule(spb.CreateSecurityGroupRuleRequest(security_group_rule=r))


def get_group(live: LiveController, group_id: str) -> rpb.SecurityGroup:
    return live.security.GetSecurityGroup(npb.GetRequest(id=group_id))


def shape(r: rpb.SecurityGroupRule) -> tuple:
    return (r.direction, r.ethertype, r.protocol, r.remote_ip_prefix, r.remote_group_id != "")


# ---------------------------------------------------------------- the default group


def test_a_port_gets_its_projects_default_group_created_with_it(
    live: LiveController, net: rpb.Network, project: str
) -> None:
    revision = live.store.revision
    p = port(live, network_id=net.id, device_owner="compute:nova")
    assert live.store.revision == revision + 1, "the default group and the port are one commit"
    (gid,) = p.security_groups
    default = get_group(live, gid)
    assert default.name == "default" and default.project_id == project
    assert sorted(shape(r) for r in default.rules) == [
        ("egress", "IPv4", "", "", False),
        ("ingress", "IPv4", "", "", True),
    ]
    assert [r.remote_group_id for r in default.rules if r.direction == "ingress"] == [gid]
    # The next port reuses it; ports that opt out, have no port security or belong to the network get none.
    assert port(live, network_id=net.id).security_groups == [gid]
    assert port(live, network_id=net.id, no_groups=True).security_groups == []
    assert port(live, network_id=net.id, port_security_enabled=False).security_groups == []
    dhcp = [
        p
        for p in live.network.ListPorts(npb.ListPortsRequest(network_id=net.id)).ports
        if p.device_owner == "network:dhcp"
    ]
    assert dhcp and not dhcp[0].security_groups
    groups = live.security.ListSecurityGroups(spb.ListSecurityGroupsRequest(project_id=project)).security_groups
    assert [g.id for g in groups if g.name == "default"] == [gid]


def test_listing_a_projects_groups_creates_its_default_and_it_stays(live: LiveController, project: str) -> None:
    listed = live.security.ListSecurityGroups(spb.ListSecurityGroupsRequest(project_id=project)).security_groups
    assert [g.name for g in listed] == ["default"]
    default = listed[0]
    expect(live, EXISTS, lambda: group(live, "default", project), "security_group.name", default.id)
    expect(live, PRECONDITION, lambda: live.security.DeleteSecurityGroup(npb.DeleteRequest(id=default.id)), "default")
    rename = spb.UpdateSecurityGroupRequest(
        security_group=rpb.SecurityGroup(id=default.id, name="other"), update_mask=FieldMask(paths=["name"])
    )
    expect(live, INVALID, lambda: live.security.UpdateSecurityGroup(rename), "security_group.name")


def test_a_new_group_lets_everything_out_and_nothing_in(live: LiveController, project: str) -> None:
    web = group(live, "web", project)
    assert [shape(r) for r in web.rules] == [("egress", "IPv4", "", "", False)]
    renamed = live.security.UpdateSecurityGroup(
        spb.UpdateSecurityGroupRequest(
            security_group=rpb.SecurityGroup(id=web.id, name="www", description="front"),
            update_mask=FieldMask(paths=["name", "description"]),
        )
    )
    assert (renamed.name, renamed.description, renamed.project_id) == ("www", "front", project)


# ---------------------------------------------------------------- rules


def test_rule_validation_names_the_field(live: LiveController, project: str) -> None:
    g = group(live, "val", project)
    f = "security_group_rule"
    cases: list[tuple[grpc.StatusCode, dict[str, Any], str]] = [
        (INVALID, {"direction": "sideways"}, f"{f}.direction"),
        (INVALID, {"ethertype": "IPv6"}, f"{f}.ethertype"),
        (INVALID, {"protocol": "sctpx"}, f"{f}.protocol"),
        (INVALID, {"protocol": "300"}, f"{f}.protocol"),
        (INVALID, {"protocol": "icmp", "port_range_min": 1}, f"{f}.port_range_min"),
        (INVALID, {"port_range_min": 22}, f"{f}.port_range_min"),  # any protocol
        (INVALID, {"protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, f"{f}.port_range_max"),
        (INVALID, {"protocol": "udp", "port_range_min": 0}, f"{f}.port_range_min"),
        (INVALID, {"protocol": "udp", "port_range_max": 70000}, f"{f}.port_range_max"),
        (INVALID, {"protocol": "tcp", "icmp_type": 8}, f"{f}.icmp_type"),
        (INVALID, {"protocol": "icmp", "icmp_code": 0}, f"{f}.icmp_code"),
        (INVALID, {"protocol": "icmp", "icmp_type": 256}, f"{f}.icmp_type"),
        (INVALID, {"remote_ip_prefix": "2001:db8::/32"}, f"{f}.remote_ip_prefix"),
        (INVALID, {"remote_ip_prefix": "10.0.0.1/24"}, f"{f}.remote_ip_prefix"),
        (INVALID, {"remote_ip_prefix": "10.0.0.0/24", "remote_group_id": g.id}, f"{f}.remote_group_id"),
        (NOT_FOUND, {"remote_group_id": "no-such-group"}, f"{f}.remote_group_id"),
    ]
    for code, fields, fragment in cases:
        fields.setdefault("direction", "ingress")
        r = rpb.SecurityGroupRule(security_group_id=g.id, **fields)
        request = spb.CreateSecurityGroupRuleRequest(security_group_rule=r)
        expect(live, code, lambda req=request: live.security.CreateSecurityGroupRule(req), fragment)
    missing = spb.CreateSecurityGroupRuleRequest(
        security_group_rule=rpb.SecurityGroupRule(security_group_id="nope", direction="ingress")
    )
    expect(live, NOT_FOUND, lambda: live.security.CreateSecurityGroupRule(missing), f"{f}.security_group_id")


def test_rules_are_normalised_and_duplicates_refused(live: LiveController, project: str) -> None:
    g = group(live, "norm", project)
    ssh = rule(live, g.id, protocol="6", port_range_min=22, remote_ip_prefix="0.0.0.0/0")
    assert (ssh.protocol, ssh.port_range_min, ssh.port_range_max, ssh.remote_ip_prefix) == ("tcp", 22, 22, "")
    again = spb.CreateSecurityGroupRuleRequest(
        security_group_rule=rpb.SecurityGroupRule(
            security_group_id=g.id, direction="ingress", protocol="TCP", port_range_min=22, port_range_max=22
        )
    )
    expect(live, EXISTS, lambda: live.security.CreateSecurityGroupRule(again), ssh.id)
    ping = rule(live, g.id, protocol="icmp", icmp_type=8, icmp_code=0, remote_ip_prefix="10.0.0.7")
    assert (ping.icmp_type, ping.icmp_code, ping.remote_ip_prefix) == (8, 0, "10.0.0.7/32")
    gre = rule(live, g.id, protocol="47", description="tunnels")
    assert gre.protocol == "47" and not gre.HasField("port_range_min") and not gre.HasField("icmp_type")
    listed = live.security.ListSecurityGroupRules(
        spb.ListSecurityGroupRulesRequest(security_group_id=g.id, direction="ingress")
    ).security_group_rules
    assert {r.id for r in listed} == {ssh.id, ping.id, gre.id}
    live.security.DeleteSecurityGroupRule(npb.DeleteRequest(id=ssh.id))
    assert {r.id for r in get_group(live, g.id).rules} == {ping.id, gre.id} | {
        r.id for r in get_group(live, g.id).rules if r.direction == "egress"
    }
    expect(live, NOT_FOUND, lambda: live.security.DeleteSecurityGroupRule(npb.DeleteRequest(id=ssh.id)), ssh.id)


# ---------------------------------------------------------------- deleting groups


def test_a_group_in_use_cannot_be_deleted_and_the_error_names_its_users(
    live: LiveController, net: rpb.Network, project: str
) -> None:
    db, app = group(live, "db", project), group(live, "app", project)
    rule(live, db.id, protocol="tcp", port_range_min=5432, remote_group_id=app.id)
    p = port(live, network_id=net.id, security_groups=[db.id])
    expect(live, PRECONDITION, lambda: live.security.DeleteSecurityGroup(npb.DeleteRequest(id=db.id)), p.id)
    expect(live, PRECONDITION, lambda: live.security.DeleteSecurityGroup(npb.DeleteRequest(id=app.id)), db.id)
    live.network.DeletePort(npb.DeleteRequest(id=p.id))
    rules = [r.id for r in get_group(live, db.id).rules]
    live.security.DeleteSecurityGroup(npb.DeleteRequest(id=db.id))  # its rules go with it
    for rid in rules:
        expect(live, NOT_FOUND, lambda r=rid: live.security.GetSecurityGroupRule(npb.GetRequest(id=r)))
    live.security.DeleteSecurityGroup(npb.DeleteRequest(id=app.id))  # nothing names it any more


def test_a_group_naming_itself_can_be_deleted(live: LiveController, project: str) -> None:
    solo = group(live, "solo", project)
    rule(live, solo.id, remote_group_id=solo.id)
    live.security.DeleteSecurityGroup(npb.DeleteRequest(id=solo.id))


# ---------------------------------------------------------------- ports


def test_port_groups_and_port_security(live: LiveController, net: rpb.Network, project: str) -> None:
    web = group(live, "web", project)
    foreign = group(live, "theirs", f"{project}-other")
    expect(live, NOT_FOUND, lambda: port(live, network_id=net.id, security_groups=["x"]), "port.security_groups[0]")
    expect(
        live, INVALID, lambda: port(live, network_id=net.id, security_groups=[foreign.id]), "port.security_groups[0]"
    )
    expect(
        live,
        INVALID,
        lambda: port(live, network_id=net.id, security_groups=[web.id], port_security_enabled=False),
        "port.security_groups",
    )
    p = port(live, network_id=net.id, security_groups=[web.id, web.id])
    assert list(p.security_groups) == [web.id]
    expect(
        live,
        PRECONDITION,
        lambda: update_port(live, p.id, ["port_security_enabled"], port_security_enabled=False),
        "port.port_security_enabled",
        "security_groups",
    )
    off = update_port(live, p.id, ["port_security_enabled", "security_groups"], port_security_enabled=False)
    assert not off.port_security_enabled and not off.security_groups
    on = update_port(live, p.id, ["port_security_enabled"], port_security_enabled=True)
    assert on.port_security_enabled and not on.security_groups, "no group comes back by itself"
    assert list(update_port(live, p.id, ["security_groups"], security_groups=[web.id]).security_groups) == [web.id]


def test_allowed_address_pairs(live: LiveController, net: rpb.Network) -> None:
    def pairs(*items: tuple[str, str]) -> list[rpb.AddressPair]:
        return [rpb.AddressPair(ip_address=ip, mac_address=mac) for ip, mac in items]

    p = port(
        live, network_id=net.id, allowed_address_pairs=pairs(("10.60.0.200", ""), ("10.61.0.0/24", "FA:16:3E:00:00:AA"))
    )
    assert [(a.ip_address, a.mac_address) for a in p.allowed_address_pairs] == [
        ("10.60.0.200", ""),
        ("10.61.0.0/24", "fa:16:3e:00:00:aa"),
    ]
    f = "port.allowed_address_pairs"
    for bad, fragment in (
        (pairs(("10.60.0.300", "")), f"{f}[0].ip_address"),
        (pairs(("10.60.0.1/24", "")), f"{f}[0].ip_address"),
        (pairs(("2001:db8::1", "")), f"{f}[0].ip_address"),
        (pairs(("10.60.0.9", "01:00:5e:00:00:01")), f"{f}[0].mac_address"),
        (pairs(("10.60.0.9", ""), ("10.60.0.9/32", "")), f"{f}[1]"),
        (pairs(*((f"10.62.0.{i}", "") for i in range(11))), f),
    ):
        expect(
            live,
            INVALID,
            lambda b=bad: update_port(live, p.id, ["allowed_address_pairs"], allowed_address_pairs=b),
            fragment,
        )
    expect(
        live,
        INVALID,
        lambda: port(
            live, network_id=net.id, port_security_enabled=False, allowed_address_pairs=pairs(("10.60.0.9", ""))
        ),
        f,
    )
    cleared = update_port(live, p.id, ["allowed_address_pairs"])
    assert not cleared.allowed_address_pairs


# ---------------------------------------------------------------- watch


def test_watch_follows_groups_and_rules(live: LiveController, project: str) -> None:
    since = live.store.revision
    g = group(live, "watched", project)
    r = rule(live, g.id, protocol="udp", port_range_min=53)
    live.security.DeleteSecurityGroupRule(npb.DeleteRequest(id=r.id))
    stream = live.security.Watch(npb.WatchRequest(since_revision=since), timeout=5)
    seen: list[tuple[str, str, str]] = []

    def read() -> None:
        try:
            for ev in stream:
                seen.append((npb.WatchEvent.Type.Name(ev.type), ev.kind, ev.WhichOneof("object") or ""))
                if len(seen) == 4:
                    stream.cancel()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    stream.cancel()
    assert seen == [
        ("CREATED", "security_group", "security_group"),
        ("CREATED", "security_group_rule", "security_group_rule"),  # the group's own egress rule
        ("CREATED", "security_group_rule", "security_group_rule"),
        ("DELETED", "security_group_rule", "security_group_rule"),
    ]
