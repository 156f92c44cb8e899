"""dnsmasq per network namespace: static DHCP leases for a network's local ports, supervised by the agent.

Entry points for the agent:

- ``dhcp.convert.configs_from_proto(networks, ports, locate)`` turns the host's ``LocalNetwork`` and
  ``LocalPort`` messages into ``DhcpNetworkConfig`` / ``DhcpHostEntry`` dataclasses;
- ``dhcp.manager.DhcpManager(state_dir)``: ``start()``, ``sync(networks, hosts_by_network)`` with the full
  desired set, ``dhcp_ready(port_id)``, ``close()``.

``dhcp.render`` holds the pure config generation and documents what lives where; ``dhcp.manager`` documents
which change costs what (nothing, SIGHUP or restart) and how supervision and agent restarts work.
"""
