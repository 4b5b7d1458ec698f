#!/usr/bin/env bash
# Create (or reuse) ./.venv and install modrl with its pinned dependencies.
# torch==2.13.0 is installed first, explicitly: it is the CPU build; an unpinned torch would pull a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade "pip>=23" "setuptools>=64" wheel
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -c requirements/constraints.txt -e ".[test,ray]"
