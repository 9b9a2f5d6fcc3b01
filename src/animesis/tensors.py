"""The conversions every stage shares: uint8 pictures <-> [-1, 1] tensors, class ids -> one-hot."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 pictures (any layout) -> float in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float pictures in [-1, 1] (clamped) -> uint8, rounded to the nearest level."""
    return images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)


def one_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) class ids -> (B, N, H, W) float one-hot (with channels-last strides: the layout the
    convolutions that read it prefer)."""
    return F.one_hot(label.long(), num_classes).permute(0, 3, 1, 2).float()
