"""FID and KID from feature matrices, in float64: the math only, no network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
# Beyond this many kernel entries the full Gram matrices (8 bytes each) would not be worth their memory.
_GRAM_LIMIT = 50_000_000


def _as_f64(features: torch.Tensor | np.ndarray) -> np.ndarray:
    array = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"expected an (N, D) feature matrix with N >= 2, got shape {array.shape}")
    return array.astype(np.float64)


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set, as FID sees it; cacheable for a fixed reference set."""

    mu: np.ndarray  # (D,)
    sigma: np.ndarray  # (D, D), unbiased (N - 1) covariance as pytorch-fid and torchmetrics
    n: int

    @classmethod
    def from_features(cls, features: torch.Tensor | np.ndarray) -> GaussianStats:
        x = _as_f64(features)
        return cls(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False), n=x.shape[0])


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2), through symmetric eigendecompositions."""
    # Tr((S_a S_b)^1/2) = sum sqrt(eig(S_a^1/2 S_b S_a^1/2)); that matrix is symmetric PSD, so eigh gives
    # real eigenvalues and the tiny imaginary parts a general sqrtm produces never appear.
    w, v = np.linalg.eigh(a.sigma)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ b.sigma @ root_a
    inner = (inner + inner.T) / 2  # remove rounding asymmetry before eigvalsh
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt)


def fid_from_features(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two (N, D) feature sets."""
    return frechet_distance(GaussianStats.from_features(real), GaussianStats.from_features(fake))


def _mmd_unbiased(k_rr: np.ndarray, k_ff: np.ndarray, k_rf: np.ndarray) -> float:
    """Unbiased MMD^2 from the three (m, m) kernel blocks of one subset pair."""
    m = k_rr.shape[0]
    within = (k_rr.sum() - np.trace(k_rr) + k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within - 2 * k_rf.sum() / (m * m))


@dataclass(frozen=True)
class KIDResult:
    """KID as the mean and (population) standard deviation of MMD^2 over random subsets."""

    mean: float
    std: float
    subset_size: int
    subsets: int


def kid_from_features(
    real: torch.Tensor | np.ndarray,
    fake: torch.Tensor | np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> KIDResult:
    """KID with the cubic polynomial kernel (x.y / D + 1)^3 over `subsets` draws of min(subset_size, N)."""
    r, f = _as_f64(real), _as_f64(fake)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {r.shape[1]}, fake {f.shape[1]}")
    m = min(subset_size, r.shape[0], f.shape[0])
    gamma = 1.0 / r.shape[1]
    kernel = lambda a, b: (a @ b.T * gamma + 1.0) ** 3
    rng = np.random.default_rng(seed)  # subsets are reproducible for a given seed
    n_r, n_f = r.shape[0], f.shape[0]
    # With a small set, kernel all pairs once and slice per subset (same numbers, much faster than
    # three (m, D) x (D, m) products per subset); with a large set, kernel each subset.
    full = n_r * n_r + n_f * n_f + n_r * n_f <= _GRAM_LIMIT
    if full:
        k_rr, k_ff, k_rf = kernel(r, r), kernel(f, f), kernel(r, f)
    scores = []
    for _ in range(subsets):
        i = rng.permutation(n_r)[:m]
        j = rng.permutation(n_f)[:m]
        if full:
            blocks = k_rr[np.ix_(i, i)], k_ff[np.ix_(j, j)], k_rf[np.ix_(i, j)]
        else:
            blocks = kernel(r[i], r[i]), kernel(f[j], f[j]), kernel(r[i], f[j])
        scores.append(_mmd_unbiased(*blocks))
    scores = np.asarray(scores)
    # Population std over subsets, as torchmetrics, torch-fidelity and clean-fid report it.
    return KIDResult(mean=float(scores.mean()), std=float(scores.std()), subset_size=m, subsets=subsets)
