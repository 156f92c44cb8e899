"""The agent's configuration: command-line flags with LOOM_AGENT_* environment defaults."""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass
from pathlib import Path


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
    p.add_argument("--libvirt-uri", default=_env("LIBVIRT_URI"), help="libvirtd to run guests on (empty: none)")
    p.add_argument("--instances-dir", default=_env("INSTANCES_DIR", "/var/lib/loom/instances"), help="root disks")
    p.add_argument("--image-cache-dir", default=_env("IMAGE_CACHE_DIR", "/var/lib/loom/image-cache"))
    p.add_argument("--virt-type", default=_env("VIRT_TYPE", "auto"), choices=("auto", "kvm", "qemu"))
    p.add_argument("--shutdown-timeout", type=float, default=float(_env("SHUTDOWN_TIMEOUT", "60")))
    p.add_argument("--vcpus", type=int, default=int(_env("VCPUS", "0")), help="vCPUs to offer (0: the host's)")
    p.add_argument("--memory-mb", type=int, default=int(_env("MEMORY_MB", "0")), help="RAM to offer (0: the host's)")
    p.add_argument("--log-level", default=os.environ.get("LOOM_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
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
        libvirt_uri=a.libvirt_uri,
        instances_dir=Path(a.instances_dir),
        image_cache_dir=Path(a.image_cache_dir),
        virt_type=a.virt_type,
        shutdown_timeout=a.shutdown_timeout,
        vcpus=a.vcpus,
        memory_mb=a.memory_mb,
    )
