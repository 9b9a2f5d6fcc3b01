"""Image metrics with the published weights: FID, KID (TF-Inception) and LPIPS (AlexNet/VGG16).

Importing this package loads no weights; each network is read, SHA-1 checked and cached on first use.
"""

from animesis.metrics.assets import MetricUnavailable, TamperedWeights
from animesis.metrics.evaluate import diversity_lpips, evaluate_folders, format_table, run_eval
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import GaussianStats, fid_from_features, frechet_distance, kid_from_features
from animesis.metrics.inception import load_inception
from animesis.metrics.lpips import load_lpips, lpips_distance

__all__ = [
    "GaussianStats",
    "MetricUnavailable",
    "TamperedWeights",
    "diversity_lpips",
    "evaluate_folders",
    "fid_from_features",
    "format_table",
    "frechet_distance",
    "kid_from_features",
    "load_inception",
    "load_lpips",
    "lpips_distance",
    "run_eval",
    "stream_features",
]
