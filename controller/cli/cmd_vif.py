"""``loomctl vif plug|unplug``: plug a VIF into this host's br-int (the library is vif/).

Run it on the hypervisor. With only ``--port-id``, the port's MAC, MTU and
OpenFlow port number come from the controller loomctl talks to.
"""

from __future__ import annotations

import argparse

from controller.cli.client import Cli
from controller.cli.registry import CommandGroup
from vif import cli as vif_cli


def run(args: argparse.Namespace, cli: Cli) -> int:
    if args.vif_command == "plug" and args.controller is None and not args.mac:
        args.controller = cli.server
    args.as_json = getattr(args, "as_json", False) or cli.json
    return vif_cli.run(args)


def configure(parser: argparse.ArgumentParser) -> None:
    vif_cli.add_arguments(parser)
    parser.set_defaults(handler=run)


GROUPS = [CommandGroup("vif", "plug and unplug VIFs on this hypervisor's br-int", configure)]
