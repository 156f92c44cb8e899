"""The ``loomctl`` entry point: global options, the discovered command groups, error reporting."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import grpc

from controller.cli.client import Cli, CliError
from controller.cli.registry import discover
from controller.config import DEFAULT_LISTEN


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loomctl", description="Command-line client of the Loom controller.")
    parser.add_argument(
        "--server",
        default=os.environ.get("LOOM_SERVER", DEFAULT_LISTEN),
        help="controller address, host:port (default: $LOOM_SERVER or %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each call")
    groups = parser.add_subparsers(dest="group", metavar="GROUP")
    groups.required = True
    for group in discover():
        group.configure(groups.add_parser(group.name, help=group.help, description=group.help))
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    cli = Cli(server=args.server, json=args.json, timeout=args.timeout)
    try:
        status = args.handler(args, cli)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        status = 1
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        cli.close()
    sys.exit(status)
