"""``loomctl image upload|list|show|delete|download``: disk images, streamed to and from the ImageService."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator

from controller.cli.args import key_value
from controller.cli.client import Cli, CliError
from controller.cli.output import print_fields, print_json, timestamp
from controller.cli.registry import CommandGroup, subcommands
from protos.loom.v1 import image_pb2, network_pb2, resources_pb2

CHUNK = 1 << 20

COLUMNS = [
    ("ID", lambda i: i.id),
    ("NAME", lambda i: i.name),
    ("FORMAT", lambda i: i.disk_format),
    ("SIZE", lambda i: i.size),
    ("VIRTUAL_SIZE", lambda i: i.virtual_size),
    ("STATUS", lambda i: i.status),
    ("SHA256", lambda i: i.sha256[:16]),
]


def show(cli: Cli, i: resources_pb2.Image) -> None:
    if cli.json:
        print_json(i)
        return
    print_fields(
        [
            ("id", i.id),
            ("name", i.name),
            ("disk_format", i.disk_format),
            ("container_format", i.container_format),
            ("size", i.size),
            ("virtual_size", i.virtual_size),
            ("sha256", i.sha256),
            ("status", i.status),
            ("min_disk", i.min_disk),
            ("min_ram", i.min_ram),
            ("properties", ", ".join(f"{k}={v}" for k, v in sorted(i.properties.items()))),
            ("created_at", timestamp(i.created_at)),
        ]
    )


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def upload(args: argparse.Namespace, cli: Cli) -> int:
    try:
        size = os.path.getsize(args.file)
        digest = _digest(args.file)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    props = dict(args.property or [])
    for option, key in ((args.kernel, "kernel_id"), (args.ramdisk, "ramdisk_id")):
        if option:
            props[key] = cli.resolve("image", option)
    if args.cmdline:
        props["os_command_line"] = args.cmdline
    image = resources_pb2.Image(
        name=args.name or os.path.basename(args.file),
        disk_format=args.disk_format,
        size=size,  # the server checks both: a cut-off or corrupted upload is refused
        sha256=digest,
        min_disk=args.min_disk,
        min_ram=args.min_ram,
        properties=props,
    )

    def parts() -> Iterator[image_pb2.UploadImageRequest]:
        yield image_pb2.UploadImageRequest(image=image)
        with open(args.file, "rb") as f:
            while chunk := f.read(CHUNK):
                yield image_pb2.UploadImageRequest(data=chunk)

    show(cli, cli.images.UploadImage(parts(), timeout=max(cli.timeout, 3600)))
    return 0


def list_(args: argparse.Namespace, cli: Cli) -> int:
    request = image_pb2.ListImagesRequest(name=args.name)
    cli.print_list(list(cli.list_all(cli.images.ListImages, request, "images")), COLUMNS)
    return 0


def show_(args: argparse.Namespace, cli: Cli) -> int:
    show(cli, cli.images.GetImage(network_pb2.GetRequest(id=cli.resolve("image", args.image)), timeout=cli.timeout))
    return 0


def delete(args: argparse.Namespace, cli: Cli) -> int:
    cli.delete_each("image", cli.images.DeleteImage, args.images)
    return 0


def download(args: argparse.Namespace, cli: Cli) -> int:
    request = network_pb2.GetRequest(id=cli.resolve("image", args.image))
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    try:
        for chunk in cli.images.DownloadImage(request, timeout=max(cli.timeout, 3600)):
            out.write(chunk.data)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    sub = subcommands(parser)
    p = sub.add_parser("upload", help="upload a disk image (its size and SHA-256 are sent and checked)")
    p.add_argument("file")
    p.add_argument("--name", default="")
    p.add_argument("--disk-format", required=True, choices=("raw", "qcow2", "aki", "ari"))
    p.add_argument("--kernel", help="AMI-style boot: the kernel image (aki) to boot with this disk")
    p.add_argument("--ramdisk", help="AMI-style boot: the ramdisk image (ari)")
    p.add_argument("--cmdline", help="AMI-style boot: the kernel command line (os_command_line)")
    p.add_argument("--min-disk", type=int, default=0, help="GiB a flavor's disk must have")
    p.add_argument("--min-ram", type=int, default=0, help="MiB a flavor must have")
    p.add_argument("--property", action="append", type=key_value, metavar="KEY=VALUE")
    p.set_defaults(handler=upload)

    p = sub.add_parser("list", help="list images")
    p.add_argument("--name", default="")
    p.set_defaults(handler=list_)

    p = sub.add_parser("show", help="show one image")
    p.add_argument("image", help="id or name")
    p.set_defaults(handler=show_)

    p = sub.add_parser("delete", help="delete images (refused while in use)")
    p.add_argument("images", nargs="+", metavar="image", help="id or name")
    p.set_defaults(handler=delete)

    p = sub.add_parser("download", help="write an image's bytes to a file (- for stdout)")
    p.add_argument("image", help="id or name")
    p.add_argument("-o", "--output", default="-")
    p.set_defaults(handler=download)


GROUPS = [CommandGroup("image", "images: disk images for instances and volumes", configure)]
