"""The torch Dataset over checked samples: uint8 image, label map and edge map at the model's size.

Items are plain CPU tensors with no randomness and no normalisation, so DataLoader workers are safe
and cheap; flips, scaling to [-1, 1] and Canny edges (for splits without *_edge/) happen on the
device in the training loop. Label maps in mode "P" are read as their raw indices, not as the
colours their PNG palette shows; RGB label maps go through the dataset palette.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from animesis.data.check import (
    MAX_PIXELS,
    DatasetError,
    read_edge,
    read_image,
    read_label,
    resize_image,
    resize_nearest,
)
from animesis.data.layout import Sample
from animesis.data.palette import Palette

__all__ = ["DatasetError", "SegmentationDataset", "read_label"]


class SegmentationDataset(Dataset):
    """Samples -> {"image": (3, H, W) uint8, "label": (H, W) uint8, ["edge": (H, W) 0/1 uint8,]
    "character": int64 0-d, "index": int}; "edge" only when the samples have edge files."""

    def __init__(
        self,
        samples: Sequence[Sample],
        palette: Palette,
        size: tuple[int, int],  # (H, W) every item is resized to
        *,
        cache: bool = False,  # keep decoded, resized arrays (per worker process) to skip decoding next epoch
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.samples = tuple(samples)
        self.palette = palette
        self.size = (int(size[0]), int(size[1]))
        self.cache = cache
        self.max_pixels = max_pixels
        with_edges = {s.edge is not None for s in self.samples}
        if len(with_edges) > 1:
            # A batch mixing items with and without "edge" cannot be collated.
            raise DatasetError("some samples have edge maps and some do not; use samples of one split")
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor | int]:
        arrays = self._cache.get(i)
        if arrays is None:
            arrays = self._load(self.samples[i])
            if self.cache:
                self._cache[i] = arrays
        # Copies, so a caller writing into a batch never changes the cached arrays.
        item: dict[str, torch.Tensor | int] = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
        item["character"] = torch.tensor(self.samples[i].character, dtype=torch.int64)
        item["index"] = i
        return item

    def _load(self, s: Sample) -> dict[str, np.ndarray]:
        """Decode and resize one sample: bicubic (antialiased) for the image, nearest for the maps."""
        image = read_image(s.image, max_pixels=self.max_pixels)
        maps = {"label": read_label(s.label, self.palette, self.max_pixels)}
        if s.edge is not None:
            maps["edge"] = read_edge(s.edge, self.max_pixels)
        for role, m in maps.items():
            # The check catches this; a file replaced since then must not train misaligned.
            if m.shape != image.shape[:2]:
                path = s.label if role == "label" else s.edge
                raise DatasetError(
                    f"{role} map size {m.shape[::-1]} differs from its image's {image.shape[1::-1]}",
                    path=path,
                    code="size-mismatch",
                )
        out = {"image": np.ascontiguousarray(resize_image(image, self.size).transpose(2, 0, 1))}
        out.update({role: resize_nearest(m, self.size) for role, m in maps.items()})
        return out
