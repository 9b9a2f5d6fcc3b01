"""Turn label maps, characters and a noise seed into images with a saved generator."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from animesis.data.dataset import read_label
from animesis.device import resolve_device
from animesis.errors import UserError
from animesis.models.pretrained import CONFIG_NAME, ModelCard, ModelLoadError, from_pretrained, weights_file
from animesis.runs import resolve_checkpoint

SHIPPED = Path(__file__).with_name("shipped")  # the default model's folder inside the package


def find_model_folder(path: str | Path, which: str | int = "latest") -> Path:
    """A model folder itself, or a run folder (checkpoints/NAME) plus 'latest' | 'best' | iteration."""
    path = Path(path)
    if (path / CONFIG_NAME).exists():
        return path
    if not path.exists():
        raise ModelLoadError(f"{path}: no such checkpoint folder")
    return resolve_checkpoint(path, which)


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Bake W / sigma into plain weights: the same function in eval mode, without per-call work."""
    for m in model.modules():
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return model


class Painter:
    """A generator ready to paint: eval mode, spectral norm folded, on its device."""

    def __init__(
        self,
        generator: nn.Module,
        card: ModelCard,
        device: torch.device,
        *,
        precision: str = "auto",  # auto: bf16 on CUDA, fp32 elsewhere
        compile: bool = False,  # torch.compile; on CUDA with CUDA graphs (batch 1 is launch-bound)
    ):
        # NHWC: oneDNN and cuDNN both run these convolutions several times faster than NCHW.
        self.G = fold_spectral_norm(generator).to(device, memory_format=torch.channels_last).eval()
        self.card = card
        self.device = device
        self.weights: Path | None = None  # the file the weights came from, when loaded from a folder
        self.bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
        self.forward = self.G
        if compile:
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self.forward = torch.compile(self.G, mode=mode, dynamic=False)

    @classmethod
    def load(
        cls,
        path: str | Path,
        which: str | int = "latest",
        *,
        device: str = "auto",
        use_ema: bool = True,
        precision: str = "auto",
        compile: bool = False,
    ) -> Painter:
        dev = resolve_device(device)
        folder = find_model_folder(path, which)
        G, card = from_pretrained(folder, dev, use_ema=use_ema)
        painter = cls(G, card, dev, precision=precision, compile=compile)
        painter.weights = weights_file(folder, use_ema)
        return painter

    @classmethod
    def load_default(cls, *, device: str = "auto", precision: str = "auto", compile: bool = False) -> Painter:
        """The model that ships inside the package (animesis/shipped): no download, no training."""
        if not (SHIPPED / CONFIG_NAME).exists():
            raise ModelLoadError(
                f"{SHIPPED}: this installation carries no built-in model; pass --checkpoint checkpoints/NAME"
            )
        return cls.load(SHIPPED, device=device, precision=precision, compile=compile)

    @classmethod
    def open(cls, checkpoint: str | Path | None, which: str | int = "latest", **kwargs) -> Painter:
        """What every command loads: `checkpoint` (a run or model folder), or the built-in model when None."""
        return cls.load_default(**kwargs) if checkpoint is None else cls.load(checkpoint, which, **kwargs)

    @property
    def num_characters(self) -> int:
        return self.card.generator.num_characters

    @property
    def num_classes(self) -> int:
        return self.card.generator.num_classes

    def read_label(self, path: str | Path) -> np.ndarray:
        """An index or palette-RGB label PNG of any size -> (H, W) uint8 at the model's size."""
        label = read_label(Path(path), self.card.palette)
        if int(label.max(initial=0)) >= self.num_classes:
            raise UserError(
                f"{path}: label value {int(label.max())} but the model knows {self.num_classes} classes"
            )
        return self.resize_label(label)

    def resize_label(self, label: np.ndarray) -> np.ndarray:
        H, W = self.card.image_size
        if label.shape != (H, W):
            label = np.array(Image.fromarray(label).resize((W, H), Image.NEAREST))  # writable, unlike asarray
        return label

    def check_character(self, character: int) -> None:
        if not 0 <= character < self.num_characters:
            names = ", ".join(f"{i}={n}" for i, n in enumerate(self.card.character_names))
            raise UserError(
                f"character {character} does not exist: this model knows {self.num_characters} ({names})"
            )

    def noise(self, n: int, seed: int | None) -> torch.Tensor | None:
        """n noise vectors drawn on the CPU from `seed`, so CPU and GPU paint the same picture."""
        z_dim = self.card.generator.z_dim
        if not z_dim:
            return None
        g = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**63)
        return torch.randn(n, z_dim, generator=g).to(self.device)

    @torch.no_grad()
    def paint(
        self,
        labels: np.ndarray | torch.Tensor,
        characters: Sequence[int] | torch.Tensor,
        z: torch.Tensor | None,
    ) -> np.ndarray:
        """labels (B, H, W) class ids; characters (B,) ids, (B, K) weights or (B, H, W) id maps;
        z (B, z_dim) or None -> (B, H, W, 3) uint8 images."""
        label = torch.as_tensor(np.asarray(labels), dtype=torch.long, device=self.device)
        onehot = F.one_hot(label, self.num_classes).permute(0, 3, 1, 2).float()  # NHWC strides
        char = torch.as_tensor(characters, device=self.device)
        if not char.is_floating_point():
            char = char.long()
            if char.numel() and (char.min() < 0 or char.max() >= self.num_characters):
                self.check_character(int(char.max() if char.max() >= self.num_characters else char.min()))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            image = self.forward(onehot, char, z).float()
        return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def colorize(self, label: np.ndarray) -> np.ndarray:
        return self.card.palette.colorize(label)
