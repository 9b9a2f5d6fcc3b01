"""What a checked dataset is made of: samples (image, label map, edge map, character) per split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animesis.data.palette import Palette


@dataclass(frozen=True)
class Sample:
    """One training example: an image, its label map, its optional edge map, and its character."""

    name: str  # file stem, unique per split
    image: Path
    label: Path
    edge: Path | None  # None when the split has no *_edge folder
    character: int


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset that passed the check: its classes, characters and samples per split."""

    root: Path
    palette: Palette  # default or palette.json
    num_characters: int  # K
    character_names: tuple[str, ...]
    splits: dict[str, tuple[Sample, ...]]  # every split in SPLITS; empty tuple when absent

    @property
    def num_classes(self) -> int:
        """N, the number of semantic classes."""
        return self.palette.num_classes
