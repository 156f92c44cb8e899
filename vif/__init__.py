"""Plugging VM interfaces into Open vSwitch: veths into namespaces, taps for qemu.

Modules: ``link`` (devices over netlink),
``offload`` (TX checksum offload), ``names`` (device names from port ids),
``plug`` (plug_veth / plug_tap / unplug), ``cli`` (``loomctl vif``).
Named namespaces are ``dataplane.common.netns``.
"""
