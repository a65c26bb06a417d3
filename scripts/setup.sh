#!/usr/bin/env bash
# Shared by scripts/serve and scripts/test: make sure .venv exists with Cairn installed (editable), and,
# with --interop, that the npm clients used by the interop tests are installed. Idempotent: each step runs
# only when what it produces is missing or stale. Prints progress on stderr only (stdout may be MCP's).
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

if [ "${1:-}" = "--interop" ]; then
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
