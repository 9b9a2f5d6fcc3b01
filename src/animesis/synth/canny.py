"""Canny edges computed exactly in integers, so the built-in dataset's edge maps are the same on every machine."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Canny as `animesis.data.edges.canny_edges` computes it (grey 0.299/0.587/0.114, 5-tap Gaussian
# sigma 1, unnormalised Sobel, non-maximum suppression in 45-degree steps, thresholds 0.1 and 0.2,
# hysteresis), but in integers: float convolutions round differently on different CPUs, and a
# rounding flip at a threshold or a tie would change an edge file from one machine to the next.
_BLUR = (56, 250, 412, 250, 56)  # the sigma-1 Gaussian in 1/1024
_GREY_ONE = 255000  # grey value of white: 0.299/0.587/0.114 in thousandths times 255


def canny_exact(rgb: np.ndarray, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """(H, W, 3) uint8 image -> (H, W) uint8 Canny edge map of 0 and 1, computed exactly in integers."""
    img = rgb.astype(np.int32)
    grey = img[..., 0] * 299 + img[..., 1] * 587 + img[..., 2] * 114
    h, w = grey.shape
    # scipy's "mirror" border is torch's "reflect"; integer sums in doubles stay exact below 2**53.
    blur = ndimage.correlate1d(grey, _BLUR, axis=1, mode="mirror", output=np.int32)
    blur += 512
    blur >>= 10
    blur = ndimage.correlate1d(blur, _BLUR, axis=0, mode="mirror", output=np.int32)
    blur += 512
    blur >>= 10
    # Sobel with the border pixels repeated, as kornia's spatial_gradient pads.
    q = np.pad(blur, 1, mode="edge")
    sx = q[:, 2:] - q[:, :-2]
    gx = sx[:-2] + 2 * sx[1:-1] + sx[2:]
    sy = q[2:] - q[:-2]
    gy = sy[:, :-2] + 2 * sy[:, 1:-1] + sy[:, 2:]
    gx64, gy64 = gx.astype(np.int64), gy.astype(np.int64)
    mag = gx64 * gx64 + gy64 * gy64  # squared magnitude, compared with squared thresholds
    padded = np.zeros((h + 2, w + 2), np.int64)
    padded[1:-1, 1:-1] = mag
    flat, stride = padded.ravel(), w + 2
    ys, xs = np.nonzero(mag > int(low * _GREY_ONE) ** 2)  # only candidates can become edges
    idx = (ys + 1) * stride + xs + 1
    ax, ay = np.abs(gx64[ys, xs]), np.abs(gy64[ys, xs])
    horiz = ay * 100000 < 41421 * ax  # within 22.5 degrees of the x axis (tan 22.5 = 0.41421)
    vert = ay * 100000 > 241421 * ax  # within 22.5 degrees of the y axis
    down_right = (gx64[ys, xs] > 0) == (gy64[ys, xs] > 0)
    # Along the gradient, a pixel must beat the left (upper) neighbour and may tie the right (lower)
    # one, as in OpenCV and kornia; along a diagonal it must beat both.
    before = np.where(horiz, -1, np.where(vert, -stride, np.where(down_right, -stride - 1, -stride + 1)))
    m = flat[idx]
    after = flat[idx - before]
    keep = (m > flat[idx + before]) & ((m > after) | ((m == after) & (horiz | vert)))
    strong = keep & (m > int(high * _GREY_ONE) ** 2)
    weak = np.zeros((h, w), bool)
    weak[ys[keep], xs[keep]] = True
    # Hysteresis: keep the 8-connected groups of weak edges that hold a strong one.
    groups, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    held = np.zeros(n + 1, bool)
    held[groups[ys[strong], xs[strong]]] = True
    held[0] = False
    return held[groups].astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# PNG files that are the same bytes everywhere. zlib and zlib-ng (in Pillow's wheels) promise the same
# pixels, not the same bytes, across versions and CPUs; so the deflate stream is built here: PNG "Up"
# filter, one fixed-Huffman block of literals, and runs of a repeated byte as matches at distance 1.
