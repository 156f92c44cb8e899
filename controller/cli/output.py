"""loomctl output: aligned tables for people, JSON (the API's own field names) for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

Column = tuple[str, Callable[[Any], object]]  # header, value of a row


def to_dict(msg: Message) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def print_json(value: Message | Iterable[Message] | dict[str, Any], out: TextIO = sys.stdout) -> None:
    if isinstance(value, Message):
        data: Any = to_dict(value)
    elif isinstance(value, dict):
        data = value
    else:
        data = [to_dict(m) for m in value]
    json.dump(data, out, indent=2, sort_keys=True)
    out.write("\n")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    return str(value)


def print_table(rows: Iterable[Any], columns: Sequence[Column], out: TextIO = sys.stdout) -> None:
    """One line per row, columns padded to their widest cell (the last column is not padded)."""
    cells = [[h for h, _ in columns]]
    cells.extend([_cell(fn(row)) for _, fn in columns] for row in rows)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        padded = [c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)]
        out.write("  ".join([*padded, line[-1]]).rstrip() + "\n")


def timestamp(seconds: float) -> str:
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


class Lines(list[str]):
    """A field value shown one item per line."""


def print_fields(fields: Sequence[tuple[str, object]], out: TextIO = sys.stdout) -> None:
    """A two-column "field  value" listing of one object."""
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        if isinstance(value, Lines):
            first, *rest = value or [""]
            out.write(f"{name.ljust(width)}  {first}".rstrip() + "\n")
            for line in rest:
                out.write(f"{'':{width}}  {line}".rstrip() + "\n")
        else:
            out.write(f"{name.ljust(width)}  {_cell(value)}".rstrip() + "\n")
