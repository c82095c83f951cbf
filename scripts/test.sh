#!/usr/bin/env bash
# Set up .venv and run the test suite (lint first). Needs ../shared/data beside the checkout and, for the
# browser test, Debian's chromium (installed here with apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The browser test (tests/test_serve_browser.py) drives Debian's chromium; install it once when it is missing.
if [ ! -x "${HIERE_CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "installing Debian's chromium for tests/test_serve_browser.py" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check src tests benchmarks
exec .venv/bin/python -m pytest -q "$@"
