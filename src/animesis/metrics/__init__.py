"""Image metrics with the published weights: FID, KID (TF-Inception) and LPIPS (AlexNet/VGG16).

Importing this package loads no weights; each network is read, SHA-1 checked and cached on first use.
"""

from animesis.metrics.assets import MetricUnavailable, TamperedWeights
from animesis.metrics.colour import colour_error
from animesis.metrics.evaluate import diversity_lpips, evaluate_folders, format_table, run_eval
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import GaussianStats, fid_from_features, frechet_distance, kid_from_features
from animesis.metrics.inception import load_inception
from animesis.metrics.judges import JudgesUnavailable, identity_accuracy, load_judges, miou, train_judges
from animesis.metrics.lpips import load_lpips, lpips_distance

__all__ = [
    "GaussianStats",
    "JudgesUnavailable",
    "MetricUnavailable",
    "TamperedWeights",
    "colour_error",
    "diversity_lpips",
    "evaluate_folders",
    "fid_from_features",
    "format_table",
    "frechet_distance",
    "identity_accuracy",
    "kid_from_features",
    "load_inception",
    "load_judges",
    "load_lpips",
    "lpips_distance",
    "miou",
    "run_eval",
    "stream_features",
    "train_judges",
]
