"""Canny edge maps: the target of the discriminator's edge head when a dataset ships none."""

from __future__ import annotations

from dataclasses import dataclass

import kornia
import torch


@dataclass(frozen=True)
class CannyConfig:
    """Canny on the grey image in [0, 1]: Gaussian blur, Sobel magnitude, non-maximum suppression,
    double threshold on the gradient magnitude, then hysteresis (weak edges kept where they touch
    strong ones). Thresholds are gradient magnitudes of the [0, 1] image."""

    low: float = 0.1  # weak-edge threshold
    high: float = 0.2  # strong-edge threshold
    sigma: float = 1.0  # Gaussian blur before the gradient, in pixels
    kernel_size: int = 5  # blur kernel size (odd)
    hysteresis: bool = True  # False keeps strong edges only (faster, no iteration)


def canny_edges(image: torch.Tensor, cfg: CannyConfig = CannyConfig()) -> torch.Tensor:
    """(B, 3, H, W) float image in [0, 1] -> (B, H, W) uint8 edge map with values 0 and 1."""
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
