#!/usr/bin/env bash
# Set up (if needed) and run the test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
ruff check src tests benchmarks train.py test.py
python -m pytest -q --durations=10 "$@"  # the slowest tests, to keep the suite short
