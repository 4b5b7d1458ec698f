#!/usr/bin/env bash
# Install modrl with its test dependencies into ./.venv (created or reused) and run the test suite.
# Extra arguments go to pytest (e.g. -m "not slow" for the fast subset). The test files are spread over one process
# per CPU core (pytest-xdist, each file whole in one process); MODRL_TEST_WORKERS=0 runs them all in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export OMP_NUM_THREADS=1
exec .venv/bin/python -m pytest -q -n "${MODRL_TEST_WORKERS:-auto}" --dist loadfile "$@"
