"""The controller's configuration: command-line flags, with LOOM_* environment variables as defaults."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from controller.ipam import VNI_MAX, VNI_MIN
from controller.store.sqlite import DEFAULT_RETENTION

DEFAULT_LISTEN = "127.0.0.1:9696"
DEFAULT_DB = "/var/lib/loom/controller.db"
# gRPC server threads. Every open stream holds one for as long as it is open: each agent's Sync, each Watch.
# When streams hold them all, unary calls (the whole API) queue and nothing answers. 64, the old default,
# did that with 100 agents. Threads are only started when needed, so a high ceiling costs nothing idle.
DEFAULT_WORKERS = 2048


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    listen: str = DEFAULT_LISTEN  # host:port; port 0 picks a free one (see ready_file)
    db_path: str = DEFAULT_DB
    underlay_mtu: int = 1500
    vni_range: tuple[int, int] = (VNI_MIN, VNI_MAX)
    log_level: str = "INFO"
    workers: int = DEFAULT_WORKERS  # gRPC server threads (see DEFAULT_WORKERS)
    event_retention: int = DEFAULT_RETENTION  # revisions of change events kept for Watch resume
    ready_file: str = ""  # written with the bound port once the server serves
    dns_domain: str = "loom.internal"  # the domain DHCP hands to guests
    metadata_url: str = ""  # where hosts' metadata proxies forward (the controller's metadata service)
    metadata_listen: str = ""  # host:port the metadata service listens on; empty: no metadata service
    metadata_secret: str = ""  # shared with the agents' proxies, which sign each request with it
    # A gateway host that comes back takes back the routers it was active for (default off: no second outage).
    gateway_preempt: bool = False
    # Shortest time between two distributor passes while changes keep coming (seconds; see Distributor).
    pass_interval: float = 0.05
    image_dir: str = ""  # uploaded images; empty: "images" beside the database
    volume_dir: str = ""  # the volumes' file backend, mounted by every hypervisor; empty: "volumes" beside the database

    def state_path(self, configured: str, name: str) -> str:
        return configured or os.path.join(os.path.dirname(os.path.abspath(self.db_path)), name)


def parse_vni_range(text: str) -> tuple[int, int]:
    """``"1:16777215"`` or ``"1-16777215"`` -> (1, 16777215)."""
    sep = ":" if ":" in text else "-"
    lo_text, _, hi_text = text.partition(sep)
    try:
        lo, hi = int(lo_text), int(hi_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"VNI range {text!r} is not MIN:MAX") from None
    if not VNI_MIN <= lo <= hi <= VNI_MAX:
        raise argparse.ArgumentTypeError(f"VNI range {text!r} must lie within {VNI_MIN}:{VNI_MAX}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="loom-controller", description="Loom controller: the gRPC API and the store.")
    p.add_argument("--listen", default=env("LOOM_LISTEN", DEFAULT_LISTEN), help="host:port to serve gRPC on")
    p.add_argument("--db", dest="db_path", default=env("LOOM_DB", DEFAULT_DB), help="SQLite database file")
    p.add_argument("--underlay-mtu", type=int, default=int(env("LOOM_UNDERLAY_MTU", "1500")))
    p.add_argument(
        "--vni-range",
        type=parse_vni_range,
        default=parse_vni_range(env("LOOM_VNI_RANGE", f"{VNI_MIN}:{VNI_MAX}")),
        help="VXLAN VNIs to allocate from, MIN:MAX",
    )
    p.add_argument("--log-level", default=env("LOOM_LOG_LEVEL", "INFO"))
    p.add_argument(
        "--workers",
        type=int,
        default=int(env("LOOM_WORKERS", str(DEFAULT_WORKERS))),
        help="gRPC server threads: at least the agents (one Sync stream each) and Watch streams, plus API callers",
    )
    p.add_argument("--event-retention", type=int, default=int(env("LOOM_EVENT_RETENTION", str(DEFAULT_RETENTION))))
    p.add_argument("--ready-file", default=env("LOOM_READY_FILE", ""), help="write the bound port here once serving")
    p.add_argument("--dns-domain", default=env("LOOM_DNS_DOMAIN", "loom.internal"), help="domain given to guests")
    p.add_argument("--metadata-url", default=env("LOOM_METADATA_URL", ""), help="the metadata service's URL")
    p.add_argument(
        "--metadata-listen", default=env("LOOM_METADATA_LISTEN", ""), help="host:port for the metadata service"
    )
    p.add_argument(
        "--metadata-secret-file",
        default=env("LOOM_METADATA_SECRET_FILE", ""),
        help="file holding the secret shared with agents (or LOOM_METADATA_SECRET)",
    )
    p.add_argument(
        "--gateway-preempt",
        action="store_true",
        default=env("LOOM_GATEWAY_PREEMPT", "") in ("1", "true", "yes"),
        help="a recovered gateway host takes its routers' SNAT back (default: it stays a backup)",
    )
    p.add_argument(
        "--pass-interval",
        type=float,
        default=float(env("LOOM_PASS_INTERVAL", "0.05")),
        help="shortest time in seconds between distributor passes under a stream of changes; a pass also waits "
        "as long as the one before took, up to 0.25 s (0: a pass per commit, no gathering)",
    )
    p.add_argument("--image-dir", default=env("LOOM_IMAGE_DIR", ""), help="image store (default: beside --db)")
    p.add_argument(
        "--volume-dir",
        default=env("LOOM_VOLUME_DIR", ""),
        help="volume file backend: a directory every hypervisor mounts at the same path (default: beside --db)",
    )
    return p


def from_args(argv: Sequence[str] | None = None) -> ControllerConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.underlay_mtu < 576 or args.underlay_mtu > 65535:
        parser.error("--underlay-mtu must be between 576 and 65535")
    if args.pass_interval < 0:
        parser.error("--pass-interval must be 0 or more")
    secret = os.environ.get("LOOM_METADATA_SECRET", "")
    if args.metadata_secret_file:
        with open(args.metadata_secret_file) as f:
            secret = f.read().strip()
    if args.metadata_listen and not secret:
        parser.error("--metadata-listen needs a secret: --metadata-secret-file or LOOM_METADATA_SECRET")
    metadata_url = args.metadata_url or (f"http://{args.metadata_listen}" if args.metadata_listen else "")
    return ControllerConfig(
        listen=args.listen,
        db_path=args.db_path,
        underlay_mtu=args.underlay_mtu,
        vni_range=args.vni_range,
        log_level=args.log_level,
        workers=args.workers,
        event_retention=args.event_retention,
        ready_file=args.ready_file,
        dns_domain=args.dns_domain,
        metadata_url=metadata_url,
        metadata_listen=args.metadata_listen,
        metadata_secret=secret,
        gateway_preempt=args.gateway_preempt,
        pass_interval=args.pass_interval,
        image_dir=args.image_dir,
        volume_dir=args.volume_dir,
    )
