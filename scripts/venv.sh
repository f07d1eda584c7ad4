#!/usr/bin/env bash
# Create or reuse .venv and install nmt with its dev tools. Sourced by demo.sh and test.sh.
# torch is pinned here (a CPU build is on disk on our machines); pyproject accepts a range.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NMT_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
STAMP="$VENV/.nmt-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  "$PY" -m pip install --quiet --upgrade pip >&2
  "$PY" -m pip install --quiet "torch==${NMT_TORCH_VERSION:-2.13.0}" >&2
  # joblib + slurm: small launcher plugins whose configs the tests compose and run;
  # tensorboard (~20 MB): the training curves' test; serve: the server and its
  # tests; not optuna (~200 MB): its tests skip unless '.[optuna]' is installed
  "$PY" -m pip install --quiet -e "$ROOT[dev,joblib,slurm,tensorboard,serve]" >&2
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
