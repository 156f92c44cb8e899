"""Command groups of loomctl, and how they are found.

A command group is a top-level word (``network``, ``port``, ``watch``...). Its
``configure`` adds the group's arguments or subcommands to the parser given;
every runnable parser sets ``handler`` with ``set_defaults(handler=fn)``,
where ``fn(args, cli) -> int`` returns the exit status. A module named
``controller/cli/cmd_<something>.py`` exposing ``GROUPS`` is picked up
automatically, so other parts of Loom add commands (``vif``, ``agent``,
``trace``) by adding a module.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.cli.client import Cli

Handler = Callable[[argparse.Namespace, "Cli"], int]


@dataclass(frozen=True, slots=True)
class CommandGroup:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]


def discover() -> list[CommandGroup]:
    """Every group of every ``controller.cli.cmd_*`` module, sorted by name."""
    import controller.cli as package

    groups: dict[str, CommandGroup] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("cmd_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for group in getattr(module, "GROUPS", ()):
            if group.name in groups:
                raise RuntimeError(f"loomctl command group {group.name!r} is defined twice")
            groups[group.name] = group
    return [groups[name] for name in sorted(groups)]


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommand slot of a group's parser (``loomctl network <create|list|...>``)."""
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    return sub
