#!/usr/bin/env bash
# Install modrl into ./.venv (created or reused) and run the main job: a short multi-task training of the modular
# agent on the default MiniGrid suite, ending with a results table and the TensorBoard command.
# Extra arguments go to `modrl train` (e.g. --set train.total_timesteps=20000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export OMP_NUM_THREADS=1
exec .venv/bin/modrl train quickstart "$@"
