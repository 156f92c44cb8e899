"""Keep-alive connections from the proxy to the metadata service, shared by every network it serves.

Each connection carries one request at a time. ``UpstreamPool.request`` returns a future, so a client
connection can wait for its answer through a callback instead of a task of its own: the proxy runs a
handful of Python calls per request, which is what lets one process serve thousands of requests a second.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from .http import HttpError, HttpResponse, ResponseParser

MAX_IDLE = 64
TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> UpstreamAddress:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"metadata service URL must be http://host[:port]: {url!r}")
        return cls(parts.hostname, parts.port or 80)

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True)
class _Exchange:
    request: bytes
    head_only: bool
    retry_safe: bool  # may be sent again if a reused connection turns out to be closed
    future: asyncio.Future[HttpResponse]


class _UpstreamConnection(asyncio.Protocol):
    """One connection to the service; the pool hands it one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._transport: asyncio.Transport | None = None
        self._exchange: _Exchange | None = None
        self._parser: ResponseParser | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.reused = False

    @property
    def usable(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def send(self, exchange: _Exchange) -> None:
        assert self._transport is not None and self._exchange is None
        self._exchange = exchange
        self._parser = ResponseParser(exchange.head_only)
        self._timer = asyncio.get_running_loop().call_later(self._pool.timeout, self._timed_out)
        self._transport.write(exchange.request)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            self.close()  # nothing asked: a confused server
            return
        try:
            response = self._parser.feed(data)
        except (HttpError, ValueError):
            self._fail(HttpError(502, "bad response from the metadata service"))
            return
        if response is not None:
            self._complete(response)

    def eof_received(self) -> bool:
        if self._parser is not None:
            response = self._parser.eof()
            if response is not None:
                self._complete(response)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._pool.forget(self)
        if self._exchange is not None:
            exchange, started = self._exchange, self._parser is not None and self._parser.started
            self._clear()
            if self.reused and exchange.retry_safe and not started:
                # The service closed an idle connection just as we reused it: send again on a new one.
                exchange.retry_safe = False
                self._pool.dispatch(exchange)
            elif not exchange.future.done():
                exchange.future.set_exception(HttpError(502, "metadata service connection failed"))

    def _complete(self, response: HttpResponse) -> None:
        assert self._exchange is not None
        future = self._exchange.future
        self._clear()
        if response.keep_alive and self.usable:
            self._pool.release(self)
        else:
            self.close()
        if not future.done():
            future.set_result(response)

    def _fail(self, error: HttpError) -> None:
        exchange = self._exchange
        self._clear()
        self.close()
        if exchange is not None and not exchange.future.done():
            exchange.future.set_exception(error)

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(HttpError(504, "metadata service timed out"))

    def _clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._exchange = None
        self._parser = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class UpstreamPool:
    """Hands requests to idle connections (LIFO, so few stay warm), opening new ones when none is idle."""

    def __init__(self, address: UpstreamAddress, timeout: float = TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self._idle: list[_UpstreamConnection] = []
        self._connecting: set[asyncio.Task[None]] = set()

    def request(self, request: bytes, head_only: bool, retry_safe: bool) -> asyncio.Future[HttpResponse]:
        """Send ``request`` (complete bytes); the future gets the response or an ``HttpError``."""
        future: asyncio.Future[HttpResponse] = asyncio.get_running_loop().create_future()
        self.dispatch(_Exchange(request, head_only, retry_safe, future))
        return future

    def dispatch(self, exchange: _Exchange) -> None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                connection.reused = True
                connection.send(exchange)
                return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(exchange))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(self, exchange: _Exchange) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                _, connection = await loop.create_connection(
                    lambda: _UpstreamConnection(self), self.address.host, self.address.port
                )
        except (OSError, TimeoutError):
            if not exchange.future.done():
                exchange.future.set_exception(HttpError(502, "metadata service unreachable"))
            return
        if exchange.future.done():  # the client went away meanwhile
            self.release(connection)
            return
        connection.send(exchange)

    def release(self, connection: _UpstreamConnection) -> None:
        if len(self._idle) < MAX_IDLE:
            self._idle.append(connection)
        else:
            connection.close()

    def forget(self, connection: _UpstreamConnection) -> None:
        if connection in self._idle:
            self._idle.remove(connection)

    def close(self) -> None:
        for task in self._connecting:
            task.cancel()
        for connection in self._idle:
            connection.close()
        self._idle.clear()
