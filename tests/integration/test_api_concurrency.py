"""Concurrent clients never get the same IP or MAC, and an exhausted /24 fails cleanly."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from protos.loom.v1 import network_pb2 as npb
from protos.loom.v1 import network_pb2_grpc
from protos.loom.v1 import resources_pb2 as rpb
from tests.integration.controller_harness import (
    LiveController,
    check_db_invariants,
    make_network,
    make_subnet,
)

CLIENTS = 8


def in_parallel(live: LiveController, work: Callable[[network_pb2_grpc.NetworkServiceStub, int], Any]) -> list[Any]:
    """Run ``work(stub, i)`` in 8 threads, each with its own channel, started together."""
    results: list[Any] = [None] * CLIENTS
    errors: list[BaseException] = []
    gate = threading.Barrier(CLIENTS)

    def run(i: int) -> None:
        with grpc.insecure_channel(live.address) as channel:
            stub = network_pb2_grpc.NetworkServiceStub(channel)
            stub.ListNetworks(npb.ListNetworksRequest(limit=1))  # connected before the race starts
            gate.wait()
            try:
                results[i] = work(stub, i)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


@pytest.mark.parametrize(
    ("subnet_fields", "capacity"),
    [
        # No gateway, no DHCP port: all 254 host addresses of the /24 go to the clients.
        ({"gateway_ip": "", "enable_dhcp": False}, 254),
        # The gateway (.1) and the DHCP port (.2) take two of the 254.
        ({}, 252),
    ],
    ids=["no-gateway-no-dhcp", "gateway-and-dhcp"],
)
def test_eight_clients_fill_a_slash_24(live: LiveController, subnet_fields: dict[str, Any], capacity: int) -> None:
    net = make_network(live)
    subnet = make_subnet(live, net.id, "10.30.0.0/24", **subnet_fields)

    def fill(stub: network_pb2_grpc.NetworkServiceStub, i: int) -> tuple[list[rpb.Port], list[grpc.RpcError]]:
        made: list[rpb.Port] = []
        refused: list[grpc.RpcError] = []
        while len(refused) < 2:  # keep going past the first refusal: it must stay refused
            try:
                made.append(stub.CreatePort(npb.CreatePortRequest(port=rpb.Port(network_id=net.id, name=f"c{i}"))))
            except grpc.RpcError as exc:
                refused.append(exc)
        return made, refused

    results = in_parallel(live, fill)
    ports = [p for made, _ in results for p in made]
    refusals = [e for _, refused in results for e in refused]
    assert len(ports) == capacity
    assert len(refusals) == 2 * CLIENTS
    for exc in refusals:
        assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION, exc.details()
        assert "no free address" in exc.details() and subnet.id in exc.details()
    ips = [p.fixed_ips[0].ip_address for p in ports]
    macs = [p.mac_address for p in ports]
    assert len(set(ips)) == capacity and len(set(macs)) == capacity
    cidr = ipaddress.IPv4Network("10.30.0.0/24")
    assert all(ipaddress.IPv4Address(ip) in cidr for ip in ips)
    assert "10.30.0.0" not in ips and "10.30.0.255" not in ips
    if subnet.gateway_ip:
        assert subnet.gateway_ip not in ips
    listed = live.network.ListPorts(npb.ListPortsRequest(network_id=net.id)).ports
    assert len(listed) == capacity + (0 if subnet_fields else 1)
    check_db_invariants(live.db_path)


def test_racing_for_one_mac_or_one_ip_has_one_winner(live: LiveController) -> None:
    net = make_network(live)
    make_subnet(live, net.id, "10.31.0.0/24")

    def claim(request: rpb.Port) -> Callable[[network_pb2_grpc.NetworkServiceStub, int], grpc.StatusCode]:
        def work(stub: network_pb2_grpc.NetworkServiceStub, i: int) -> grpc.StatusCode:
            try:
                stub.CreatePort(npb.CreatePortRequest(port=request))
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        return work

    for request in (
        rpb.Port(network_id=net.id, mac_address="fa:16:3e:12:34:56"),
        rpb.Port(network_id=net.id, fixed_ips=[rpb.FixedIP(ip_address="10.31.0.99")]),
    ):
        codes = in_parallel(live, claim(request))
        assert codes.count(grpc.StatusCode.OK) == 1
        assert codes.count(grpc.StatusCode.ALREADY_EXISTS) == CLIENTS - 1
    check_db_invariants(live.db_path)
