"""Identity-conditioned SPADE generator: (label map, character, noise) -> image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animesis.config import GeneratorConfig
from animesis.models.layers import SPADEResBlock, resize_nearest


def channel_plan(base: int, num_blocks: int) -> list[int]:
    """Widths from the start tensor to the last block: OASIS's 16,16,16,8,4,2,1 x base for 6 blocks."""
    return [base * min(16, 2 ** (num_blocks - i)) for i in range(num_blocks + 1)]


class Generator(nn.Module):
    """OASIS generator whose condition is the one-hot label map plus a learned character code.

    The character code is a registered embedding (trained and saved). It is broadcast per pixel from
    an identity map, so a batch may mix characters and one image may take several characters in
    different regions; fractional weights over characters interpolate their codes.
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        N, D = cfg.num_classes, cfg.id_dim + cfg.z_dim
        widths = channel_plan(cfg.base_channels, cfg.num_blocks)
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
            )
            for i in range(cfg.num_blocks)
        )
        self.to_rgb = nn.Conv2d(widths[-1], 3, 3, padding=1)
        self.reset_parameters()

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
        nn.init.normal_(self.character_embedding.weight)

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

    def forward(
        self, label: torch.Tensor, character: torch.Tensor, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        """label (B, N, H, W) one-hot; character as in `character_code`; z (B, z_dim) -> (B, 3, H, W)."""
        B, _, H, W = label.shape
        code = self.character_code(character)  # (B, id_dim, 1|H, 1|W)
        if self.cfg.z_dim:
            if z is None:
                raise ValueError("this generator takes noise: pass z of shape (B, z_dim)")
            z = z.to(code.dtype)[:, :, None, None].expand(B, -1, *code.shape[-2:])
            code = torch.cat([code, z], dim=1)  # (B, D, 1|H, 1|W)
        s = self.downsampling
        size = (H // s, W // s)
        x = self.label_in(resize_nearest(label, size)) + self.code_in(self._at(code, size))  # (B, 16c, h, w)
        for i, block in enumerate(self.blocks):
            x = block(x, resize_nearest(label, x.shape[-2:]), self._at(code, x.shape[-2:]))
            if i < len(self.blocks) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))  # (B, 3, H, W)

    @staticmethod
    def _at(code: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return code if code.shape[-1] == 1 and code.shape[-2] == 1 else resize_nearest(code, size)
