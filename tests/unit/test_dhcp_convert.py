"""Building the DHCP dataclasses from the agent's protobuf desired state."""

from __future__ import annotations

from dhcp.convert import configs_from_proto, host_entry_from_proto, network_config_from_proto
from dhcp.model import Route
from protos.loom.v1 import agent_pb2, resources_pb2


def local_network() -> agent_pb2.LocalNetwork:
    return agent_pb2.LocalNetwork(
        network_id="net-1",
        mtu=1450,
        localport_id="dhcp-port",
        localport_mac="fa:16:3e:aa:aa:aa",
        localport_ips=["10.0.0.2/24", "fd00::2/64"],
        dns_domain="example.org",
        subnets=[
            agent_pb2.DhcpSubnet(
                subnet_id="v4",
                cidr="10.0.0.0/24",
                gateway_ip="10.0.0.1",
                dns_nameservers=["10.1.1.1"],
                host_routes=[resources_pb2.HostRoute(destination="192.168.0.0/16", nexthop="10.0.0.9")],
                enable_dhcp=True,
            ),
            agent_pb2.DhcpSubnet(subnet_id="v6", cidr="fd00::/64", enable_dhcp=True),
            agent_pb2.DhcpSubnet(subnet_id="off", cidr="10.5.0.0/24", enable_dhcp=False),
            # DHCP on, but the localport has no address in it: cannot be served.
            agent_pb2.DhcpSubnet(subnet_id="orphan", cidr="10.6.0.0/24", enable_dhcp=True),
        ],
    )


def test_network_config_keeps_served_ipv4_subnets_only() -> None:
    config = network_config_from_proto(local_network(), namespace="ns-1", interface="lp-1")
    assert [s.subnet_id for s in config.subnets] == ["v4"]
    subnet = config.subnets[0]
    assert subnet.server_ip == "10.0.0.2"
    assert subnet.gateway_ip == "10.0.0.1"
    assert subnet.dns_nameservers == ("10.1.1.1",)
    assert subnet.host_routes == (Route("192.168.0.0/16", "10.0.0.9"),)
    assert (config.namespace, config.interface, config.mtu, config.dns_domain) == ("ns-1", "lp-1", 1450, "example.org")


def test_host_entry_keeps_addresses_in_served_subnets() -> None:
    config = network_config_from_proto(local_network(), namespace="ns", interface="lp")
    port = agent_pb2.LocalPort(
        port_id="p1",
        network_id="net-1",
        mac_address="fa:16:3e:00:00:01",
        ip_addresses=["10.0.0.5", "fd00::5", "10.5.0.5"],
        hostname="vm1",
    )
    entry = host_entry_from_proto(port, config)
    assert entry.ips == ("10.0.0.5",)
    assert (entry.port_id, entry.mac, entry.hostname) == ("p1", "fa:16:3e:00:00:01", "vm1")


def test_configs_from_proto_groups_ports_and_skips_the_localport() -> None:
    ports = [
        agent_pb2.LocalPort(
            port_id="p1", network_id="net-1", mac_address="fa:16:3e:00:00:01", ip_addresses=["10.0.0.5"]
        ),
        agent_pb2.LocalPort(port_id="dhcp-port", network_id="net-1", ip_addresses=["10.0.0.2"]),
        agent_pb2.LocalPort(port_id="elsewhere", network_id="net-9", ip_addresses=["10.9.0.2"]),
    ]
    configs, hosts = configs_from_proto([local_network()], ports, lambda nid: (f"ns-{nid}", "lp"))
    assert [c.namespace for c in configs] == ["ns-net-1"]
    assert [h.port_id for h in hosts["net-1"]] == ["p1"]
    assert "net-9" not in hosts
