"""``loomctl watch``: follow the controller's changes, optionally replaying from a revision."""

from __future__ import annotations

import argparse
import json
import sys

import grpc

from controller.api.convert import PRESENTED_KINDS
from controller.cli.client import Cli
from controller.cli.output import timestamp, to_dict
from controller.cli.registry import CommandGroup
from protos.loom.v1 import network_pb2


def _summary(ev: network_pb2.WatchEvent) -> str:
    obj = getattr(ev, ev.WhichOneof("object"))
    extra = []
    if getattr(obj, "name", ""):
        extra.append(f"name={obj.name}")
    if ev.kind == "port":
        extra.append(f"status={obj.status}")
        if obj.binding_failure_reason:
            extra.append(f"binding_failed={obj.binding_failure_reason!r}")
        done = [s.name for s in obj.stages if s.done]
        if done:
            extra.append(f"stages={','.join(done)}")
    if ev.kind == "subnet":
        extra.append(f"cidr={obj.cidr}")
    if ev.kind == "security_group_rule":
        extra.append(f"group={obj.security_group_id} {obj.direction} {obj.protocol or 'any'}")
    if ev.kind in ("instance", "volume", "image"):
        extra.append(f"status={obj.status}")
    if ev.kind == "instance" and obj.image_id:
        extra.extend(f"{k}={v}" for k, v in (("task", obj.task_state), ("host", obj.host), ("fault", obj.fault)) if v)
    return " ".join(extra)


def watch(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.WatchRequest(kinds=args.kind or [], id=args.id)
    if args.since is not None:
        request.since_revision = args.since
    stream = cli.network.Watch(request)
    try:
        for ev in stream:
            if cli.json:
                print(json.dumps(to_dict(ev), sort_keys=True), flush=True)
            else:
                kind_type = network_pb2.WatchEvent.Type.Name(ev.type)
                line = f"{ev.revision:>8}  {timestamp(ev.at)}  {kind_type:<7}  {ev.kind:<8}  {ev.id}  {_summary(ev)}"
                print(line.rstrip(), flush=True)
    except KeyboardInterrupt:
        stream.cancel()
        return 0
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:
            return 0
        raise
    except BrokenPipeError:  # `loomctl watch | head`
        sys.stderr.close()
        return 0
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=int, help="replay changes after this revision first (0: all retained)")
    parser.add_argument(
        "--kind",
        action="append",
        choices=list(PRESENTED_KINDS),
        help="only these kinds (repeat)",
    )
    parser.add_argument("--id", default="", help="only this object")
    parser.set_defaults(handler=watch)


GROUPS = [CommandGroup("watch", "follow changes as they are committed (Ctrl-C to stop)", configure)]
