"""Identity-conditioned SPADE generator: (label map, character, noise) -> image."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from animesis.config import GeneratorConfig
from animesis.models.layers import SPADEResBlock, resize_nearest

WAVE_CYCLES = 8.0  # a wave's frequency at initialisation: about N(0, 8^2) cycles per image along x and y


def channel_plan(base: int, num_blocks: int) -> list[int]:
    """Widths from the start tensor to the last block: OASIS's 16,16,16,8,4,2,1 x base for 6 blocks."""
    return [base * min(16, 2 ** (num_blocks - i)) for i in range(num_blocks + 1)]


class NoiseEncoder(nn.Module):
    """Real picture -> (mu, logvar) of a posterior over the generator's noise z (B, z_dim) each.

    Strided convolutions and a global average: it sees the whole picture, so z can carry what the label
    map and the character do not fix (background pattern, light direction); the KL term keeps it near
    N(0, I), which is what painting samples from.
    """

    def __init__(self, z_dim: int, width: int = 16, downs: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(downs):
            c = width * 2 ** min(i, 2)
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.to_posterior = nn.Linear(c_in, 2 * z_dim)

    def forward(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.to_posterior(self.features(real).mean(dim=(2, 3))).chunk(2, dim=1)
        return mu, logvar


class Generator(nn.Module):
    """OASIS generator whose condition is the one-hot label map plus a learned character code.

    The character code is a registered embedding (trained and saved). It is broadcast per pixel from
    an identity map, so a batch may mix characters and one image may take several characters in
    different regions; fractional weights over characters interpolate their codes.
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.z_encoder and not cfg.z_dim:
            raise ValueError("z_encoder needs z_dim > 0: it encodes pictures into the noise")
        if cfg.noise_waves and not cfg.z_dim:
            raise ValueError("noise_waves needs z_dim > 0: the noise sets the waves")
        N, D = cfg.num_classes, cfg.id_dim + cfg.z_dim + cfg.noise_waves
        widths = channel_plan(cfg.base_channels, cfg.num_blocks)
        if cfg.modulation == "style":
            if not cfg.id_dim:
                raise ValueError("modulation 'style' needs id_dim > 0: the styles are the character code")
            # One style per (character, class): hair, eyes, clothes... each with the character's look.
            self.class_style = nn.Parameter(torch.empty(cfg.num_characters, N, cfg.id_dim))
        else:
            self.character_embedding = nn.Embedding(cfg.num_characters, cfg.id_dim)
        self.label_in = nn.Conv2d(N, widths[0], 3, padding=1)
        self.code_in = nn.Conv2d(D, widths[0], 1, bias=False)
        self.blocks = nn.ModuleList(
            SPADEResBlock(
                widths[i],
                widths[i + 1],
                N,
                D,
                cfg.spade_hidden,
                cfg.spade_kernel,
                cfg.norm,
                cfg.spectral_norm,
                cfg.modulation,
            )
            for i in range(cfg.num_blocks)
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        # z -> each wave's (x frequency, y frequency, phase)
        self.waves = nn.Linear(cfg.z_dim, 3 * cfg.noise_waves, bias=False) if cfg.noise_waves else None
        self.reset_parameters()
        # Made after the OASIS initialisation: the encoder keeps torch's default one.
        self.encoder = NoiseEncoder(cfg.z_dim) if cfg.z_encoder else None

    def reset_parameters(self) -> None:
        """OASIS initialisation: Xavier-normal (gain 0.02) convolutions, zero biases, N(0,1) codes."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                sn = getattr(m, "parametrizations", None)
                nn.init.xavier_normal_(sn.weight.original if sn else m.weight, gain=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
                if sn:  # restart the power iteration from the new weights
                    sn.weight[0]._power_iteration(sn.weight.original.detach().float().flatten(1), 15)
        nn.init.normal_(
            self.class_style if self.cfg.modulation == "style" else self.character_embedding.weight
        )
        if self.waves is not None:  # unit-variance outputs for z ~ N(0, I)
            nn.init.normal_(self.waves.weight, std=self.cfg.z_dim**-0.5)

    @property
    def downsampling(self) -> int:
        return 2 ** (self.cfg.num_blocks - 1)

    def character_code(self, character: torch.Tensor) -> torch.Tensor:
        """Character ids or weights -> codes.

        (B,) long ids -> (B, id_dim, 1, 1); (B, H, W) long id map -> (B, id_dim, H, W);
        (B, K) float weights -> (B, id_dim, 1, 1); (B, K, H, W) float weight map -> (B, id_dim, H, W).
        """
        table = self.character_embedding.weight  # (K, id_dim)
        if not character.is_floating_point():
            if character.dim() == 1:
                return table[character][:, :, None, None]
            if character.dim() == 3:
                return table[character].permute(0, 3, 1, 2)
        else:
            if character.dim() == 2:
                return (character.to(table.dtype) @ table)[:, :, None, None]
            if character.dim() == 4:
                return torch.einsum("bkhw,kd->bdhw", character.to(table.dtype), table)
        raise ValueError(
            f"character must be (B,) or (B,H,W) ids or (B,K) or (B,K,H,W) weights, got {tuple(character.shape)}"
        )

    def class_character_style(self, label: torch.Tensor, character: torch.Tensor) -> torch.Tensor:
        """("style") label (B, N, H, W) one-hot and character as in `character_code` -> (B, id_dim, H, W):
        every pixel takes the style of its (character, class) pair, weighted where characters mix."""
        table = self.class_style.to(label.dtype)  # (K, N, S)
        if not character.is_floating_point():
            if character.dim() == 1:
                return torch.einsum("bnhw,bns->bshw", label, table[character])
            if character.dim() == 3:
                character = F.one_hot(character, table.shape[0]).permute(0, 3, 1, 2).to(label.dtype)
        character = character.to(label.dtype)
        if character.dim() == 2:
            return torch.einsum("bnhw,bns->bshw", label, torch.einsum("bk,kns->bns", character, table))
        if character.dim() == 4:
            out = 0
            for k in range(table.shape[0]):  # a loop over K keeps the intermediate at (B, S, H, W)
                out = out + character[:, k : k + 1] * torch.einsum("bnhw,ns->bshw", label, table[k])
            return out
        raise ValueError(
            f"character must be (B,) or (B,H,W) ids or (B,K) or (B,K,H,W) weights, got {tuple(character.shape)}"
        )

    def forward(
        self, label: torch.Tensor, character: torch.Tensor, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """label (B, N, H, W) one-hot; character as in `character_code`; z (B, z_dim) -> (B, 3, H, W)."""
        B, _, H, W = label.shape
        if self.cfg.modulation == "style":
            cond = self.class_character_style(label, character)  # (B, id_dim, H, W)
        else:
            cond = self.character_code(character)  # (B, id_dim, 1|H, 1|W)
        if self.cfg.z_dim and z is None:
            raise ValueError("this generator takes noise: pass z of shape (B, z_dim)")

        region = None  # (B, 1, H, W): the share of each pixel that takes the noise
        if self.cfg.z_dim and self.cfg.noise_classes:
            region = label[:, list(self.cfg.noise_classes)].sum(1, keepdim=True)

        waves = None
        if self.waves is not None:  # in fp32 (a product and a sum, which autocast leaves alone): a
            # bf16 phase of tens of cycles would be off by a good part of a cycle
            waves = (z.float()[:, :, None] * self.waves.weight.float().T).sum(1)  # (B, 3F)

        def code_at(size: tuple[int, int]) -> torch.Tensor:  # (B, D, 1|h, 1|w): condition and noise
            c = self._at(cond, size)
            if not self.cfg.z_dim:
                return c
            if waves is None and region is None:
                return torch.cat([c, z.to(c.dtype)[:, :, None, None].expand(B, -1, *c.shape[-2:])], dim=1)
            c = c.expand(B, -1, *size)
            noise = z.to(c.dtype)[:, :, None, None].expand(B, -1, *size)
            if region is not None:  # the noise on the region's share of each pixel at this size
                noise = noise * (F.avg_pool2d(region, H // size[0]) if size[0] != H else region).to(c.dtype)
            extra = [] if waves is None else [wave_field(waves, size).to(c.dtype)]
            return torch.cat([c, noise, *extra], dim=1)

        s = self.downsampling
        size = (H // s, W // s)
        x = self.label_in(resize_nearest(label, size)) + self.code_in(code_at(size))  # (B, 16c, h, w)
        for i, block in enumerate(self.blocks):
            size = x.shape[-2:]
            x = block(x, resize_nearest(label, size), code_at(size))
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))  # (B, 3, H, W)

    @staticmethod
    def _at(code: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return code if code.shape[-1] == 1 and code.shape[-2] == 1 else resize_nearest(code, tuple(size))


def wave_field(waves: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """waves (B, 3F): each wave's x and y frequency (in WAVE_CYCLES cycles per image) and phase (in
    cycles) -> (B, F, h, w): sin(2 pi (f . p + phase)) on pixel centres p in [-1/2, 1/2]^2, so that a
    wave keeps its place in the picture at every resolution."""
    h, w = size
    fx, fy, phase = waves.unflatten(1, (3, -1)).unbind(1)  # (B, F) each
    y = (torch.arange(h, device=waves.device, dtype=waves.dtype) + 0.5) / h - 0.5
    x = (torch.arange(w, device=waves.device, dtype=waves.dtype) + 0.5) / w - 0.5
    arg = WAVE_CYCLES * (fx[..., None, None] * x + fy[..., None, None] * y[:, None]) + phase[..., None, None]
    return torch.sin(2 * math.pi * arg)
