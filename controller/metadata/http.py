"""A small HTTP/1.1 server core for the metadata service: keep-alive, pipelining, Content-Length bodies.

The service answers small GETs from a few proxies holding pooled connections, so an ``asyncio.Protocol`` that
parses straight from its buffer (no task per request) is all it needs, and it is several times cheaper per
request than a stream- or thread-based server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import unquote

MAX_HEAD_BYTES = 32 * 1024
MAX_BODY_BYTES = 1 << 20
IDLE_TIMEOUT = 75.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # percent-decoded, without query string
    headers: dict[str, str]  # names lower-case; a repeated header keeps its values comma-joined
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[Request], Response]


class BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, headers) of a request head (without the blank line)."""
    try:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest(400) from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505)
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400)
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return method, target, version, headers


def encode_response(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    reason = HTTPStatus(response.status).phrase
    head = (
        f"HTTP/1.1 {response.status} {reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n" + ("" if keep_alive else "Connection: close\r\n") + "\r\n"
    ).encode("latin-1")
    return head if head_only else head + response.body


class HttpProtocol(asyncio.Protocol):
    """One connection: parse requests from the buffer, answer each with ``handler`` in order."""

    def __init__(self, handler: Handler, connections: set[HttpProtocol]) -> None:
        self._handler = handler
        self._connections = connections
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self.last_active = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        self._buffer += data
        while self._transport is not None and not self._transport.is_closing():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._fail(431)
                return
            try:
                method, target, version, headers = parse_head(bytes(self._buffer[:end]))
                if "transfer-encoding" in headers:
                    raise BadRequest(411)  # no chunked uploads: nothing here takes a body
                length_text = headers.get("content-length", "0")
                if not length_text.isdigit() or int(length_text) > MAX_BODY_BYTES:
                    raise BadRequest(413 if length_text.isdigit() else 400)
            except BadRequest as exc:
                self._fail(exc.status)
                return
            length = int(length_text)
            if len(self._buffer) < end + 4 + length:
                return  # the body is still on its way
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            connection = headers.get("connection", "").lower()
            keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
            path = unquote(target.split("?", 1)[0].split("#", 1)[0])
            response = self._handler(Request(method, path, headers, body))
            self._transport.write(encode_response(response, keep_alive, head_only=method == "HEAD"))
            if not keep_alive:
                self._transport.close()

    def _fail(self, status: int) -> None:
        assert self._transport is not None
        self._transport.write(encode_response(Response(status, HTTPStatus(status).phrase.encode()), False))
        self._transport.close()


async def close_idle(connections: set[HttpProtocol], idle_timeout: float = IDLE_TIMEOUT) -> None:
    """Close connections idle longer than ``idle_timeout`` (runs until cancelled)."""
    while True:
        await asyncio.sleep(min(10.0, idle_timeout))
        cutoff = time.monotonic() - idle_timeout
        for connection in [c for c in connections if c.last_active < cutoff]:
            connection.close()
