"""A saved model is a folder: config.json (configs, class and character names) beside safetensors weights.

Nothing on the load path unpickles: configs are JSON, tensors are safetensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from animesis.config import DiscriminatorConfig, GeneratorConfig, from_dict, to_dict
from animesis.data.palette import Palette

FORMAT = "animesis-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
G_EMA_WEIGHTS = "generator_ema.safetensors"
G_WEIGHTS = "generator.safetensors"
D_WEIGHTS = "discriminator.safetensors"


class ModelLoadError(RuntimeError):
    """A model folder that is missing, incomplete or does not match what was asked."""


@dataclass(frozen=True)
class ModelCard:
    """What a generator needs besides its weights to be used: its config and the names behind the ids."""

    generator: GeneratorConfig
    discriminator: DiscriminatorConfig | None
    palette: Palette
    character_names: tuple[str, ...]
    image_size: tuple[int, int]  # (H, W) it was trained at
    step: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": self.step,
            "image_size": list(self.image_size),
            "generator": to_dict(self.generator),
            "discriminator": to_dict(self.discriminator) if self.discriminator else None,
            "palette": self.palette.to_json(),
            "characters": list(self.character_names),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an animesis model config (format={data.get('format')!r})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"written by a newer animesis (format_version {data['format_version']})")
        d = data.get("discriminator")
        return cls(
            generator=from_dict(GeneratorConfig, data["generator"]),
            discriminator=from_dict(DiscriminatorConfig, d) if d else None,
            palette=Palette.from_json(data["palette"]),
            character_names=tuple(data["characters"]),
            image_size=tuple(data["image_size"]),  # type: ignore[arg-type]
            step=int(data.get("step", 0)),
        )


def save_weights(module: nn.Module, path: Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def load_weights(module: nn.Module, path: Path) -> None:
    """Load safetensors weights; a key or shape mismatch names the file."""
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise ModelLoadError(f"{path}: cannot read weights ({e})") from e
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{path}: weights do not fit the model in {CONFIG_NAME}: {e}") from e


def write_card(card: ModelCard, folder: Path) -> None:
    (folder / CONFIG_NAME).write_text(json.dumps(card.to_json(), indent=2) + "\n", encoding="utf-8")


def read_card(folder: Path) -> ModelCard:
    path = Path(folder) / CONFIG_NAME
    try:
        return ModelCard.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: missing (is {folder} a model folder?)") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: unreadable model config ({e})") from e


def save_pretrained(folder: Path, generator: nn.Module, card: ModelCard) -> None:
    """Write a usable generator folder (config.json + generator_ema.safetensors)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_card(card, folder)
    save_weights(generator, folder / G_EMA_WEIGHTS)


def from_pretrained(
    folder: Path, device: str | torch.device = "cpu", *, use_ema: bool = True
) -> tuple[nn.Module, ModelCard]:
    """Rebuild the generator from config.json and load its weights (EMA by default), in eval mode."""
    from animesis.models.generator import Generator

    folder = Path(folder)
    card = read_card(folder)
    G = Generator(card.generator)
    weights = folder / (G_EMA_WEIGHTS if use_ema else G_WEIGHTS)
    if use_ema and not weights.exists():
        weights = folder / G_WEIGHTS  # a run trained without EMA saves only the raw generator
    if not weights.exists():
        raise ModelLoadError(f"{weights}: missing")
    load_weights(G, weights)
    return G.to(device).eval(), card
