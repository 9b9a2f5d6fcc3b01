"""Draw the README figure: a few test maps, each beside its real picture and painted as every character.

python scripts/figure.py --checkpoint checkpoints/synth_small --iter best --dataroot datasets/Synth64 --out docs/images/paint.png

With --noise S, each map takes S rows, one per noise sample (the same noise across a row): a grid of
maps x characters x noise, to see what the noise varies (it should be background and light, not the
character).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import load_dataset
from animesis.inference import Painter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--iter", default="latest")
    ap.add_argument("--dataroot", required=True)
    ap.add_argument("--maps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=int, default=1, help="noise samples per map (rows per map)")
    ap.add_argument("--tile", type=int, default=96, help="pixels per tile in the figure")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    painter = Painter.load(args.checkpoint, args.iter, device="cpu")
    info = load_dataset(Path(args.dataroot), deep=False, need=("test",))
    samples = info.splits["test"]
    K = painter.num_characters
    # Maps drawn for different characters, so the figure shows several layouts (hairstyles).
    wanted = [j * K // args.maps for j in range(args.maps)]
    picks = [next(s for s in samples if s.character == c) for c in wanted]
    ds = SegmentationDataset(picks, info.palette, painter.card.image_size)
    # One noise per row, shared by its tiles: along a row only the character changes.
    noises = painter.noise(args.noise, args.seed)
    blank = np.full((args.tile, args.tile, 3), 255, np.uint8)
    rows = []
    for i in range(len(ds)):
        item = ds[i]
        label = item["label"].numpy()
        for j in range(args.noise):
            z = noises[j : j + 1].expand(K, -1) if noises is not None else None
            painted = painter.paint(np.repeat(label[None], K, 0), torch.arange(K), z)
            if j == 0:  # the map and its real picture head the map's first row
                head = [
                    _tile(t, args.tile)
                    for t in (painter.colorize(label), item["image"].permute(1, 2, 0).numpy())
                ]
            else:
                head = [blank, blank]
            rows.append(np.concatenate([*head, *(_tile(t, args.tile) for t in painted)], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    print(args.out)


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))


if __name__ == "__main__":
    main()
