"""Building blocks shared by the generator and the discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class SpectralNorm(nn.Module):
    """Weight parametrization W / sigma(W), sigma by one power iteration per training forward.

    As torch's spectral_norm, but the power iteration and sigma always run in float32: under bf16
    autocast torch's version would compute them with bf16 matrix-vector products.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, eps: float = 1e-12):
        super().__init__()
        self.n_power_iterations, self.eps = n_power_iterations, eps
        w = weight.detach().float().flatten(1)  # (out, in * kh * kw)
        u = F.normalize(w.new_empty(w.shape[0]).normal_(), dim=0, eps=eps)
        v = F.normalize(w.new_empty(w.shape[1]).normal_(), dim=0, eps=eps)
        self.register_buffer("_u", u)
        self.register_buffer("_v", v)
        self._power_iteration(w, 15)  # start close to the singular vectors

    @torch.no_grad()
    def _power_iteration(self, w: torch.Tensor, n: int) -> None:
        for _ in range(n):
            self._v.copy_(F.normalize(w.t() @ self._u, dim=0, eps=self.eps))
            self._u.copy_(F.normalize(w @ self._v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(weight.device.type, enabled=False):
            w = weight.float().flatten(1)
            if self.training:
                self._power_iteration(w, self.n_power_iterations)
            u, v = self._u.clone(), self._v.clone()  # clones: autograd must not see the in-place updates
            sigma = torch.dot(u, w @ v)
            return (weight.float() / sigma).to(weight.dtype)


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    if enabled:
        parametrize.register_parametrization(module, "weight", SpectralNorm(module.weight))
    return module


def resize_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest resize that is a no-op at the same size (label maps stay exact)."""
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="nearest")


class SPADE(nn.Module):
    """Parameter-free normalisation, then a per-pixel scale and shift predicted from the condition.

    The condition is a one-hot label map plus a code (character embedding and noise). As in OASIS
    both steer a shared hidden layer; the code enters through a 1x1 projection so a spatially
    constant code costs one matrix-vector product instead of a full-resolution 3x3 convolution over
    broadcast channels, while a per-pixel code map (several characters in one image) still works.
    """

    def __init__(
        self,
        channels: int,  # channels of the features being normalised
        label_channels: int,  # N, one-hot label channels
        code_dim: int,  # character code + noise channels
        hidden: int = 128,
        kernel: int = 3,
        norm: str = "batch",
    ):
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        pad = kernel // 2
        self.label_conv = nn.Conv2d(label_channels, hidden, kernel, padding=pad)
        self.code_proj = nn.Conv2d(code_dim, hidden, 1, bias=False) if code_dim else None
        self.gamma_beta = nn.Conv2d(hidden, 2 * channels, kernel, padding=pad)

    def forward(self, x: torch.Tensor, label: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, h, w); label (B, N, h, w); code (B, D, 1, 1) or (B, D, h, w)."""
        h = self.label_conv(label)  # (B, hidden, h, w)
        if self.code_proj is not None and code is not None:
            h = h + self.code_proj(code)  # broadcasts when the code is (B, hidden, 1, 1)
        gamma, beta = self.gamma_beta(F.relu(h)).chunk(2, dim=1)  # (B, C, h, w) each
        return self.norm(x) * (1 + gamma) + beta


def param_free_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown norm {kind!r}: expected 'batch' or 'instance'")


class StyleModulation(nn.Module):
    """Class- and character-adaptive normalisation: scale and shift from a per-pixel style code by a 1x1
    convolution.

    The style code of a pixel is the learned style of its (class, character) pair (plus the noise), so
    this is CLADE's per-class modulation made per character, as SEAN's per-region styles: a lookup and
    one 1x1 convolution instead of SPADE's two full-resolution 3x3 convolutions.
    """

    def __init__(self, channels: int, code_dim: int, norm: str = "batch"):
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.gamma_beta = nn.Conv2d(code_dim, 2 * channels, 1)

    def forward(self, x: torch.Tensor, label: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, h, w); code (B, D, h, w) style map; the label is already in the styles."""
        gamma, beta = self.gamma_beta(code).chunk(2, dim=1)  # (B, C, h, w) each
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """OASIS generator block: two SPADE-LReLU-conv steps and a (SPADE-conv) learned shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        label_channels: int,
        code_dim: int,
        hidden: int = 128,
        kernel: int = 3,
        norm: str = "batch",
        sn: bool = True,
        modulation: str = "spade",  # "spade" or "style" (StyleModulation)
    ):
        super().__init__()
        mid = min(in_channels, out_channels)
        if modulation == "spade":
            spade = lambda c: SPADE(c, label_channels, code_dim, hidden, kernel, norm)
        elif modulation == "style":
            spade = lambda c: StyleModulation(c, code_dim, norm)
        else:
            raise ValueError(f"unknown modulation {modulation!r}: expected 'spade' or 'style'")
        self.norm_0, self.norm_1 = spade(in_channels), spade(mid)
        self.conv_0 = maybe_sn(nn.Conv2d(in_channels, mid, 3, padding=1), sn)
        self.conv_1 = maybe_sn(nn.Conv2d(mid, out_channels, 3, padding=1), sn)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = spade(in_channels)
            self.conv_s = maybe_sn(nn.Conv2d(in_channels, out_channels, 1, bias=False), sn)

    def forward(self, x: torch.Tensor, label: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label, code)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label, code), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label, code), 0.2))
        return shortcut + dx


class DBlock(nn.Module):
    """OASIS discriminator residual block: halves the resolution (`down`) or doubles it."""

    def __init__(self, in_channels: int, out_channels: int, down: bool, first: bool = False, sn: bool = True):
        super().__init__()
        self.down, self.first = down, first
        self.conv_0 = maybe_sn(nn.Conv2d(in_channels, out_channels, 3, padding=1), sn)
        self.conv_1 = maybe_sn(nn.Conv2d(out_channels, out_channels, 3, padding=1), sn)
        self.conv_s = (
            maybe_sn(nn.Conv2d(in_channels, out_channels, 1), sn) if in_channels != out_channels else None
        )

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.down else F.interpolate(x, scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dx = x if self.first else F.leaky_relu(x, 0.2)
        if not self.down:
            dx = self._resample(dx)
        dx = self.conv_1(F.leaky_relu(self.conv_0(dx), 0.2))
        if self.down:
            dx = F.avg_pool2d(dx, 2)
        # Shortcut: the first block pools before its 1x1 conv (cheaper, as in OASIS); the others
        # convolve at the higher resolution's side of the resampling, as the residual branch does.
        if self.first or not self.down:
            s = self._resample(x)
            return (self.conv_s(s) if self.conv_s is not None else s) + dx
        s = self.conv_s(x) if self.conv_s is not None else x
        return F.avg_pool2d(s, 2) + dx
