"""Peak memory of `animesis generate --n N`: it paints and writes in batches, so memory stays flat in N.

Each N runs in its own process (peak resident memory from the kernel's accounting); the model is an
untrained `small`-preset generator at 128x128 (memory does not depend on training).

  python benchmarks/generate_memory.py --n 10 100 1000 --out results/generate_memory.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# A fresh parent per run: RUSAGE_CHILDREN is a running maximum over every child a process has waited for.
_MEASURE = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(r.stderr); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def peak_mib(argv: list[str]) -> tuple[float, float]:
    """Run `python -m animesis ...` in a child of its own parent; (peak RSS MiB, seconds)."""
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", _MEASURE, sys.executable, "-m", "animesis", *argv],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise SystemExit(r.stderr)
    return int(r.stdout.split()[-1]) / 1024, time.perf_counter() - t  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", nargs="+", type=int, default=[10, 100, 1000])
    ap.add_argument("--batch_size", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from animesis.app.untrained import save_untrained_model

    with tempfile.TemporaryDirectory() as tmp:
        model = save_untrained_model(Path(tmp) / "model", preset="small", size=(128, 128), num_characters=9)
        label = Path(tmp) / "map.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 11, (128, 128), dtype=np.uint8)).save(label)
        rows = []
        for n in sorted(args.n):
            mib, seconds = peak_mib(
                ["generate", "--checkpoint", str(model), "--label", str(label), "--character", "1",
                 "--n", str(n), "--batch_size", str(args.batch_size), "--out", f"{tmp}/out{n}", "--device", "cpu"]
            )  # fmt: skip
            rows.append({"n": n, "peak_rss_mib": round(mib, 1), "seconds": round(seconds, 1)})
            print(json.dumps(rows[-1]), flush=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}",
        "model": "small preset, 128x128, untrained",
        "batch_size": args.batch_size,
        "runs": rows,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
