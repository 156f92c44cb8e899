"""The proxy's HTTP framing (requests from guests, responses from the service) and its config files."""

from __future__ import annotations

import pytest

from metadata_proxy.convert import metadata_network_from_proto, metadata_networks_from_proto
from metadata_proxy.http import HttpError, ResponseParser, encode_response, parse_request
from metadata_proxy.model import MetadataIdentity, MetadataNetwork, network_from_json, network_to_json
from protos.loom.v1 import agent_pb2


def test_parse_request_waits_for_the_whole_message_and_reports_its_length() -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.0\r\n\r\n"
    assert parse_request(bytearray(raw[:20])) is None
    assert parse_request(bytearray(raw[: raw.index(b"abc") + 2])) is None
    buffer = bytearray(raw)
    parsed = parse_request(buffer)
    assert parsed is not None
    request, used = parsed
    assert (request.method, request.target, request.body, request.keep_alive) == ("POST", "/x", b"abc", True)
    del buffer[:used]
    second = parse_request(buffer)
    assert second is not None
    assert (second[0].target, second[0].keep_alive) == ("/y", False)  # HTTP/1.0 closes by default


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /\r\n\r\n", 400),
        (b"GET / SPDY/3\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        (b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET /" + b"a" * 40000, 431),
    ],
)
def test_bad_requests_get_the_right_status(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as info:
        parse_request(bytearray(raw))
    assert info.value.status == status


def test_response_parser_content_length_in_pieces() -> None:
    parser = ResponseParser(head_only=False)
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\ninst-a"
    responses = [parser.feed(raw[i : i + 7]) for i in range(0, len(raw), 7)]
    response = responses[-1]
    assert response is not None and all(r is None for r in responses[:-1])
    assert (response.status, response.body, response.keep_alive) == (200, b"inst-a", True)


def test_response_parser_chunked_and_until_close() -> None:
    parser = ResponseParser(head_only=False)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\nT: 1\r\n\r\n"
    response = parser.feed(chunked)
    assert response is not None and response.body == b"wikipedia"

    parser = ResponseParser(head_only=False)
    assert parser.feed(b"HTTP/1.0 200 OK\r\n\r\npart one, ") is None
    assert parser.feed(b"part two") is None
    response = parser.eof()
    assert response is not None and response.body == b"part one, part two" and not response.keep_alive


def test_response_parser_head_has_no_body_and_cut_response_is_none() -> None:
    parser = ResponseParser(head_only=True)
    response = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert response is not None and response.body == b""
    assert encode_response(response, keep_alive=True, head_only=True).endswith(b"content-length: 10\r\n\r\n")
    parser = ResponseParser(head_only=False)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort") is None
    assert parser.eof() is None


def test_encoded_response_drops_hop_by_hop_headers_and_frames_itself() -> None:
    parser = ResponseParser(head_only=False)
    response = parser.feed(
        b"HTTP/1.1 404 Not Found\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nX-A: b\r\nContent-Length: 2\r\n\r\nno"
    )
    assert response is not None
    data = encode_response(response, keep_alive=False, head_only=False)
    assert data == b"HTTP/1.1 404 Not Found\r\nx-a: b\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
    assert encode_response(response, keep_alive=True, head_only=True).endswith(b"content-length: 2\r\n\r\n")


def test_network_file_round_trip_is_deterministic() -> None:
    a = MetadataIdentity("10.0.0.5", "p1", "i1", "proj")
    b = MetadataIdentity("10.0.0.4", "p2", "i2", "proj")
    one = MetadataNetwork("net", "ns", (a, b), ("p2", "p1", "r1"))
    two = MetadataNetwork("net", "ns", (b, a), ("r1", "p1", "p2"))
    assert network_to_json(one) == network_to_json(two)
    back = network_from_json(network_to_json(one))
    assert set(back.identities) == {a, b} and set(back.port_ids) == {"p1", "p2", "r1"}
    assert (back.listen_ip, back.listen_port) == ("169.254.169.254", 80)


def test_convert_keeps_instance_ports_ipv4_and_skips_the_localport() -> None:
    network = agent_pb2.LocalNetwork(network_id="net", localport_id="dhcp")
    ports = [
        agent_pb2.LocalPort(
            port_id="vm", network_id="net", ip_addresses=["10.0.0.5", "fd00::5"], instance_id="i1", project_id="p"
        ),
        agent_pb2.LocalPort(
            port_id="legacy", network_id="net", ip_addresses=["10.0.0.6"], device_id="i2", device_owner="compute:az1"
        ),
        agent_pb2.LocalPort(
            port_id="router", network_id="net", ip_addresses=["10.0.0.1"], device_owner="network:router_interface"
        ),
        agent_pb2.LocalPort(port_id="dhcp", network_id="net", ip_addresses=["10.0.0.2"]),
        agent_pb2.LocalPort(port_id="other-net", network_id="net-2", ip_addresses=["10.0.0.7"], instance_id="i3"),
    ]
    config = metadata_network_from_proto(network, ports, namespace="ns-net")
    assert config.namespace == "ns-net"
    assert set(config.identities) == {
        MetadataIdentity("10.0.0.5", "vm", "i1", "p"),
        MetadataIdentity("10.0.0.6", "legacy", "i2", ""),
    }
    assert set(config.port_ids) == {"vm", "legacy", "router"}


def test_convert_many_networks_gives_each_its_own_ports_and_namespace() -> None:
    networks = [agent_pb2.LocalNetwork(network_id=f"net-{n}", localport_id=f"dhcp-{n}") for n in range(3)]
    ports = [
        agent_pb2.LocalPort(
            port_id=f"vm-{n}-{i}", network_id=f"net-{n}", ip_addresses=[f"10.{n}.0.{i + 10}"], instance_id=f"i-{n}-{i}"
        )
        for n in range(4)  # net-3's ports belong to a network this host does not serve
        for i in range(2)
    ]
    ports += [
        agent_pb2.LocalPort(port_id=f"dhcp-{n}", network_id=f"net-{n}", ip_addresses=[f"10.{n}.0.2"]) for n in range(3)
    ]
    configs = metadata_networks_from_proto(networks, reversed(ports), namespace_of=lambda nid: f"ns-{nid}")
    assert [c.network_id for c in configs] == ["net-0", "net-1", "net-2"]
    for n, config in enumerate(configs):
        assert config.namespace == f"ns-net-{n}"
        assert {i.ip: i.instance_id for i in config.identities} == {
            f"10.{n}.0.{i + 10}": f"i-{n}-{i}" for i in range(2)
        }
        assert set(config.port_ids) == {f"vm-{n}-0", f"vm-{n}-1"}
