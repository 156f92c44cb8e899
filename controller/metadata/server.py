"""The metadata service (controller side): HTTP on ``host:port``, answering the namespace proxies.

``serve(source, secret, host, port)`` runs it in the foreground; ``MetadataServer`` runs it on a thread of
its own (tests, or inside the controller process); ``start_server`` serves on the running event loop.
Requests are refused with 403 unless signed by a proxy holding ``secret`` for an instance whose port owns
the forwarded address (see ``controller.metadata.auth``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

from dataplane.common.logs import get_logger

from . import auth
from .content import Reply, render
from .http import HttpProtocol, Request, Response, close_idle
from .source import MetadataSource

log = get_logger(__name__)

DEFAULT_PORT = 8775


class MetadataApp:
    """Request -> response: identify the caller, then render the path for it."""

    def __init__(self, source: MetadataSource, secret: bytes | str) -> None:
        self.source = source
        self.secret = secret.encode() if isinstance(secret, str) else secret

    def __call__(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"Method Not Allowed\n")
        caller = auth.identify(request.headers, self.secret, self.source)
        if isinstance(caller, auth.Denied):
            log.warning(
                "metadata request refused",
                status=caller.status,
                reason=caller.reason,
                instance_id=request.headers.get(auth.HEADER_INSTANCE, ""),
                forwarded_for=request.headers.get(auth.HEADER_FORWARDED_FOR, ""),
                path=request.path,
            )
            return Response(caller.status, (caller.reason + "\n").encode())
        reply: Reply = render(request.path, caller, self.source)
        return Response(reply.status, reply.body, reply.content_type)


@dataclass(slots=True)
class RunningService:
    """A listening metadata service on the current event loop."""

    server: asyncio.Server
    connections: set[HttpProtocol]
    sweeper: asyncio.Task[None]

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    def close(self) -> None:
        """Stop listening and drop open connections."""
        self.sweeper.cancel()
        for connection in list(self.connections):
            connection.close()
        self.server.close()


async def start_server(
    source: MetadataSource,
    secret: bytes | str,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    reuse_port: bool = False,
) -> RunningService:
    """Listen and serve on the running loop (idle connections are closed after a while)."""
    app = MetadataApp(source, secret)
    connections: set[HttpProtocol] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpProtocol(app, connections), host, port, reuse_port=reuse_port, backlog=1024
    )
    running = RunningService(server, connections, loop.create_task(close_idle(connections)))
    host, bound_port = running.address
    log.info("metadata service listening", address=f"{host}:{bound_port}")
    return running


def serve(source: MetadataSource, secret: bytes | str, host: str = "0.0.0.0", port: int = DEFAULT_PORT) -> None:
    """Run the metadata service in the foreground until interrupted."""

    async def main() -> None:
        running = await start_server(source, secret, host, port)
        try:
            await running.server.serve_forever()
        finally:
            running.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


class MetadataServer:
    """The metadata service on a background thread with its own event loop."""

    def __init__(self, source: MetadataSource, secret: bytes | str, host: str = "127.0.0.1", port: int = 0) -> None:
        self._source = source
        self._secret = secret
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: RunningService | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] = (host, port)

    def start(self) -> tuple[str, int]:
        """Start serving; returns the (host, port) it listens on."""
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._running = loop.run_until_complete(
                    start_server(self._source, self._secret, self._host, self._port)
                )
                self.address = self._running.address
            except BaseException as exc:
                errors.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="metadata-service", daemon=True)
        self._thread.start()
        started.wait()
        if errors:
            raise errors[0]
        return self.address

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def stop(self) -> None:
        loop, running = self._loop, self._running
        if loop is None or running is None:
            return

        def shutdown() -> None:
            running.close()
            loop.stop()

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._loop = None
        self._running = None
