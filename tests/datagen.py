"""Tiny datasets in the seed layout for tests: valid as written, so a test can break one thing."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from animesis.data.palette import DEFAULT_PALETTE

# Seed class indices (see animesis.data.palette.SEED_CLASSES).
HAIR, EARS, EYES, BROWS, SKIN, ACCESSORY, MOUTH, CLOTHES, NOSE, FACE, BACKGROUND = range(11)

_BASE_COLORS = {  # what each class looks like when the character does not change it
    EARS: (240, 200, 180),
    BROWS: (60, 40, 30),
    SKIN: (245, 210, 190),
    MOUTH: (200, 80, 90),
    NOSE: (230, 180, 160),
    FACE: (250, 220, 200),
    BACKGROUND: (235, 240, 250),
}


def character_colors(character: int, num_characters: int) -> dict[int, tuple[int, int, int]]:
    """Hair, eye, clothes and accessory colours of a character: what a model can learn to tell apart."""
    t = (character + 0.5) / max(num_characters, 1)
    hue = np.array([t, (t + 1 / 3) % 1, (t + 2 / 3) % 1])
    rgb = (127 + 110 * np.cos(2 * np.pi * hue)).astype(int)
    hair = tuple(int(v) for v in rgb)
    return {
        HAIR: hair,
        EYES: hair[::-1],
        CLOTHES: tuple(255 - v for v in hair),
        ACCESSORY: (rgb[1], rgb[2], rgb[0]),
    }


def draw_label(size: tuple[int, int], rng: np.random.Generator, character: int) -> np.ndarray:
    """A face-like (H, W) uint8 label map with the seed's classes, jittered by rng."""
    H, W = size
    y, x = np.mgrid[0:H, 0:W].astype(float)
    cy, cx = H * rng.uniform(0.40, 0.48), W * rng.uniform(0.45, 0.55)
    ry, rx = H * rng.uniform(0.20, 0.25), W * rng.uniform(0.18, 0.23)

    def ellipse(py, px, ay, ax):
        return ((y - py) / ay) ** 2 + ((x - px) / ax) ** 2 <= 1

    label = np.full((H, W), BACKGROUND, np.uint8)
    label[y > H * 0.78] = CLOTHES
    label[(abs(x - cx) < rx * 0.4) & (y > cy) & (y <= H * 0.78)] = SKIN
    label[ellipse(cy - ry * 0.3, cx, ry * 1.3, rx * 1.3) & (y < cy)] = HAIR
    label[ellipse(cy, cx - rx, ry * 0.3, rx * 0.2) | ellipse(cy, cx + rx, ry * 0.3, rx * 0.2)] = EARS
    label[ellipse(cy, cx, ry, rx)] = FACE
    for side in (-1, 1):
        ex = cx + side * rx * 0.45
        label[ellipse(cy - ry * 0.1, ex, ry * 0.18, rx * 0.18)] = EYES
        label[ellipse(cy - ry * 0.4, ex, ry * 0.07, rx * 0.22)] = BROWS
    label[ellipse(cy + ry * 0.25, cx, ry * 0.08, rx * 0.08)] = NOSE
    label[ellipse(cy + ry * 0.55, cx, ry * 0.1, rx * 0.3)] = MOUTH
    if character % 2:  # odd characters wear a hair accessory
        label[ellipse(cy - ry * 1.1, cx + rx * 0.8, ry * 0.2, rx * 0.2)] = ACCESSORY
    return label


def paint(label: np.ndarray, character: int, num_characters: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) label -> (H, W, 3) uint8 picture: class colours, the character's own, and a little noise."""
    colors = {**_BASE_COLORS, **character_colors(character, num_characters)}
    lut = np.array([colors[i] for i in range(11)], np.int16)
    noise = rng.integers(-6, 7, size=(*label.shape, 3))
    return np.clip(lut[label] + noise, 0, 255).astype(np.uint8)


def edges_of(label: np.ndarray) -> np.ndarray:
    """(H, W) 0/1 uint8: pixels whose right or lower neighbour has another class."""
    edge = np.zeros(label.shape, np.uint8)
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    edge[:-1, :] |= label[:-1, :] != label[1:, :]
    return edge


def write_tiny_dataset(
    root: Path,
    *,
    n_train: int = 8,
    n_val: int = 2,
    n_test: int = 4,
    size: tuple[int, int] = (32, 32),  # (H, W)
    num_characters: int = 3,
    edges: bool = True,  # write 0/1 *_edge maps; without them training computes Canny edges
    label_mode: Literal["index", "rgb"] = "index",  # single-channel indices or palette colours
    seed: int = 0,
) -> Path:
    """Write a valid seed-layout dataset (class.txt with a header; every character in train) into root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    lines = ["image_name character_id"]
    n = 0
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        if count == 0:
            continue
        kinds = ("img", "label", "edge") if edges else ("img", "label")
        for kind in kinds:
            (root / f"{split}_{kind}").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            character = i % num_characters
            name = f"{n:04d}.png"
            n += 1
            label = draw_label(size, rng, character)
            Image.fromarray(paint(label, character, num_characters, rng)).save(root / f"{split}_img" / name)
            if label_mode == "rgb":
                Image.fromarray(DEFAULT_PALETTE.colorize(label)).save(root / f"{split}_label" / name)
            else:
                Image.fromarray(label).save(root / f"{split}_label" / name)
            if edges:
                Image.fromarray(edges_of(label)).save(root / f"{split}_edge" / name)
            lines.append(f"{name} {character}")
    (root / "class.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny_judge_settings(num_characters: int, size: int) -> dict:
    """`train_judges` keyword arguments for size x size judges, 30 passes in batches of 8: seconds on a CPU."""
    from animesis.metrics.judges import CharacterJudgeConfig, JudgeTraining, SegmentJudgeConfig

    return dict(
        device="cpu",
        epochs=30,
        seed=0,
        progress=False,
        character=CharacterJudgeConfig(num_characters, resolution=size),
        segment=SegmentJudgeConfig(DEFAULT_PALETTE.num_classes, resolution=size),
        character_training=JudgeTraining(views=0, batch_size=8, lr=3e-3),
        segment_training=JudgeTraining(views=0, batch_size=8, lr=4e-3),
    )
