"""The metadata service over real HTTP on loopback: signatures, caller checks, both metadata trees."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator

import pytest

from controller.metadata.auth import sign
from controller.metadata.server import MetadataServer
from controller.metadata.source import DictMetadataSource
from controller.model import FixedIP, HostRoute, Instance, Network, Port, Subnet

SECRET = b"s3cret-shared-with-proxies"
USER_DATA = os.urandom(64 * 1024)  # binary, every byte value likely present


def make_source() -> DictMetadataSource:
    return DictMetadataSource().add(
        Network(id="net-1", name="blue", mtu=1450),
        Subnet(
            id="sub-1",
            network_id="net-1",
            cidr="10.0.0.0/24",
            gateway_ip="10.0.0.1",
            dns_nameservers=("10.0.0.53",),
            host_routes=(HostRoute("192.168.0.0/16", "10.0.0.9"),),
        ),
        Port(
            id="port-a",
            network_id="net-1",
            mac_address="fa:16:3e:00:00:0a",
            fixed_ips=(FixedIP("sub-1", "10.0.0.10"),),
            device_id="inst-a",
            device_owner="compute:nova",
        ),
        Port(
            id="port-b",
            network_id="net-1",
            mac_address="fa:16:3e:00:00:0b",
            fixed_ips=(FixedIP("sub-1", "10.0.0.11"),),
            device_id="inst-b",
            device_owner="compute:nova",
        ),
        Instance(
            id="inst-a",
            name="Web One",
            hostname="web-1",
            project_id="proj-1",
            user_data=USER_DATA,
            public_keys=(("mykey", "ssh-ed25519 AAAAC3Nza mykey"), ("other", "ssh-rsa AAAAB3 other")),
            metadata=(("role", "web"),),
            availability_zone="az-1",
        ),
        Instance(id="inst-b", name="db", project_id="proj-2"),
    )


@pytest.fixture(scope="module")
def server() -> Iterator[MetadataServer]:
    server = MetadataServer(make_source(), SECRET)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def proxy_headers(instance_id: str, ip: str, project_id: str, secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-Instance-ID": instance_id,
        "X-Tenant-ID": project_id,
        "X-Forwarded-For": ip,
        "X-Instance-ID-Signature": sign(secret, instance_id),
    }


def get(server: MetadataServer, path: str, headers: dict[str, str], method: str = "GET") -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("Content-Type", "")
    finally:
        conn.close()


def as_a(server: MetadataServer, path: str) -> tuple[int, bytes]:
    status, body, _ = get(server, path, proxy_headers("inst-a", "10.0.0.10", "proj-1"))
    return status, body


# ------------------------------------------------------------------ who may ask


def test_unsigned_request_is_forbidden(server: MetadataServer) -> None:
    headers = proxy_headers("inst-a", "10.0.0.10", "proj-1")
    del headers["X-Instance-ID-Signature"]
    assert get(server, "/latest/meta-data/instance-id", headers)[0] == 403
    assert get(server, "/latest/meta-data/instance-id", {})[0] == 403


def test_badly_signed_request_is_forbidden(server: MetadataServer) -> None:
    wrong_key = proxy_headers("inst-a", "10.0.0.10", "proj-1", secret=b"not-the-secret")
    assert get(server, "/latest/meta-data/instance-id", wrong_key)[0] == 403
    other_id = proxy_headers("inst-a", "10.0.0.10", "proj-1")
    other_id["X-Instance-ID-Signature"] = sign(SECRET, "inst-b")
    assert get(server, "/latest/meta-data/instance-id", other_id)[0] == 403
    garbage = proxy_headers("inst-a", "10.0.0.10", "proj-1")
    garbage["X-Instance-ID-Signature"] = "é" * 64
    assert get(server, "/latest/meta-data/instance-id", garbage)[0] == 403


def test_address_of_another_instance_is_refused(server: MetadataServer) -> None:
    # Correctly signed for inst-a, but from inst-b's address: never inst-a's data.
    status, body, _ = get(server, "/latest/meta-data/instance-id", proxy_headers("inst-a", "10.0.0.11", "proj-1"))
    assert status == 403 and b"inst-a" not in body
    assert get(server, "/latest/meta-data/instance-id", proxy_headers("inst-a", "10.9.9.9", "proj-1"))[0] == 403


def test_wrong_project_or_unknown_instance_is_refused(server: MetadataServer) -> None:
    assert get(server, "/latest/meta-data/instance-id", proxy_headers("inst-a", "10.0.0.10", "proj-2"))[0] == 403
    assert get(server, "/latest/meta-data/instance-id", proxy_headers("ghost", "10.0.0.10", "proj-1"))[0] == 404


def test_network_header_must_match_the_port(server: MetadataServer) -> None:
    headers = proxy_headers("inst-a", "10.0.0.10", "proj-1")
    assert get(server, "/latest/meta-data/instance-id", {**headers, "X-Loom-Network-ID": "net-1"})[0] == 200
    assert get(server, "/latest/meta-data/instance-id", {**headers, "X-Loom-Network-ID": "net-2"})[0] == 403


# ------------------------------------------------------------------ EC2 tree


def test_ec2_tree(server: MetadataServer) -> None:
    assert as_a(server, "/latest/meta-data/instance-id") == (200, b"inst-a")
    assert as_a(server, "/2009-04-04/meta-data/hostname") == (200, b"web-1")
    assert as_a(server, "/latest/meta-data/local-hostname") == (200, b"web-1")
    assert as_a(server, "/latest/meta-data/local-ipv4") == (200, b"10.0.0.10")
    assert as_a(server, "/latest/meta-data/public-ipv4") == (200, b"")
    assert as_a(server, "/latest/meta-data/placement/availability-zone") == (200, b"az-1")
    status, listing = as_a(server, "/latest/meta-data/")
    assert status == 200
    assert set(listing.decode().split("\n")) >= {
        "instance-id",
        "hostname",
        "local-hostname",
        "local-ipv4",
        "public-ipv4",
        "public-keys/",
        "placement/",
    }
    assert as_a(server, "/latest/meta-data") == (200, listing)
    assert as_a(server, "/latest/") == (200, b"meta-data/\nuser-data")
    assert b"latest" in as_a(server, "/")[1].split(b"\n")


def test_ec2_public_keys(server: MetadataServer) -> None:
    assert as_a(server, "/latest/meta-data/public-keys/") == (200, b"0=mykey\n1=other")
    assert as_a(server, "/latest/meta-data/public-keys/0/") == (200, b"openssh-key")
    assert as_a(server, "/latest/meta-data/public-keys/0/openssh-key") == (200, b"ssh-ed25519 AAAAC3Nza mykey")
    assert as_a(server, "/latest/meta-data/public-keys/1=other/openssh-key") == (200, b"ssh-rsa AAAAB3 other")
    assert as_a(server, "/latest/meta-data/public-keys/2/openssh-key")[0] == 404


def test_user_data_is_served_byte_for_byte_and_404_when_absent(server: MetadataServer) -> None:
    status, body, content_type = get(server, "/latest/user-data", proxy_headers("inst-a", "10.0.0.10", "proj-1"))
    assert (status, body, content_type) == (200, USER_DATA, "application/octet-stream")
    assert as_a(server, "/openstack/latest/user_data") == (200, USER_DATA)
    status, _, _ = get(server, "/latest/user-data", proxy_headers("inst-b", "10.0.0.11", "proj-2"))
    assert status == 404
    status, _, _ = get(server, "/openstack/latest/user_data", proxy_headers("inst-b", "10.0.0.11", "proj-2"))
    assert status == 404


def test_unknown_paths_are_404(server: MetadataServer) -> None:
    for path in ("/1999-01-01/meta-data/", "/latest/meta-data/nope", "/openstack/9999/meta_data.json", "/latest/x"):
        assert as_a(server, path)[0] == 404, path


# ------------------------------------------------------------------ OpenStack tree


def test_openstack_versions_and_listing(server: MetadataServer) -> None:
    status, versions = as_a(server, "/openstack")
    assert status == 200 and versions.split(b"\n")[-1] == b"latest" and b"2012-08-10" in versions
    assert as_a(server, "/openstack/")[1] == versions
    status, listing = as_a(server, "/openstack/2018-08-27/")
    assert set(listing.split(b"\n")) == {
        b"meta_data.json",
        b"network_data.json",
        b"user_data",
        b"vendor_data.json",
        b"vendor_data2.json",
    }


def test_openstack_meta_data(server: MetadataServer) -> None:
    status, body, content_type = get(
        server, "/openstack/latest/meta_data.json", proxy_headers("inst-a", "10.0.0.10", "proj-1")
    )
    assert (status, content_type) == (200, "application/json")
    doc = json.loads(body)
    assert doc["uuid"] == "inst-a"
    assert (doc["name"], doc["hostname"], doc["project_id"], doc["availability_zone"]) == (
        "Web One",
        "web-1",
        "proj-1",
        "az-1",
    )
    assert doc["launch_index"] == 0
    assert doc["public_keys"] == {"mykey": "ssh-ed25519 AAAAC3Nza mykey", "other": "ssh-rsa AAAAB3 other"}
    assert doc["keys"][0] == {"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAAC3Nza mykey"}
    assert doc["meta"] == {"role": "web"}
    # Instance b has no hostname: derived from its name.
    _, body_b, _ = get(server, "/openstack/latest/meta_data.json", proxy_headers("inst-b", "10.0.0.11", "proj-2"))
    assert json.loads(body_b)["hostname"] == "db"


def test_openstack_network_data(server: MetadataServer) -> None:
    doc = json.loads(as_a(server, "/openstack/latest/network_data.json")[1])
    assert doc["links"] == [
        {
            "id": "tapport-a",
            "vif_id": "port-a",
            "type": "ovs",
            "mtu": 1450,
            "ethernet_mac_address": "fa:16:3e:00:00:0a",
        }
    ]
    assert doc["networks"] == [
        {
            "id": "network0",
            "type": "ipv4_dhcp",
            "link": "tapport-a",
            "network_id": "net-1",
            "ip_address": "10.0.0.10",
            "netmask": "255.255.255.0",
            "routes": [
                {"network": "192.168.0.0", "netmask": "255.255.0.0", "gateway": "10.0.0.9"},
                {"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
            ],
            "services": [{"type": "dns", "address": "10.0.0.53"}],
        }
    ]
    assert doc["services"] == [{"type": "dns", "address": "10.0.0.53"}]
    assert json.loads(as_a(server, "/openstack/latest/vendor_data.json")[1]) == {}


# ------------------------------------------------------------------ HTTP behaviour


def test_keep_alive_pipelining_head_and_methods(server: MetadataServer) -> None:
    headers = proxy_headers("inst-a", "10.0.0.10", "proj-1")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(server.address, timeout=5) as sock:
        # Two pipelined requests in one segment, answered in order on one connection.
        sock.sendall(
            (
                f"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n{head}\r\n"
                f"GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nHost: x\r\n{head}\r\n"
            ).encode()
        )
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"10.0.0.10"):
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert data.index(b"inst-a") < data.index(b"10.0.0.10")
    status, body, _ = get(server, "/latest/meta-data/instance-id", headers, method="HEAD")
    assert (status, body) == (200, b"")
    assert get(server, "/latest/meta-data/instance-id", headers, method="POST")[0] == 405
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")
