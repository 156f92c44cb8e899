"""HTTP/1.1 framing for the metadata proxy, parsed straight from connection buffers (no stream objects).

Requests from guests carry Content-Length bodies at most; responses from the metadata service are framed by
Content-Length, chunked encoding, or the end of the connection. Keep-alive and pipelining both work.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

MAX_HEAD_BYTES = 32 * 1024
MAX_REQUEST_BODY = 1 << 20
MAX_RESPONSE_BODY = 16 << 20

# Never relayed in either direction: they describe one connection, not the message.
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "content-length")
)


class HttpError(Exception):
    """A message we cannot handle; ``status`` is the answer to give."""

    def __init__(self, status: int, text: str = "") -> None:
        super().__init__(text or HTTPStatus(status).phrase)
        self.status = status


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # (lower-case name, value), in order
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return _keep_alive(self.version, self.header("connection"))

    def header(self, name: str) -> str:
        return ", ".join(value for key, value in self.headers if key == name)


@dataclass(slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # (lower-case name, value)
    body: bytes
    keep_alive: bool  # the server keeps the connection open


def _keep_alive(version: str, connection: str) -> bool:
    connection = connection.lower()
    return "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection


def _split_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400)
        headers.append((name.lower(), value.strip()))
    return first, headers


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    values = {v for k, v in headers if k == "content-length"}
    if not values:
        return None
    if len(values) > 1 or not next(iter(values)).isdigit():
        raise HttpError(400)
    return int(next(iter(values)))


def parse_request(buffer: bytearray) -> tuple[HttpRequest, int] | None:
    """The first complete request in ``buffer`` and how many bytes it used; None while incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise HttpError(431)
        return None
    request_line, headers = _split_head(bytes(buffer[:end]))
    try:
        method, target, version = request_line.split(" ")
    except ValueError:
        raise HttpError(400) from None
    if not version.startswith("HTTP/1."):
        raise HttpError(505)
    if any(k == "transfer-encoding" for k, _ in headers):
        raise HttpError(411)  # no chunked uploads: nothing here takes a body
    length = _content_length(headers) or 0
    if length > MAX_REQUEST_BODY:
        raise HttpError(413)
    start = end + 4
    if len(buffer) < start + length:
        return None
    return HttpRequest(method, target, version, headers, bytes(buffer[start : start + length])), start + length


class ResponseParser:
    """Incremental parser for one response on an upstream connection."""

    __slots__ = ("_body", "_body_size", "_buffer", "_chunk_left", "_head_only", "_response", "_state")

    def __init__(self, head_only: bool) -> None:
        self._head_only = head_only
        self._buffer = bytearray()
        self._state = "head"  # head | length | chunk-size | chunk-data | chunk-end | trailer | close | done
        self._response: HttpResponse | None = None
        self._body: list[bytes] = []
        self._body_size = 0
        self._chunk_left = 0

    @property
    def started(self) -> bool:
        return self._state != "head" or bool(self._buffer)

    def feed(self, data: bytes) -> HttpResponse | None:
        """Consume ``data``; the response once it is complete, else None."""
        self._buffer += data
        while True:
            if self._state == "head":
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEAD_BYTES:
                        raise HttpError(502)
                    return None
                self._start(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
            elif self._state == "length":
                if len(self._buffer) < self._chunk_left:
                    return None
                self._body.append(bytes(self._buffer[: self._chunk_left]))
                del self._buffer[: self._chunk_left]
                return self._finish()
            elif self._state in ("chunk-size", "chunk-end", "trailer"):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return None
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                if self._state == "chunk-end":
                    self._state = "chunk-size"
                elif self._state == "trailer":
                    if not line:
                        return self._finish()
                else:
                    self._chunk_left = int(line.split(b";", 1)[0].strip() or b"0", 16)
                    self._state = "chunk-data" if self._chunk_left else "trailer"
            elif self._state == "chunk-data":
                if len(self._buffer) < self._chunk_left:
                    return None
                self._add_body(bytes(self._buffer[: self._chunk_left]))
                del self._buffer[: self._chunk_left]
                self._state = "chunk-end"
            elif self._state == "close":
                self._add_body(bytes(self._buffer))
                self._buffer.clear()
                return None
            else:
                return self._response

    def eof(self) -> HttpResponse | None:
        """The connection ended: a response framed by its end is now complete; anything else is cut short."""
        return self._finish() if self._state == "close" else None

    def _start(self, head: bytes) -> None:
        status_line, headers = _split_head(head)
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise HttpError(502)
        status = int(code)
        keep_alive = _keep_alive(version, ",".join(v for k, v in headers if k == "connection"))
        self._response = HttpResponse(status, reason, headers, b"", keep_alive)
        length = _content_length(headers)
        if self._head_only or status in (204, 304) or 100 <= status < 200:
            self._state, self._chunk_left = "length", 0
        elif any(k == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
            self._state = "chunk-size"
        elif length is None:
            self._state = "close"
            self._response.keep_alive = False
        elif length > MAX_RESPONSE_BODY:
            raise HttpError(502)
        else:
            self._state, self._chunk_left = "length", length

    def _add_body(self, data: bytes) -> None:
        self._body.append(data)
        self._body_size += len(data)
        if self._body_size > MAX_RESPONSE_BODY:
            raise HttpError(502)

    def _finish(self) -> HttpResponse:
        assert self._response is not None
        self._response.body = b"".join(self._body)
        if len(self._response.body) > MAX_RESPONSE_BODY:
            raise HttpError(502)
        self._state = "done"
        return self._response


def encode_response(response: HttpResponse, keep_alive: bool, head_only: bool) -> bytes:
    """The response for the client, with our own framing (Content-Length, Connection)."""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines.extend(f"{name}: {value}" for name, value in response.headers if name not in HOP_BY_HOP)
    length = len(response.body)
    if head_only:
        # The answer to HEAD has no body but tells the length the GET would have.
        length = next((int(v) for k, v in response.headers if k == "content-length" and v.isdigit()), length)
    lines.append(f"content-length: {length}")
    if not keep_alive:
        lines.append("connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def simple_response(status: int, keep_alive: bool, text: str = "") -> bytes:
    body = ((text or HTTPStatus(status).phrase) + "\n").encode()
    response = HttpResponse(
        status, HTTPStatus(status).phrase, [("content-type", "text/plain; charset=utf-8")], body, True
    )
    return encode_response(response, keep_alive, head_only=False)
