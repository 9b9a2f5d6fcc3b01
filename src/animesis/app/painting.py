"""What a paint request asks for (label map, who paints it, seed) and painting it with a Painter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from animesis.app.uploads import (
    Limits,
    UploadError,
    b64decode,
    index_map,
    label_from_image,
    open_png,
    raw_map,
)
from animesis.inference import Painter

MAX_SEED = 2**32 - 1
MAX_VARIATIONS = 8
CHARACTER_FIELDS = ("character", "blend", "owner", "owner_png")


@dataclass(frozen=True)
class PaintJob:
    """One picture's inputs at the model size; exactly one of character, blend and owner is set."""

    label: np.ndarray  # (H, W) uint8 class ids
    seed: int
    character: int | None = None  # one character
    blend: tuple[int, int, float] | None = None  # (a, b, t): (1 - t) of a's code plus t of b's
    owner: np.ndarray | None = None  # (H, W) uint8 character id per pixel (region mixing)


def parse_job(body: dict[str, Any], painter: Painter, limits: Limits) -> PaintJob:
    """A JSON paint request -> a checked PaintJob; any fault raises UploadError naming the field."""
    label = read_map(body, "label", painter, limits)
    seed = as_int(body.get("seed", 0), "seed", 0, MAX_SEED)
    given = [f for f in CHARACTER_FIELDS if body.get(f) is not None]
    if len(given) != 1:
        raise UploadError(
            "request: give exactly one of character (an id), blend ([a, b, t]) or owner (a map of ids)"
        )
    K = painter.num_characters
    if given[0] == "character":
        return PaintJob(label, seed, character=as_int(body["character"], "character", 0, K - 1))
    if given[0] == "blend":
        spec = body["blend"]
        if not isinstance(spec, list) or len(spec) != 3:
            raise UploadError("blend: expected [a, b, t]: (1 - t) of character a and t of character b")
        a, b = as_int(spec[0], "blend a", 0, K - 1), as_int(spec[1], "blend b", 0, K - 1)
        return PaintJob(label, seed, blend=(a, b, as_float(spec[2], "blend t", 0.0, 1.0)))
    return PaintJob(label, seed, owner=read_map(body, "owner", painter, limits))


def read_map(body: dict[str, Any], field: str, painter: Painter, limits: Limits) -> np.ndarray:
    """`field` (raw base64, H*W bytes at the model size) or `field`_png (a PNG of any size)."""
    is_label = field == "label"
    limit, kind = (painter.num_classes, "classes") if is_label else (painter.num_characters, "characters")
    if body.get(field) is not None:
        data = b64decode(body[field], field, limits.max_upload_bytes)
        return raw_map(data, painter.card.image_size, limit, field, kind)
    if body.get(f"{field}_png") is not None:
        what = f"{field}_png"
        img = open_png(b64decode(body[what], what, limits.max_upload_bytes), what, limits)
        if is_label:
            values = label_from_image(img, painter.card.palette, limit, what)
        else:
            values = index_map(img, limit, what, kind)
        return painter.resize_label(values)
    raise UploadError(f"request: missing {field} (base64 of H*W bytes) or {field}_png (base64 of a PNG)")


def as_int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UploadError(f"{what}: expected an integer in {lo}..{hi}, got {value!r}")
    return value


def as_float(value: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise UploadError(f"{what}: expected a number in {lo:g}..{hi:g}, got {value!r}")
    return float(value)


def noise_for(painter: Painter, seeds: list[int]) -> torch.Tensor | None:
    """One noise vector per seed, each as `painter.noise(1, seed)` draws it: a variation painted in
    a batch is the same picture as its seed painted alone."""
    zs = [painter.noise(1, s) for s in seeds]
    return None if zs[0] is None else torch.cat(zs)


def characters_for(job: PaintJob, n: int, painter: Painter) -> np.ndarray:
    """The `characters` argument of Painter.paint for n copies of the job."""
    if job.owner is not None:
        return np.repeat(job.owner[None].astype(np.int64), n, axis=0)  # (n, H, W) ids
    if job.blend is not None:
        a, b, t = job.blend
        w = np.zeros(painter.num_characters, np.float32)
        w[a] += 1 - t
        w[b] += t
        return np.repeat(w[None], n, axis=0)  # (n, K) weights
    return np.full(n, job.character, np.int64)  # (n,) ids


class Engine(Protocol):
    """What runs the generator: the Painter itself (torch) or an onnxruntime graph of the same weights."""

    def paint(self, labels: np.ndarray, characters: torch.Tensor, z: torch.Tensor | None) -> np.ndarray: ...


def paint_job(painter: Painter, job: PaintJob, seeds: list[int], engine: Engine | None = None) -> np.ndarray:
    """The job painted once per seed -> (len(seeds), H, W, 3) uint8, by `engine` (default: the painter)."""
    n = len(seeds)
    labels = np.repeat(job.label[None], n, axis=0)
    characters = torch.as_tensor(characters_for(job, n, painter))
    return (engine or painter).paint(labels, characters, noise_for(painter, seeds))


def character_swatches(painter: Painter, template: np.ndarray, batch: int = 8) -> list[list[int]]:
    """One colour per character: the mean colour of the hair region when the character paints
    `template` with seed 0 (the mean of the whole picture when the map has no hair)."""
    hair = painter.card.palette.index("hair")
    mask = template == hair if hair is not None else np.zeros(template.shape, bool)
    if not mask.any():
        mask = np.ones(template.shape, bool)
    swatches: list[list[int]] = []
    for start in range(0, painter.num_characters, batch):
        ids = list(range(start, min(start + batch, painter.num_characters)))
        labels = np.repeat(template[None], len(ids), axis=0)
        images = painter.paint(labels, torch.as_tensor(ids), noise_for(painter, [0] * len(ids)))
        swatches += [[round(float(v)) for v in img[mask].mean(axis=0)] for img in images]
    return swatches


def band_template(num_classes: int, size: tuple[int, int]) -> np.ndarray:
    """A map with a horizontal band of every class: a template for palettes without shipped maps."""
    H, W = size
    rows = (np.arange(H) * num_classes // H).astype(np.uint8)
    return np.repeat(rows[:, None], W, axis=1)
