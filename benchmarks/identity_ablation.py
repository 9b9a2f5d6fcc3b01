"""Does the identity-aware discriminator make paintings show the requested character more often?

Trains the same model on the built-in characters with and without the discriminator's per-pixel
identity head, and an OASIS-style baseline with no character input and no edge loss (everything else
equal: seed, data, steps, sizes), then scores every checkpoint on the test split with the frozen
judges. Prints one JSON object.

  python benchmarks/identity_ablation.py --data datasets/Synth64 --steps 1500 --preset small --batch 8

Scores are in the per-variant reports (results/ablation_*.json); the summary at the end compares the
identity accuracy and colour error, the figures the ablation is about.
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

SUMMARY = (
    "identity_accuracy",
    "identity_accuracy_every_character",
    "colour_error",
    "colour_error_every_character",
    "fid",
    "fid_real",  # real-vs-real at the same N: the floor beside the FID
    "kid_x100",
    "lpips_paired",
    "miou",
    "lpips_diversity",
)


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
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep a variant whose checkpoint and report already exist (an interrupted run goes on)",
    )
    args = ap.parse_args()
    py = sys.executable
    data = Path(args.data)
    sh(
        py,
        "-m",
        "animesis",
        "dataset",
        "synth",
        "--out",
        str(data),
        "--size",
        str(args.size),
        "--train",
        str(args.train),
        "--val",
        str(args.val),
        "--test",
        str(args.test),
        "--seed",
        "0",
    )
    sh(py, "-m", "animesis", "judges", "--dataroot", str(data))
    results: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({platform.machine()})",
        "args": vars(args),
        "variants": {},
    }
    variants = {
        # animesis: the generator takes the character, D names the character of every pixel; the
        # default identity weight (0.1) and ten times it.
        "identity_head_lambda0.1": ["--lambda_identity", "0.1"],
        "identity_head_lambda1": ["--lambda_identity", "1"],
        # the default plus MSGAN's mode-seeking term, against the collapse of samples of one map
        "identity_head_lambda0.1_ms1": ["--lambda_identity", "0.1", "--lambda_ms", "1"],
        "identity_head_lambda0.1_ms0.1": ["--lambda_identity", "0.1", "--lambda_ms", "0.1"],
        "no_identity_head": ["--no_identity_head"],  # the seed's design: D never sees the character
        # OASIS with the same budget: no character input anywhere, no edge loss.
        "oasis_baseline": ["--id_dim", "0", "--no_identity_head", "--lambda_edge", "0"],
    }
    for variant, extra in variants.items():
        name = f"ablation_{variant}"
        out = Path(args.out).with_name(f"{name}.json")
        if args.reuse and out.exists():
            report = json.loads(out.read_text())
            results["variants"][variant] = {"train_seconds": None, "reused": str(out), "report": report}
            continue
        t = time.perf_counter()
        sh(
            py,
            "-m",
            "animesis",
            "train",
            "--name",
            name,
            "--dataroot",
            str(data),
            "--preset",
            args.preset,
            "--batch_size",
            str(args.batch),
            "--max_steps",
            str(args.steps),
            "--gpu_ids",
            args.gpu_ids,
            "--checkpoints_dir",
            args.checkpoints_dir,
            "--freq_print",
            str(max(1, args.steps // 5)),
            "--freq_fid",
            "0",
            "--freq_save_latest",
            str(args.steps),
            "--no_progress",
            *extra,
        )
        train_s = time.perf_counter() - t
        sh(
            py,
            "-m",
            "animesis",
            "eval",
            "--name",
            name,
            "--checkpoints_dir",
            args.checkpoints_dir,
            "--ckpt_iter",
            "latest",
            "--dataroot",
            str(data),
            "--json",
            str(out),
        )
        report = json.loads(out.read_text())
        results["variants"][variant] = {"train_seconds": round(train_s, 1), "report": report}
    results["summary"] = {
        v: {k: r["report"]["metrics"].get(k) for k in SUMMARY} for v, r in results["variants"].items()
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("date", "machine", "args", "summary")}, indent=2))


if __name__ == "__main__":
    main()
