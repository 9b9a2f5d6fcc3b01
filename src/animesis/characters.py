"""Add a character to a trained generator without retraining it.

The generator stays frozen; only the new character's row of its character table is fitted: the code
(`character_embedding`, modulation "spade") or the per-class styles (`class_style`, modulation
"style"), from 1 to 10 pictures of the character and their label maps. The paintings of the pictures'
label maps as the new character are pulled towards the pictures by three terms on the character's
regions (the background is left to the noise): L1, the mean colour of each class region, and on
request VGG16 features (LPIPS's VGG, when its weights are installed). The start is whichever existing
row, or their mean, already paints the pictures best.

The result is a new model folder (config.json + generator_ema.safetensors) whose table has one more
row and name; every other tensor is the source's, and the source folder is only read.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.func import functional_call
from tqdm import tqdm

from animesis import files
from animesis.annotate import (
    PICTURE_SUFFIXES,
    SegmenterSettings,
    draft_label,
    list_pictures,
    load_or_train_segmenter,
    read_picture,
    read_pictures,
    size_note,
    write_png,
)
from animesis.config import LossConfig
from animesis.data.check import read_label
from animesis.data.layout import load_dataset
from animesis.device import resolve_device
from animesis.errors import UserError
from animesis.inference import find_model_folder
from animesis.losses import perceptual_loss
from animesis.metrics.assets import MetricUnavailable
from animesis.metrics.lpips import load_lpips
from animesis.models.pretrained import ModelCard, from_pretrained, save_pretrained
from animesis.training.step import vgg_taps

CONFIG = "config.json"
RECORD = "added_character.json"  # beside the weights: what the new row was fitted from
DRAFTS = "drafted_labels"  # the label maps drafted for the pictures, to check and pass back as --labels
MAX_PICTURES = 10  # the range it is made for; more are used, with a note


# --- the source model ----------------------------------------------------------------------------------


def source_folder(checkpoint: Path, which: str = "latest") -> Path:
    """A model folder itself, or a run folder (checkpoints/NAME) plus 'latest' | 'best' | iteration."""
    return find_model_folder(checkpoint, which)


def _check_table(config: Path) -> None:
    """A clear message for a model without a character table, before the weights are read."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"{config}: unreadable model config ({e})") from e
    names = data.get("characters") if isinstance(data, dict) else None
    gen = data.get("generator") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names or not isinstance(gen, dict):
        raise UserError(f"{config}: no character table (no \"characters\" list): a character can only be "
                        "added to a model that learnt one code per character")  # fmt: skip
    if not gen.get("id_dim"):
        raise UserError(f"{config}: no character table (id_dim 0: the model ignores the character), "
                        "so there is no row to add")  # fmt: skip
    if gen.get("num_characters") != len(names):
        raise UserError(
            f"{config}: the character table has {gen.get('num_characters')} rows but {len(names)} names"
        )


def load_source(folder: Path, device: torch.device) -> tuple[nn.Module, ModelCard]:
    """The frozen generator (EMA weights, eval mode) and its card."""
    _check_table(Path(folder) / CONFIG)
    G, card = from_pretrained(Path(folder), device)
    return G.eval().requires_grad_(False), card


def table_key(G: nn.Module) -> str:
    """The state-dict name of the per-character parameters."""
    return "class_style" if G.cfg.modulation == "style" else "character_embedding.weight"


def character_table(G: nn.Module) -> torch.Tensor:
    """(K, id_dim) codes, or (K, N, id_dim) styles for modulation 'style'."""
    return G.class_style if G.cfg.modulation == "style" else G.character_embedding.weight


def check_name(name: str, card: ModelCard, config: Path) -> str:
    name = name.strip()
    if not name or "\n" in name:
        raise UserError(f"--name {name!r}: give the new character a name on one line")
    for i, other in enumerate(card.character_names):
        if other.casefold() == name.casefold():
            raise UserError(f"{config}: the model already has a character named {other!r} (id {i}); "
                            "choose another --name")  # fmt: skip
    return name


# --- pictures and label maps ---------------------------------------------------------------------------


def find_label(labels: Path, picture: Path) -> Path:
    for suffix in (".png", *sorted(PICTURE_SUFFIXES - {".png"})):
        if (path := labels / f"{picture.stem}{suffix}").is_file():
            return path
    raise UserError(
        f"{labels / (picture.stem + '.png')}: missing: every picture needs its label map "
        "(leave out --labels to have them drafted)"
    )


def read_labels(labels: Path, pictures: Sequence[Path], sizes: dict[Path, tuple[int, int]], card: ModelCard):
    """Each picture's label map, checked: readable, in the model's classes, the picture's size."""
    if not Path(labels).is_dir():
        raise UserError(f"{labels}: no such folder of label maps")
    out = []
    for p in pictures:
        path = find_label(Path(labels), p)
        label = read_label(path, card.palette)  # bad values or colours: a message naming the file
        (w, h), (W, H) = (label.shape[1], label.shape[0]), sizes[p]
        if (w, h) != (W, H):
            raise UserError(f"{path}: label map is {w}x{h} but its picture {p.name} is {W}x{H}")
        if len(np.unique(label)) < 2:
            raise UserError(f"{path}: every pixel is one class: not the label map of the picture {p.name}")
        out.append(label)
    return out


def to_model_size(rgb: np.ndarray, label: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Picture (bicubic) and label map (nearest) at the model's (H, W)."""
    H, W = size
    if rgb.shape[:2] != (H, W):
        rgb = np.asarray(Image.fromarray(rgb).resize((W, H), Image.Resampling.BICUBIC))
        label = np.asarray(Image.fromarray(label).resize((W, H), Image.Resampling.NEAREST))
    return rgb, label


def run_dataroot(folder: Path) -> Path | None:
    """The dataset the source model was trained on, from its run.json (two folders up), if known."""
    for run_dir in (folder, folder.parent.parent):
        try:
            data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and isinstance(data.get("dataroot"), str):
            return Path(data["dataroot"])
    return None


# --- fitting -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitSettings:
    """How the new row is fitted.

    Measured on the built-in cast (benchmarks/add_character.py, tiny models at 32x32, k = 3): Adam at
    0.05 stops short (identity 18-56%), at 0.1-0.5 every setting reaches 100% with the same colour
    error, which 150 or 600 steps barely change; without L1 (colour means alone) identity falls to 6%;
    the VGG term changed nothing there and costs five times the time, so it is off unless asked for.
    """

    steps: int = 300
    lr: float = 0.2  # Adam; cosine decay to a tenth
    batch_size: int = 10  # pictures per step (all of them, up to this)
    lambda_l1: float = 1.0
    lambda_colour: float = 1.0  # mean colour per class region
    lambda_vgg: float = 0.0  # VGG16 features (LPIPS's weights, when installed) of the character's regions
    vgg_layers: int = 4
    background_weight: float = 0.0  # the L1 weight of background pixels: the noise paints those
    seed: int = 0


@dataclass(frozen=True)
class Examples:
    """The new character's pictures and label maps at the model's size."""

    images: torch.Tensor  # (n, 3, H, W) in [-1, 1]
    labels: torch.Tensor  # (n, H, W) long

    @classmethod
    def from_arrays(cls, images: Sequence[np.ndarray], labels: Sequence[np.ndarray], device) -> Examples:
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        y = torch.from_numpy(np.stack(labels).astype(np.int64))
        return cls(x.to(device), y.to(device))


class _Objective:
    """The fitting loss of a painting against its picture, on the character's regions."""

    def __init__(self, num_classes: int, carries: torch.Tensor, s: FitSettings, vgg: nn.Module | None):
        self.N, self.carries, self.s, self.vgg = num_classes, carries, s, vgg

    def __call__(
        self, fake: torch.Tensor, real: torch.Tensor, label: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        onehot = F.one_hot(label, self.N).permute(0, 3, 1, 2).float()  # (B, N, H, W)
        mask = self.carries[label].float()[:, None]  # (B, 1, H, W): pixels that show the character
        w = mask + self.s.background_weight * (1 - mask)
        terms = {"l1": ((fake - real).abs() * w).sum() / (w.sum() * 3).clamp(min=1)}
        counts = onehot.sum(dim=(2, 3))  # (B, N)
        mean_f = torch.einsum("bnhw,bchw->bnc", onehot, fake) / counts.clamp(min=1)[..., None]
        mean_r = torch.einsum("bnhw,bchw->bnc", onehot, real) / counts.clamp(min=1)[..., None]
        present = (counts > 0) & self.carries[None]
        terms["colour"] = (mean_f - mean_r).abs().mean(-1)[present].mean()
        if self.vgg is not None:
            # The real background under the painted character: features compare the character only.
            comp = fake * mask + real * (1 - mask)
            with torch.no_grad():
                real_taps = vgg_taps(self.vgg, real, self.s.vgg_layers)
            terms["vgg"] = perceptual_loss(vgg_taps(self.vgg, comp, self.s.vgg_layers), real_taps)
        weights = {"l1": self.s.lambda_l1, "colour": self.s.lambda_colour, "vgg": self.s.lambda_vgg}
        terms["total"] = sum(weights[k] * v for k, v in terms.items())
        return terms


def _paint(G: nn.Module, key: str, table: torch.Tensor, label: torch.Tensor, z: torch.Tensor | None):
    """G with `table` in place of its character table, painting every map as the table's last row."""
    onehot = F.one_hot(label, G.cfg.num_classes).permute(0, 3, 1, 2).float()
    ids = torch.full((label.shape[0],), table.shape[0] - 1, dtype=torch.long, device=label.device)
    return functional_call(G, {key: table}, (onehot, ids, z))


def _noise(G: nn.Module, n: int, g: torch.Generator, device) -> torch.Tensor | None:
    return torch.randn(n, G.cfg.z_dim, generator=g).to(device) if G.cfg.z_dim else None


@torch.no_grad()
def _best_start(G, key, ex: Examples, objective: _Objective, g: torch.Generator) -> tuple[torch.Tensor, str]:
    """The existing row (or the rows' mean) whose paintings are already closest to the pictures."""
    table = character_table(G).detach()
    z = _noise(G, len(ex.images), g, ex.images.device)
    candidates = [(table.mean(0), "mean of the table")] + [
        (table[k], f"character {k}") for k in range(len(table))
    ]
    scores = [
        objective(_paint(G, key, torch.cat([table, row[None]]), ex.labels, z), ex.images, ex.labels)["total"].item()
        for row, _ in candidates
    ]  # fmt: skip
    best = int(np.argmin(scores))
    return candidates[best][0].clone(), candidates[best][1]


def _batch(ex: Examples, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `size` examples, each flipped left-right by a coin (the generator was trained with flips)."""
    n = len(ex.images)
    idx = torch.randperm(n, generator=g)[: min(size, n)].to(ex.images.device)
    x, y = ex.images[idx], ex.labels[idx]
    flip = (torch.rand(len(idx), generator=g) < 0.5).to(x.device)
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    return x, y


def fit_character(
    G: nn.Module,
    ex: Examples,
    settings: FitSettings = FitSettings(),
    *,
    vgg: nn.Module | None = None,
    carries: torch.Tensor,  # (N,) bool: the classes that show the character (not the background)
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The new row of G's character table, fitted with G frozen; (row, report)."""
    started = time.perf_counter()
    key, table = table_key(G), character_table(G).detach()
    objective = _Objective(G.cfg.num_classes, carries.to(ex.images.device), settings, vgg)
    g = torch.Generator().manual_seed(settings.seed)
    start, start_name = _best_start(G, key, ex, objective, g)
    row = nn.Parameter(start)
    opt = torch.optim.Adam([row], lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.1 + 0.45 * (1 + math.cos(math.pi * t / max(settings.steps, 1)))
    )
    history = []
    for step in tqdm(range(settings.steps), desc="fitting the character", disable=not progress):
        x, y = _batch(ex, settings.batch_size, g)
        fake = _paint(G, key, torch.cat([table, row[None]]), y, _noise(G, len(y), g, y.device))
        terms = objective(fake, x, y)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        if step == 0 or step == settings.steps - 1:
            history.append({k: round(v.item(), 5) for k, v in terms.items()})
    report = {
        "start": start_name,
        "steps": settings.steps,
        "loss_first": history[0] if history else None,
        "loss_last": history[-1] if history else None,
        "vgg": vgg is not None,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return row.detach(), report


def grow_table(G: nn.Module, row: torch.Tensor) -> nn.Module:
    """G with `row` appended to its character table (in place): K + 1 characters."""
    table = torch.cat([character_table(G).detach(), row.detach()[None].to(character_table(G))])
    if G.cfg.modulation == "style":
        G.class_style = nn.Parameter(table, requires_grad=False)
    else:
        G.character_embedding = nn.Embedding.from_pretrained(table, freeze=True)
    G.cfg = replace(G.cfg, num_characters=len(table))
    return G


def grown_card(card: ModelCard, name: str) -> ModelCard:
    K = card.generator.num_characters + 1
    d = card.discriminator
    return replace(
        card,
        generator=replace(card.generator, num_characters=K),
        discriminator=replace(d, num_characters=K) if d is not None else None,
        character_names=(*card.character_names, name),
    )


def carrying_classes(card: ModelCard) -> torch.Tensor:
    """(N,) bool: the classes that show the character, as training's identity loss counts them."""
    ignored = set(LossConfig().identity_ignore)
    return torch.tensor([n not in ignored for n in card.palette.names])


# --- writing the new folder ----------------------------------------------------------------------------


def check_out(out: Path, source: Path, force: bool) -> Path:
    """The new folder must not be, hold or sit in the source, and replaces only a model folder, and only when forced."""
    out, src = Path(out).resolve(), Path(source).resolve()
    if out == src or out in src.parents or src in out.parents:
        raise UserError(f"{out}: is, holds or sits inside the source checkpoint {src}, which must not "
                        "change; choose another --out")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: a file has that name; --out must be a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out}: already exists; pass --force to replace it")
        if not (out / CONFIG).exists():
            raise UserError(
                f"{out}: not a model folder (no {CONFIG}): refusing to replace it even with --force"
            )
    return out


def write_model(
    out: Path, G: nn.Module, card: ModelCard, record: dict, drafts: dict[str, np.ndarray]
) -> None:
    """Write the folder under a temporary name beside `out`, read it back, then swap it in whole."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    old = out.with_name(f".{out.name}.{os.getpid()}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_pretrained(tmp, G, card)
        files.write_json(tmp / RECORD, record)
        if drafts:
            (tmp / DRAFTS).mkdir()
        for stem, label in drafts.items():
            write_png(tmp / DRAFTS / f"{stem}.png", label)
        check_written(tmp, G)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out}: cannot write the new model ({e.strerror or e})") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def check_written(folder: Path, G: nn.Module) -> None:
    """Read the written folder back: it must rebuild with exactly G's tensors."""
    loaded, _ = from_pretrained(folder, "cpu")
    mine, theirs = G.state_dict(), loaded.state_dict()
    if mine.keys() != theirs.keys() or any(not torch.equal(mine[k].cpu(), theirs[k]) for k in mine):
        raise RuntimeError(f"{folder}: the written model does not read back as the one fitted")


# --- the command's work --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCharacterJob:
    """Everything `add-character` needs."""

    checkpoint: Path  # a model folder, or a run folder with `iter`
    images: Path  # 1 to 10 pictures of the new character
    name: str
    out: Path  # the new model folder
    iter: str = "latest"
    labels: Path | None = None  # their label maps, named like the pictures; None: drafted
    dataroot: Path | None = None  # the dataset whose segmenter drafts them (default: the run's)
    settings: FitSettings = FitSettings()
    device: str = "auto"
    force: bool = False
    progress: bool = True


def _drafting_dataset(job: AddCharacterJob, folder: Path, card: ModelCard):
    """The dataset whose annotation segmenter drafts the missing label maps; its classes must be the model's."""
    root = job.dataroot or run_dataroot(folder)
    if root is None or not Path(root).is_dir():
        said = f" (the run's dataset {root} is not here)" if root is not None else ""
        raise UserError(f"{job.images}: no --labels, and no dataset to draft them with{said}: pass --labels "
                        "DIR with a label map per picture, or --dataroot DATAROOT")  # fmt: skip
    info = load_dataset(Path(root), deep=False)
    if info.palette != card.palette:
        raise UserError(f"{root}: its classes differ from the model's ({', '.join(card.palette.names)}): "
                        "it cannot draft label maps for this model; pass --labels")  # fmt: skip
    return info


def _examples(job, card, pictures, labels, info, device) -> tuple[Examples, dict[str, np.ndarray]]:
    """The pictures and their label maps (given, or drafted now) at the model's size; and the drafts."""
    drafts: dict[str, np.ndarray] = {}
    if labels is None:
        segmenter = load_or_train_segmenter(
            info, SegmenterSettings(), device=job.device, progress=job.progress, any_settings=True
        )
        labels = [draft_label(segmenter.judge, read_picture(p)).label for p in pictures]
        drafts = {p.stem: lab for p, lab in zip(pictures, labels, strict=True)}
        print(f"note: drafted the label maps with the segmenter of {info.root}; check them in "
              f"{job.out / DRAFTS} and pass them back with --labels if they are wrong", file=sys.stderr)  # fmt: skip
    pairs = [
        to_model_size(read_picture(p), lab, card.image_size) for p, lab in zip(pictures, labels, strict=True)
    ]
    return Examples.from_arrays([a for a, _ in pairs], [b for _, b in pairs], device), drafts


def _vgg(settings: FitSettings, device) -> nn.Module | None:
    if settings.lambda_vgg <= 0:
        return None
    try:
        return load_lpips("vgg", device)
    except MetricUnavailable as e:
        print(f"note: fitting without the VGG term: {e}", file=sys.stderr)
        return None


def add_character(job: AddCharacterJob) -> dict[str, Any]:
    """Fit a new character into a copy of a trained generator; every input is checked before any work."""
    started, cpu = time.perf_counter(), time.process_time()
    dev = resolve_device(job.device)
    folder = source_folder(job.checkpoint, job.iter)
    G, card = load_source(folder, dev)
    name = check_name(job.name, card, folder / CONFIG)
    out = check_out(job.out, folder, job.force)
    pictures = list_pictures(
        job.images, f": add-character needs 1 to {MAX_PICTURES} pictures of the character"
    )
    sizes = read_pictures(pictures)
    labels = read_labels(Path(job.labels), pictures, sizes, card) if job.labels is not None else None
    info = _drafting_dataset(job, folder, card) if labels is None else None
    H, W = card.image_size
    if note := size_note(sizes, (W, H), "each is resized to the model's size"):
        print(note, file=sys.stderr)
    if len(pictures) > MAX_PICTURES:
        print(f"note: {len(pictures)} pictures: more than the {MAX_PICTURES} it is made for; all are used",
              file=sys.stderr)  # fmt: skip
    files.ensure_writable_dir(out.parent, "output folder")
    ex, drafts = _examples(job, card, pictures, labels, info, dev)
    row, report = fit_character(
        G,
        ex,
        job.settings,
        vgg=_vgg(job.settings, dev),
        carries=carrying_classes(card),
        progress=job.progress,
    )
    new_card = grown_card(card, name)
    record = {
        "name": name,
        "id": card.generator.num_characters,
        "source": str(folder),
        "pictures": [str(p) for p in pictures],
        "labels": "drafted" if drafts else str(job.labels),
        "settings": asdict(job.settings),
        "fit": report,
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_model(out, grow_table(G, row).cpu(), new_card, record, drafts)
    return {"out": str(out), **record}
