"""Time the checkpoint report's scoring of N generated images (FID+KID features, identity, mIoU); prints JSON.

The spec's target is 1,000 generated 256x256 images scored in under 30 s on one GPU; on the CPU the
judges should cost no more than the Inception features they sit beside.

python benchmarks/eval_speed.py --n 32                 # CPU: a small N
python benchmarks/eval_speed.py --n 1000 --device cuda
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from timing import timed

from animesis.data.palette import DEFAULT_PALETTE
from animesis.metrics.inception import load_inception
from animesis.metrics.judges import (
    CharacterJudge,
    CharacterJudgeConfig,
    Judges,
    SegmentJudge,
    SegmentJudgeConfig,
    predict_characters,
    predict_segments,
)
from animesis.metrics.report import ImageScorer, Networks

NOT_TIMED = "not part of this benchmark"


def blob_labels(n: int, size: int, num_classes: int, g: torch.Generator) -> torch.Tensor:
    """(n, size, size) uint8 label maps of smooth random regions, so every class covers some area."""
    coarse = torch.rand(n, num_classes, 8, 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").argmax(1).byte()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32, help="generated images (each with its real pair)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--characters", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    n, N, K = args.n, DEFAULT_PALETTE.num_classes, args.characters
    real = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    fake = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8, generator=g)
    labels = blob_labels(n, args.size, N, g)
    chars = torch.randint(0, K, (n,), generator=g)

    load_s, inception = timed(lambda: load_inception(device), device)
    # Untrained judges of the default size: their cost does not depend on their weights.
    judges = Judges(
        CharacterJudge(CharacterJudgeConfig(K)).to(device).eval(),
        SegmentJudge(SegmentJudgeConfig(N)).to(device).eval(),
        {},
        {},
        Path("."),
    )
    nets = Networks(inception, None, judges, None, {"lpips": NOT_TIMED, "colours": NOT_TIMED})
    warm = ImageScorer(nets, N, K, device)
    warm.add(
        real[:2], fake[:2], labels[:2], chars[:2]
    )  # cuDNN algorithm choice, allocator, oneDNN primitives

    batches = list(zip(*(t.split(args.batch_size) for t in (real, fake, labels, chars)), strict=True))
    scorer = ImageScorer(nets, N, K, device)
    score_s, _ = timed(lambda: [scorer.add(*b) for b in batches], device)
    math_s, (metrics, _) = timed(lambda: scorer.results(DEFAULT_PALETTE.names), torch.device("cpu"))

    # The parts, on the generated images alone.
    to_dev = [f.to(device) for f in fake.split(args.batch_size)]
    inc_s, _ = timed(lambda: [inception(f) for f in to_dev], device)
    id_s, _ = timed(lambda: [predict_characters(judges.character, f) for f in to_dev], device)
    seg_s, _ = timed(lambda: [predict_segments(judges.segment, f) for f in to_dev], device)

    total = score_s + math_s
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_generated": n,
        "size": args.size,
        "batch_size": args.batch_size,
        "inception_load_s": round(load_s, 3),
        "scoring": {
            "what": "Inception features of N real + N generated, character and segment judges on both, "
            "confusions; then FID and KID (100 subsets)",
            "seconds": round(total, 3),
            "generated_images_per_s": round(n / total, 2),
            "seconds_for_1000": round(1000 * score_s / n + math_s, 1),
            "fid_kid_math_s": round(math_s, 3),
        },
        "generated_only": {
            "inception_s": round(inc_s, 3),
            "character_judge_s": round(id_s, 3),
            "segment_judge_s": round(seg_s, 3),
            "judges_vs_inception": round((id_s + seg_s) / inc_s, 3),
        },
        "sanity": {k: metrics[k] for k in ("fid", "identity_accuracy", "miou")},
        "target": "1,000 generated 256x256 images in < 30 s on one GPU",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
