"""How good are the annotation assistant's drafts, given 10, 30 or 100 labelled training pictures?

Two data sets: the built-in cast (the seed's 11 classes), and a second one with other characters
(another cast file: hairstyles the built-in cast does not wear), other classes (six, merged from the
eleven: hair, eyes, skin, mouth, clothes, background; written as palette.json) and another size
(128x128). For each, the annotation segmenter learns from n labelled training pictures (taken in turn
from each character) and drafts every test picture at its own size, exactly as `animesis annotate`
does; the drafts are scored against the true label maps (mIoU over the classes present, and pixel
accuracy). The confidence map is scored too: the share of the wrong pixels that lie in the tenth of
pixels it is least sure of. CPU minutes are this process's CPU time for training the segmenter
(--scale reduced: fewer pictures and training views, and the segmenter at 64x64 for both sets).
Prints one JSON object.

  python benchmarks/annotate_quality.py                  # reduced: fewer pictures and training views
  python benchmarks/annotate_quality.py --scale full     # 256x256 built-in pictures, default training
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animesis.annotate import SegmenterSettings, draft_label, load_or_train_segmenter, read_picture
from animesis.cli import main as cli
from animesis.data.check import read_label
from animesis.data.layout import load_dataset
from animesis.data.palette import DEFAULT_PALETTE
from animesis.metrics.judges import confusion_matrix, miou_from_confusion

SCALES = {
    # The segmenter's defaults: 16k views, at least 1,000 steps, at the pictures' size up to 128.
    "full": dict(builtin_size=256, train=120, test=180, settings={}),
    # 4k views, at least 500 steps, both data sets segmented at 64x64 (drafts still at their own size).
    "reduced": dict(
        builtin_size=64, train=108, test=45, settings=dict(views=4000, min_steps=500, resolution=64)
    ),
}
NS = (10, 30, 100)
# The second data set: four characters in hairstyles the built-in cast does not wear.
OTHER_CAST = {
    "format": 1,
    "restyle": 0.0,
    "characters": [
        {"name": "Hina Mori", "family": "Mori", "hairstyle": "short", "bangs": "swept", "hair": "#d0402c",
         "eyes": "#2c8a4a", "skin": "#f6d6c0", "clothes": "#e8d44a", "pattern": "checks", "accessories": ["glasses"],
         "accessory_color": "#202020"},
        {"name": "Mio Mori", "family": "Mori", "hairstyle": "short", "bangs": "swept", "hair": "#1f6f5a",
         "eyes": "#c03a8c", "skin": "#f1cfb6", "clothes": "#5a2f8c", "pattern": "dots", "accessories": ["glasses"],
         "accessory_color": "#a0a0a0"},
        {"name": "Rin Tachibana", "family": "Tachibana", "hairstyle": "ponytail", "bangs": "parted",
         "hair": "#f4f0e8", "eyes": "#d02020", "skin": "#fbe6d8", "clothes": "#20355a", "pattern": "buttons",
         "accessories": ["flower"], "accessory_color": "#f080b0"},
        {"name": "Yuzu Tachibana", "family": "Tachibana", "hairstyle": "buns", "bangs": "parted",
         "hair": "#f0a030", "eyes": "#3050d0", "skin": "#f4d2bc", "clothes": "#c02838", "pattern": "plain",
         "accessories": ["headband"], "accessory_color": "#fafafa"},
    ],
}  # fmt: skip
# The second data set's classes: each of the seed's eleven goes to one of six.
MERGED = {
    "hair": ("hair", "eyebrows"),
    "eyes": ("eyes",),
    "skin": ("skin", "face", "ears", "nose"),
    "mouth": ("mouth",),
    "clothes": ("clothes", "accessories"),
    "background": ("background",),
}
MERGED_COLOURS = [(200, 40, 160), (40, 40, 220), (250, 200, 150), (220, 40, 40), (40, 160, 60), (0, 0, 0)]


def quiet(*args: str) -> None:
    """Run an animesis command with its stdout on stderr: this script's stdout is its JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        cli(list(args))


def builtin(work: Path, s: dict) -> Path:
    root = work / "builtin"
    if not (root / "class.txt").exists():
        quiet("dataset", "synth", "--out", str(root), "--characters", "9", "--size", str(s["builtin_size"]),
              "--train", str(s["train"]), "--val", "0", "--test", str(s["test"]), "--seed", "0", "--workers", "1")  # fmt: skip
    return root


def other(work: Path, s: dict) -> Path:
    """Another cast at 128x128, its label maps rewritten in six merged classes with their own palette."""
    root = work / "other"
    if (root / "palette.json").exists():
        return root
    cast = work / "other_cast.json"
    cast.write_text(json.dumps(OTHER_CAST))
    quiet("dataset", "synth", "--out", str(root), "--characters", "4", "--size", "128", "--train", str(s["train"]),
          "--val", "0", "--test", str(s["test"]), "--seed", "1", "--workers", "1", "--characters-file", str(cast))  # fmt: skip
    lut = np.zeros(256, np.uint8)
    for new, (_, olds) in enumerate(MERGED.items()):
        for old in olds:
            lut[DEFAULT_PALETTE.names.index(old)] = new
    for split in ("train", "test"):
        for p in sorted((root / f"{split}_label").iterdir()):
            Image.fromarray(lut[read_label(p, DEFAULT_PALETTE)]).save(p)
    classes = [{"name": n, "color": list(c)} for n, c in zip(MERGED, MERGED_COLOURS, strict=True)]
    (root / "palette.json").write_text(json.dumps({"classes": classes}, indent=2))
    return root


def score_drafts(judge, info) -> dict:
    """Draft every test picture at its own size; mIoU, pixel accuracy and where the errors lie."""
    N = info.num_classes
    conf_matrix = torch.zeros(N, N, dtype=torch.int64)
    wrong_total, wrong_in_least_sure, pixels = 0, 0, 0
    for sample in info.splits["test"]:
        draft = draft_label(judge, read_picture(sample.image))
        truth = read_label(sample.label, info.palette)
        conf_matrix += confusion_matrix(torch.from_numpy(draft.label), torch.from_numpy(truth), N)
        wrong = draft.label != truth
        least_sure = draft.confidence <= np.quantile(draft.confidence, 0.1)
        wrong_total += int(wrong.sum())
        wrong_in_least_sure += int((wrong & least_sure).sum())
        pixels += wrong.size
    score, per_class = miou_from_confusion(conf_matrix)
    return {
        "miou": round(score, 4),
        "pixel_accuracy": round(float(conf_matrix.diag().sum() / conf_matrix.sum()), 4),
        "iou_per_class": {n: (None if np.isnan(v) else round(float(v), 3)) for n, v in zip(info.palette.names, per_class, strict=True)},
        "wrong_pixels_in_least_sure_tenth": round(wrong_in_least_sure / max(wrong_total, 1), 3),
        "test_pictures": len(info.splits["test"]),
    }  # fmt: skip


def measure(root: Path, work: Path, s: dict, n: int) -> dict:
    info = load_dataset(root, deep=False)
    settings = SegmenterSettings(train_pictures=n, seed=0, **s["settings"])
    cpu, wall = time.process_time(), time.perf_counter()
    seg = load_or_train_segmenter(info, settings, device="cpu", retrain=True, workers=0, progress=False,
                                  cache=work / f"segmenter_{root.name}_{n}")  # fmt: skip
    trained = {"cpu_minutes": round((time.process_time() - cpu) / 60, 2),
               "minutes": round((time.perf_counter() - wall) / 60, 2)}  # fmt: skip
    started = time.process_time()
    result = score_drafts(seg.judge, info)
    drafting = (time.process_time() - started) / max(result["test_pictures"], 1)
    return {**result, **trained, "steps": seg.meta["training"]["steps"],
            "resolution": seg.meta["settings"]["resolution"], "cpu_seconds_per_draft": round(drafting, 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    ap.add_argument("--work", default=None, help="folder for the data sets (default: a temporary one)")
    args = ap.parse_args()
    s = SCALES[args.scale]
    work = Path(args.work or tempfile.mkdtemp(prefix="annotate_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sets = {"builtin": builtin(work, s), "other": other(work, s)}
    result: dict = {
        "scale": args.scale,
        "setup": {**s, "ns": list(NS), "threads": torch.get_num_threads(),
                  "cpu": platform.processor() or platform.machine()},
        "datasets": {
            "builtin": f"the built-in cast, 9 characters, 11 classes, {s['builtin_size']}x{s['builtin_size']}",
            "other": "another cast file, 4 characters, 6 merged classes (palette.json), 128x128",
        },
    }  # fmt: skip
    for name, root in sets.items():
        result[name] = {}
        for n in NS:
            result[name][f"n={n}"] = measure(root, work, s, n)
            print(json.dumps({name: {f"n={n}": result[name][f"n={n}"]["miou"]}}), file=sys.stderr, flush=True)
    result["minutes_total"] = round((time.perf_counter() - started) / 60, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
