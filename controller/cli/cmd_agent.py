"""``loomctl agent list`` and ``loomctl host flows HOST``: the hypervisors and what was compiled for them."""

from __future__ import annotations

import argparse
import time

from controller.cli.client import Cli
from controller.cli.output import print_json, print_table, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2


def list_agents(args: argparse.Namespace, cli: Cli) -> int:
    resp = cli.network.ListAgents(network_pb2.ListAgentsRequest(), timeout=cli.timeout)
    if cli.json:
        print_json(resp.agents)
        return 0
    now = time.time()
    print_table(
        resp.agents,
        [
            ("HOST", lambda a: a.host),
            ("TUNNEL_IP", lambda a: a.tunnel_ip),
            ("DATAPATH", lambda a: a.datapath_type),
            ("ALIVE", lambda a: a.alive),
            ("SEEN", lambda a: f"{now - a.last_seen:.0f}s ago" if a.last_seen else "never"),
            ("APPLIED/COMPILED", lambda a: f"{a.applied_revision}/{a.host_revision}"),
            ("FLOWS", lambda a: a.flows),
            ("VERSION", lambda a: a.version),
        ],
    )
    return 0


def host_flows(args: argparse.Namespace, cli: Cli) -> int:
    resp = cli.network.GetHostFlows(network_pb2.GetHostFlowsRequest(host=args.host), timeout=cli.timeout)
    if cli.json:
        print_json(resp)
        return 0
    print(f"# {len(resp.flows)} flows compiled for {args.host} at revision {resp.revision} ({timestamp(time.time())})")
    for flow in resp.flows:
        print(f"{flow.text}  # {flow.owner}")
    return 0


def configure_agent(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)
    p = sub.add_parser("list", help="the hypervisor agents and whether they are alive")
    p.set_defaults(handler=list_agents)


def configure_host(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)
    p = sub.add_parser("flows", help="the flows the controller compiled for a host, each with its owner")
    p.add_argument("host")
    p.set_defaults(handler=host_flows)


GROUPS = [
    CommandGroup("agent", "hypervisor agents", configure_agent),
    CommandGroup("host", "what the controller compiled for a hypervisor", configure_host),
]
