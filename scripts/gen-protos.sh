#!/usr/bin/env bash
# Generates the Python code for protos/loom/v1/*.proto. With --check, generates
# into a scratch directory and fails if the committed code differs (stale).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=.
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
"$PY" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" protos/loom/v1/*.proto
if [ "${1:-}" = "--check" ]; then
  stale=0
  for f in "$out"/protos/loom/v1/*.py "$out"/protos/loom/v1/*.pyi; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "$rel"; then
      echo "gen-protos: $rel is stale; run 'make protos' and commit" >&2
      stale=1
    fi
  done
  for f in protos/loom/v1/*_pb2*.py protos/loom/v1/*_pb2*.pyi; do
    [ -e "$out/$f" ] || { echo "gen-protos: $f has no .proto any more" >&2; stale=1; }
  done
  exit $stale
fi
