"""The metadata proxy process: ``python -m metadata_proxy --state-dir DIR --upstream http://HOST:PORT``.

Started and supervised by the agent's ``MetadataProxyManager``; SIGHUP reloads the configuration, SIGTERM
stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from dataplane.common.logs import get_logger, setup_logging

from .control import start_control_server
from .proxy import MetadataProxy

log = get_logger(__name__)


async def run(state_dir: Path, upstream: str) -> None:
    proxy = MetadataProxy(state_dir, upstream)
    await proxy.start()
    control = await start_control_server(proxy, state_dir / "control.sock")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(proxy.reload()))
    log.info("metadata proxy running", upstream=upstream, networks=len(proxy.status()["networks"]))
    await stop.wait()
    control.close()
    await proxy.close()
    log.info("metadata proxy stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m metadata_proxy", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--upstream", required=True, help="the metadata service, http://host:port")
    args = parser.parse_args(argv)
    setup_logging("metadata-proxy")
    asyncio.run(run(args.state_dir, args.upstream))


if __name__ == "__main__":
    main()
