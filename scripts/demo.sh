#!/usr/bin/env bash
# The main job on the embedded sample: train BiLSTM-RE on 100 bundled Re-DocRED documents, evaluate it
# on 25 others, and print the triples it extracts from one document's raw text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
exec .venv/bin/hiere demo "$@"
