"""How much a label map alone gives away about the character: 1-nearest-neighbour accuracy, train -> test.

Draws label maps of the built-in dataset in memory (the same pictures `animesis dataset synth` writes),
then names each test map's character after its nearest training map (fewest differing pixels, ties to
the first) and prints JSON. The issue's bound is 3x chance (1/3 for 9 characters).

    python benchmarks/synth_ambiguity.py --train 2000 --test 400 --size 64
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from animesis.synth.cast import cast_members, load_cast
from animesis.synth.dataset import draw_picture


def label_maps(
    chars: tuple, restyle: float, seed: int, split: str, n: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, size*size) label maps and (n,) character ids of one split, as the dataset draws them."""
    k = len(chars)
    ids = np.arange(n) % k
    maps = np.stack(
        [draw_picture(chars, restyle, seed, split, i, size, int(ids[i])).label.ravel() for i in range(n)]
    )
    return maps, ids


def nearest_neighbour_accuracy(
    train: np.ndarray, train_ids: np.ndarray, test: np.ndarray, test_ids: np.ndarray
) -> float:
    """Share of test maps whose nearest training map (fewest differing pixels) has the same id."""
    same = np.zeros((len(test), len(train)), np.float32)  # pixels that agree, exact below 2**24
    for c in range(int(max(train.max(), test.max())) + 1):  # one class at a time keeps memory small
        same += (test == c).astype(np.float32) @ (train == c).astype(np.float32).T
    return float(np.mean(train_ids[np.argmax(same, axis=1)] == test_ids))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--characters", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--characters-file", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    cast = load_cast(args.characters_file)
    chars = cast_members(cast, args.characters, args.seed)
    tr, tr_ids = label_maps(chars, cast.restyle, args.seed, "train", args.train, args.size)
    te, te_ids = label_maps(chars, cast.restyle, args.seed, "test", args.test, args.size)
    acc = nearest_neighbour_accuracy(tr, tr_ids, te, te_ids)
    # The same classifier told only the family (the look sisters share): how well the map names a family.
    fam_names = sorted({c.family for c in chars})
    fam = np.array([fam_names.index(c.family) for c in chars])
    fam_acc = nearest_neighbour_accuracy(tr, fam[tr_ids], te, fam[te_ids])
    chance = 1 / len(chars)
    print(
        json.dumps(
            {
                "nearest_neighbour_accuracy": round(acc, 4),
                "chance": round(chance, 4),
                "bound": round(3 * chance, 4),
                "ratio_to_chance": round(acc / chance, 2),
                "family_accuracy": round(fam_acc, 4),
                "family_chance": round(1 / len(fam_names), 4),
                "train": args.train,
                "test": args.test,
                "size": args.size,
                "characters": len(chars),
                "restyle": cast.restyle,
                "seconds": round(time.perf_counter() - t0, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
