#!/usr/bin/env bash
# Install modrl with its test dependencies into ./.venv (created or reused) and run the test suite.
# Extra arguments go to pytest (e.g. -m "not slow" for the fast subset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -q "$@"
