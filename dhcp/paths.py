"""Where one network's dnsmasq keeps its files under the agent's DHCP state directory.

Layout (one directory per network, named after the network id)::

    <root>/<network>/hosts/<port>   one dhcp-host file per port (dnsmasq watches it with inotify)
    <root>/<network>/opts           dhcp-option lines (re-read on SIGHUP)
    <root>/<network>/leases         dnsmasq's lease database
    <root>/<network>/pid            dnsmasq's pid file
    <root>/<network>/dnsmasq.log    dnsmasq's log
    <root>/<network>/tmp/           files are written here, then renamed into place (atomic for dnsmasq)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dataplane.common.files import safe_name


@dataclass(frozen=True, slots=True)
class NetworkPaths:
    """The files of one network's dnsmasq."""

    dir: Path

    @property
    def hosts_dir(self) -> Path:
        return self.dir / "hosts"

    @property
    def tmp_dir(self) -> Path:
        return self.dir / "tmp"

    @property
    def opts_file(self) -> Path:
        return self.dir / "opts"

    @property
    def lease_file(self) -> Path:
        return self.dir / "leases"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def log_file(self) -> Path:
        return self.dir / "dnsmasq.log"


def network_paths(root: Path, network_id: str) -> NetworkPaths:
    return NetworkPaths(root / safe_name(network_id))
