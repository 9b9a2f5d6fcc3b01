"""The FID/KID feature network: TF Inception-v3 (2015-12-05) pool3 features with pytorch-fid preprocessing."""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from animesis.metrics.assets import INCEPTION, locate_weights, read_verified
from animesis.metrics.features import full_precision

INPUT_SIZE = 299
NUM_FEATURES = 2048
PREPROCESSING = (
    "RGB uint8 -> float -> bilinear resize to 299x299 (align_corners=False, no antialias) -> [-1, 1] "
    "(pytorch-fid convention)"
)
NETWORK = (
    f"TF Inception-v3 2015-12-05 pool3 ({NUM_FEATURES}-d), default_1.pt of {INCEPTION.requirement}, "
    f"SHA-1 {INCEPTION.sha1}"
)


class InceptionFeatures(nn.Module):
    """uint8 RGB images of any size -> (N, 2048) float32 pool3 features; usable as torchmetrics `feature=`."""

    num_features = NUM_FEATURES  # torchmetrics reads this instead of probing with a dummy image

    def __init__(self, net: torch.jit.ScriptModule):
        super().__init__()
        self.net = net.eval()  # the TorchScript is saved in training mode; eval is the documented use
        for p in self.net.parameters():  # ScriptModules lack requires_grad_
            p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise TypeError(
                f"expected (N, 3, H, W) uint8 RGB images, got {tuple(images.shape)} {images.dtype}"
            )
        with full_precision(images.device):
            x = images.float()  # (N, 3, H, W) in [0, 255]
            # Same op as pytorch-fid (it resizes even at 299, where bilinear is the identity).
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
            x = x / 127.5 - 1.0  # [-1, 1]
            return self.net(x)  # (N, 2048)


@lru_cache(maxsize=4)
def _load(path: str, device: str) -> InceptionFeatures:
    # Cached per (file, device): the SHA-1 check and the 87 MB TorchScript load happen once per process.
    data = read_verified(INCEPTION, Path(path))
    with warnings.catch_warnings():
        # The carried network exists only as TorchScript, so torch's advice to move to torch.export cannot apply.
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
        net = torch.jit.load(io.BytesIO(data), map_location=device)
    return InceptionFeatures(net).to(device)


def load_inception(device: str | torch.device = "cpu") -> InceptionFeatures:
    """The verified Inception feature module on `device`; raises MetricUnavailable if the weights are missing."""
    return _load(str(locate_weights(INCEPTION)), str(torch.device(device)))
