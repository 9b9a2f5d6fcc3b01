"""Training recipes compared at an equal CPU budget: which gives the best pictures per minute?

Every recipe is a set of training flags on top of the CPU demo's (`small` preset, batch 8, 64x64 on
the built-in characters) and the seed's losses (`--recipe oasis`): "default" is the seed's losses
alone, and `vgg3_l120_nolabelmix_lr8_ms2_ema20_bf16_s32_600_1400_csw20_bgnoise` is the CLI's default `paired` on the demo's
bf16 schedule (without its noise on the background and mode seeking at 2,
`vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400_csw20`,
its form until the later 2026-12-08; without the colour term `vgg3_l120_nolabelmix_lr8_ms_ema20`, until
2026-12-08; `vgg3_l120_nolabelmix_lr8_ms` until 2026-12-07, `vgg3_l1_nolabelmix_lr` its 2026-12-06 form). The
budget is training time on this machine's cores: the time the seed's losses take for the CPU demo's
1,500 steps. A calibration times every recipe's training iteration in turn (alone on the machine), and
each recipe then trains for budget / its seconds per step iterations, so a cheaper recipe takes more
steps. Each recipe trains once per seed and is scored with the full `animesis eval` table on the test
split; the summary gives mean and spread (min..max) over seeds, the calibrated speed, the training
time from the run's status lines and the whole process's wall-clock. --fid_points K also scores each
run's validation FID K times while it trains (benchmarks/fid_minutes.py --curves plots them).

  python benchmarks/recipes.py --data datasets/Synth64 --seeds 42 43 \
      --recipes default vgg vgg3_l120_nolabelmix_lr8_ms_ema20 --fid_points 5

Calibration is best run on an idle machine (--calibrate_only prints it); the measured steps are
kept in the output JSON, and --steps_from reuses them so later seeds train exactly as long.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from animesis.runs import status_intervals

# Every recipe is flags on the seed's losses (--recipe oasis), whatever the default recipe is.
# fp32 whatever the CPU: 'auto' precision is bf16 on CPUs with bf16 instructions, which only the bf16 row asks for.
BASE = ["--preset", "small", "--batch_size", "8", "--recipe", "oasis", "--precision", "fp32"]  # fmt: skip
VGG, VGG3, L1 = ["--add_vgg_loss"], ["--add_vgg_loss", "--vgg_layers", "3"], ["--lambda_l1", "10"]
STYLE, NO_LABELMIX, FAST_G = ["--modulation", "style"], ["--no_labelmix"], ["--lr_g", "4e-4"]
# The paired terms on the character only; the background left to D and to mode seeking, to vary.
CHAR_MS = ["--paired_region", "character", "--lambda_ms", "1", "--ms_region", "background"]
BG_MS, BG_MS2 = (["--lambda_ms", w, "--ms_region", "background"] for w in ("1", "2"))
L1_20, FAST_GD = ["--lambda_l1", "20"], ["--lr_g", "8e-4", "--lr_d", "8e-4"]
L1_40, FASTER_GD = ["--lambda_l1", "40"], ["--lr_g", "1.2e-3", "--lr_d", "1.2e-3"]
# `paired` until 2026-12-07 (its moving average at the seed's ramp, 10), spelt out in flags
PAIRED = [*VGG3, *L1_20, *NO_LABELMIX, *FAST_GD, *BG_MS]
TEX2 = [*PAIRED, "--EMA_ramp", "20", "--lambda_texture", "2"]  # the background texture critic
BF16 = [*PAIRED, "--EMA_ramp", "20", "--precision", "bf16"]  # the default on CPUs with bf16 instructions
RECIPES: dict[str, list[str]] = {
    "default": [],  # the seed's losses: adversarial, edge and identity terms only
    "vgg": VGG,  # OASIS's optional VGG16 term, weight 10, on every pixel
    "vgg3": VGG3,  # only the three shallow VGG taps: cheaper
    "fm": ["--lambda_fm", "10"],  # feature matching on the discriminator instead of VGG
    "vgg_fm": [*VGG, "--lambda_fm", "10"],
    "vgg_char": [*VGG, "--paired_region", "character"],  # the background left to the noise
    "vgg_char_ms": [*VGG, *CHAR_MS],
    "style_vgg": [*STYLE, *VGG],
    "style_vgg_char_ms": [*STYLE, *VGG, *CHAR_MS],
    "style_fm_nolabelmix": [*STYLE, "--lambda_fm", "10", *NO_LABELMIX],  # cheapest
    "style_vgg3_nolabelmix": [*STYLE, *VGG3, *NO_LABELMIX],
    "vgg_lr": [*VGG, *FAST_G],
    "vgg_nolabelmix": [*VGG, *NO_LABELMIX],
    "vgg_l1": [*VGG, *L1],  # the character's colours pinned by a pixel term
    "vgg3_nolabelmix": [*VGG3, *NO_LABELMIX],
    "vgg_enc": [*VGG, "--z_encoder"],  # z encoded from the real picture: variety kept
    "vgg_l1_enc": [*VGG, *L1, "--z_encoder"],
    "vgg3_l1_enc_nolabelmix": [*VGG3, *L1, "--z_encoder", *NO_LABELMIX],
    "vgg_l1_char_ms": [*VGG, *L1, *CHAR_MS],
    "vgg_l1_lr": [*VGG, *L1, *FAST_G],  # G's learning rate as D's
    "vgg3_l1_nolabelmix_lr": [*VGG3, *L1, *NO_LABELMIX, *FAST_G],
    "vgg3_l1_nolabelmix": [*VGG3, *L1, *NO_LABELMIX],
    "vgg3_l1_nolabelmix_char_ms": [*VGG3, *L1, *NO_LABELMIX, *CHAR_MS],
    "vgg3_l1_nolabelmix_lr_char_ms": [*VGG3, *L1, *NO_LABELMIX, *FAST_G, *CHAR_MS],
    # paired with both nets at twice the learning rate and the character's pixels pinned twice as hard
    "vgg3_l120_nolabelmix_lr8": [*VGG3, *L1_20, *NO_LABELMIX, *FAST_GD],
    # that + mode seeking on the background with the VGG term still on every pixel
    "vgg3_l120_nolabelmix_lr8_ms": PAIRED,
    # PAIRED, faster still: both learning rates 1.2e-3, L1 40
    "vgg3_l140_nolabelmix_lr12_ms": [*VGG3, *L1_40, *NO_LABELMIX, *FASTER_GD, *BG_MS],
    # PAIRED with the mode-seeking weight doubled: more variety in the background?
    "vgg3_l120_nolabelmix_lr8_ms2": [*VGG3, *L1_20, *NO_LABELMIX, *FAST_GD, *BG_MS2],
    # PAIRED, its VGG term on the character and the background near it only: the far
    # background left to D and to mode seeking (patterns?), the outline anchored
    "vgg3_l120_nolabelmix_lr8_near_ms": [*PAIRED, "--paired_region", "near"],
    # PAIRED with a longer moving average: the last quarter of the run, not the last ninth
    "vgg3_l120_nolabelmix_lr8_ms_ema5": [*PAIRED, "--EMA_ramp", "5"],
    # ... and a shorter one, the last nineteenth: today's `paired`
    "vgg3_l120_nolabelmix_lr8_ms_ema20": [*PAIRED, "--EMA_ramp", "20"],
    # ... and shorter still, the last thirty-ninth
    "vgg3_l120_nolabelmix_lr8_ms_ema40": [*PAIRED, "--EMA_ramp", "40"],
    # today's `paired` + eight waves the noise sets: can mode seeking vary the background's pattern?
    "vgg3_l120_nolabelmix_lr8_ms_ema20_waves8": [*PAIRED, "--EMA_ramp", "20", "--noise_waves", "8"],
    # today's `paired` with both learning rates falling linearly to 0 over the second half (pix2pixHD's and
    # SPADE's schedule): the curves still fall steeply at the budget's end
    "vgg3_l120_nolabelmix_lr8_ms_ema20_decay5": [*PAIRED, "--EMA_ramp", "20", "--lr_decay", "0.5"],
    # today's `paired` with other widths (the `small` preset's 16 channels): fewer steps of a wider
    # network, or more of a cheaper discriminator, in the same time
    "vgg3_l120_nolabelmix_lr8_ms_ema20_g24": [*PAIRED, "--EMA_ramp", "20", "--channels_G", "24"],
    "vgg3_l120_nolabelmix_lr8_ms_ema20_d24": [*PAIRED, "--EMA_ramp", "20", "--channels_D", "24"],
    "vgg3_l120_nolabelmix_lr8_ms_ema20_d8": [*PAIRED, "--EMA_ramp", "20", "--channels_D", "8"],
    # today's `paired` + a patch critic on the background alone (unpaired: real backgrounds against
    # painted ones), so a pattern pays as a pattern; and the same with the VGG term off the far
    # background, which alone gave blotches: does the critic turn them into patterns?
    "vgg3_l120_nolabelmix_lr8_ms_ema20_tex2": TEX2,
    "vgg3_l120_nolabelmix_lr8_ms_ema20_tex2_near": [*TEX2, "--paired_region", "near"],
    # today's `paired` with Adam's second moment averaged over ~100 steps, not ~1,000 (StyleGAN's 0.99):
    # in a run of 1,000 steps at a high rate the gradients' scale moves faster than 0.999 follows
    "vgg3_l120_nolabelmix_lr8_ms_ema20_beta99": [*PAIRED, "--EMA_ramp", "20", "--beta2", "0.99"],
    # today's `paired` with the character's pixels pinned twice as hard (L1 40): the colours (ΔE)?
    "vgg3_l140_nolabelmix_lr8_ms_ema20": [*PAIRED, "--EMA_ramp", "20", "--lambda_l1", "40"],
    # ... or asked harder to read as the character (identity weight 0.3, not 0.1): the colours?
    "vgg3_l120_nolabelmix_lr8_ms_ema20_id3": [*PAIRED, "--EMA_ramp", "20", "--lambda_identity", "0.3"],
    # today's `paired` with bf16 autocast on a CPU that has bf16 instructions (AVX512-BF16 or AMX): more
    # steps in the same minutes, if the precision holds
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16": BF16,
    # ... and with G 1.5x as wide: the width that lost for its cost in fp32, at bf16's cheaper step
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_g24": [*BF16, "--channels_G", "24"],
    # bf16 with each character class weighing the same in the L1 term (eyes as much as hair): the
    # small regions' colours, where ΔE at 64x64 is furthest from the real pictures'
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_l1bal": [*BF16, "--l1_class_balanced"],
    # bf16 with the perceptual term in fp32: bf16 is behind per step; is it the VGG differences' rounding?
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_vgg32": [*BF16, "--vgg_fp32"],
    # bf16 with mode seeking rewarding the character's changes in luminance too (light and shading may
    # vary with the noise, as in the real redraws; its hues may not)
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_light": [*BF16, "--ms_region", "background_light"],
    # bf16 with two VGG taps, not three: relu3_3's block is about half VGG16's multiply-adds up to it
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_vgg2": [*BF16, "--vgg_layers", "2"],
    # ... and those two taps in fp32: about bf16's three taps' cost, without the rounding
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_vgg2_fp32": [*BF16, "--vgg_layers", "2", "--vgg_fp32"],
    # bf16 with the moving average over the last 39th of the run, not the 19th: it tied ahead in fp32
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_ema40": [*BF16, "--EMA_ramp", "40"],
    # bf16 trained in two stages (FIRST_STAGE): first at 32x32, where a step costs about a third, then at 64x64
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32": BF16,
    # ... with half as long a first stage: the 64x64 details (eyes, accessories) that tell the characters
    # apart get more of the minutes
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600": BF16,
    # ... and its 64x64 stage long enough to fill the budget's minutes (that run ended 0.9 minute early)
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400": BF16,
    # the demo's schedule + each character region's colours matched as a set (sliced Wasserstein,
    # classes weighing alike): an iris's colour kept where its place in the eye is not fixed by the map
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400_csw20": [*BF16, "--lambda_colour_sw", "20"],
    # ... and the VGG term counting the nearer of mode seeking's two paintings (conditional IMLE's
    # best-of-2): the noise may choose a background without being pulled to the flat mean
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400_csw20_best2": [
        *BF16,
        "--lambda_colour_sw",
        "20",
        "--vgg_best_of_pair",
    ],
    # ... the noise on the background's pixels alone, so mode seeking can vary the background harder
    # (weight 2; at 1 the generator had little reason to) without reaching the character's pixels
    "vgg3_l120_nolabelmix_lr8_ms2_ema20_bf16_s32_600_1400_csw20_bgnoise": [
        *BF16,
        "--lambda_colour_sw",
        "20",
        "--noise_region",
        "background",
        "--lambda_ms",
        "2",
    ],
    # ... mode seeking at 2 with the noise on every pixel: what the background-only noise is for
    "vgg3_l120_nolabelmix_lr8_ms2_ema20_bf16_s32_600_1400_csw20": [
        *BF16,
        "--lambda_colour_sw",
        "20",
        "--lambda_ms",
        "2",
    ],
    # PAIRED at half the batch: twice the iterations (nearly) for the same time
    "vgg3_l120_nolabelmix_lr8_ms_b4": [*PAIRED, "--batch_size", "4"],
    # ... and at twice the batch: fewer, better-averaged iterations
    "vgg3_l120_nolabelmix_lr8_ms_b16": [*PAIRED, "--batch_size", "16"],
    "no_edge": ["--lambda_edge", "0"],  # does the edge term cause the hatching?
}
# Recipes trained in two stages: first (size, steps) at size x size, where a step is cheaper and the
# layout and colours are learnt as well, then the calibrated steps at the data set's size from those
# weights (`train --init_from`: fresh optimizers, the moving average's ramp started again). The first
# stage's run is the main run's folder with "_low" appended; its minutes count in the budget.
FIRST_STAGE: dict[str, tuple[int, int]] = {
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32": (32, 1200),
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600": (32, 600),
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400": (32, 600),
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400_csw20": (32, 600),
    # its step 1.12x csw20's (results/calib_best2.json): both stages scaled to the same minutes
    "vgg3_l120_nolabelmix_lr8_ms_ema20_bf16_s32_600_1400_csw20_best2": (32, 537),
    "vgg3_l120_nolabelmix_lr8_ms2_ema20_bf16_s32_600_1400_csw20": (32, 600),
    # its step 1.007x csw20's (results/calib_bgnoise.json)
    "vgg3_l120_nolabelmix_lr8_ms2_ema20_bf16_s32_600_1400_csw20_bgnoise": (32, 596),
}
SUMMARY = (
    "fid",
    "kid_x100",
    "lpips_paired",
    "lpips_diversity",
    "identity_accuracy",
    "identity_accuracy_every_character",
    "miou",
    "colour_error",
    "colour_error_every_character",
)


def sh(*args: str, env: dict | None = None) -> None:
    print("+", " ".join(args), file=sys.stderr, flush=True)
    subprocess.run(args, check=True, env=env)


def train(
    args,
    name: str,
    flags: list[str],
    steps: int,
    seed: int,
    ckdir: str,
    freq: int,
    first_stage: tuple | None = None,
) -> float:
    """Train one run to `steps` iterations; returns wall-clock seconds. With --fid_points K the run
    also scores its validation FID K times (its status lines fall on the same iterations). With a
    `first_stage` (size, steps) the run starts from a run of that many steps at size x size."""
    fid = ["--freq_fid", "0"]
    if args.fid_points:
        freq = max(1, steps // args.fid_points)
        fid = ["--freq_fid", str(freq), "--fid_samples", str(args.fid_samples)]
    common = [*BASE, *args.flags, *flags, "--seed", str(seed), "--gpu_ids", "-1", "--checkpoints_dir", ckdir]
    t = time.perf_counter()
    init = []
    if first_stage is not None:
        size, low_steps = first_stage
        low = f"{name}{LOW}"
        subprocess.run(["rm", "-rf", str(Path(ckdir) / low)], check=True)
        sh(
            sys.executable, "-m", "animesis", "train", "--name", low, "--dataroot", args.data, *common,
            "--crop_size", str(size), "--max_steps", str(low_steps), "--freq_print", str(max(1, low_steps // 5)),
            "--freq_fid", "0", "--freq_save_latest", str(low_steps), "--no_progress",
        )  # fmt: skip
        init = ["--init_from", str(Path(ckdir) / low)]
    sh(
        sys.executable, "-m", "animesis", "train", "--name", name, "--dataroot", args.data, *common, *init,
        "--max_steps", str(steps), "--freq_print", str(freq), *fid, "--freq_save_latest", str(steps),
        "--no_progress",
    )  # fmt: skip
    return time.perf_counter() - t


LOW = "_low"  # the first stage's run folder: the main run's name with this appended


def stage_dirs(run_dir: Path) -> list[Path]:
    """The run's folders in training order: its first stage's, if it had one, then its own."""
    low = run_dir.with_name(run_dir.name + LOW)
    return [low, run_dir] if low.is_dir() else [run_dir]


def fid_curve(run_dir: Path) -> list[dict]:
    """[{step, minutes, val_fid, val_fid_real}]: the run's validation FIDs against its training minutes
    so far (the status lines' time, which leaves out the scoring itself)."""
    # a first stage's minutes come before the run's first step
    elapsed = sum(t for d in stage_dirs(run_dir)[:-1] for _, t in status_intervals(d))
    minutes_at, step = {0: elapsed / 60}, 0
    for n, seconds in status_intervals(run_dir):
        step, elapsed = step + n, elapsed + seconds
        minutes_at[step] = elapsed / 60
    curve = []
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        entry = json.loads(line) if line.strip() else {}
        if "val_fid" in entry and entry["step"] in minutes_at:
            curve.append(
                {
                    "step": entry["step"],
                    "minutes": round(minutes_at[entry["step"]], 3),
                    "val_fid": entry["val_fid"],
                    "val_fid_real": entry.get("val_fid_real"),
                }
            )
    return curve


def wall_clock(args) -> None:
    """Whole-run seconds per step of each recipe, steady state (the first status interval, with start-up
    and warm-up, left out), next to its calibrated step time."""
    calibration = json.loads(Path(args.steps_from).read_text())["calibration"] if args.steps_from else {}
    results = {"date": datetime.date.today().isoformat(), "threads": torch.get_num_threads(), "recipes": {}}
    freq = max(1, args.wall_clock // 4)
    for recipe in args.recipes:
        name = f"wallclock_{recipe}"
        run_dir = Path(args.checkpoints_dir) / name
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        process = train(
            args, name, RECIPES[recipe], args.wall_clock, args.seeds[0], args.checkpoints_dir, freq
        )
        per_step = [t / n for n, t in status_intervals(run_dir)]
        steady = per_step[1:] or per_step[-1:]
        row = {
            "steps": args.wall_clock,
            "process_seconds": round(process, 1),
            "seconds_per_step": round(statistics.fmean(steady), 4),
            "seconds_per_step_spread": [round(min(steady), 4), round(max(steady), 4)],
            "calibrated_seconds_per_step": calibration.get(recipe, {}).get("seconds_per_step"),
        }
        results["recipes"][recipe] = row
        print(json.dumps({recipe: row}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


def step_seconds(args, recipes: list[str], rounds: int = 3, steps: int = 12) -> dict[str, float]:
    """Seconds per training iteration of each recipe: its real TrainStep on cached batches of the
    dataset, in-process, recipes taken in turn for `rounds` rounds (median), so that a machine whose
    speed drifts slows every recipe alike."""
    from torch.utils.data import DataLoader

    from animesis.cli import build_parser, train_config
    from animesis.data.batch import to_batch
    from animesis.data.dataset import SegmentationDataset
    from animesis.data.layout import load_dataset
    from animesis.training.distributed import DistEnv
    from animesis.training.step import build_train_step

    info = load_dataset(Path(args.data), deep=False)
    cpu = torch.device("cpu")

    def cfg_for(flags: list[str]):
        argv = [
            "train",
            "--name",
            "calibration",
            "--dataroot",
            args.data,
            *BASE,
            *args.flags,
            *flags,
            "--gpu_ids",
            "-1",
        ]
        return train_config(build_parser().parse_args(argv), info)

    H, W = cfg_for([]).image_size
    data = SegmentationDataset(info.splits["train"][:64], info.palette, (H, W), cache=True)
    cfgs = {r: cfg_for(RECIPES[r]) for r in recipes}
    steps_of = {r: build_train_step(cfgs[r], DistEnv(), info.palette.names) for r in recipes}
    sizes = {c.batch_size for c in cfgs.values()}  # a recipe may set its own batch size
    raw = {n: list(DataLoader(data, batch_size=n)) for n in sizes}
    times: dict[str, list[float]] = {r: [] for r in recipes}
    for _ in range(rounds):
        for r in recipes:
            ts, cfg = steps_of[r], cfgs[r]
            gen = torch.Generator().manual_seed(0)
            batches = [
                to_batch(b, cpu, num_classes=info.num_classes, canny=cfg.canny, flip=gen)
                for b in raw[cfg.batch_size]
            ]
            for i in range(3):  # warm-up
                ts(batches[i % len(batches)], gen, step=1000)
            t = time.perf_counter()
            for i in range(steps):
                ts(batches[i % len(batches)], gen, step=1000)
            times[r].append((time.perf_counter() - t) / steps)
    return {r: statistics.median(v) for r, v in times.items()}


def spread(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="datasets/Synth64")
    ap.add_argument("--recipes", nargs="+", default=["default", "vgg"], choices=sorted(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[42, 43])
    ap.add_argument(
        "--reference_steps",
        type=int,
        default=1500,
        help="the budget is the time the default recipe takes for this many steps (the CPU demo's)",
    )
    ap.add_argument("--budget_fraction", type=float, default=1.0, help="e.g. 0.5 for a quick screening")
    ap.add_argument(
        "--flags",
        default="",
        type=str.split,
        help="more training flags for every recipe, e.g. '--crop_size 128'",
    )
    ap.add_argument("--calibrate_only", action="store_true")
    ap.add_argument(
        "--calibration_rounds", type=int, default=3, help="rounds of every recipe in turn (median)"
    )
    ap.add_argument("--calibration_steps", type=int, default=12, help="timed steps per recipe and round")
    ap.add_argument("--steps_from", default=None, help="an earlier output JSON: reuse its calibrated steps")
    ap.add_argument("--checkpoints_dir", default="checkpoints/recipes")
    ap.add_argument("--out", default="results/recipes.json")
    ap.add_argument("--reuse", action="store_true", help="keep runs whose report exists already")
    ap.add_argument(
        "--raw_generator",
        action="store_true",
        help="score the raw generator instead of its moving average (rows RECIPE_raw; with --keep_trained "
        "the trained runs are scored again, not retrained)",
    )
    ap.add_argument(
        "--keep_trained",
        action="store_true",
        help="evaluate a run that already reached its steps instead of training it again",
    )
    ap.add_argument("--merge", nargs="+", default=None, help="only merge these outputs into --out")
    ap.add_argument("--fid_points", type=int, default=0, help="validation FIDs scored during each run")
    ap.add_argument("--fid_samples", type=int, default=180, help="val pictures per validation FID")
    ap.add_argument(
        "--wall_clock",
        type=int,
        default=0,
        help="only train each recipe this many steps through the CLI, one at a time, and print its whole-run "
        "seconds per step beside the calibrated step (what the budget does not count: data, EMA, logging)",
    )
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, Path(args.out), Path(args.checkpoints_dir))
        return

    if args.wall_clock:
        wall_clock(args)
        return

    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    steps_from = json.loads(Path(args.steps_from).read_text()) if args.steps_from else previous
    calibration = dict(steps_from.get("calibration", {}))
    todo = [r for r in args.recipes if r not in calibration]
    if todo:
        # The budget: the time today's default recipe takes for the demo's 1,500 steps, here.
        seconds = step_seconds(
            args, sorted({"default", *todo}), rounds=args.calibration_rounds, steps=args.calibration_steps
        )
        budget = args.reference_steps * seconds["default"] * args.budget_fraction
        for recipe in todo:
            calibration[recipe] = {
                "seconds_per_step": round(seconds[recipe], 4),
                "steps": int(budget / seconds[recipe]),
                "budget_seconds": round(budget, 1),
                "threads": torch.get_num_threads(),
                "date": datetime.date.today().isoformat(),
            }
            print(json.dumps({recipe: calibration[recipe]}), flush=True)
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}",
        "base_flags": [*BASE, *args.flags],
        "calibration": calibration,
        "runs": previous.get("runs", {}),
    }
    if args.calibrate_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        return

    for recipe in args.recipes:
        steps = calibration[recipe]["steps"]
        for seed in args.seeds:
            row = f"{recipe}_raw" if args.raw_generator else recipe  # a row of its own in the summary
            key = f"{row}/seed{seed}"
            report_path = out.with_name(f"recipe_{row}_seed{seed}.json")
            if args.reuse and key in results["runs"] and report_path.exists():
                continue
            name = f"{recipe}_seed{seed}"
            run_dir = Path(args.checkpoints_dir) / name
            if args.keep_trained and (run_dir / "models" / str(steps)).is_dir():
                seconds = status_seconds(run_dir)  # training time from its status lines
            else:
                subprocess.run(["rm", "-rf", str(run_dir)], check=True)
                stage = FIRST_STAGE.get(recipe)
                ckdir, freq = args.checkpoints_dir, max(1, steps // 5)
                seconds = train(args, name, RECIPES[recipe], steps, seed, ckdir, freq, stage)
            sh(
                sys.executable, "-m", "animesis", "eval", "--name", name, "--checkpoints_dir",
                args.checkpoints_dir, "--ckpt_iter", "latest", "--dataroot", args.data, "--json",
                str(report_path), *(["--no_EMA"] if args.raw_generator else []),
            )  # fmt: skip
            report = json.loads(report_path.read_text())
            results["runs"][key] = {
                "recipe": row,
                "seed": seed,
                "steps": steps,
                "train_seconds": round(seconds, 1),
                "status_seconds": status_seconds(run_dir),
                "metrics": {k: report["metrics"].get(k) for k in (*SUMMARY, "fid_real")},
                "report": str(report_path),
            }
            if args.fid_points:
                results["runs"][key]["fid_curve"] = fid_curve(run_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps(results, indent=2) + "\n"
            )  # after every run: an interruption keeps them

    results["summary"] = summarise(results["runs"])
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("date", "machine", "calibration", "summary")}, indent=2))
    print(table(results["summary"]))


def summarise(runs: dict) -> dict:
    """Mean and spread over seeds of every recipe's figures."""
    summary = {}
    for recipe in sorted({r["recipe"] for r in runs.values()}):
        mine = [r for r in runs.values() if r["recipe"] == recipe]
        row = {"seeds": sorted(r["seed"] for r in mine), "steps": mine[0]["steps"]}
        row["train_seconds"] = spread([r["train_seconds"] for r in mine])
        if all("status_seconds" in r for r in mine):
            row["status_seconds"] = spread([r["status_seconds"] for r in mine])
        for k in (*SUMMARY, "fid_real", "lpips_diversity_real"):
            values = [r["metrics"][k] for r in mine if isinstance(r["metrics"].get(k), int | float)]
            if values:
                row[k] = spread(values)
        summary[recipe] = row
    return summary


def table(summary: dict) -> str:
    """The summary as a Markdown table: mean (min..max) over seeds."""
    cols = ("fid", "fid_real", "kid_x100", "identity_accuracy", "identity_accuracy_every_character", "colour_error", "miou",
            "lpips_diversity", "lpips_paired", "status_seconds", "train_seconds")  # fmt: skip
    lines = ["| recipe | seeds | steps | " + " | ".join(cols) + " |", "|---" * (len(cols) + 3) + "|"]
    for recipe, row in summary.items():
        cells = []
        for k in cols:
            v = row.get(k)
            cells.append("—" if v is None else f"{v['mean']:.4g} ({v['min']:.4g}..{v['max']:.4g})")
        lines.append(f"| {recipe} | {len(row['seeds'])} | {row['steps']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def status_seconds(run_dir: Path) -> float:
    """Training seconds from the run's status lines (a first stage's too): its steps, without start-up
    and FID scoring."""
    return round(sum(t for d in stage_dirs(run_dir) for _, t in status_intervals(d)), 1)


def merge(paths: list[str], out: Path, checkpoints_dir: Path) -> None:
    """Runs from several outputs (e.g. one per seed, run side by side) into one, with the summary."""
    docs = [json.loads(Path(p).read_text()) for p in paths]
    merged = {k: docs[0][k] for k in ("date", "machine") if k in docs[0]}
    merged["calibration"] = {r: c for d in docs for r, c in d.get("calibration", {}).items()}
    merged["runs"] = {k: v for d in docs for k, v in d.get("runs", {}).items()}
    for run in merged["runs"].values():  # outputs written before status_seconds was recorded
        run_dir = checkpoints_dir / f"{run['recipe']}_seed{run['seed']}"
        if "status_seconds" not in run and (run_dir / "log.jsonl").exists():
            run["status_seconds"] = status_seconds(run_dir)
    merged["summary"] = summarise(merged["runs"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2) + "\n")
    print(table(merged["summary"]))


if __name__ == "__main__":
    main()
