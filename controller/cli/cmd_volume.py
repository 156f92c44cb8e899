"""``loomctl volume create|list|show|delete|attach|detach``: block devices on the volume backend."""

from __future__ import annotations

import argparse

from controller.cli.client import Cli
from controller.cli.output import print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import network_pb2, resources_pb2, volume_pb2

COLUMNS = [
    ("ID", lambda v: v.id),
    ("NAME", lambda v: v.name),
    ("SIZE_GB", lambda v: v.size_gb),
    ("STATUS", lambda v: v.status),
    ("INSTANCE", lambda v: v.instance_id),
    ("DEVICE", lambda v: v.device),
]


def show(cli: Cli, v: resources_pb2.Volume) -> None:
    if cli.json:
        print_json(v)
        return
    print_fields(
        [
            ("id", v.id),
            ("name", v.name),
            ("size_gb", v.size_gb),
            ("status", v.status),
            ("instance_id", v.instance_id),
            ("device", v.device),
            ("image_id", v.image_id),
            ("backend", v.backend),
            ("fault", v.fault),
            ("created_at", timestamp(v.created_at)),
        ]
    )


def create(args: argparse.Namespace, cli: Cli) -> int:
    image_id = cli.resolve("image", args.image) if args.image else ""
    vol = resources_pb2.Volume(name=args.name, size_gb=args.size, image_id=image_id)
    show(cli, cli.volumes.CreateVolume(volume_pb2.CreateVolumeRequest(volume=vol), timeout=max(cli.timeout, 600)))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = volume_pb2.ListVolumesRequest(name=args.name)
    cli.print_list(list(cli.list_all(cli.volumes.ListVolumes, request, "volumes")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(cli, cli.volumes.GetVolume(network_pb2.GetRequest(id=cli.resolve("volume", args.volume)), timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("volume", cli.volumes.DeleteVolume, args.volumes)
    return 0


def attach(args: argparse.Namespace, cli: Cli) -> int:
    request = volume_pb2.AttachVolumeRequest(
        volume_id=cli.resolve("volume", args.volume), instance_id=cli.resolve("instance", args.instance)
    )
    show(cli, cli.volumes.AttachVolume(request, timeout=cli.timeout))
    return 0


def detach(args: argparse.Namespace, cli: Cli) -> int:
    request = volume_pb2.DetachVolumeRequest(volume_id=cli.resolve("volume", args.volume))
    show(cli, cli.volumes.DetachVolume(request, timeout=cli.timeout))
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)
    p = sub.add_parser("create", help="create a volume (blank, or a copy of an image)")
    p.add_argument("name", nargs="?", default="")
    p.add_argument("--size", type=int, default=0, help="GiB (default with --image: the image's size)")
    p.add_argument("--image", help="id or name of an image to copy in")
    p.set_defaults(handler=create)

    p = sub.add_parser("list", help="list volumes")
    p.add_argument("--name", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one volume")
    p.add_argument("volume", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("delete", help="delete available volumes")
    p.add_argument("volumes", nargs="+", metavar="volume", help="id or name")
    p.set_defaults(handler=delete)

    p = sub.add_parser("attach", help="attach a volume to an instance (hot-plugged when it runs)")
    p.add_argument("volume", help="id or name")
    p.add_argument("instance", help="id or name")
    p.set_defaults(handler=attach)

    p = sub.add_parser("detach", help="detach a volume from its instance")
    p.add_argument("volume", help="id or name")
    p.set_defaults(handler=detach)


GROUPS = [CommandGroup("volume", "volumes: block devices attached to instances", configure)]
