"""Semantic classes and their annotation colours; RGB <-> index conversion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The seed's 11 classes, in index order, with the PASCAL-VOC colours its drawing client uses.
SEED_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("hair", (64, 0, 128)),
    ("ears", (128, 128, 128)),
    ("eyes", (64, 0, 0)),
    ("eyebrows", (192, 0, 0)),
    ("skin", (0, 128, 128)),
    ("accessories", (0, 0, 128)),
    ("mouth", (64, 128, 0)),
    ("clothes", (128, 128, 0)),
    ("nose", (192, 128, 0)),
    ("face", (128, 0, 128)),
    ("background", (0, 0, 0)),
)


class PaletteError(ValueError):
    """A palette file or a colour label map that does not fit the palette."""


@dataclass(frozen=True)
class Palette:
    """Class names and one distinct RGB colour per class; class i has names[i] and colors[i]."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors) or not self.names:
            raise PaletteError("a palette needs one colour per class and at least one class")
        if len(set(self.colors)) != len(self.colors):
            raise PaletteError("two classes share a colour")
        if len(set(self.names)) != len(self.names):
            raise PaletteError("two classes share a name")
        if len(self.names) > 255:
            raise PaletteError("at most 255 classes fit an 8-bit label map")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int | None:
        """Index of a class by name, or None when the palette has no such class."""
        return self.names.index(name) if name in self.names else None

    def encode(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 colours -> (H, W) uint8 indices and a mask of pixels not in the palette."""
        key = _pack(rgb)
        lut_keys = _pack(np.asarray(self.colors, dtype=np.uint8)[None])[0]
        order = np.argsort(lut_keys)
        pos = np.searchsorted(lut_keys[order], key).clip(0, len(order) - 1)
        found = lut_keys[order][pos] == key
        return np.where(found, order[pos], 0).astype(np.uint8), ~found

    def colorize(self, index: np.ndarray) -> np.ndarray:
        """(H, W) integer indices -> (H, W, 3) uint8 colours; out-of-range indices become white."""
        lut = np.full((256, 3), 255, dtype=np.uint8)
        lut[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return lut[np.asarray(index, dtype=np.int64).clip(0, 255)]

    def to_json(self) -> dict:
        return {
            "classes": [{"name": n, "color": list(c)} for n, c in zip(self.names, self.colors, strict=True)]
        }

    @classmethod
    def from_json(cls, data: dict) -> Palette:
        try:
            entries = data["classes"]
            names = tuple(str(e["name"]) for e in entries)
            colors = tuple(tuple(int(v) for v in e["color"]) for e in entries)
        except (KeyError, TypeError, ValueError) as e:
            raise PaletteError('expected {"classes": [{"name": "hair", "color": [64, 0, 128]}, ...]}') from e
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
            raise PaletteError("every colour must be three integers in 0..255")
        return cls(names=names, colors=colors)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> Palette:
        """Read a palette.json, naming the file in any error."""
        path = Path(path)
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, PaletteError) as e:
            raise PaletteError(f"{path}: {e}") from e


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


DEFAULT_PALETTE = Palette(names=tuple(n for n, _ in SEED_CLASSES), colors=tuple(c for _, c in SEED_CLASSES))
