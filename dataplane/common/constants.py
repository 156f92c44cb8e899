"""Names and numbers the controller and every agent agree on.

OpenFlow port numbers are split into ranges so that flows can name a port
before it exists: VIFs request the number the controller allocated at binding
time, the agent's own ports use fixed or agent-chosen numbers above that.
"""

from __future__ import annotations

BR_INT = "br-int"
BR_PHY = "br-phy"
TUNNEL_PORT_NAME = "vxlan-loom"

# OVS assigns OpenFlow port numbers 1..0xfeff; these ranges never overlap.
# VIF numbers stop at 32767 because a VIF's number is also its conntrack zone (below).
VIF_OFPORT_MIN = 100
VIF_OFPORT_MAX = 32767
LOCALPORT_OFPORT_MIN = 65001
LOCALPORT_OFPORT_MAX = 65199
TUNNEL_OFPORT = 65200
# Patch ports from br-int to the bridges of the agent's bridge mappings: the i-th mapping (in the order the
# agent registered them) gets PATCH_OFPORT_MIN + i, so the controller can name it in flows.
PATCH_OFPORT_MIN = 65210
PATCH_OFPORT_MAX = 65279  # OpenFlow physical ports end at 0xfeff; 0xff00 and up are reserved
# Point-to-point tunnel ports between a host and each gateway host (BFD runs on them): the port towards
# the host whose agent has tag t is GATEWAY_TUNNEL_OFPORT_MIN + t, on every host.
GATEWAY_TUNNEL_OFPORT_MIN = 40000
GATEWAY_TUNNEL_OFPORT_MAX = 64999

# Conntrack zones (16 bits) are allocated by the controller, never read back from the switch:
# a VIF's zone is its OpenFlow port number on its host (unique per host, VIF_OFPORT_MIN..MAX);
# a router's zone (NAT) is allocated once per router from this range and is the same on every host.
# A router takes two consecutive zones, an even one for DNAT (floating IPs) and the next for SNAT: one
# connection cannot be both DNATed and SNATed after the fact, and hairpin traffic needs both.
ROUTER_ZONE_MIN = 32768
ROUTER_ZONE_MAX = 65535

VXLAN_UDP_PORT = 4789
# The gateway tunnels use their own UDP port: OVS then never confuses them with the flow-based VXLAN port
# (it prefers a port with an exact remote_ip), and their VNI is free to name a router.
GATEWAY_TUNNEL_UDP_PORT = 4790
GATEWAY_TUNNEL_PREFIX = "gw-"
# Outer Ethernet (14) + IPv4 (20) + UDP (8) + VXLAN (8).
VXLAN_OVERHEAD = 50

METADATA_IP = "169.254.169.254"
METADATA_PORT = 80

# device_owner values with a meaning to Loom (Neutron's spelling).
OWNER_DHCP = "network:dhcp"
OWNER_ROUTER_INTERFACE = "network:router_interface"
OWNER_ROUTER_GATEWAY = "network:router_gateway"
OWNER_FLOATINGIP = "network:floatingip"
OWNER_COMPUTE_PREFIX = "compute:"
