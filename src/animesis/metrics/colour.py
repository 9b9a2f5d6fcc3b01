"""Colour error for datasets whose characters' colours are known (the built-in synthetic cast).

For every region of a label map whose class has a colour in the requested character's traits, each
pixel's CIELAB ΔE (CIE76) to that trait colour is measured, and the region scores the ΔE that its
best-matching tenth of pixels reaches (the 10th percentile). A low percentile rather than the median
because a drawn region is not one flat colour: an eye is mostly white, lashes and pupil around its
iris; hair has shadow and highlight bands; clothes carry a pattern. On the built-in dataset's real
test pictures the median colour of an eye region is ~60 ΔE from the eye colour (as far as another
character's), while the 10th percentile is ~9 for the right character and ~60 for a wrong one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from kornia.color import rgb_to_lab

from animesis.data.palette import Palette
from animesis.metrics.assets import MetricUnavailable

CAST_FILE = "cast.json"
QUANTILE = 0.1
SPACE = (
    "per region, the 10th percentile of its pixels' CIELAB (D65) ΔE76 to the requested character's trait "
    "colour; mean over regions"
)
# A region smaller than this share of the image is too few pixels for a stable percentile (an eye at a
# low resolution, a sliver of hair): it is skipped, for the real and the generated images alike.
MIN_REGION_SHARE = 0.0005

# Which palette classes each colour trait of the synthetic cast paints (see animesis.synth.cast).
TRAIT_CLASSES: dict[str, tuple[str, ...]] = {
    "hair": ("hair",),
    "eyes": ("eyes",),
    "skin": ("skin", "face"),  # not "ears": a few dozen pixels, mostly outline (real ones score ~47)
    "clothes": ("clothes",),
    "accessory_color": ("accessories",),
}

CastColours = dict[int, dict[int, tuple[int, int, int]]]  # character id -> class id -> sRGB colour


def _as_rgb(value: object) -> tuple[int, int, int] | None:
    """[r, g, b] (0-255) or '#rrggbb' -> a colour; anything else (a style name, a number) -> None."""
    if isinstance(value, str) and len(value) == 7 and value.startswith("#"):
        try:
            return tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        except ValueError:
            return None
    if (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in value)
    ):
        return tuple(value)  # type: ignore[return-value]
    return None


def cast_colours(cast: dict, palette: Palette) -> CastColours:
    """Trait colours of each character of a cast.json, keyed by the palette classes they paint.

    Traits without a region of their own (shadow and highlight tones, the clothes' accent) and style
    names are not compared; a class missing from the palette is skipped.
    """
    out: CastColours = {}
    for i, entry in enumerate(cast.get("characters", [])):
        colours: dict[int, tuple[int, int, int]] = {}
        for trait, names in TRAIT_CLASSES.items():
            rgb = _as_rgb(entry.get(trait))
            for name in names:
                cls = palette.index(name)
                if rgb is not None and cls is not None:
                    colours[cls] = rgb
        out[int(entry.get("id", i))] = colours
    return out


def load_cast_colours(dataroot: Path, palette: Palette, num_characters: int) -> CastColours:
    """The cast colours of a built-in synthetic dataset; MetricUnavailable for any other dataset."""
    path = Path(dataroot) / CAST_FILE
    if not path.exists():
        raise MetricUnavailable(
            f"colour error needs each character's colours: {path} not found (only datasets drawn by "
            "`animesis dataset synth` record them)"
        )
    try:
        colours = cast_colours(json.loads(path.read_text(encoding="utf-8")), palette)
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise MetricUnavailable(f"colour error: {path} is unreadable ({e})") from e
    missing = [k for k in range(num_characters) if not colours.get(k)]
    if missing:
        raise MetricUnavailable(
            f"colour error: {path} gives no colour for a palette class of character(s) {missing}"
        )
    return colours


def _lab(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) array or (B, 3, H, W) tensor -> (B, 3, H, W) float Lab."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return rgb_to_lab(images.float() / 255.0)


def region_colour_errors(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    requested: torch.Tensor | np.ndarray | list[int],
    colours: CastColours,
) -> tuple[np.ndarray, np.ndarray]:
    """(ΔE per scored region, its class id): one entry per (image, region with a known colour)."""
    lab = _lab(images)  # (B, 3, H, W)
    labels = torch.as_tensor(np.asarray(labels)).to(lab.device)
    requested = np.asarray(requested, dtype=np.int64).reshape(-1)
    if labels.shape[0] != lab.shape[0] or labels.shape[-2:] != lab.shape[-2:] or len(requested) != len(lab):
        raise ValueError(
            f"images {tuple(lab.shape)}, labels {tuple(labels.shape)} and {len(requested)} ids do not match"
        )
    min_pixels = max(4, round(MIN_REGION_SHARE * lab.shape[-2] * lab.shape[-1]))
    targets = {
        (k, c): rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255.0).view(3)
        for k, by_class in colours.items()
        for c, rgb in by_class.items()
    }
    errors, classes = [], []
    for b, k in enumerate(requested.tolist()):
        for c in colours.get(k, {}):
            mask = labels[b] == c
            if int(mask.sum()) < min_pixels:
                continue
            target = targets[(k, c)].to(lab.device)[:, None]  # (3, 1)
            delta = torch.linalg.vector_norm(lab[b][:, mask] - target, dim=0)  # (pixels,)
            errors.append(torch.quantile(delta, QUANTILE).item())
            classes.append(c)
    return np.asarray(errors, dtype=np.float64), np.asarray(classes, dtype=np.int64)


def colour_error(
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    requested: torch.Tensor | np.ndarray | list[int],
    colours: CastColours,
) -> float:
    """Mean region ΔE over every (image, region) whose class has a colour in the requested character's traits."""
    errors, _ = region_colour_errors(images, labels, requested, colours)
    if not len(errors):
        raise ValueError("no region with a known colour is large enough to score")
    return float(errors.mean())
