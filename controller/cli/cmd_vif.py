"""``loomctl vif plug|unplug``: plug a VIF into this host's br-int (the library is vif/).

Run it on the hypervisor. With only ``--port-id`` (an id, or a port's name),
the port's MAC, MTU and OpenFlow port number come from the controller loomctl
talks to.
"""

from __future__ import annotations

import argparse

import grpc

from controller.cli.client import Cli, CliError
from controller.cli.registry import CommandGroup
from vif import cli as vif_cli


def run(args: argparse.Namespace, cli: Cli) -> int:
    if args.vif_command == "plug" and args.controller is None and not args.mac:
        args.controller = cli.server
    if args.vif_command == "plug" and args.controller == cli.server:
        # The VIF's iface-id must be the port's id; people know their ports by name.
        args.port_id = cli.resolve("port", args.port_id)
    elif args.vif_command == "unplug" and args.port_id:
        try:
            args.port_id = cli.resolve("port", args.port_id)
        except (grpc.RpcError, CliError):
            pass  # unplugging works without the controller (the port may be gone): take it as an id
    args.as_json = getattr(args, "as_json", False) or cli.json
    return vif_cli.run(args)


def configure(parser: argparse.ArgumentParser) -> None:
    vif_cli.add_arguments(parser)
    parser.set_defaults(handler=run)


GROUPS = [CommandGroup("vif", "plug and unplug VIFs on this hypervisor's br-int", configure)]
