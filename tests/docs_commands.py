"""The shell commands README.md and docs/*.md show, read the way the tests that run them need.

A block is marked by an HTML comment on the line before its opening fence:
``<!-- tested: ... -->`` (every line is run on a lab) or ``<!-- parsed: ...
-->`` (daemon command lines, checked against their own parsers). Lines are
joined across trailing backslashes; blank lines and ``#`` comments are
skipped. The docs use the default lab's names (prefix ``lab``, management
network 198.18.0.0/24); :func:`localise` rewrites them for another lab.
"""

from __future__ import annotations

import re
from pathlib import Path

from lab.mininet.config import DEFAULT_MGMT_CIDR, LabConfig

ROOT = Path(__file__).resolve().parents[1]
TESTED = "<!-- tested:"
PARSED = "<!-- parsed:"

_DEFAULT = LabConfig(mgmt_cidr=DEFAULT_MGMT_CIDR)


def marked_blocks(path: Path, marker: str) -> list[list[str]]:
    """The commands of every fenced block that follows a ``marker`` comment in ``path``."""
    lines = path.read_text().splitlines()
    blocks: list[list[str]] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip().startswith(marker):
            i += 1
            continue
        fence = i + 1
        if fence >= len(lines) or not lines[fence].startswith("```"):
            raise ValueError(f"{path}:{i + 1}: the marker is not followed by a fenced block")
        block: list[str] = []
        pending = ""
        j = fence + 1
        while not lines[j].startswith("```"):
            text = lines[j].rstrip()
            j += 1
            if text.endswith("\\"):
                pending += text[:-1].rstrip() + " "
                continue
            command = (pending + text.strip()).strip()
            pending = ""
            if command and not command.startswith("#"):
                block.append(command)
        blocks.append(block)
        i = j + 1
    return blocks


def localise(command: str, config: LabConfig) -> str:
    """``command`` as written for the default lab, with ``config``'s names, addresses and paths instead."""
    out = command.replace(_DEFAULT.controller_ip, config.controller_ip)
    out = out.replace(_DEFAULT.state_dir + "/", config.state_dir + "/")
    out = re.sub(rf"\b{_DEFAULT.prefix}hv(\d)", rf"{config.prefix}hv\1", out)
    return re.sub(rf"(?<![\w/.-]){_DEFAULT.prefix}-(?=\w)", f"{config.prefix}-", out)
