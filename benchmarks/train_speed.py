"""Training and generation speed of one configuration; prints one JSON object.

Mirrors the training loop exactly (animesis.training.step.TrainStep: one G forward, D step on real,
fake and LabelMix in one pass, G step, EMA) on random data already on the device, so the figure is
the model's speed, not the data pipeline's. Generation times the EMA generator as `animesis generate`
runs it (eval mode, spectral norm folded).

  python benchmarks/train_speed.py --preset paper --size 256 --classes 13 --batch 1 8 32
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
import warnings

import torch

from animesis.config import PRESETS, LossConfig, TrainConfig, preset_configs
from animesis.data.batch import Batch
from animesis.device import resolve_device
from animesis.inference import Painter
from animesis.tensors import one_hot
from animesis.training.distributed import DistEnv
from animesis.training.step import build_train_step


def make_config(args, batch: int) -> TrainConfig:
    g, d = preset_configs(args.preset, args.classes, args.characters, identity_head=not args.no_identity_head)
    return TrainConfig(
        name="bench",
        dataroot="",
        generator=g,
        discriminator=d,
        loss=LossConfig(lambda_identity=0.0 if args.no_identity_head else LossConfig.lambda_identity),
        image_size=(args.size, args.size),
        batch_size=batch,
        precision=args.precision,
        channels_last=not args.no_channels_last,
        compile=args.compile,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batch(cfg: TrainConfig, device: torch.device, gen: torch.Generator) -> Batch:
    B, (H, W), N = cfg.batch_size, cfg.image_size, cfg.generator.num_classes
    # Blocky random label maps (8x8 cells), so class regions look like segments, not noise.
    label = torch.randint(0, N, (B, H // 8, W // 8), device=device, generator=gen)
    label = label.repeat_interleave(8, 1).repeat_interleave(8, 2)
    onehot = one_hot(label, N)
    if not cfg.channels_last:
        onehot = onehot.contiguous()
    return Batch(
        real=torch.rand(B, 3, H, W, device=device, generator=gen) * 2 - 1,
        label=label,
        onehot=onehot,
        edge=(torch.rand(B, H, W, device=device, generator=gen) < 0.1).to(torch.uint8),
        char=torch.randint(0, cfg.generator.num_characters, (B,), device=device, generator=gen),
    )


def time_train(cfg: TrainConfig, device: torch.device, warmup: int, iters: int) -> dict:
    ts = build_train_step(
        cfg, DistEnv(device=device), tuple(f"c{i}" for i in range(cfg.generator.num_classes))
    )
    gen = torch.Generator(device=device).manual_seed(0)
    b = random_batch(cfg, device, gen)
    for _ in range(warmup):
        ts(b, gen)
    sync(device)
    syncs = None
    if device.type == "cuda":
        # Count host synchronisations inside one iteration (each one stalls the launch queue).
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            ts(b, gen)
            torch.cuda.set_sync_debug_mode("default")
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(iters):
        ts(b, gen)
    sync(device)
    dt = (time.perf_counter() - t) / iters
    out = {"iter_ms": dt * 1e3, "img_per_s": cfg.batch_size / dt, "host_syncs_per_iter": syncs}
    if device.type == "cuda":
        out["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    out["G_params_M"] = sum(p.numel() for p in ts.G.parameters()) / 1e6
    out["D_params_M"] = sum(p.numel() for p in ts.D.parameters()) / 1e6
    return out


@torch.no_grad()
def time_generate(cfg: TrainConfig, device: torch.device, warmup: int, iters: int, compile_: bool) -> dict:
    """The EMA generator as `animesis generate` runs it: a Painter (eval, folded spectral norm, NHWC)."""
    from animesis.data.palette import Palette
    from animesis.models.generator import Generator
    from animesis.models.pretrained import ModelCard

    N = cfg.generator.num_classes
    palette = Palette(tuple(f"c{i}" for i in range(N)), tuple((i, i, i) for i in range(N)))
    card = ModelCard(cfg.generator, None, palette, ("x",) * cfg.generator.num_characters, cfg.image_size)
    painter = Painter(Generator(cfg.generator), card, device, precision=cfg.precision, compile=compile_)
    gen = torch.Generator(device=device).manual_seed(0)
    b = random_batch(cfg, device, gen)
    z = torch.randn(cfg.batch_size, cfg.generator.z_dim, device=device, generator=gen)

    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=painter.bf16):
            painter.forward(b["onehot"], b["char"], z)

    for _ in range(warmup):
        run()
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        run()
    sync(device)
    dt = (time.perf_counter() - t) / iters
    return {"batch_ms": dt * 1e3, "img_per_s": cfg.batch_size / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=13, help="one-hot label channels")
    ap.add_argument("--characters", type=int, default=9)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no_channels_last", action="store_true")
    ap.add_argument("--no_identity_head", action="store_true")
    ap.add_argument("--skip_train", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    device = resolve_device(args.device)
    results = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "config": {k: v for k, v in vars(args).items() if k not in ("batch",)},
        "train": {},
        "generate": {},
    }
    for batch in args.batch:
        cfg = make_config(args, batch)
        if not args.skip_train:
            results["train"][batch] = time_train(cfg, device, args.warmup, args.iters)
        results["generate"][batch] = time_generate(cfg, device, args.warmup, args.iters, args.compile)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
