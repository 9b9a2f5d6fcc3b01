"""The typed batch that flows from the data loader to the training step, and how it is made."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from animesis.config import CannyConfig
from animesis.data.edges import canny_edges
from animesis.tensors import one_hot, to_signed


@dataclass(frozen=True)
class Batch:
    """One batch on the training device."""

    real: torch.Tensor  # (B, 3, H, W) float pictures in [-1, 1]
    label: torch.Tensor  # (B, H, W) long class ids
    onehot: torch.Tensor  # (B, N, H, W) float
    edge: torch.Tensor  # (B, H, W) 0/1 edges of the real pictures
    char: torch.Tensor  # (B,) long character ids

    def __len__(self) -> int:
        return self.char.shape[0]


def to_batch(
    raw: dict[str, torch.Tensor],
    device: torch.device,
    *,
    num_classes: int,
    canny: CannyConfig | None = None,
    channels_last: bool = True,
    flip: torch.Generator | None = None,
) -> Batch:
    """The loader's uint8 CPU dict -> a Batch on `device`. Random flips (drawn from `flip`), one-hot
    and, for datasets without edge maps, Canny run here, on the device."""
    real = to_signed(raw["image"].to(device, non_blocking=True))
    label = raw["label"].to(device, non_blocking=True).long()
    edge = raw["edge"].to(device, non_blocking=True) if "edge" in raw else None
    if flip is not None:
        flipped = torch.rand(real.shape[0], device=device, generator=flip) < 0.5  # (B,)
        real = torch.where(flipped[:, None, None, None], real.flip(-1), real)
        label = torch.where(flipped[:, None, None], label.flip(-1), label)
        if edge is not None:
            edge = torch.where(flipped[:, None, None], edge.flip(-1), edge)
    if edge is None:
        edge = canny_edges((real + 1) / 2, canny or CannyConfig())
    onehot = one_hot(label, num_classes)
    if channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    else:
        onehot = onehot.contiguous()
    char = raw["character"].to(device, non_blocking=True).long()
    return Batch(real=real, label=label, onehot=onehot, edge=edge, char=char)
