"""Time the metric networks: Inception features, FID/KID math, LPIPS, and a whole folder evaluation; prints JSON.

python benchmarks/metrics_speed.py --n 64            # CPU: a modest N
python benchmarks/metrics_speed.py --n 1000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from timing import timed

from animesis.metrics.evaluate import evaluate_folders
from animesis.metrics.fid_kid import fid_from_features, kid_from_features
from animesis.metrics.inception import load_inception
from animesis.metrics.lpips import load_lpips


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images per set")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-folders", action="store_true", help="skip the end-to-end folder evaluation")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    report: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n": args.n,
        "size": args.size,
        "batch_size": args.batch_size,
    }

    load_s, net = timed(lambda: load_inception(device), device)  # includes the SHA-1 of 87 MB
    net(images[:2].to(device))  # warm-up (cuDNN algorithm choice, allocator)
    batches = lambda: torch.cat([net(b.to(device)).cpu() for b in images.split(args.batch_size)])
    feat_s, feats = timed(batches, device)
    report["inception"] = {"load_s": load_s, "seconds": feat_s, "images_per_s": args.n / feat_s}

    other = feats.flip(0) + 0.01  # a second feature set of the same size for the distance math
    fid_s, _ = timed(lambda: fid_from_features(feats, other), torch.device("cpu"))
    kid_s, _ = timed(lambda: kid_from_features(feats, other), torch.device("cpu"))
    report["fid_math_s"], report["kid_math_s"] = fid_s, kid_s

    x = images.float() / 127.5 - 1
    chunks = list(zip(x.split(args.batch_size), x.flip(0).split(args.batch_size), strict=True))
    for name in ("alex", "vgg"):
        model = load_lpips(name, device)
        model(x[:2].to(device), x[:2].to(device))
        s, _ = timed(lambda m=model: [m(a.to(device), b.to(device)) for a, b in chunks], device)
        report[f"lpips_{name}"] = {"seconds": s, "pairs_per_s": args.n / s}

    if not args.skip_folders:
        with tempfile.TemporaryDirectory() as tmp:
            for role, data in (("real", images), ("fake", images.flip(0))):
                (Path(tmp) / role).mkdir()
                for i, image in enumerate(data):
                    Image.fromarray(np.ascontiguousarray(image.permute(1, 2, 0).numpy())).save(
                        Path(tmp) / role / f"{i:05d}.png"
                    )
            s, _ = timed(
                lambda: evaluate_folders(
                    Path(tmp) / "real",
                    Path(tmp) / "fake",
                    paired=True,
                    device=device,
                    batch_size=args.batch_size,
                    progress=False,
                ),
                device,
            )
        report["eval_folders_paired"] = {
            "seconds": s,
            "what": f"FID+KID on {args.n}+{args.n} PNGs, paired LPIPS-alex on {args.n}",
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
