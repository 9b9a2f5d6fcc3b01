"""A saved model is a folder: config.json (configs, class and character names) beside safetensors weights.

Nothing on the load path unpickles: configs are JSON, tensors are safetensors. The folder helpers here
(write_model_files, write_model_folder, read_model_config) serve every model saved this way: the
generators, and the metrics' judges.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from animesis import files
from animesis.config import DiscriminatorConfig, GeneratorConfig, from_dict, to_dict
from animesis.data.palette import Palette
from animesis.errors import ModelLoadError

FORMAT = "animesis-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
G_EMA_WEIGHTS = "generator_ema.safetensors"
G_WEIGHTS = "generator.safetensors"
D_WEIGHTS = "discriminator.safetensors"


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


class NewerFormatError(ModelLoadError):
    """A model folder written by a newer animesis than this one: retraining here would not help."""


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


# --- the folder format, for any model ------------------------------------------------------------


def write_model_files(
    folder: Path, config: dict[str, Any], weights: Mapping[str, nn.Module], config_name: str = CONFIG_NAME
) -> None:
    """Write `config` as JSON and each module's weights (file name -> module) into `folder`, each file
    atomically (a failure leaves the previous file and raises SaveError); other files there stay."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise files.SaveError(f"{folder}: cannot create the folder ({files.describe_os_error(e)})") from e
    for name, module in weights.items():
        files.write_atomic(folder / name, lambda tmp, module=module: save_weights(module, tmp))
    files.write_json(folder / config_name, config)


def write_model_folder(
    folder: Path, config: dict[str, Any], weights: Mapping[str, nn.Module], config_name: str = CONFIG_NAME
) -> None:
    """Like write_model_files, but into a temporary folder beside `folder` that then replaces it whole:
    config and weights always belong together, and nothing else is left in the folder."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_model_files(tmp, config, weights, config_name)
        files.replace_folder(tmp, folder)
    except OSError as e:
        raise files.SaveError(f"{folder}: cannot write ({files.describe_os_error(e)})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_model_config(
    folder: Path, fmt: str, version: int, *, what: str = "model", config_name: str = CONFIG_NAME
) -> dict[str, Any]:
    """A model folder's JSON config, checked to be `fmt` at a version this code reads (<= `version`).

    Raises ModelLoadError (NewerFormatError for a newer version) naming the file and what is wrong.
    """
    folder = Path(folder)
    path = folder / config_name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelLoadError(f"{path}: missing (is {folder} a {what} folder?)") from e
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: unreadable {what} config ({e})") from e
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: unreadable {what} config (not a JSON object)")
    if data.get("format") != fmt:
        raise ModelLoadError(f"{path}: not an animesis {what} config (format={data.get('format')!r})")
    found = data.get("format_version", 0)
    if type(found) is not int:
        raise ModelLoadError(f"{path}: unreadable {what} config (format_version {found!r} is not a number)")
    if found > version:
        raise NewerFormatError(f"{path}: written by a newer animesis (format_version {found})")
    return data


# --- generators ----------------------------------------------------------------------------------


def write_card(card: ModelCard, folder: Path) -> None:
    files.write_json(Path(folder) / CONFIG_NAME, card.to_json())


def read_card(folder: Path) -> ModelCard:
    data = read_model_config(folder, FORMAT, FORMAT_VERSION)
    try:
        return ModelCard.from_json(data)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{Path(folder) / CONFIG_NAME}: unreadable model config ({e})") from e


def save_pretrained(folder: Path, generator: nn.Module, card: ModelCard) -> None:
    """Write a usable generator folder (config.json + generator_ema.safetensors)."""
    write_model_files(folder, card.to_json(), {G_EMA_WEIGHTS: generator})


def from_pretrained(
    folder: Path, device: str | torch.device = "cpu", *, use_ema: bool = True
) -> tuple[nn.Module, ModelCard]:
    """Rebuild the generator from config.json and load its weights (EMA by default), in eval mode."""
    from animesis.models.generator import Generator

    folder = Path(folder)
    card = read_card(folder)
    G = Generator(card.generator)
    load_weights(G, weights_file(folder, use_ema))
    return G.to(device).eval(), card


def weights_file(folder: Path, use_ema: bool = True) -> Path:
    """The generator weights a folder is painted with: the EMA ones, or the raw ones when asked or
    when the run kept no EMA."""
    weights = Path(folder) / (G_EMA_WEIGHTS if use_ema else G_WEIGHTS)
    if use_ema and not weights.exists():
        weights = Path(folder) / G_WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{weights}: missing")
    return weights
