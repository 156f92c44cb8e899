"""The metadata proxy: one event loop serving 169.254.169.254:80 in every network namespace of the host.

Each network's listening socket is created inside its namespace (``metadata_proxy.netns``) and served here,
so a connection's listener names its network and its peer address names the caller. A known caller's request
goes to the metadata service with the identity headers and the signature; an unknown caller gets 404 and
nothing is forwarded.

Configuration is one JSON file per network in ``<state>/networks/`` plus the shared secret in
``<state>/secret``, both written by the agent. ``reload()`` applies them (on the agent's control request, on
SIGHUP, and every ``RECHECK_SECONDS`` so that a namespace created or re-created later gets its listener).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataplane.common.logs import get_logger
from dataplane.common.netns import NetnsError
from dataplane.common.supervise import named_netns

from .http import HttpError, HttpRequest, HttpResponse, encode_response, parse_request, simple_response
from .model import MetadataIdentity, MetadataNetwork, network_from_json
from .netns import listen_in_netns
from .upstream import UpstreamAddress, UpstreamPool

log = get_logger(__name__)

RECHECK_SECONDS = 2.0
UNKNOWN_CALLER_LOG_INTERVAL = 60.0
# Forwarded from the guest's request; everything else (notably any X-Instance-*, X-Tenant-ID or
# X-Forwarded-For the guest made up) is dropped.
FORWARDED_REQUEST_HEADERS = frozenset(("accept", "accept-encoding", "user-agent", "content-type", "if-none-match"))


@dataclass(frozen=True, slots=True)
class _Caller:
    identity: MetadataIdentity
    headers: bytes  # the identity and signature headers, ready to send


@dataclass(slots=True)
class _NetworkState:
    network_id: str
    digest: str = ""
    config: MetadataNetwork | None = None
    callers: dict[str, _Caller] = field(default_factory=dict)
    server: asyncio.Server | None = None
    listen_key: tuple[Any, ...] = ()  # (namespace, namespace id, ip, port) the listener was made for
    error: str = ""


class MetadataProxy:
    """Serves every configured network; see the module docstring."""

    def __init__(self, state_dir: Path, upstream_url: str) -> None:
        self.state_dir = Path(state_dir)
        self.networks_dir = self.state_dir / "networks"
        self.secret_file = self.state_dir / "secret"
        self._upstream = UpstreamPool(UpstreamAddress.from_url(upstream_url))
        self._networks: dict[str, _NetworkState] = {}
        self._files: dict[str, tuple[tuple[int, int, int], str]] = {}  # file name -> (stat key, network id)
        self._secret = b""
        self._reload_lock = asyncio.Lock()
        self._recheck: asyncio.Task[None] | None = None
        self._unknown_logged: dict[tuple[str, str], float] = {}
        self.requests = 0

    async def start(self) -> None:
        await self.reload()
        self._recheck = asyncio.get_running_loop().create_task(self._recheck_forever())

    async def close(self) -> None:
        if self._recheck is not None:
            self._recheck.cancel()
        for state in self._networks.values():
            await self._close_listener(state)
        self._upstream.close()

    # ------------------------------------------------------------------ configuration

    async def reload(self) -> dict[str, Any]:
        """Apply the files on disk; returns ``status()``."""
        async with self._reload_lock:
            self._load_secret()
            seen: set[str] = set()
            paths = sorted(self.networks_dir.glob("*.json")) if self.networks_dir.is_dir() else []
            for name in set(self._files) - {p.name for p in paths}:
                del self._files[name]
            for path in paths:
                state = await self._reload_file(path)
                if state is not None:
                    seen.add(state.network_id)
            for network_id in [n for n in self._networks if n not in seen]:
                state = self._networks.pop(network_id)
                await self._close_listener(state)
                log.info("metadata network removed", network_id=network_id)
            return self.status()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "requests": self.requests,
            "networks": {
                network_id: {
                    "digest": state.digest,
                    "listening": state.server is not None,
                    "identities": len(state.callers),
                    "error": state.error,
                }
                for network_id, state in self._networks.items()
            },
        }

    def _load_secret(self) -> None:
        try:
            secret = self.secret_file.read_bytes().strip()
        except OSError as exc:
            log.error("metadata proxy secret unreadable", path=str(self.secret_file), error=str(exc))
            return
        if secret != self._secret:
            self._secret = secret
            for state in self._networks.values():
                state.callers = self._callers(state.config) if state.config else {}

    async def _reload_file(self, path: Path) -> _NetworkState | None:
        try:
            st = path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)  # the agent renames a new file in for every change
            known = self._files.get(path.name)
            state = self._networks.get(known[1]) if known is not None and known[0] == key else None
            if state is None:
                data = path.read_bytes()
                config = network_from_json(data)
                state = self._networks.setdefault(config.network_id, _NetworkState(config.network_id))
                digest = hashlib.sha256(data).hexdigest()
                if digest != state.digest:
                    state.config = config
                    state.digest = digest
                    state.callers = self._callers(config)
                    log.info("metadata network loaded", network_id=config.network_id, identities=len(state.callers))
                self._files[path.name] = (key, config.network_id)
        except (OSError, ValueError, KeyError) as exc:
            log.error("metadata network file unreadable", path=str(path), error=str(exc))
            return None
        await self._ensure_listener(state)
        return state

    def _callers(self, config: MetadataNetwork) -> dict[str, _Caller]:
        callers: dict[str, _Caller] = {}
        for identity in config.identities:
            signature = hmac.new(self._secret, identity.instance_id.encode(), hashlib.sha256).hexdigest()
            headers = (
                f"x-forwarded-for: {identity.ip}\r\n"
                f"x-instance-id: {identity.instance_id}\r\n"
                f"x-tenant-id: {identity.project_id}\r\n"
                f"x-instance-id-signature: {signature}\r\n"
                f"x-loom-network-id: {config.network_id}\r\n"
            ).encode("latin-1")
            callers[identity.ip] = _Caller(identity, headers)
        return callers

    async def _ensure_listener(self, state: _NetworkState) -> None:
        config = state.config
        assert config is not None
        wanted = (config.namespace, named_netns(config.namespace), config.listen_ip, config.listen_port)
        if state.server is not None and state.listen_key == wanted:
            return
        await self._close_listener(state)
        if wanted[1] is None:
            state.error = f"namespace {config.namespace} does not exist"
            return
        network_id = config.network_id
        try:
            sock = listen_in_netns(config.namespace, config.listen_ip, config.listen_port)
            state.server = await asyncio.get_running_loop().create_server(
                lambda: ClientConnection(self, network_id), sock=sock
            )
        except (OSError, NetnsError) as exc:
            state.error = str(exc)
            log.error("metadata listener failed", network_id=network_id, namespace=config.namespace, error=state.error)
            return
        state.listen_key = wanted
        state.error = ""
        log.info("metadata listener up", network_id=network_id, namespace=config.namespace)

    async def _close_listener(self, state: _NetworkState) -> None:
        if state.server is not None:
            state.server.close()
            state.server = None
            state.listen_key = ()

    async def _recheck_forever(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            try:
                await self.reload()
            except Exception:
                log.exception("metadata proxy reload failed")

    # ------------------------------------------------------------------ requests

    def answer(self, network_id: str, peer_ip: str, request: HttpRequest) -> bytes | asyncio.Future[HttpResponse]:
        """The 404 for an unknown caller, or the service's pending response for a known one."""
        self.requests += 1
        state = self._networks.get(network_id)
        caller = state.callers.get(peer_ip) if state is not None else None
        if caller is None:
            self._log_unknown(network_id, peer_ip)
            return simple_response(404, request.keep_alive)
        lines = [f"{request.method} {request.target} HTTP/1.1\r\nhost: {self._upstream.address.host_header}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in request.headers if name in FORWARDED_REQUEST_HEADERS)
        if request.body or request.method not in ("GET", "HEAD"):
            lines.append(f"content-length: {len(request.body)}\r\n")
        upstream_request = "".join(lines).encode("latin-1") + caller.headers + b"\r\n" + request.body
        return self._upstream.request(
            upstream_request, head_only=request.method == "HEAD", retry_safe=request.method in ("GET", "HEAD")
        )

    def _log_unknown(self, network_id: str, peer_ip: str) -> None:
        # Rate-limited: a guest retrying in a loop must not flood the log.
        now = time.monotonic()
        key = (network_id, peer_ip)
        if now - self._unknown_logged.get(key, -UNKNOWN_CALLER_LOG_INTERVAL) >= UNKNOWN_CALLER_LOG_INTERVAL:
            self._unknown_logged[key] = now
            log.warning("metadata request from unknown address", network_id=network_id, ip=peer_ip)


class ClientConnection(asyncio.Protocol):
    """One guest connection on one network's listener: requests are answered in order, one at a time."""

    def __init__(self, proxy: MetadataProxy, network_id: str) -> None:
        self._proxy = proxy
        self._network_id = network_id
        self._transport: asyncio.Transport | None = None
        self._peer_ip = ""
        self._buffer = bytearray()
        self._waiting: HttpRequest | None = None  # the request whose answer is on its way
        self._eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._peer_ip = transport.get_extra_info("peername")[0]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiting is None:
            self._next()

    def eof_received(self) -> bool:
        # A client may half-close after its request: answer it, then close.
        self._eof = True
        return self._waiting is not None

    def _next(self) -> None:
        while self._transport is not None and self._waiting is None:
            try:
                parsed = parse_request(self._buffer)
            except HttpError as exc:
                self._send(simple_response(exc.status, keep_alive=False, text=str(exc)), keep_alive=False)
                return
            if parsed is None:
                if self._eof:
                    self._close()
                return
            request, used = parsed
            del self._buffer[:used]
            answer = self._proxy.answer(self._network_id, self._peer_ip, request)
            if isinstance(answer, bytes):
                self._send(answer, request.keep_alive)
            else:
                self._waiting = request
                answer.add_done_callback(self._answered)

    def _answered(self, future: asyncio.Future[HttpResponse]) -> None:
        request, self._waiting = self._waiting, None
        assert request is not None
        keep_alive = request.keep_alive and not self._eof
        try:
            data = encode_response(future.result(), keep_alive, head_only=request.method == "HEAD")
        except HttpError as exc:
            log.warning("metadata request failed", network_id=self._network_id, ip=self._peer_ip, error=str(exc))
            data = simple_response(exc.status, keep_alive, str(exc))
        if self._transport is None:
            return  # the client left before its answer came
        self._send(data, keep_alive)
        self._next()

    def _send(self, data: bytes, keep_alive: bool) -> None:
        assert self._transport is not None
        self._transport.write(data)
        if not keep_alive:
            self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
