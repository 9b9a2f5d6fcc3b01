#!/usr/bin/env bash
# Set up (if needed) and run the test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests benchmarks train.py test.py
# One worker per core, each taking whole files (module fixtures are built once) at one thread: the
# suite's small tensors gain little from a second thread, and its subprocesses (CLI, torchrun) none.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m pytest -q -n "${TEST_WORKERS:-auto}" --dist loadfile --durations=10 "$@"  # the slowest tests, to keep the suite short
