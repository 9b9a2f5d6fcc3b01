"""Label maps shipped with the app: a blank face to start from and a few drawn faces.

They are index PNGs in the built-in dataset's classes, so they are offered only to models that use
those classes. They are read once at start-up; a request picks one by name from that table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from animesis.data.palette import DEFAULT_PALETTE, Palette

EXAMPLES_DIR = Path(__file__).with_name("examples")
BLANK = "blank"


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    label: np.ndarray  # (H, W) uint8 class ids at the model's size


def load_examples(palette: Palette, size: tuple[int, int]) -> dict[str, Example]:
    """Name -> example resized (nearest) to `size`; empty when the model's classes are not the built-in ones."""
    if palette.names != DEFAULT_PALETTE.names:
        return {}
    H, W = size
    examples = {}
    paths = sorted(EXAMPLES_DIR.glob("*.png"), key=lambda p: (p.stem != BLANK, p.stem))
    for path in paths:
        with Image.open(path) as img:
            label = np.array(img.convert("L").resize((W, H), Image.NEAREST))
        title = "Blank face" if path.stem == BLANK else path.stem.replace("-", " ").capitalize()
        examples[path.stem] = Example(path.stem, title, label)
    return examples
