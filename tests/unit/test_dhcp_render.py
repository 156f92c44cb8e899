"""dnsmasq configuration rendering: command line, options file, host files (pure functions)."""

from __future__ import annotations

from pathlib import Path

from dataplane.common.files import safe_name
from dhcp.model import DhcpHostEntry, DhcpNetworkConfig, DhcpSubnetConfig, Route
from dhcp.paths import network_paths
from dhcp.render import (
    classless_routes,
    dhcp_hostname,
    dnsmasq_argv,
    lease_max,
    render_host_file,
    render_opts,
    subnet_tag,
)

SUBNET = DhcpSubnetConfig(
    subnet_id="sub-1",
    cidr="10.0.0.0/24",
    server_ip="10.0.0.2",
    gateway_ip="10.0.0.1",
    dns_nameservers=("10.1.1.1", "10.1.1.2"),
    host_routes=(Route("192.168.50.0/24", "10.0.0.7"),),
)
NETWORK = DhcpNetworkConfig(
    network_id="net-1",
    namespace="loom-net-1",
    interface="lp-net1",
    subnets=(SUBNET,),
    mtu=1450,
    dns_domain="example.org.",
)


def test_classless_routes_put_host_routes_then_metadata_then_default() -> None:
    assert classless_routes(SUBNET) == [
        Route("192.168.50.0/24", "10.0.0.7"),
        Route("169.254.169.254/32", "10.0.0.2"),
        Route("0.0.0.0/0", "10.0.0.1"),
    ]


def test_classless_routes_without_gateway_have_no_default_route() -> None:
    subnet = DhcpSubnetConfig(subnet_id="s", cidr="10.0.0.0/24", server_ip="10.0.0.2")
    assert classless_routes(subnet) == [Route("169.254.169.254/32", "10.0.0.2")]


def test_explicit_host_route_for_metadata_or_default_wins_and_is_not_repeated() -> None:
    subnet = DhcpSubnetConfig(
        subnet_id="s",
        cidr="10.0.0.0/24",
        server_ip="10.0.0.2",
        gateway_ip="10.0.0.1",
        host_routes=(Route("169.254.169.254/32", "10.0.0.3"), Route("0.0.0.0/0", "10.0.0.9")),
    )
    routes = classless_routes(subnet)
    assert routes == [Route("169.254.169.254/32", "10.0.0.3"), Route("0.0.0.0/0", "10.0.0.9")]


def test_opts_file_carries_router_dns_domain_and_routes_per_subnet_tag() -> None:
    lines = render_opts(NETWORK).splitlines()
    tag = "tag:" + subnet_tag("sub-1")
    assert lines == [
        f"{tag},option:router,10.0.0.1",
        f"{tag},option:dns-server,10.1.1.1,10.1.1.2",
        f"{tag},option:domain-name,example.org",
        f"{tag},option:classless-static-route,192.168.50.0/24,10.0.0.7,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1",
        f"{tag},249,192.168.50.0/24,10.0.0.7,169.254.169.254/32,10.0.0.2,0.0.0.0/0,10.0.0.1",
    ]


def test_opts_without_gateway_send_an_empty_router_and_no_dns() -> None:
    subnet = DhcpSubnetConfig(subnet_id="s", cidr="10.0.0.0/24", server_ip="10.0.0.2", dns_nameservers=("fd00::1",))
    network = DhcpNetworkConfig(network_id="n", namespace="ns", interface="if", subnets=(subnet,))
    lines = render_opts(network).splitlines()
    assert lines[0] == "tag:s-s,option:router"
    assert not any("dns-server" in line for line in lines)  # IPv6 nameservers do not fit option 6
    assert not any("domain-name" in line for line in lines)


def test_two_subnets_get_separate_tags_and_ranges(tmp_path: Path) -> None:
    second = DhcpSubnetConfig(subnet_id="sub-2", cidr="10.9.0.0/16", server_ip="10.9.0.2", gateway_ip="10.9.0.1")
    network = DhcpNetworkConfig(
        network_id="n", namespace="ns", interface="lp0", subnets=(SUBNET, second), mtu=1400, lease_seconds=600
    )
    argv = dnsmasq_argv(network, network_paths(tmp_path, "n"), "/usr/sbin/dnsmasq")
    ranges = [a for a in argv if a.startswith("--dhcp-range=")]
    assert ranges == [
        "--dhcp-range=set:s-sub-1,10.0.0.0,static,255.255.255.0,600s",
        "--dhcp-range=set:s-sub-2,10.9.0.0,static,255.255.0.0,600s",
    ]
    forced = [a for a in argv if a.startswith("--dhcp-option-force=")]
    assert forced == [
        "--dhcp-option-force=tag:s-sub-1,option:mtu,1400",
        "--dhcp-option-force=tag:s-sub-2,option:mtu,1400",
    ]
    opts = render_opts(network)
    assert "tag:s-sub-2,option:router,10.9.0.1\n" in opts
    assert "tag:s-sub-2,option:classless-static-route,169.254.169.254/32,10.9.0.2,0.0.0.0/0,10.9.0.1\n" in opts
    assert lease_max(network) == 256 + 65536


def test_argv_is_dhcp_only_and_points_at_the_networks_files(tmp_path: Path) -> None:
    paths = network_paths(tmp_path, "net-1")
    argv = dnsmasq_argv(NETWORK, paths, "/usr/sbin/dnsmasq")
    assert argv[0] == "/usr/sbin/dnsmasq"
    for expected in (
        "--port=0",
        "--conf-file=/dev/null",
        "--interface=lp-net1",
        f"--dhcp-hostsdir={tmp_path}/net-1/hosts",
        f"--dhcp-optsfile={tmp_path}/net-1/opts",
        f"--pid-file={tmp_path}/net-1/pid",
        "--dhcp-authoritative",
        "--dhcp-lease-max=1000",
    ):
        assert expected in argv
    assert "--quiet-dhcp" not in argv
    assert "--quiet-dhcp" in dnsmasq_argv(NETWORK, paths, "dnsmasq", quiet_dhcp=True)
    # Deterministic: the agent recognises a running dnsmasq by comparing command lines.
    assert argv == dnsmasq_argv(NETWORK, paths, "/usr/sbin/dnsmasq")


def test_no_mtu_option_when_mtu_unknown(tmp_path: Path) -> None:
    network = DhcpNetworkConfig(network_id="n", namespace="ns", interface="i", subnets=(SUBNET,), mtu=0)
    assert not any("option:mtu" in a for a in dnsmasq_argv(network, network_paths(tmp_path, "n"), "dnsmasq"))


def test_host_file_has_one_line_per_address_with_a_clean_hostname() -> None:
    entry = DhcpHostEntry(
        port_id="p1", mac="FA:16:3E:00:00:01", ips=("10.0.0.5", "10.9.0.5"), hostname="Web_1.example.org"
    )
    assert render_host_file(entry) == "fa:16:3e:00:00:01,10.0.0.5,web-1\nfa:16:3e:00:00:01,10.9.0.5,web-1\n"
    assert render_host_file(DhcpHostEntry(port_id="p2", mac="fa:16:3e:00:00:02", ips=("10.0.0.6",))) == (
        "fa:16:3e:00:00:02,10.0.0.6\n"
    )
    assert render_host_file(DhcpHostEntry(port_id="p3", mac="fa:16:3e:00:00:03")) == ""


def test_hostname_is_one_legal_label() -> None:
    assert dhcp_hostname("vm-1") == "vm-1"
    assert dhcp_hostname("-Bad Name!-") == "bad-name"
    assert dhcp_hostname("a" * 80) == "a" * 63
    assert dhcp_hostname("...") == ""


def test_safe_name_keeps_ids_and_digests_the_rest() -> None:
    assert safe_name("3f2a-port_1.x") == "3f2a-port_1.x"
    for hostile in ("../etc/passwd", ".hidden", "a/b", ""):
        name = safe_name(hostile)
        assert name.startswith("x-") and "/" not in name
    assert safe_name("a/b") != safe_name("a/c")
