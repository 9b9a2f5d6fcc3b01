"""Canny edge maps: the target of the discriminator's edge head when a dataset ships none."""

from __future__ import annotations

import kornia
import torch

from animesis.config import CannyConfig


def canny_edges(image: torch.Tensor, cfg: CannyConfig | None = None) -> torch.Tensor:
    """(B, 3, H, W) float image in [0, 1] -> (B, H, W) uint8 edge map with values 0 and 1."""
    cfg = cfg or CannyConfig()
    if not 0 <= cfg.low <= cfg.high:
        raise ValueError(f"Canny thresholds need 0 <= low <= high, got low={cfg.low} high={cfg.high}")
    _, edges = kornia.filters.canny(
        image.float(),
        low_threshold=cfg.low,
        high_threshold=cfg.high,
        kernel_size=(cfg.kernel_size, cfg.kernel_size),
        sigma=(cfg.sigma, cfg.sigma),
        hysteresis=cfg.hysteresis,
    )
    # Without hysteresis kornia marks weak edges 0.5; keep strong ones only.
    return (edges[:, 0] > 0.75).to(torch.uint8)
