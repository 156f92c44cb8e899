"""The agent's configuration: command-line flags with LOOM_AGENT_* environment defaults."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.external import BfdSettings, BridgeMapping


@dataclass(frozen=True)
class AgentConfig:
    host: str
    controller: str  # host:port of the controller's gRPC API
    tunnel_ip: str
    datapath_type: str = "netdev"
    ovs_rundir: str = "/var/run/openvswitch"
    state_dir: Path = Path("/var/lib/loom/agent")
    # dnsmasq and metadata proxy files: must survive agent restarts, and dnsmasq
    # (running as nobody) must be able to traverse it.
    run_dir: Path = Path("/run/loom/agent")
    # Underlay for the userspace datapath: this NIC goes into br-phy and
    # tunnel_ip/underlay_prefix moves onto br-phy (empty: the underlay is set up already).
    underlay_nic: str = ""
    underlay_prefix: int = 24
    # Named network namespaces are global to the machine: prefix them with the
    # host so several emulated hypervisors can share one kernel.
    netns_prefix: str = ""
    metadata_secret: str = ""
    metadata_url: str = ""  # the metadata service; empty: the URL the controller sends
    # Provider networks: PHYSNET:BRIDGE[:NIC]; the agent creates the bridge, adds the NIC, patches it to br-int.
    bridge_mappings: tuple[BridgeMapping, ...] = ()
    # Above 0: this host is a gateway (SNAT for routers whose external network it maps); higher goes first.
    gateway_priority: int = 0
    bfd: BfdSettings = field(default_factory=BfdSettings)
    # Compute (dataplane/compute): empty libvirt_uri: this host runs no guests.
    libvirt_uri: str = ""
    instances_dir: Path = Path("/var/lib/loom/instances")
    image_cache_dir: Path = Path("/var/lib/loom/image-cache")
    virt_type: str = "auto"  # kvm, qemu (TCG), or auto: kvm when /dev/kvm works
    shutdown_timeout: float = 60.0
    vcpus: int = 0  # 0: what libvirt reports
    memory_mb: int = 0

    @property
    def ovsdb(self) -> str:
        return f"unix:{self.ovs_rundir}/db.sock"

    @property
    def namespace_prefix(self) -> str:
        return self.netns_prefix or f"loom-{self.host}-"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"LOOM_AGENT_{name}", default)


def parse_args(argv: list[str] | None = None) -> AgentConfig:
    p = argparse.ArgumentParser(prog="loom-agent", description="Loom's hypervisor agent")
    p.add_argument("--host", default=_env("HOST", socket.gethostname()), help="this hypervisor's name")
    p.add_argument("--controller", default=_env("CONTROLLER", "127.0.0.1:9696"), help="controller gRPC address")
    p.add_argument("--tunnel-ip", default=_env("TUNNEL_IP"), required=not _env("TUNNEL_IP"), help="underlay IPv4")
    p.add_argument("--datapath-type", default=_env("DATAPATH_TYPE", "netdev"), choices=("netdev", "system"))
    p.add_argument("--ovs-rundir", default=_env("OVS_RUNDIR", os.environ.get("OVS_RUNDIR", "/var/run/openvswitch")))
    p.add_argument("--state-dir", default=_env("STATE_DIR", "/var/lib/loom/agent"), help="persisted desired state")
    p.add_argument("--run-dir", default=_env("RUN_DIR", "/run/loom/agent"), help="dnsmasq and metadata proxy files")
    p.add_argument("--underlay-nic", default=_env("UNDERLAY_NIC"), help="NIC to put in br-phy (netdev mode)")
    p.add_argument("--underlay-prefix", type=int, default=int(_env("UNDERLAY_PREFIX", "24")))
    p.add_argument("--netns-prefix", default=_env("NETNS_PREFIX"), help="prefix of the namespaces it creates")
    p.add_argument(
        "--metadata-secret",
        default=_env("METADATA_SECRET", os.environ.get("LOOM_METADATA_SECRET", "")),
        help="shared secret signing metadata requests (or LOOM_METADATA_SECRET)",
    )
    p.add_argument("--metadata-url", default=_env("METADATA_URL"), help="metadata service URL (default: controller's)")
    p.add_argument(
        "--bridge-mappings",
        default=_env("BRIDGE_MAPPINGS"),
        help="PHYSNET:BRIDGE[:NIC],...: provider networks' bridges (created, NIC added, patched to br-int)",
    )
    p.add_argument(
        "--gateway",
        type=int,
        default=int(_env("GATEWAY", "0")),
        metavar="PRIORITY",
        help="be a gateway host (SNAT for routers) with this priority; higher goes first (0: not a gateway)",
    )
    p.add_argument("--bfd-min-tx", type=int, default=int(_env("BFD_MIN_TX", "100")), help="BFD transmit interval, ms")
    p.add_argument("--bfd-min-rx", type=int, default=int(_env("BFD_MIN_RX", "100")), help="BFD receive interval, ms")
    p.add_argument("--bfd-mult", type=int, default=int(_env("BFD_MULT", "3")), help="BFD detection multiplier")
    p.add_argument("--libvirt-uri", default=_env("LIBVIRT_URI"), help="libvirtd to run guests on (empty: none)")
    p.add_argument("--instances-dir", default=_env("INSTANCES_DIR", "/var/lib/loom/instances"), help="root disks")
    p.add_argument("--image-cache-dir", default=_env("IMAGE_CACHE_DIR", "/var/lib/loom/image-cache"))
    p.add_argument("--virt-type", default=_env("VIRT_TYPE", "auto"), choices=("auto", "kvm", "qemu"))
    p.add_argument("--shutdown-timeout", type=float, default=float(_env("SHUTDOWN_TIMEOUT", "60")))
    p.add_argument("--vcpus", type=int, default=int(_env("VCPUS", "0")), help="vCPUs to offer (0: the host's)")
    p.add_argument("--memory-mb", type=int, default=int(_env("MEMORY_MB", "0")), help="RAM to offer (0: the host's)")
    p.add_argument("--log-level", default=os.environ.get("LOOM_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    try:
        mappings = tuple(BridgeMapping.parse(m) for m in a.bridge_mappings.split(",") if m.strip())
    except ValueError as exc:
        p.error(str(exc))
    if len({m.physical_network for m in mappings}) != len(mappings):
        p.error("--bridge-mappings names a physical network twice")
    os.environ["LOOM_LOG_LEVEL"] = a.log_level
    return AgentConfig(
        host=a.host,
        controller=a.controller,
        tunnel_ip=a.tunnel_ip,
        datapath_type=a.datapath_type,
        ovs_rundir=a.ovs_rundir,
        state_dir=Path(a.state_dir),
        run_dir=Path(a.run_dir),
        underlay_nic=a.underlay_nic,
        underlay_prefix=a.underlay_prefix,
        netns_prefix=a.netns_prefix,
        metadata_secret=a.metadata_secret,
        metadata_url=a.metadata_url,
        bridge_mappings=mappings,
        gateway_priority=max(0, a.gateway),
        bfd=BfdSettings(a.bfd_min_tx, a.bfd_min_rx, a.bfd_mult),
        libvirt_uri=a.libvirt_uri,
        instances_dir=Path(a.instances_dir),
        image_cache_dir=Path(a.image_cache_dir),
        virt_type=a.virt_type,
        shutdown_timeout=a.shutdown_timeout,
        vcpus=a.vcpus,
        memory_mb=a.memory_mb,
    )
