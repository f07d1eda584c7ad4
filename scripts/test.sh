#!/usr/bin/env bash
# Set up (or reuse) .venv and run the default test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv.sh
source scripts/browser.sh
export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
ruff check nmt tests scripts
python -m pytest -q "$@"
