"""An untrained generator saved as a model folder: for the app's tests and latency benchmark.

Latency does not depend on training, and an untrained generator already paints a different picture
per character (the character code conditions every layer), which is what the app's tests check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from animesis.app.examples import load_examples
from animesis.app.painting import band_template
from animesis.config import PRESETS, GeneratorConfig
from animesis.data.palette import DEFAULT_PALETTE, Palette
from animesis.models.generator import Generator
from animesis.models.pretrained import ModelCard, save_pretrained


def untrained_config(preset: str, num_classes: int, num_characters: int) -> GeneratorConfig:
    p = PRESETS[preset]
    return GeneratorConfig(
        num_classes=num_classes,
        num_characters=num_characters,
        base_channels=p["base_g"],
        num_blocks=p["blocks"],
        z_dim=p["z_dim"],
        id_dim=p["id_dim"],
        spade_hidden=p["spade_hidden"],
    )


def save_untrained_model(
    folder: str | Path,
    *,
    preset: str = "tiny",
    size: tuple[int, int] = (32, 32),
    num_characters: int = 3,
    palette: Palette = DEFAULT_PALETTE,
    seed: int = 0,
) -> Path:
    """Write config.json + weights of a randomly initialised generator; returns the folder."""
    torch.manual_seed(seed)
    cfg = untrained_config(preset, palette.num_classes, num_characters)
    G = Generator(cfg)
    calibrate(G, sample_maps(palette, size), num_characters)
    card = ModelCard(
        generator=cfg,
        discriminator=None,
        palette=palette,
        character_names=tuple(f"character {i}" for i in range(num_characters)),
        image_size=size,
    )
    save_pretrained(Path(folder), G.eval(), card)
    return Path(folder)


def sample_maps(palette: Palette, size: tuple[int, int]) -> np.ndarray:
    examples = load_examples(palette, size)
    if examples:
        return np.stack([e.label for e in examples.values()])
    return band_template(palette.num_classes, size)[None]


@torch.no_grad()
def calibrate(G: Generator, maps: np.ndarray, num_characters: int, rgb_std: float = 0.6) -> None:
    """Make the random generator paint visible pictures instead of a flat grey or clipped colours.

    The training initialisation (gain 0.02) paints almost flat grey, and BatchNorm's initial
    statistics do not fit random weights, so activations explode. So: unit-gain weights, BatchNorm
    statistics measured on sample maps painted by every character, and the last layer scaled so the
    picture's values before tanh have a standard deviation of `rgb_std` (colours without clipping).
    """
    for m in G.modules():
        if isinstance(m, nn.Conv2d):
            sn = getattr(m, "parametrizations", None)
            nn.init.xavier_normal_(sn.weight.original if sn else m.weight, gain=1.0)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.1)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batch
    labels = torch.as_tensor(np.repeat(maps, num_characters, axis=0), dtype=torch.long)
    onehot = F.one_hot(labels, G.cfg.num_classes).permute(0, 3, 1, 2).float()
    characters = torch.arange(num_characters).repeat(len(maps))
    z = torch.randn(len(labels), G.cfg.z_dim) if G.cfg.z_dim else None
    G.train()(onehot, characters, z)
    seen: dict[str, torch.Tensor] = {}
    hook = G.to_rgb.register_forward_hook(lambda mod, args, out: seen.setdefault("rgb", out))
    G.eval()(onehot, characters, z)
    hook.remove()
    scale = rgb_std / float(seen["rgb"].std().clamp_min(1e-6))
    G.to_rgb.weight.mul_(scale)
    if G.to_rgb.bias is not None:
        G.to_rgb.bias.mul_(scale)
