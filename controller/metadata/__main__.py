"""Run the metadata service over a JSON dump of model objects: ``python -m controller.metadata --source F``.

For labs and benchmarks; the controller serves its own store through ``controller.metadata.server``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dataplane.common.logs import setup_logging

from .server import DEFAULT_PORT, serve
from .source import DictMetadataSource


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m controller.metadata", description=__doc__)
    parser.add_argument("--source", type=Path, required=True, help="JSON list of model objects (DictMetadataSource)")
    parser.add_argument("--secret-file", type=Path, required=True, help="file holding the shared proxy secret")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    setup_logging("metadata-service")
    serve(DictMetadataSource.load(args.source), args.secret_file.read_bytes().strip(), args.host, args.port)


if __name__ == "__main__":
    main()
