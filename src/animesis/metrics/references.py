"""Scores of a dataset's real pictures, kept beside the dataset so that they are computed once.

Evaluating a checkpoint scores the real pictures too: their Inception features (FID, KID and the
real-vs-real FID) and the LPIPS variety of real redraws of one map. None of that depends on the
checkpoint, yet it is half of an evaluation's time on a CPU. Each entry is a safetensors file in
DATAROOT/references whose metadata holds the key it was made from: the pictures (names, sizes and
modification times), the resolution, the network and the settings. An entry whose key differs is made
again and replaced; a dataset folder that cannot be written is scored afresh every time.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from animesis import files
from animesis.data.samples import Sample

FOLDER = "references"  # DATAROOT/references
VERSION = 1  # bump when what an entry holds, or how it is computed, changes


def pictures_key(samples: Sequence[Sample]) -> str:
    """A hash of the pictures' names, sizes and modification times: replaced or edited pictures change it."""
    h = hashlib.sha256()
    for s in samples:
        st = s.image.stat()
        h.update(f"{s.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class ReferenceCache:
    """Named tensors computed from real pictures, reused while their key holds."""

    def __init__(self, dataroot: Path | None):
        self.folder = Path(dataroot) / FOLDER if dataroot is not None else None  # None: never cached
        self.hits: list[str] = []

    def get(
        self, name: str, key: dict[str, Any], make: Callable[[], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """The entry `name` made with `key`: from the cache when it holds one, else make() (and kept)."""
        found = self.load(name, key)
        if found is None:
            found = make()
            self.save(name, key, found)
        return found

    def load(self, name: str, key: dict[str, Any]) -> dict[str, torch.Tensor] | None:
        """The entry `name` if it was made with `key`, else None."""
        path = self._path(name)
        if path is None or not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") != _digest(key):
                    return None
            found = load_file(path)
        except (OSError, SafetensorError, ValueError):
            return None  # unreadable or torn: made again and replaced
        self.hits.append(name)
        return found

    def save(self, name: str, key: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        path = self._path(name)
        if path is None:
            return
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        try:
            path.parent.mkdir(exist_ok=True)
            files.write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={"key": _digest(key)}))
        except (OSError, files.SaveError) as e:
            print(
                f"note: {path}: real-picture scores not kept ({e}); they are computed each time",
                file=sys.stderr,
            )

    def _path(self, name: str) -> Path | None:
        return self.folder / f"{name}.safetensors" if self.folder is not None else None


def _digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"v": VERSION, **key}, sort_keys=True).encode()).hexdigest()
