"""Parsing helpers shared by loomctl commands (KEY=VALUE options, on/off flags, ranges)."""

from __future__ import annotations

import argparse


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (KEY, VALUE)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def key_values(text: str) -> dict[str, str]:
    """``a=1,b=2`` -> {"a": "1", "b": "2"}."""
    return dict(key_value(part) for part in text.split(",") if part)


def ip_range(text: str) -> tuple[str, str]:
    """``START-END`` (an allocation pool)."""
    start, sep, end = text.partition("-")
    if not sep or not start or not end:
        raise argparse.ArgumentTypeError(f"{text!r} is not START-END")
    return start, end


def route(text: str) -> tuple[str, str]:
    """``DESTINATION,NEXTHOP`` (a host route)."""
    destination, sep, nexthop = text.partition(",")
    if not sep or not destination or not nexthop:
        raise argparse.ArgumentTypeError(f"{text!r} is not DESTINATION,NEXTHOP")
    return destination, nexthop


def add_toggle(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """``--NAME`` / ``--no-NAME``, leaving the value None when neither is given."""
    parser.add_argument(f"--{name}", dest=name.replace("-", "_"), action=argparse.BooleanOptionalAction, help=help)
