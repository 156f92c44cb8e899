"""``loomctl instance create|list|show|update|delete``."""

from __future__ import annotations

import argparse
from pathlib import Path

from google.protobuf.field_mask_pb2 import FieldMask

from controller.cli.args import key_value
from controller.cli.client import Cli, CliError
from controller.cli.output import Lines, print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import compute_pb2, network_pb2, resources_pb2

COLUMNS = [
    ("ID", lambda i: i.id),
    ("NAME", lambda i: i.name),
    ("HOSTNAME", lambda i: i.hostname),
    ("HOST", lambda i: i.host),
    ("PORTS", lambda i: len(i.ports)),
    ("STATUS", lambda i: i.status),
    ("TAG", lambda i: i.tag),
]


def show(cli: Cli, i: resources_pb2.Instance) -> None:
    if cli.json:
        print_json(i)
        return
    print_fields(
        [
            ("id", i.id),
            ("name", i.name),
            ("hostname", i.hostname),
            ("project_id", i.project_id),
            ("availability_zone", i.availability_zone),
            ("host", i.host),
            ("status", i.status),
            ("ports", Lines(i.ports)),
            ("public_keys", Lines(f"{name}: {key[:40]}..." for name, key in sorted(i.public_keys.items()))),
            ("metadata", Lines(f"{k}={v}" for k, v in sorted(i.metadata.items()))),
            ("user_data", f"{len(i.user_data)} bytes"),
            ("tag", i.tag),
            ("revision_number", i.revision_number),
            ("created_at", timestamp(i.created_at)),
            ("updated_at", timestamp(i.updated_at)),
        ]
    )


def _public_key(text: str) -> tuple[str, str]:
    """``NAME=KEY`` or ``NAME=@FILE``."""
    name, value = key_value(text)
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text().strip()
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {exc.strerror}") from None
    return name, value


def _user_data(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read user data {path}: {exc.strerror}") from None


def _apply(args: argparse.Namespace, instance: resources_pb2.Instance, paths: list[str]) -> None:
    for option, field in (("name", "name"), ("hostname", "hostname"), ("az", "availability_zone"), ("host", "host")):
        value = getattr(args, option, None)
        if value is not None:
            setattr(instance, field, value)
            paths.append(field)
    if args.user_data is not None:
        instance.user_data = _user_data(args.user_data)
        paths.append("user_data")
    if args.key:
        instance.public_keys.update(dict(args.key))
        paths.append("public_keys")
    if args.meta:
        instance.metadata.update(dict(args.meta))
        paths.append("metadata")


def create(args: argparse.Namespace, cli: Cli) -> int:
    instance = resources_pb2.Instance(project_id=args.project)
    _apply(args, instance, [])
    request = compute_pb2.CreateInstanceRequest(instance=instance)
    show(cli, cli.compute.CreateInstance(request, timeout=cli.timeout))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = compute_pb2.ListInstancesRequest(name=args.name, project_id=args.project, host=args.host)
    cli.print_list(list(cli.list_all(cli.compute.ListInstances, request, "instances")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.GetRequest(id=cli.resolve("instance", args.instance))
    show(cli, cli.compute.GetInstance(request, timeout=cli.timeout))
    return 0


def update(args: argparse.Namespace, cli: Cli) -> int:
    instance = resources_pb2.Instance(id=cli.resolve("instance", args.instance))
    paths: list[str] = []
    _apply(args, instance, paths)
    if args.no_keys:
        paths.append("public_keys")
    if args.no_meta:
        paths.append("metadata")
    request = compute_pb2.UpdateInstanceRequest(instance=instance, update_mask=FieldMask(paths=sorted(set(paths))))
    show(cli, cli.compute.UpdateInstance(request, timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("instance", cli.compute.DeleteInstance, args.instances)
    return 0


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hostname", help="DNS label (default: derived from the name)")
    p.add_argument("--user-data", metavar="FILE", help="user data, at most 64 KiB, served byte for byte")
    p.add_argument("--key", action="append", type=_public_key, metavar="NAME=KEY|NAME=@FILE", help="SSH public key")
    p.add_argument("--meta", action="append", type=key_value, metavar="KEY=VALUE", help="metadata item (repeat)")
    p.add_argument("--az", help="availability zone")
    p.add_argument("--host", help="hypervisor it runs on")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)

    p = sub.add_parser("create", help="create an instance")
    p.add_argument("name")
    p.add_argument("--project", default="")
    _options(p)
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list instances")
    p.add_argument("--name", default="")
    p.add_argument("--project", default="")
    p.add_argument("--host", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one instance")
    p.add_argument("instance", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("update", help="change an instance (keys and metadata are replaced as a whole)")
    p.add_argument("instance", help="id or name")
    p.add_argument("--name")
    _options(p)
    p.add_argument("--no-keys", action="store_true", help="remove every public key")
    p.add_argument("--no-meta", action="store_true", help="remove every metadata item")
    p.set_defaults(handler=update)

    p = sub.add_parser("delete", help="delete instances (their ports stay)")
    p.add_argument("instances", nargs="+", metavar="instance", help="id or name")
    p.set_defaults(handler=delete)


GROUPS = [CommandGroup("instance", "instances: compute guests, their metadata and user data", configure)]
