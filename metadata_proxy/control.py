"""The proxy's control socket: the agent asks it to reload and learns, in the answer, what it now serves.

Protocol: connect to the Unix socket, send one line (``reload`` or ``status``), read one JSON line back
(``MetadataProxy.status()``). The socket is root-only (mode 0600).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

from dataplane.common.logs import get_logger

from .proxy import MetadataProxy

log = get_logger(__name__)

COMMANDS = ("reload", "status")


async def start_control_server(proxy: MetadataProxy, path: Path) -> asyncio.Server:
    path.unlink(missing_ok=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            command = (await reader.readline()).decode(errors="replace").strip()
            if command == "reload":
                answer: dict[str, Any] = await proxy.reload()
            elif command == "status":
                answer = proxy.status()
            else:
                answer = {"error": f"unknown command {command!r}; expected one of {COMMANDS}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except Exception:
            log.exception("metadata proxy control request failed")
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, path=str(path))
    os.chmod(path, 0o600)
    return server


def control_request(path: Path, command: str, timeout: float = 5.0) -> dict[str, Any]:
    """Send ``command`` to the proxy listening on ``path``; raises OSError when it does not answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise OSError(f"bad answer from the metadata proxy: {data[:200]!r}") from exc
    if not isinstance(answer, dict) or "error" in answer:
        raise OSError(f"metadata proxy refused {command!r}: {answer}")
    return answer
