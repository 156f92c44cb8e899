"""The agent's Open vSwitch database side: OVSDB driver, interface monitor, underlay, localports.

``OvsDriver`` (driver) ensures bridges and ports, ``InterfaceMonitor`` (monitor)
reports VIFs as ovs-vswitchd numbers them, ``OvsdbClient`` (idl) is the
python-ovs IDL connection underneath.
"""

from dataplane.ovs.driver import OvsDriver
from dataplane.ovs.idl import OvsdbClient, OvsdbError
from dataplane.ovs.monitor import InterfaceMonitor
from dataplane.ovs.types import InterfaceEvent, LocalPort, PortInfo

__all__ = ["InterfaceEvent", "InterfaceMonitor", "LocalPort", "OvsDriver", "OvsdbClient", "OvsdbError", "PortInfo"]
