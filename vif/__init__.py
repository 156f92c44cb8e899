"""Plugging VM interfaces into Open vSwitch: veths into namespaces, taps for qemu, namespaces.

Modules: ``netns`` (named namespaces), ``link`` (devices over netlink),
``offload`` (TX checksum offload), ``names`` (device names from port ids),
``plug`` (plug_veth / plug_tap / unplug), ``cli`` (``loomctl vif``).
This package imports nothing eagerly, so dataplane.ovs can use ``vif.link``.
"""
