"""Does the identity-aware discriminator make paintings show the requested character more often?

Trains the same model twice on the built-in characters, with and without the discriminator's
per-pixel identity head (everything else equal: seed, data, steps), then scores both checkpoints on
the test split with the frozen judges. Prints one JSON object.

  python benchmarks/identity_ablation.py --data datasets/Synth64 --steps 1500 --preset small --batch 8
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch


def sh(*args: str) -> None:
    print("+", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="datasets/Synth64")
    ap.add_argument("--size", type=int, default=64, help="image size when the dataset must be drawn")
    ap.add_argument("--train", type=int, default=1800)
    ap.add_argument("--val", type=int, default=90)
    ap.add_argument("--test", type=int, default=180)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--gpu_ids", default="-1")
    ap.add_argument("--checkpoints_dir", default="checkpoints/ablation")
    ap.add_argument("--out", default="results/identity_ablation.json")
    args = ap.parse_args()
    py = sys.executable
    data = Path(args.data)
    sh(py, "-m", "animesis", "dataset", "synth", "--out", str(data), "--size", str(args.size),
       "--train", str(args.train), "--val", str(args.val), "--test", str(args.test), "--seed", "0")
    sh(py, "-m", "animesis", "judges", "--dataroot", str(data))
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.machine()})",
        "args": vars(args),
        "variants": {},
    }
    for variant, extra in (("identity_head", []), ("no_identity_head", ["--no_identity_head"])):
        name = f"ablation_{variant}"
        t = time.perf_counter()
        sh(py, "-m", "animesis", "train", "--name", name, "--dataroot", str(data), "--preset", args.preset,
           "--batch_size", str(args.batch), "--max_steps", str(args.steps), "--gpu_ids", args.gpu_ids,
           "--checkpoints_dir", args.checkpoints_dir, "--freq_print", str(max(1, args.steps // 5)),
           "--freq_fid", "0", "--freq_save_latest", str(args.steps), "--no_progress", *extra)
        train_s = time.perf_counter() - t
        out = Path(args.out).with_name(f"{name}.json")
        sh(py, "-m", "animesis", "eval", "--name", name, "--checkpoints_dir", args.checkpoints_dir,
           "--ckpt_iter", "latest", "--dataroot", str(data), "--json", str(out))
        report = json.loads(out.read_text())
        results["variants"][variant] = {"train_seconds": round(train_s, 1), "report": report}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
