"""U-Net discriminator: per-pixel N+1 segmentation, edge and character logits."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from animesis.config import DiscriminatorConfig
from animesis.models.layers import DBlock, maybe_sn


class DOutput(NamedTuple):
    seg: torch.Tensor  # (B, N+1, H, W): channel 0 = "fake", channel c+1 = semantic class c
    edge: torch.Tensor  # (B, 1, H, W): edge logit
    identity: torch.Tensor | None  # (B, K, H, W): character logits, None without the identity head
    features: tuple[torch.Tensor, ...] = ()  # decoder outputs, coarse to fine (for feature matching)
    texture: torch.Tensor | None = None  # (B, 1, H/4, W/4) "real texture" logits, given a background mask

    def flat(self) -> torch.Tensor:
        """All heads as one (B, C, H, W) tensor, for LabelMix's consistency term."""
        parts = [self.seg, self.edge] + ([self.identity] if self.identity is not None else [])
        return torch.cat(parts, dim=1)


def encoder_widths(base: int, num_blocks: int) -> list[int]:
    """OASIS: 3 -> 2,2,4,4,8,8 x base for 6 blocks."""
    return [3] + [base * min(8, 2 ** (1 + i // 2)) for i in range(num_blocks)]


class TextureCritic(nn.Module):
    """A PatchGAN-style critic: one "real texture" logit per 4x4 cell, from an 18-pixel receptive field.

    Small and shallow on purpose: it sees a patch's stripes, dots and gradients, not the layout. It is
    shown the background alone (the character's pixels mid-grey, in real and painted pictures alike),
    and judged on the cells that are mostly background (losses.texture_cells).
    """

    stride = 4

    def __init__(self, channels: int, sn: bool = True):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            maybe_sn(nn.Conv2d(3, c, 4, stride=2, padding=1), sn),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), sn),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Conv2d(2 * c, 2 * c, 3, padding=1), sn),
            nn.LeakyReLU(0.2),
            maybe_sn(nn.Conv2d(2 * c, 1, 1), sn),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class Discriminator(nn.Module):
    """OASIS U-Net with one 1x1 head per signal on the full-resolution decoder features.

    Identity-aware: besides segmenting real pixels into classes (and fakes into the extra class)
    and finding the real image's edges, it names the character of every pixel. It learns that on
    real images only; the generator is then asked to make its pixels read as the requested
    character, which ties colours to identity (the seed's discriminator never sees the character).
    """

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        enc = encoder_widths(cfg.base_channels, cfg.num_blocks)
        n = cfg.num_blocks
        self.down = nn.ModuleList(
            DBlock(enc[i], enc[i + 1], down=True, first=i == 0, sn=cfg.spectral_norm) for i in range(n)
        )
        up = []
        for i in range(n):
            cin = enc[-1] if i == 0 else 2 * enc[-1 - i]
            cout = enc[-2 - i] if i < n - 1 else cfg.base_channels
            up.append(DBlock(cin, cout, down=False, sn=cfg.spectral_norm))
        self.up = nn.ModuleList(up)
        self.n_seg = cfg.num_classes + 1
        n_id = cfg.num_characters if cfg.identity_head else 0
        # The three heads are 1x1 convolutions on the same features: one conv, split afterwards.
        self.heads = nn.Conv2d(cfg.base_channels, self.n_seg + 1 + n_id, 1)
        # Part of D, so D's optimizer, checkpoints and DDP wrapper carry it without new state.
        self.texture = (
            TextureCritic(cfg.texture_channels, cfg.spectral_norm) if cfg.texture_channels else None
        )

    @property
    def downsampling(self) -> int:
        return 2**self.cfg.num_blocks

    def forward(self, image: torch.Tensor, background: torch.Tensor | None = None) -> DOutput:
        """image (B, 3, H, W) in [-1, 1] -> per-pixel logits of every head; with a (B, 1, H, W)
        background mask, also the texture critic's logits on the background alone.

        Sizes that are not a multiple of 2**num_blocks are padded (edge pixels repeated) on the
        right and bottom, and the logits cropped back, so D takes whatever size G paints.
        """
        H, W = image.shape[-2:]
        m = self.downsampling
        pad_h, pad_w = -H % m, -W % m
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](x)
        features = [x]
        for i, block in enumerate(self.up[1:], start=1):
            x = block(torch.cat([skips[-1 - i], x], dim=1))
            features.append(x)
        out = self.heads(x)[..., :H, :W]  # (B, N+1+1+K, H, W)
        seg, edge = out[:, : self.n_seg], out[:, self.n_seg : self.n_seg + 1]
        identity = out[:, self.n_seg + 1 :] if self.cfg.identity_head else None
        texture = None
        if self.texture is not None and background is not None:
            texture = self.texture(image * background)
        return DOutput(seg, edge, identity, tuple(features), texture)
