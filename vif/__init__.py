"""Plugging VM interfaces into Open vSwitch: veths into namespaces, taps for qemu.

Modules: ``link`` (devices over netlink),
``offload`` (TX checksum offload), ``names`` (device names from port ids),
``tap`` (a qemu tap joined to its OVS port through tc and a veth),
``plug`` (plug_veth / plug_tap / unplug), ``cli`` (``loomctl vif``).
Named namespaces are ``dataplane.common.netns``.
"""
