"""Judges: a character classifier and a segmenter trained on a dataset's real images, then frozen.

They score generated images by the questions a viewer would ask: is this the requested character
(identity accuracy), and does it follow the label map (mIoU of the segmenter's prediction)? Both are
trained once per dataset by `animesis judges` and saved in DATAROOT/judges/{character,segment}/ as
config.json beside model.safetensors.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo, Sample
from animesis.device import cpu_workers, resolve_device
from animesis.errors import ModelLoadError
from animesis.metrics.assets import MetricUnavailable
from animesis.models.pretrained import NewerFormatError, load_weights, read_model_config, write_model_folder
from animesis.tensors import to_signed

JUDGES_FOLDER = "judges"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "animesis-judge"
FORMAT_VERSION = 1


class JudgesUnavailable(MetricUnavailable):
    """The judges of a dataset were never trained (or cannot be read); the message says how to make them."""


# --- networks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CharacterJudgeConfig:
    """A small residual classifier: image -> one logit per character."""

    num_characters: int
    resolution: int = 64  # every image is resized to this square before it is judged
    width: int = 16  # stem channels; the three stages use 2x, 4x and 8x


@dataclass(frozen=True)
class SegmentJudgeConfig:
    """A small U-Net: image -> per-pixel logits over the semantic classes."""

    num_classes: int
    resolution: int = 128  # square working size; logits are resized back to the label's size
    width: int = 12  # channels at full resolution; each of three downsamplings doubles them


def to_judge_input(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 RGB as (B, H, W, 3) array or (B, 3, H, W) tensor -> float (B, 3, H, W) in [-1, 1]."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise TypeError(f"expected uint8 RGB images (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
    return to_signed(images)


def resize_images(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with antialiasing (area-like when shrinking); a no-op at the right size."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a projected shortcut; stride 2 halves the resolution."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn_relu(c_in, c_out, stride),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        # Average-pool then 1x1 (ResNet-D): keeps every input pixel, and avoids the strided 1x1
        # convolution whose channels-last backward crashes torch 2.13's CPU kernels at some shapes.
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class CharacterJudge(nn.Module):
    """Images in [-1, 1] of any size -> (B, K) character logits."""

    def __init__(self, cfg: CharacterJudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(
            _conv_bn_relu(3, w),
            ResBlock(w, 2 * w, 2),
            ResBlock(2 * w, 4 * w, 2),
            ResBlock(4 * w, 8 * w, 2),
        )
        self.head = nn.Linear(8 * w, cfg.num_characters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_images(x, self.cfg.resolution)  # (B, 3, R, R)
        x = self.features(x)  # (B, 8w, R/8, R/8)
        # Average pooling: identity is mostly which colours cover how much of the picture.
        return self.head(x.mean(dim=(2, 3)))  # (B, K)


class SegmentJudge(nn.Module):
    """Images in [-1, 1] of any size -> (B, N, R, R) class logits at the judge resolution."""

    def __init__(self, cfg: SegmentJudgeConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.enc0 = _conv_bn_relu(3, w)
        self.enc1 = nn.Sequential(_conv_bn_relu(w, 2 * w, 2), _conv_bn_relu(2 * w, 2 * w))
        self.enc2 = nn.Sequential(_conv_bn_relu(2 * w, 4 * w, 2), _conv_bn_relu(4 * w, 4 * w))
        self.enc3 = nn.Sequential(_conv_bn_relu(4 * w, 8 * w, 2), _conv_bn_relu(8 * w, 8 * w))
        # Decoder: 1x1 projections added to the skips (cheaper than concatenation, same information).
        self.lat2, self.dec2 = nn.Conv2d(8 * w, 4 * w, 1), _conv_bn_relu(4 * w, 4 * w)
        self.lat1, self.dec1 = nn.Conv2d(4 * w, 2 * w, 1), _conv_bn_relu(2 * w, 2 * w)
        self.lat0, self.dec0 = nn.Conv2d(2 * w, w, 1), _conv_bn_relu(w, w)
        self.head = nn.Conv2d(w, cfg.num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.enc0(resize_images(x, self.cfg.resolution))  # (B, w, R, R)
        x1 = self.enc1(x0)  # (B, 2w, R/2, R/2)
        x2 = self.enc2(x1)  # (B, 4w, R/4, R/4)
        x3 = self.enc3(x2)  # (B, 8w, R/8, R/8)
        y = self.dec2(_up(self.lat2(x3), x2) + x2)  # (B, 4w, R/4, R/4)
        y = self.dec1(_up(self.lat1(y), x1) + x1)  # (B, 2w, R/2, R/2)
        y = self.dec0(_up(self.lat0(y), x0) + x0)  # (B, w, R, R)
        return self.head(y)  # (B, N, R, R)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


# --- predictions and metrics ---------------------------------------------------------------------


def _judge_device(judge: nn.Module) -> torch.device:
    tensor = next(iter(judge.state_dict().values()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def predict_characters(
    judge: CharacterJudge, images: torch.Tensor | np.ndarray, batch_size: int = 64
) -> torch.Tensor:
    """(N,) predicted character ids (CPU) of uint8 images, (N, H, W, 3) array or (N, 3, H, W) tensor."""
    device = _judge_device(judge)
    out = [
        judge(to_judge_input(images[i : i + batch_size]).to(device)).argmax(dim=1).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def predict_segments(
    judge: SegmentJudge, images: torch.Tensor | np.ndarray, batch_size: int = 32
) -> torch.Tensor:
    """(N, H, W) predicted class ids (CPU) at the images' own size: logits resized bilinearly, then argmax."""
    device = _judge_device(judge)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_judge_input(images[i : i + batch_size]).to(device)
        logits = judge(x)  # (B, N, R, R)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out.append(logits.argmax(dim=1).to(torch.uint8).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.uint8)


def identity_accuracy(
    judge: CharacterJudge,
    images: torch.Tensor | np.ndarray,
    requested: torch.Tensor | np.ndarray | list[int],
    batch_size: int = 64,
) -> float:
    """Share of images the judge recognises as the character that was requested for them."""
    requested = torch.as_tensor(np.asarray(requested), dtype=torch.long)
    if len(requested) != len(images) or not len(images):
        raise ValueError(
            f"need one requested id per image, got {len(requested)} ids for {len(images)} images"
        )
    return (predict_characters(judge, images, batch_size) == requested).float().mean().item()


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, N) int64 pixel counts: row = ground-truth class, column = predicted class."""
    target = torch.as_tensor(target).reshape(-1).long()
    pred = torch.as_tensor(pred).reshape(-1).long()
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in size: {pred.numel()} vs {target.numel()} pixels")
    if target.numel() and (target.max() >= num_classes or pred.max() >= num_classes):
        raise ValueError(f"class id beyond the {num_classes} classes")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).view(
        num_classes, num_classes
    )


def miou_from_confusion(confusion: torch.Tensor | np.ndarray) -> tuple[float, np.ndarray]:
    """(mean IoU over classes present in the ground truth, per-class IoU with NaN for absent classes)."""
    conf = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(conf)
    in_truth, in_pred = conf.sum(axis=1), conf.sum(axis=0)
    present = in_truth > 0
    iou = np.full(len(conf), np.nan)
    iou[present] = tp[present] / (in_truth + in_pred - tp)[present]
    if not present.any():
        raise ValueError("no ground-truth pixels: mIoU is undefined")
    return float(np.nanmean(iou)), iou


def miou(
    judge: SegmentJudge,
    images: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    num_classes: int,
    batch_size: int = 32,
) -> tuple[float, np.ndarray]:
    """mIoU of the judge's segmentation of images (N, H, W, 3) against label maps (N, H, W)."""
    pred = predict_segments(judge, images, batch_size)
    return miou_from_confusion(confusion_matrix(pred, torch.as_tensor(np.asarray(labels)), num_classes))


# --- dataset fingerprint ---------------------------------------------------------------------------


def dataset_fingerprint(info: DatasetInfo) -> dict[str, Any]:
    """What the judges were trained on: counts and a hash of the train split's names, sizes and ids.

    File sizes (not contents) keep this a stat per file: cheap for thousands of images, and enough
    to notice added, removed, replaced or relabelled images.
    """
    lines = sorted(
        f"{s.name}\t{s.image.stat().st_size}\t{s.label.stat().st_size}\t{s.character}"
        for s in info.splits["train"]
    )
    digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
    return {
        "train_images": len(lines),
        "num_characters": info.num_characters,
        "num_classes": info.num_classes,
        "sha256": digest,
    }


# --- saving and loading --------------------------------------------------------------------------


def judges_folder(dataroot: Path) -> Path:
    return Path(dataroot) / JUDGES_FOLDER


def save_judge(folder: Path, judge: CharacterJudge | SegmentJudge, meta: dict[str, Any]) -> None:
    """Write config.json + model.safetensors into a temporary folder, then swap it in whole."""
    kind = "character" if isinstance(judge, CharacterJudge) else "segment"
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "config": asdict(judge.cfg)}
    data.update(meta)
    write_model_folder(Path(folder), data, {WEIGHTS_NAME: judge}, CONFIG_NAME)


def _read_config(folder: Path, kind: str, dataroot: Path) -> dict[str, Any]:
    hint = f"run `animesis judges --dataroot {dataroot}`"
    for needed in (folder / CONFIG_NAME, folder / WEIGHTS_NAME):
        if not needed.exists():
            raise JudgesUnavailable(f"the {kind} judge is missing ({needed} not found); {hint}")
    try:
        data = read_model_config(
            folder, FORMAT, FORMAT_VERSION, what=f"{kind} judge", config_name=CONFIG_NAME
        )
    except NewerFormatError as e:  # retraining with this version would not make it readable
        raise JudgesUnavailable(str(e)) from e
    except ModelLoadError as e:
        raise JudgesUnavailable(f"{e}; {hint} --force") from e
    if data.get("kind") != kind:
        raise JudgesUnavailable(f"{folder / CONFIG_NAME}: not an animesis {kind} judge; {hint} --force")
    return data


def load_judge(
    folder: Path, kind: str, dataroot: Path, device: str | torch.device = "cpu"
) -> tuple[CharacterJudge | SegmentJudge, dict[str, Any]]:
    """Rebuild one judge from its config.json and weights, frozen in eval mode."""
    data = _read_config(Path(folder), kind, dataroot)
    try:
        if kind == "character":
            judge: CharacterJudge | SegmentJudge = CharacterJudge(CharacterJudgeConfig(**data["config"]))
        else:
            judge = SegmentJudge(SegmentJudgeConfig(**data["config"]))
        load_weights(judge, Path(folder) / WEIGHTS_NAME)
    except (TypeError, KeyError, ModelLoadError) as e:
        raise JudgesUnavailable(
            f"{folder}: cannot rebuild the {kind} judge ({e}); run `animesis judges --dataroot {dataroot} --force`"
        ) from e
    return judge.to(device).eval().requires_grad_(False), data


@dataclass(frozen=True)
class Judges:
    """Both frozen judges of one dataset, with what they were trained on."""

    character: CharacterJudge
    segment: SegmentJudge
    character_meta: dict[str, Any]  # config.json of the character judge (names, training summary)
    segment_meta: dict[str, Any]
    folder: Path

    def stale_warning(self, info: DatasetInfo) -> str | None:
        """A sentence when the dataset's train split differs from the one the judges learnt, else None."""
        now = dataset_fingerprint(info)
        for kind, meta in (("character", self.character_meta), ("segment", self.segment_meta)):
            then = meta.get("dataset", {})
            if then != now:
                return (
                    f"the {kind} judge in {self.folder} was trained on a different train split "
                    f"({then.get('train_images')} images, hash {str(then.get('sha256'))[:12]}; now "
                    f"{now['train_images']} images, hash {now['sha256'][:12]}); retrain with "
                    f"`animesis judges --dataroot {info.root} --force`"
                )
        return None


def load_judges(dataroot: Path, device: str | torch.device = "cpu") -> Judges:
    """The dataset's two judges; raises JudgesUnavailable naming the missing file and the command that makes it."""
    folder = judges_folder(dataroot)
    character, c_meta = load_judge(folder / "character", "character", Path(dataroot), device)
    segment, s_meta = load_judge(folder / "segment", "segment", Path(dataroot), device)
    return Judges(character, segment, c_meta, s_meta, folder)  # type: ignore[arg-type]


# --- training ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedSplit:
    """A split decoded once into memory at the judges' sizes (uint8, so epochs cost no decoding)."""

    character_images: torch.Tensor  # (N, 3, Rc, Rc)
    segment_images: torch.Tensor  # (N, 3, Rs, Rs)
    labels: torch.Tensor  # (N, Rs, Rs) class ids
    characters: torch.Tensor  # (N,) int64


def decode_split(
    samples: tuple[Sample, ...] | list[Sample],
    info: DatasetInfo,
    *,
    character_size: int,
    segment_size: int,
    workers: int,
    progress: bool,
    desc: str,
) -> DecodedSplit:
    """Decode images at twice the larger judge size, then shrink them with the judges' own resize.

    Scoring resizes model-resolution images (typically 256) the same way, so the judges learn the
    look that they will later be shown rather than another resampler's.
    """
    decode = 2 * max(character_size, segment_size)
    dataset = SegmentationDataset(list(samples), info.palette, (decode, decode))
    loader = DataLoader(dataset, batch_size=32, num_workers=workers)
    small, large, labels, chars = [], [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress):
        small.append(_shrink(batch["image"], character_size))
        large.append(_shrink(batch["image"], segment_size))
        labels.append(_shrink_labels(batch["label"], segment_size))
        chars.append(batch["character"])
    return DecodedSplit(torch.cat(small), torch.cat(large), torch.cat(labels), torch.cat(chars).long())


def augment(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    g: torch.Generator,
    min_scale: float = 0.8,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random horizontal flips and crops (kept share of each side in [min_scale, 1]), resized back.

    Geometry only: colour is identity, so colours are never jittered. Labels follow with nearest sampling.
    """
    B = images.shape[0]
    scale = min_scale + (1 - min_scale) * torch.rand(B, generator=g)
    shift = (torch.rand(B, 2, generator=g) * 2 - 1) * (1 - scale)[:, None]  # keep the crop inside
    flip = torch.where(torch.rand(B, generator=g) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    theta = theta.to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if labels is None:
        return out, None
    lab = F.grid_sample(
        labels[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False
    )
    return out, lab[:, 0].long()


@dataclass(frozen=True)
class JudgeTraining:
    """How one judge is fitted: AdamW with a one-cycle schedule over in-memory images."""

    views: int  # sample views (epochs x images) when no epoch count is given
    batch_size: int
    lr: float  # peak learning rate

    def epochs(self, n: int) -> int:
        """Passes over n images for about `views` sample views, between 3 and 400."""
        return int(min(400, max(3, math.ceil(self.views / max(n, 1)))))


# Measured on the built-in dataset (9 characters, 2,000 of its 256x256 training pictures, 2 CPU cores):
# the character judge is at 100% held-out accuracy by 10k views; the segmenter's held-out mIoU keeps
# rising with views (0.70 at 8k, 0.76 at 20k) and with smaller batches, and costs ~15 ms per view.
CHARACTER_TRAINING = JudgeTraining(views=24_000, batch_size=32, lr=3e-3)
SEGMENT_TRAINING = JudgeTraining(views=16_000, batch_size=16, lr=4e-3)


def _fit(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: nn.Module,
    training: JudgeTraining,
    *,
    epochs: int,
    g: torch.Generator,
    device: torch.device,
    progress: bool,
    desc: str,
) -> int:
    """Train in place on in-memory uint8 images (augmented per batch); returns the steps run."""
    n, lr = len(images), training.lr
    batch_size = min(training.batch_size, n)
    per_epoch = n // batch_size  # whole batches only: BatchNorm dislikes a last batch of one
    steps = epochs * per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    dense = targets.dim() == 3  # per-pixel targets are augmented with the image
    model.train()
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(n, generator=g)
        for b in range(per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            x = to_judge_input(images[idx].to(device))
            y = targets[idx].to(device)
            x, y_aug = augment(x, y if dense else None, g)
            y = y_aug if dense else y
            loss = loss_fn(model(x.contiguous(memory_format=torch.channels_last)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return steps


def _segment_loss_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse square-root class frequencies (mean 1 over present classes): small parts still count."""
    counts = torch.bincount(labels.reshape(-1).long(), minlength=num_classes).double()
    w = torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))
    return (w / w[counts > 0].mean()).float()


def train_character_judge(
    data: DecodedSplit,
    cfg: CharacterJudgeConfig,
    training: JudgeTraining,
    *,
    epochs: int,
    g: torch.Generator,
    device: torch.device,
    progress: bool = False,
) -> tuple[CharacterJudge, int]:
    """A character judge fitted to the decoded split; (judge in eval mode, steps run)."""
    judge = CharacterJudge(cfg).to(device, memory_format=torch.channels_last)
    # Label smoothing keeps logits modest, so a judge that saw only clean drawings is not overconfident.
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    steps = _fit(
        judge,
        data.character_images,
        data.characters,
        loss,
        training,
        epochs=epochs,
        g=g,
        device=device,
        progress=progress,
        desc="character judge",
    )
    return judge.eval(), steps


def train_segment_judge(
    data: DecodedSplit,
    cfg: SegmentJudgeConfig,
    training: JudgeTraining,
    *,
    epochs: int,
    g: torch.Generator,
    device: torch.device,
    progress: bool = False,
) -> tuple[SegmentJudge, int]:
    """A segmentation judge fitted to the decoded split; (judge in eval mode, steps run)."""
    judge = SegmentJudge(cfg).to(device, memory_format=torch.channels_last)
    loss = nn.CrossEntropyLoss(weight=_segment_loss_weights(data.labels, cfg.num_classes).to(device))
    steps = _fit(
        judge,
        data.segment_images,
        data.labels,
        loss,
        training,
        epochs=epochs,
        g=g,
        device=device,
        progress=progress,
        desc="segment judge",
    )
    return judge.eval(), steps


def train_judges(
    info: DatasetInfo,
    out_dir: Path,
    *,
    device: str = "auto",
    epochs: int | None = None,  # passes over the train split for both judges; None: from their views
    seed: int = 0,
    progress: bool = True,
    character: CharacterJudgeConfig | None = None,  # default: 64x64, width 16
    segment: SegmentJudgeConfig | None = None,  # default: 128x128, width 12
    character_training: JudgeTraining = CHARACTER_TRAINING,
    segment_training: JudgeTraining = SEGMENT_TRAINING,
    workers: int | None = None,  # decoding processes
) -> dict[str, Any]:
    """Train both judges on the train split, measure them on the test split (val if none), save them.

    Deterministic for a seed on the CPU (initialisation, shuffling and augmentation all draw from it);
    on a GPU up to cuDNN's nondeterministic kernels.
    """
    character = character or CharacterJudgeConfig(info.num_characters)
    segment = segment or SegmentJudgeConfig(info.num_classes)
    _check_judge_configs(info, character, segment)
    dev = resolve_device(device)
    if not info.splits["train"]:
        raise ValueError(f"{info.root}: the train split is empty: nothing to train the judges on")
    started = time.perf_counter()
    run = _prepare_fit(
        info,
        Path(out_dir),
        character,
        segment,
        device=dev,
        epochs=epochs,
        seed=seed,
        progress=progress,
        workers=cpu_workers(4) if workers is None else workers,
    )
    char_summary = _fit_character_judge(run, character, character_training)
    seg_summary = _fit_segment_judge(run, segment, segment_training)
    return {
        "folder": str(out_dir),
        "character": char_summary,
        "segment": seg_summary,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _check_judge_configs(
    info: DatasetInfo, character: CharacterJudgeConfig, segment: SegmentJudgeConfig
) -> None:
    if character.num_characters != info.num_characters or segment.num_classes != info.num_classes:
        raise ValueError(
            f"judge configs for {character.num_characters} characters and {segment.num_classes} classes, "
            f"but {info.root} has {info.num_characters} and {info.num_classes}"
        )


@dataclass(frozen=True)
class _JudgeFit:
    """What fitting either judge needs: the decoded splits, where to save, and the shared settings."""

    info: DatasetInfo
    out_dir: Path
    device: torch.device
    train: DecodedSplit
    held: DecodedSplit | None
    common: dict[str, Any]  # summary entries both judges record
    fingerprint: dict[str, Any]
    epochs: int | None
    seed: int
    progress: bool

    def epochs_for(self, training: JudgeTraining) -> int:
        return self.epochs or training.epochs(len(self.info.splits["train"]))


def _prepare_fit(
    info: DatasetInfo,
    out_dir: Path,
    character: CharacterJudgeConfig,
    segment: SegmentJudgeConfig,
    *,
    device: torch.device,
    epochs: int | None,
    seed: int,
    progress: bool,
    workers: int,
) -> _JudgeFit:
    """Decode the train and held-out splits once, at both judges' sizes."""
    held_name = "test" if info.splits.get("test") else "val"
    held = info.splits.get(held_name, ())
    kw = dict(
        character_size=character.resolution,
        segment_size=segment.resolution,
        workers=workers,
        progress=progress,
    )
    train_data = decode_split(info.splits["train"], info, desc="decoding train", **kw)
    held_data = decode_split(held, info, desc=f"decoding {held_name}", **kw) if held else None
    common = dict(
        seed=seed,
        device=str(device),
        augmentation="horizontal flip, crop keeping 80-100% of each side; no colour changes",
        held_out_split=held_name if held else None,
    )
    fingerprint = dataset_fingerprint(info)
    return _JudgeFit(
        info, out_dir, device, train_data, held_data, common, fingerprint, epochs, seed, progress
    )


@contextmanager
def _seeded(seed: int) -> Iterator[torch.Generator]:
    """Weights and draws from the seed, without touching the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


def _fit_character_judge(
    run: _JudgeFit, cfg: CharacterJudgeConfig, training: JudgeTraining
) -> dict[str, Any]:
    """Train, measure and save the character judge; its training summary."""
    t0 = time.perf_counter()
    n_epochs = run.epochs_for(training)
    with _seeded(run.seed) as g:
        judge, steps = train_character_judge(
            run.train, cfg, training, epochs=n_epochs, g=g, device=run.device, progress=run.progress
        )
    held = run.held
    summary = {
        **run.common,
        **asdict(training),
        "epochs": n_epochs,
        "steps": steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "train_accuracy": identity_accuracy(judge, run.train.character_images, run.train.characters),
        "held_out_accuracy": identity_accuracy(judge, held.character_images, held.characters)
        if held
        else None,
        "chance": 1 / run.info.num_characters,
    }
    meta = {
        "character_names": list(run.info.character_names),
        "training": summary,
        "dataset": run.fingerprint,
    }
    save_judge(run.out_dir / "character", judge, meta)
    return summary


def _fit_segment_judge(run: _JudgeFit, cfg: SegmentJudgeConfig, training: JudgeTraining) -> dict[str, Any]:
    """Train, measure and save the segment judge; its training summary."""
    t0 = time.perf_counter()
    n_epochs = run.epochs_for(training)
    with _seeded(run.seed + 1) as g:
        judge, steps = train_segment_judge(
            run.train, cfg, training, epochs=n_epochs, g=g, device=run.device, progress=run.progress
        )
    held, n = run.held, run.info.num_classes
    summary = {
        **run.common,
        **asdict(training),
        "epochs": n_epochs,
        "steps": steps,
        "seconds": round(time.perf_counter() - t0, 1),
        "train_miou": miou(judge, run.train.segment_images, run.train.labels, n)[0],
        "held_out_miou": miou(judge, held.segment_images, held.labels, n)[0] if held else None,
        "miou_measured_at": f"{cfg.resolution}x{cfg.resolution} (labels resized nearest)",
        "loss": "cross-entropy weighted by inverse square-root class frequency",
    }
    meta = {"class_names": list(run.info.palette.names), "training": summary, "dataset": run.fingerprint}
    save_judge(run.out_dir / "segment", judge, meta)
    return summary


def _shrink(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized to size x size with the judges' own resize, kept uint8 in memory."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = [
        resize_images(images[i : i + 256].float(), size).round().clamp(0, 255).to(torch.uint8)
        for i in range(0, len(images), 256)
    ]
    return torch.cat(out)


def _shrink_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    if labels.shape[-1] == size and labels.shape[-2] == size:
        return labels
    return F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(torch.uint8)
