"""``loomctl instance create|list|show|update|delete|start|stop|reboot|migrate|console``, ``loomctl hypervisor``."""

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
    ("TASK", lambda i: i.task_state),
    ("POWER", lambda i: i.power_state),
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
            ("task_state", i.task_state),
            ("power_state", i.power_state),
            ("fault", i.fault),
            ("image_id", i.image_id),
            ("flavor", f"{i.flavor.vcpus} vCPUs, {i.flavor.ram_mb} MiB, {i.flavor.disk_gb} GiB" if i.image_id else ""),
            ("ports", Lines(i.ports)),
            ("volumes", Lines(i.volumes)),
            ("launched_at", timestamp(i.launched_at)),
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
    if args.image:
        instance.image_id = cli.resolve("image", args.image)
        instance.flavor.CopyFrom(resources_pb2.Flavor(vcpus=args.vcpus, ram_mb=args.ram, disk_gb=args.disk))
    for net in args.network or []:
        instance.networks.add(network_id=cli.resolve("network", net))
    for port in args.port or []:
        instance.networks.add(port_id=cli.resolve("port", port))
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


def _action(name: str, request: type) -> object:
    def handler(args: argparse.Namespace, cli: Cli) -> int:
        fields = {"id": cli.resolve("instance", args.instance)}
        if name == "RebootInstance":
            fields["hard"] = args.hard
        if name == "MigrateInstance":
            fields["host"] = args.host or ""
        show(cli, getattr(cli.compute, name)(request(**fields), timeout=cli.timeout))
        return 0

    return handler


def console(args: argparse.Namespace, cli: Cli) -> int:
    request = compute_pb2.GetConsoleOutputRequest(id=cli.resolve("instance", args.instance), length=args.lines)
    out = cli.compute.GetConsoleOutput(request, timeout=cli.timeout)
    if cli.json:
        print_json(out)
    else:
        print(out.output, end="" if out.output.endswith("\n") else "\n")
    return 0


def hypervisors(args: argparse.Namespace, cli: Cli) -> int:
    resp = cli.compute.ListHypervisors(compute_pb2.ListHypervisorsRequest(), timeout=cli.timeout)
    cli.print_list(
        list(resp.hypervisors),
        [
            ("HOST", lambda h: h.host),
            ("ALIVE", lambda h: h.alive),
            ("LIBVIRT", lambda h: "up" if h.hypervisor_up else f"down: {h.error}"),
            ("TYPE", lambda h: h.virt_type),
            ("VCPUS", lambda h: f"{h.vcpus_used}/{h.vcpus}"),
            ("MEMORY_MB", lambda h: f"{h.memory_mb_used}/{h.memory_mb}"),
            ("INSTANCES", lambda h: h.instances),
        ],
    )
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

    p = sub.add_parser("create", help="create an instance (with --image: boot it as a guest on a hypervisor)")
    p.add_argument("name")
    p.add_argument("--project", default="")
    _options(p)
    p.add_argument("--image", help="id or name of the root disk's image: Loom boots the instance")
    p.add_argument("--vcpus", type=int, default=1, help="flavor: vCPUs (default 1)")
    p.add_argument("--ram", type=int, default=512, help="flavor: MiB of RAM (default 512)")
    p.add_argument("--disk", type=int, default=0, help="flavor: GiB of root disk (default: the image's size)")
    p.add_argument("--network", action="append", help="a network to give it a new port on (repeat)")
    p.add_argument("--port", action="append", help="an existing port to give it (repeat)")
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

    p = sub.add_parser("delete", help="delete instances (a booted one: its guest, the ports it made, volumes detached)")
    p.add_argument("instances", nargs="+", metavar="instance", help="id or name")
    p.set_defaults(handler=delete)

    for name, rpc, request, help_text in (
        ("start", "StartInstance", compute_pb2.InstanceActionRequest, "power a stopped instance on"),
        ("stop", "StopInstance", compute_pb2.InstanceActionRequest, "shut down (ACPI, forced after a timeout)"),
        ("reboot", "RebootInstance", compute_pb2.RebootInstanceRequest, "reboot (--hard: power cycle)"),
        ("migrate", "MigrateInstance", compute_pb2.MigrateInstanceRequest, "move a stopped instance to another host"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("instance", help="id or name")
        if name == "reboot":
            p.add_argument("--hard", action="store_true")
        if name == "migrate":
            p.add_argument("--host", help="the target (default: the scheduler's choice)")
        p.set_defaults(handler=_action(rpc, request))

    p = sub.add_parser("console", help="the guest's serial console output, as its host last reported it")
    p.add_argument("instance", help="id or name")
    p.add_argument("--lines", type=int, default=0, help="only the last N lines")
    p.set_defaults(handler=console)


def configure_hypervisors(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)
    p = sub.add_parser("list", help="hypervisors: capacity, what is placed there, libvirtd's health")
    p.set_defaults(handler=hypervisors)


GROUPS = [
    CommandGroup("instance", "instances: compute guests, their metadata and user data", configure),
    CommandGroup("hypervisor", "hypervisors: what they have and what runs on them", configure_hypervisors),
]
