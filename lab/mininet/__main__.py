"""`python -m lab.mininet up|demo|clean`: run the lab by hand, run the demo, or remove what earlier runs left.

``up`` starts Loom on the lab (the controller in the root namespace, an agent
on every hypervisor) and prints how to use it (``lab.mininet.howto``);
``up --bare`` starts the hypervisors and their OVS only.

Subcommands are registered in ``SUBCOMMANDS`` (name -> help, argument adder,
runner), so another one (``demo``) is one entry more.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

from dataplane.common.logs import setup_logging
from lab.mininet.cleanup import clean
from lab.mininet.config import DEFAULT_MGMT_CIDR, LabConfig
from lab.mininet.howto import LabAddresses, bare_guide, loom_guide
from lab.mininet.lab import Lab


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every lab-starting subcommand shares."""
    parser.add_argument("--hypervisors", type=int, default=3, help="how many hypervisors (default 3)")
    parser.add_argument("--prefix", default="lab", help="name prefix of everything the lab creates (default lab)")
    parser.add_argument(
        "--mgmt-cidr",
        default=DEFAULT_MGMT_CIDR,
        help="management network; the controller listens on its last address but one (default %(default)s)",
    )


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    add_lab_arguments(parser)
    parser.add_argument("--bare", action="store_true", help="only the hypervisors and their OVS: no controller, agents")


def lab_config(args: argparse.Namespace) -> LabConfig:
    return LabConfig(hypervisors=args.hypervisors, prefix=args.prefix, mgmt_cidr=args.mgmt_cidr)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    add_lab_arguments(parser)
    parser.add_argument(
        "--no-guests", action="store_true", help="namespace VMs only (no libvirtd, no qemu guests through the API)"
    )


def describe(lab: Lab) -> str:
    """How to reach each hypervisor of a bare lab, for humans."""
    return bare_guide(LabAddresses(lab.config, tuple(lab.hypervisors)), lab.started_in or 0)


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    while not stop.wait(3600):
        pass


def run_up(args: argparse.Namespace) -> int:
    if args.bare:
        with Lab(config=lab_config(args)) as lab:
            print(describe(lab), flush=True)
            _wait_for_signal()
        return 0
    from lab.mininet.loom import LoomLab  # imports the controller's client stubs

    t0 = time.monotonic()
    with LoomLab(config=lab_config(args)) as loom:
        where = LabAddresses(loom.config, tuple(loom.hypervisors))
        print(loom_guide(where, time.monotonic() - t0), flush=True)
        _wait_for_signal()
        print("stopping: agents, controller, hypervisors, VMs", flush=True)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from lab.mininet.demo import run_demo as demo  # imports the controller's client stubs

    return demo(args.hypervisors, args.prefix, args.mgmt_cidr, guests=not args.no_guests)


def add_clean_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="lab", help="clean labs whose prefix starts with this (default lab)")
    parser.add_argument("--force", action="store_true", help="also remove labs whose owner process is alive")


def run_clean(args: argparse.Namespace) -> int:
    report = clean(args.prefix, force=args.force)
    print(
        f"removed {len(report.killed)} processes, {len(report.netns)} namespaces, {len(report.links)} links, "
        f"{len(report.state_dirs)} state dirs"
        + (f"; left running labs: {', '.join(report.skipped_live)}" if report.skipped_live else "")
    )
    return 0


Runner = Callable[[argparse.Namespace], int]
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Runner]] = {
    "up": ("start Loom on the lab and keep it running until Ctrl-C", add_up_arguments, run_up),
    "demo": ("Loom end to end on the lab: DHCP, metadata and a connectivity matrix", add_demo_arguments, run_demo),
    "clean": ("remove leftovers of earlier lab runs (only names with the lab prefix)", add_clean_arguments, run_clean),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.mininet", description="Loom's multi-hypervisor lab")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, runner) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_arguments(p)
        p.set_defaults(runner=runner)
    args = parser.parse_args(argv)
    setup_logging("lab")
    return args.runner(args)


if __name__ == "__main__":
    sys.exit(main())
