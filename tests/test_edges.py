"""Canny edges for datasets without *_edge maps."""

import pytest
import torch

from animesis.config import CannyConfig
from animesis.data.edges import canny_edges


def test_edges_follow_a_square_and_are_binary():
    image = torch.zeros(2, 3, 32, 32)
    image[0, :, 8:24, 8:24] = 1.0  # a white square on black
    edges = canny_edges(image)
    assert edges.shape == (2, 32, 32) and edges.dtype == torch.uint8
    assert set(edges.unique().tolist()) <= {0, 1}
    assert edges[1].sum() == 0  # a flat image has no edges
    ring = torch.zeros(32, 32, dtype=torch.bool)
    ring[6:26, 6:26] = True
    ring[10:22, 10:22] = False
    assert edges[0][ring].sum() >= 40  # the square's outline (4 sides of 16 px)
    assert edges[0][~ring].sum() == 0  # nothing far from it


def test_thresholds_matter_and_are_checked():
    g = torch.Generator().manual_seed(0)
    image = (torch.rand(1, 1, 8, 8, generator=g).repeat_interleave(4, 2).repeat_interleave(4, 3)).expand(
        1, 3, 32, 32
    )
    many = canny_edges(image, CannyConfig(low=0.02, high=0.05)).sum()
    few = canny_edges(image, CannyConfig(low=0.3, high=0.6)).sum()
    assert many > few
    with pytest.raises(ValueError, match="low <= high"):
        canny_edges(image, CannyConfig(low=0.5, high=0.1))
