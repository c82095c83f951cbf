#!/usr/bin/env bash
# Create .venv (once) and install hiere with its test tools, the serve extra (FastAPI, uvicorn) and the ray extra (Ray Data,
# for --engine ray and tests/test_scale_ray.py). Safe to run again: it reinstalls only
# when pyproject.toml changed. torch is pinned to the CPU build 2.13.0 (an unpinned torch pulls a
# multi-GB CUDA build); set HIERE_TORCH to choose another spec, e.g. HIERE_TORCH="torch==2.13.0+cu121".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "hiere needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.hiere-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet "${HIERE_TORCH:-torch==2.13.0}"
  .venv/bin/python -m pip install --quiet -e ".[test,serve,ray]"
  echo "$want" > "$stamp"
fi
