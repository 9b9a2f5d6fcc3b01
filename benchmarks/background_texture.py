"""Does the background have texture, and could a texture-statistics loss give it? Prints JSON.

    python benchmarks/background_texture.py --dataroot datasets/Synth64 \
        --model paired=checkpoints/full/vgg3_l120_nolabelmix_lr8_ms_seed42 --out results/background.json

Texture: the mean absolute difference between neighbouring pixels (RGB in 0..1, both directions) over
each picture's background pixels, two pixels away from any other class so that the character's outline
does not count. Real test pictures against each model's paintings of the same maps (own character,
`--samples` noise draws each); "textured" is the share of pictures above `--threshold` (the built-in
backgrounds are flat, gradients, or stripes, dots and checks: the first two fall well below it).

Statistics: for a loss that matches the background's texture statistics to the paired real picture's
(Gatys et al.'s Gram matrices of VGG16's shallow taps over the background's pixels), is a flat
background (the real one replaced by its mean colour) nearer the real picture's statistics than
another real picture's background is? If it is, such a term rewards flat backgrounds: the noise does
not say which pattern the real picture has, and the flat answer is the safe one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from animesis import files
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import load_dataset
from animesis.inference import Painter
from animesis.metrics.lpips import load_lpips


def inner_background(label: torch.Tensor, background: int, margin: int = 2) -> torch.Tensor:
    """(B, H, W) bool: background pixels at least `margin` pixels from any other class."""
    other = (label != background).float()[:, None]
    grown = F.max_pool2d(other, 2 * margin + 1, stride=1, padding=margin)
    return grown[:, 0] == 0


def texture(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) mean |neighbour difference| of (B, 3, H, W) images in 0..1 over the masked pixels."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().mean(1)  # (B, H, W-1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().mean(1)  # (B, H-1, W)
    mx, my = mask[..., :, 1:] & mask[..., :, :-1], mask[..., 1:, :] & mask[..., :-1, :]
    total = (dx * mx).sum((1, 2)) + (dy * my).sum((1, 2))
    return total / (mx.sum((1, 2)) + my.sum((1, 2))).clamp(min=1)


def summarise(values: torch.Tensor, threshold: float) -> dict:
    v = values.tolist()
    return {
        "mean": statistics.fmean(v),
        "std": statistics.pstdev(v),
        "median": statistics.median(v),
        "textured_share": sum(x > threshold for x in v) / len(v),
        "n": len(v),
    }


def gram(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, C, C) channel products averaged over the pixels, weighted by a (B, 1, H, W) mask."""
    w = F.interpolate(weight, size=features.shape[-2:], mode="area").flatten(2)  # (B, 1, P)
    f = features.flatten(2)
    return (f * w) @ f.transpose(1, 2) / w.sum(-1, keepdim=True).clamp(min=1e-6)


def statistics_check(images: torch.Tensor, mask: torch.Tensor, taps: int = 3) -> list[dict]:
    """Per VGG16 tap: Gram L1 distance to the real picture of (a) its background flattened to its mean
    colour and (b) the next picture's background (a real texture, just not this picture's)."""
    vgg = load_lpips("vgg", "cpu")
    x = images * 2 - 1
    m = mask[:, None].float()
    mean = (x * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp(min=1)
    flat = x * (1 - m) + mean * m
    other = x * (1 - m) + x.roll(1, 0) * m  # the next picture's background behind this character
    with torch.no_grad():
        feats = [vgg.backbone((y - vgg.shift) / vgg.scale, taps) for y in (x, flat, other)]
    rows = []
    for t, (real, fl, ot) in enumerate(zip(*feats, strict=True)):
        g = gram(real, m)
        rows.append(
            {
                "tap": t + 1,
                "flat_vs_real": F.l1_loss(gram(fl, m), g).item(),
                "other_background_vs_real": F.l1_loss(gram(ot, m), g).item(),
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT (repeatable)")
    ap.add_argument("--iter", default="latest")
    ap.add_argument("--samples", type=int, default=2, help="noise draws per map")
    ap.add_argument("--threshold", type=float, default=0.003)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out:  # before the painting, not after it
        files.ensure_writable_dir(Path(args.out).parent, "report")
    torch.manual_seed(args.seed)

    info = load_dataset(Path(args.dataroot), deep=False, need=("test",))
    background = info.palette.names.index("background")
    samples = info.splits["test"]
    with Image.open(samples[0].image) as first:
        size = (first.height, first.width)  # the data set's own size: no resampling of its textures
    data = SegmentationDataset(samples, info.palette, size)
    items = [data[i] for i in range(len(data))]
    label = torch.stack([it["label"] for it in items]).long()
    real = torch.stack([it["image"] for it in items]).float() / 255
    chars = torch.tensor([int(it["character"]) for it in items])
    mask = inner_background(label, background)

    report = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, torch {torch.__version__}",
        "dataroot": Path(args.dataroot).name,
        "maps": len(items),
        "threshold": args.threshold,
        "real": summarise(texture(real, mask), args.threshold),
        "models": {},
        "gram_statistics": statistics_check(real, mask),
    }
    for spec in args.model:
        name, _, path = spec.partition("=")
        painter = Painter.load(path, args.iter, device="cpu")
        values = []
        for s in range(args.samples):
            z = painter.noise(len(items), args.seed + s)
            parts = [
                painter.paint(
                    label[i : i + 32].numpy(), chars[i : i + 32], None if z is None else z[i : i + 32]
                )
                for i in range(0, len(items), 32)
            ]
            painted = torch.from_numpy(np.concatenate(parts))
            values.append(texture(painted.permute(0, 3, 1, 2).float() / 255, mask))
        report["models"][name] = {"checkpoint": path, **summarise(torch.cat(values), args.threshold)}
    print(json.dumps(report, indent=2))
    if args.out:
        files.write_json(Path(args.out), report)


if __name__ == "__main__":
    main()
