"""Do the metrics reproduce their references? LPIPS on the published example images, FID/KID against
torchmetrics on the same Inception features of built-in pictures; prints one JSON object.

python benchmarks/metrics_reference.py --n 64
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from animesis.metrics import lpips_distance
from animesis.metrics.fid_kid import fid_from_features, kid_from_features
from animesis.metrics.inception import load_inception
from animesis.synth.cast import cast_members, load_cast
from animesis.synth.dataset import draw_picture

EXAMPLES = Path(__file__).resolve().parents[1] / "tests" / "data" / "lpips"
PUBLISHED = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}  # ex_ref vs ex_p0, ex_p1 (LPIPS v0.1 README)


class Features(nn.Module):
    """torchmetrics `feature=` module fed with features already computed, so both sides share them."""

    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def example(name: str) -> torch.Tensor:
    array = np.array(Image.open(EXAMPLES / f"{name}.png").convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1


def pictures(split: str, n: int, size: int) -> torch.Tensor:
    """(n, 3, size, size) uint8 built-in pictures of one split."""
    cast = load_cast(None)
    chars = cast_members(cast, 9, 0)
    images = [draw_picture(chars, cast.restyle, 0, split, i, size, i % 9).image for i in range(n)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="pictures per set for FID/KID")
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    t0 = time.perf_counter()
    ref, p0, p1 = (example(k) for k in ("ex_ref", "ex_p0", "ex_p1"))
    lpips = {}
    for net, published in PUBLISHED.items():
        d = lpips_distance(torch.cat([ref, ref]), torch.cat([p0, p1]), net=net).tolist()
        lpips[net] = {"ex_p0": round(d[0], 4), "ex_p1": round(d[1], 4), "published": published}

    inception = load_inception("cpu")
    with torch.no_grad():
        real = inception(pictures("train", args.n, args.size))
        fake = inception(pictures("test", args.n, args.size))
    tm_fid = FrechetInceptionDistance(feature=Features())
    tm_fid.update(real, real=True)
    tm_fid.update(fake, real=False)
    # Subsets as large as the sets: every subset is the whole set, so both KIDs are deterministic.
    tm_kid = KernelInceptionDistance(feature=Features(), subset_size=args.n, subsets=2)
    tm_kid.update(real, real=True)
    tm_kid.update(fake, real=False)
    ours_fid, theirs_fid = fid_from_features(real, fake), tm_fid.compute().item()
    ours_kid, theirs_kid = kid_from_features(real, fake, subsets=2).mean, tm_kid.compute()[0].item()
    print(
        json.dumps(
            {
                "date": datetime.date.today().isoformat(),
                "machine": f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
                "lpips": lpips,
                "fid_kid": {
                    "sets": f"{args.n} built-in train vs {args.n} test pictures at {args.size}x{args.size}",
                    "fid": ours_fid,
                    "fid_torchmetrics": theirs_fid,
                    "fid_relative_difference": abs(ours_fid - theirs_fid) / abs(theirs_fid),
                    "kid": ours_kid,
                    "kid_torchmetrics": theirs_kid,
                    "kid_relative_difference": abs(ours_kid - theirs_kid) / abs(theirs_kid),
                },
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
