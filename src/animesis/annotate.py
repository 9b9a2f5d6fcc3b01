"""The annotation assistant: draft label maps for new pictures, so that a person only corrects what is wrong.

A segmenter (the judges' small U-Net) learns a dataset's classes from its labelled training pictures
and is kept in DATAROOT/annotator/ (config.json + model.safetensors, with what it learnt from). Like
the judges it is reused until the train split or the settings change. For every picture it drafts:

    label/NAME.png        index PNG (class ids), at the picture's own size
    preview/NAME.png      the draft in the palette's colours (itself a valid colour label map)
    confidence/NAME.png   per pixel, the winning class's probability x 255: dark = look here
    drafts.json           every picture with its mean confidence, least sure first

`annotate --into DATAROOT` adds the pictures and their drafts straight to a dataset instead: class.txt
is rewritten atomically, and nothing in the dataset is replaced without `force`.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from animesis import files
from animesis.data.check import open_image
from animesis.data.edges import canny_edges
from animesis.data.layout import DatasetInfo, Sample, load_dataset
from animesis.data.palette import Palette
from animesis.device import resolve_device
from animesis.errors import UserError
from animesis.metrics.judges import (
    SEGMENT_TRAINING,
    JudgesUnavailable,
    JudgeTraining,
    SegmentJudge,
    SegmentJudgeConfig,
    dataset_fingerprint,
    decode_split,
    load_judge,
    miou,
    save_judge,
    to_judge_input,
    train_segment_judge,
)

ANNOTATOR_FOLDER = "annotator"  # DATAROOT/annotator: the cached segmenter
REVIEW_FOLDER = "drafts"  # DATAROOT/drafts/SPLIT: previews and confidence maps of pictures added --into
PICTURE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
MIN_TRAIN_PICTURES = 2  # BatchNorm needs two pictures in a training batch
LOW_CONFIDENCE = 0.5  # below this the winning class has less than even odds
HELD_OUT_LIMIT = 100  # held-out pictures scored after training: a hint of the drafts' quality
SPLITS = ("train", "val", "test")


# --- pictures ----------------------------------------------------------------------------------------


def list_pictures(folder: Path, needed: str = "") -> list[Path]:
    """The picture files of a folder (not its sub-folders), by name; their stems must be unique.

    `needed` ends the message when there is none (what the pictures are for)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder of pictures")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or p.suffix.lower() not in PICTURE_SUFFIXES:
            continue
        if p.stem in found:
            raise UserError(
                f"{p}: same name as {found[p.stem].name}: outputs are named like the picture, so rename one"
            )
        found[p.stem] = p
    if not found:
        kinds = ", ".join(s.lstrip(".") for s in sorted(PICTURE_SUFFIXES))
        raise UserError(f"{folder}: no pictures found ({kinds}){needed}")
    return list(found.values())


def read_picture(path: Path) -> np.ndarray:
    """A colour picture -> (H, W, 3) uint8 RGB; grayscale and see-through pictures are refused."""
    path = Path(path)
    with open_image(path) as img:
        if img.mode in GREY_MODES:
            raise UserError(
                f"{path}: grayscale picture (mode {img.mode}): characters are told apart by their "
                "colours, so give the colour picture"
            )
        try:
            img.load()
        except Exception as e:  # decoders raise many types on bad bytes
            raise UserError(f"{path}: corrupt or truncated picture ({type(e).__name__}: {e})") from e
        if "A" in img.mode or "transparency" in img.info:
            alpha = np.asarray(img.convert("RGBA"))[..., 3]
            if (see_through := int((alpha < 255).sum())) > 0:
                raise UserError(
                    f"{path}: RGBA picture with {see_through} transparent pixels: the colours under them "
                    "are arbitrary; flatten it onto a background (or save it as RGB) first"
                )
        rgb = np.array(img.convert("RGB"))  # a writable copy: torch refuses read-only arrays
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        raise UserError(
            f"{path}: grayscale picture (every pixel is grey): characters are told apart by their "
            "colours, so give the colour picture"
        )
    return rgb


def read_pictures(paths: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    """Check every picture before anything is written; returns each one's (W, H)."""
    sizes = {}
    for p in paths:
        rgb = read_picture(p)
        sizes[p] = (rgb.shape[1], rgb.shape[0])
    return sizes


def size_note(sizes: dict[Path, tuple[int, int]], size: tuple[int, int], what: str) -> str | None:
    """One line saying which pictures differ from (W, H) `size` in size or shape, or None."""
    odd = [(p, s) for p, s in sizes.items() if s != size]
    if not odd:
        return None
    W, H = size
    squashed = [p for p, (w, h) in odd if abs(w / h - W / H) > 0.01]
    p, (w, h) = odd[0]
    shape = f"; {len(squashed)} of them have another shape and are squashed" if squashed else ""
    return f"note: {len(odd)} picture(s) are not {W}x{H} (e.g. {p} is {w}x{h}): {what}{shape}"


# --- the segmenter -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmenterSettings:
    """How the annotation segmenter is made; a cached one is reused only when these are the same.

    Training runs for `views` sample views (epochs x pictures) and at least `min_steps` batches: with
    10 labelled pictures the judges' schedule (16k views in batches of 16, 400 epochs at most) gives
    only 400 steps. Measured on the built-in cast at 64x64 (benchmarks/annotate_quality.py), batches
    of 4 to 8 and about a thousand steps are where a few pictures stop improving.
    """

    resolution: int | None = None  # square working size; None: the dataset's pictures' size, at most 128
    width: int = 12  # U-Net channels at full resolution
    train_pictures: int | None = None  # labelled training pictures it learns from (None: all)
    views: int = SEGMENT_TRAINING.views
    min_steps: int = 1000
    batch_size: int = 8
    lr: float = SEGMENT_TRAINING.lr
    epochs: int | None = None  # passes over the pictures; None: from `views` and `min_steps`
    seed: int = 0

    def epochs_for(self, n: int) -> int:
        if self.epochs:
            return self.epochs
        per_epoch = max(1, n // min(self.batch_size, n))  # whole batches only
        return max(math.ceil(self.views / n), math.ceil(self.min_steps / per_epoch))


@dataclass(frozen=True)
class Segmenter:
    """A trained (or reused) segmenter and what it learnt from."""

    judge: SegmentJudge
    meta: dict[str, Any]  # config.json: settings, dataset fingerprint, training summary
    reused: bool
    folder: Path | None  # where it is cached (None: it could not be saved)


def annotator_folder(dataroot: Path) -> Path:
    return Path(dataroot) / ANNOTATOR_FOLDER


def picture_size(info: DatasetInfo) -> tuple[int, int]:
    """The commonest (W, H) among the first training pictures (headers only)."""
    sizes: Counter = Counter()
    for sample in info.splits["train"][:32]:
        with open_image(sample.image) as img:
            sizes[img.size] += 1
    if not sizes:
        raise UserError(f"{info.root}/train_img: no labelled training pictures to learn the classes from")
    return sizes.most_common(1)[0][0]


def resolve_settings(info: DatasetInfo, settings: SegmenterSettings) -> SegmenterSettings:
    """Fill in the working size: the pictures' larger side rounded up to a multiple of 8, 32 to 128."""
    if settings.resolution is not None:
        return settings
    side = max(picture_size(info))
    return replace(settings, resolution=int(min(128, max(32, -(-side // 8) * 8))))


def pick_training_samples(samples: Sequence[Sample], n: int | None, seed: int, root: Path) -> list[Sample]:
    """n labelled pictures taken in turn from each character (shuffled by seed); all of them when n is None."""
    if len(samples) < MIN_TRAIN_PICTURES:
        raise UserError(
            f"{root}/train_img: {len(samples)} labelled training picture(s): the segmenter needs at "
            f"least {MIN_TRAIN_PICTURES}"
        )
    if n is None:
        return list(samples)
    if n < MIN_TRAIN_PICTURES or n > len(samples):
        raise UserError(
            f"{root}/train_img: asked to learn from {n} labelled pictures, but there are {len(samples)} "
            f"(at least {MIN_TRAIN_PICTURES} are needed)"
        )
    rng = np.random.default_rng(seed)
    groups: dict[int, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: s.name):
        groups.setdefault(s.character, []).append(s)
    queues = [[g[i] for i in rng.permutation(len(g))] for _, g in sorted(groups.items())]
    picked: list[Sample] = []
    while len(picked) < n:  # round robin, so every character is seen
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop())
    return picked


def train_segmenter(
    info: DatasetInfo,
    settings: SegmenterSettings,
    *,
    device: torch.device,
    workers: int = 0,
    progress: bool = False,
) -> tuple[SegmentJudge, dict[str, Any]]:
    """Fit a segmenter to the dataset's labelled training pictures; (segmenter in eval mode, summary)."""
    settings = resolve_settings(info, settings)
    R = int(settings.resolution)  # type: ignore[arg-type]
    samples = pick_training_samples(info.splits["train"], settings.train_pictures, settings.seed, info.root)
    started = time.perf_counter()
    kw: dict[str, Any] = dict(character_size=8, segment_size=R, workers=workers, progress=progress)
    data = decode_split(samples, info, desc="decoding labelled pictures", **kw)
    training = JudgeTraining(views=settings.views, batch_size=settings.batch_size, lr=settings.lr)
    epochs = settings.epochs_for(len(samples))
    cfg = SegmentJudgeConfig(info.num_classes, resolution=R, width=settings.width)
    with torch.random.fork_rng(devices=[]):  # weights from the seed, the caller's RNG untouched
        torch.manual_seed(settings.seed)
        g = torch.Generator().manual_seed(settings.seed)
        judge, steps = train_segment_judge(
            data, cfg, training, epochs=epochs, g=g, device=device, progress=progress
        )
    summary: dict[str, Any] = {
        "train_pictures": len(samples),
        "epochs": epochs,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 1),
        "train_miou": miou(judge, data.segment_images, data.labels, info.num_classes)[0],
    }
    held_name = "val" if info.splits.get("val") else "test"
    if held := info.splits.get(held_name, ())[:HELD_OUT_LIMIT]:
        held_data = decode_split(held, info, desc=f"decoding {held_name}", **kw)
        summary["held_out_miou"] = miou(judge, held_data.segment_images, held_data.labels, info.num_classes)[
            0
        ]
        summary["held_out"] = f"{len(held)} {held_name} pictures at {R}x{R}"
    return judge, summary


def _meta(info: DatasetInfo, settings: SegmenterSettings) -> dict[str, Any]:
    """What a cached segmenter must have been made from to be reused."""
    return {
        "purpose": "annotation",
        "settings": asdict(settings),
        "class_names": list(info.palette.names),
        "dataset": dataset_fingerprint(info),
    }


def _cached(folder: Path, info: DatasetInfo, want: dict[str, Any], device: torch.device) -> Segmenter | None:
    """The cached segmenter when it was made from this train split with these settings, else None."""
    if not (folder / "config.json").exists():
        return None
    try:
        judge, meta = load_judge(folder, "segment", info.root, device)
    except JudgesUnavailable:  # its message would point at `animesis judges`, which does not make this one
        print(f"note: {folder}: the cached segmenter cannot be read; training a new one", file=sys.stderr)
        return None
    if any(meta.get(k) != v for k, v in want.items() if v is not None):
        print(
            f"note: {folder} learnt from another train split or settings; training a new one", file=sys.stderr
        )
        return None
    return Segmenter(judge, meta, reused=True, folder=folder)  # type: ignore[arg-type]


def load_or_train_segmenter(
    info: DatasetInfo,
    settings: SegmenterSettings = SegmenterSettings(),
    *,
    device: str = "auto",
    retrain: bool = False,
    workers: int | None = None,
    progress: bool = True,
    cache: Path | None = None,  # default DATAROOT/annotator
    any_settings: bool = False,  # reuse a cached one made with other settings (still for this train split)
) -> Segmenter:
    """The dataset's annotation segmenter: reused from its cache when still valid, else trained and cached."""
    dev = resolve_device(device)
    settings = resolve_settings(info, settings)
    folder = Path(cache) if cache is not None else annotator_folder(info.root)
    want = _meta(info, settings)
    if any_settings:
        want["settings"] = None
    if not retrain and (found := _cached(folder, info, want, dev)) is not None:
        return found
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    judge, summary = train_segmenter(info, settings, device=dev, workers=workers, progress=progress)
    meta = {**_meta(info, settings), "training": summary}
    try:
        save_judge(folder, judge, meta)
    except OSError as e:  # a read-only dataset still gets its drafts
        print(f"note: {folder}: cannot cache the segmenter ({e.strerror or e}); it is trained again next time",
              file=sys.stderr)  # fmt: skip
        return Segmenter(judge.eval(), meta, reused=False, folder=None)
    return Segmenter(judge.eval(), meta, reused=False, folder=folder)


# --- drafting ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    """A draft label map and how sure the segmenter is of each pixel."""

    label: np.ndarray  # (H, W) uint8 class ids, at the picture's size
    confidence: np.ndarray  # (H, W) float32 in [0, 1]: the winning class's probability

    def confidence_png(self) -> np.ndarray:
        return (self.confidence * 255).round().clip(0, 255).astype(np.uint8)

    def stats(self) -> dict[str, float]:
        return {
            "mean_confidence": round(float(self.confidence.mean()), 4),
            "low_confidence_share": round(float((self.confidence < LOW_CONFIDENCE).mean()), 4),
        }


@torch.no_grad()
def draft_label(judge: SegmentJudge, image: np.ndarray) -> Draft:
    """(H, W, 3) uint8 picture -> its draft: logits resized bilinearly to the picture, then argmax
    (exactly `predict_segments`), and the softmax probability of the winner."""
    device = next(judge.parameters()).device
    x = to_judge_input(image[None]).to(device)
    logits = judge(x)  # (1, N, R, R)
    if logits.shape[-2:] != x.shape[-2:]:
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    confidence, label = logits.float().softmax(dim=1).max(dim=1)
    return Draft(label[0].to(torch.uint8).cpu().numpy(), confidence[0].cpu().numpy())


def write_png(path: Path, array: np.ndarray) -> None:
    files.write_atomic(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


@dataclass(frozen=True)
class ReviewFolders:
    """Where the drafts go: label/, preview/ and confidence/ (no label/ with --into: the dataset has them)."""

    root: Path
    with_labels: bool = True

    def paths(self, stem: str) -> dict[str, Path]:
        kinds = ("label", "preview", "confidence") if self.with_labels else ("preview", "confidence")
        return {k: self.root / k / f"{stem}.png" for k in kinds}

    def check_free(self, pictures: Sequence[Path], force: bool) -> None:
        """Refuse to replace an earlier draft (perhaps already corrected) unless forced."""
        if force:
            return
        for p in pictures:
            for path in self.paths(p.stem).values():
                if path.exists():
                    raise UserError(
                        f"{path}: already exists (a corrected draft?); pass --force to replace it"
                    )

    def make(self) -> None:
        for kind in self.paths("x"):
            files.ensure_writable_dir(self.root / kind, f"{kind} folder")

    def write(self, stem: str, draft: Draft, palette: Palette) -> None:
        paths = self.paths(stem)
        if "label" in paths:
            write_png(paths["label"], draft.label)
        write_png(paths["preview"], palette.colorize(draft.label))
        write_png(paths["confidence"], draft.confidence_png())


# --- adding to a dataset -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntoDataset:
    """`--into DATAROOT --split SPLIT --character K`: where the pictures and their drafts are added."""

    root: Path
    split: str = "train"
    character: int = 0
    force: bool = False


def _files_by_stem(folder: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and not p.name.startswith("."):
                out.setdefault(p.stem, []).append(p)
    return out


def _entry_key(line: str) -> str | None:
    """The file name of a `<name> <id>` line of class.txt (last path component), or None."""
    parts = line.strip().rsplit(None, 1)
    if len(parts) != 2 or not parts[1].lstrip("+-").isdigit():
        return None
    return parts[0].strip().strip("\"'").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or None


def _stem(key: str) -> str:
    return Path(key).stem if Path(key).suffix.lower() in PICTURE_SUFFIXES else key


@dataclass(frozen=True)
class IntoPlan:
    """The checked destination: the dataset, the stems it already holds, and the class.txt to write."""

    into: IntoDataset
    info: DatasetInfo
    replaced: dict[str, list[Path]]  # stem -> files of that name in the split (removed with --force)
    class_text: str  # the new class.txt
    edges: bool  # the split has edge maps, so each added picture needs one


def _check_into(into: IntoDataset, info: DatasetInfo, source: DatasetInfo) -> None:
    if into.split not in SPLITS:
        raise UserError(f"--split {into.split!r}: expected one of {', '.join(SPLITS)}")
    if info.palette != source.palette:
        raise UserError(
            f"{into.root}: its classes ({', '.join(info.palette.names)}) differ from those of "
            f"{source.root} ({', '.join(source.palette.names)}): the drafts would use the wrong classes"
        )
    K = info.num_characters
    if not 0 <= into.character <= K:
        raise UserError(
            f"{into.root}/class.txt: --character {into.character}: the dataset's characters are 0..{K - 1}, "
            f"and {K} adds a new one"
        )


def _conflicts(into: IntoDataset, pictures: Sequence[Path]) -> dict[str, list[Path]]:
    """Files of the split named like the pictures (replaced with --force); a name in another split is refused."""
    root = Path(into.root)
    listed = {
        (s, kind): _files_by_stem(root / f"{s}_{kind}") for s in SPLITS for kind in ("img", "label", "edge")
    }
    replaced: dict[str, list[Path]] = {}
    for p in pictures:
        for (s, kind), by_stem in listed.items():
            there = by_stem.get(p.stem)
            if there and s != into.split and kind == "img":
                raise UserError(
                    f"{there[0]}: a picture of that name is in the {s} split, and one class.txt line "
                    f"would give both the same character; rename {p}"
                )
            if there and s == into.split and not into.force:
                raise UserError(f"{there[0]}: already in the dataset; pass --force to replace it")
        replaced[p.stem] = [
            f for kind in ("img", "label", "edge") for f in listed[(into.split, kind)].get(p.stem, [])
        ]
    return replaced


def _class_text(into: IntoDataset, pictures: Sequence[Path]) -> str:
    """class.txt with a line per added picture; an earlier line of the same name is dropped only when forced."""
    class_path = Path(into.root) / "class.txt"
    text = class_path.read_text(encoding="utf-8-sig") if class_path.exists() else "name character\n"
    stems = {p.stem for p in pictures}
    kept = []
    for line in text.splitlines():
        key = _entry_key(line)
        if key is not None and _stem(key) in stems:
            if not into.force:
                raise UserError(f"{class_path}: already names {key!r}; pass --force to replace it")
            continue
        kept.append(line)
    kept += [f"{p.stem}.png {into.character}" for p in pictures]
    return "\n".join(kept) + "\n"


def plan_into(into: IntoDataset, pictures: Sequence[Path], source: DatasetInfo) -> IntoPlan:
    """Check that the pictures can be added to the dataset: same classes, a known or the next character,
    and no name already there (unless forced, and never one of another split)."""
    info = load_dataset(into.root, deep=False, need=())
    _check_into(into, info, source)
    replaced = _conflicts(into, pictures)
    edges = (Path(into.root) / f"{into.split}_edge").is_dir()
    return IntoPlan(into, info, replaced, _class_text(into, pictures), edges)


def add_picture(plan: IntoPlan, picture: Path, rgb: np.ndarray, draft: Draft) -> None:
    """Write one picture (as PNG), its draft label map and (when the split has them) its Canny edges.

    The label goes first and the picture last, so a run killed half-way leaves at worst a label
    without its picture, which the dataset check only warns about.
    """
    root, split = Path(plan.into.root), plan.into.split
    for old in plan.replaced.get(picture.stem, []):
        if old.suffix.lower() != ".png":  # another extension would pair by name with the new file
            old.unlink(missing_ok=True)
    write_png(root / f"{split}_label" / f"{picture.stem}.png", draft.label)
    if plan.edges:
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        write_png(root / f"{split}_edge" / f"{picture.stem}.png", canny_edges(image)[0].numpy() * 255)
    target = root / f"{split}_img" / f"{picture.stem}.png"
    if picture.suffix.lower() == ".png" and not (target.exists() and target.samefile(picture)):
        files.write_atomic(target, lambda tmp: shutil.copyfile(picture, tmp))
    elif not target.exists() or not target.samefile(picture):
        write_png(target, rgb)


# --- the command's work --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnnotateJob:
    """Everything `annotate` needs: the teaching dataset, the pictures, and where the drafts go."""

    dataroot: Path
    images: Path
    out: Path | None = None  # review folder (label/, preview/, confidence/); required without `into`
    into: IntoDataset | None = None
    class_file: Path | None = None
    settings: SegmenterSettings = SegmenterSettings()
    device: str = "auto"
    retrain: bool = False
    force: bool = False  # replace earlier drafts in `out`
    workers: int | None = None
    progress: bool = True


def _review_folders(job: AnnotateJob) -> ReviewFolders:
    if job.into is None:
        if job.out is None:
            raise UserError("annotate needs --out DIR (where the drafts go) or --into DATAROOT")
        return ReviewFolders(Path(job.out))
    root = Path(job.out) if job.out is not None else Path(job.into.root) / REVIEW_FOLDER / job.into.split
    return ReviewFolders(root, with_labels=False)


def annotate(job: AnnotateJob) -> dict[str, Any]:
    """Draft a label map for every picture of `job.images`; every input is checked before anything is written."""
    pictures = list_pictures(job.images)
    sizes = read_pictures(pictures)
    source = load_dataset(job.dataroot, job.class_file, deep=False)
    settings = resolve_settings(source, job.settings)
    pick_training_samples(source.splits["train"], settings.train_pictures, settings.seed, source.root)
    review = _review_folders(job)
    plan = plan_into(job.into, pictures, source) if job.into is not None else None
    review.check_free(pictures, job.force or (job.into is not None and job.into.force))
    R = settings.resolution
    if note := size_note(sizes, picture_size(source), f"the segmenter sees them at {R}x{R} like the "
                         "others, and each draft has its picture's own size"):  # fmt: skip
        print(note, file=sys.stderr)
    review.make()
    segmenter = load_or_train_segmenter(
        source, settings, device=job.device, retrain=job.retrain, workers=job.workers, progress=job.progress
    )
    started = time.perf_counter()
    if plan is not None:
        if plan.into.character == plan.info.num_characters:
            print(f"note: character {plan.into.character} is new to {plan.into.root}", file=sys.stderr)
        files.write_text(Path(plan.into.root) / "class.txt", plan.class_text)  # first: see add_picture
    listing = []
    for p in pictures:
        rgb = read_picture(p)
        draft = draft_label(segmenter.judge, rgb)
        review.write(p.stem, draft, source.palette)
        if plan is not None:
            add_picture(plan, p, rgb, draft)
        listing.append({"picture": str(p), "size": list(sizes[p]), **draft.stats()})
    listing.sort(key=lambda d: d["mean_confidence"])  # least sure first: correct those first
    summary = {
        "pictures": len(pictures),
        "segmenter": {"folder": str(segmenter.folder), "reused": segmenter.reused, **segmenter.meta["training"]},
        "review": str(review.root),
        "into": None if plan is None else {"dataset": str(plan.into.root), "split": plan.into.split,
                                            "character": plan.into.character},
        "seconds_drafting": round(time.perf_counter() - started, 2),
        "drafts": listing,
    }  # fmt: skip
    files.write_json(review.root / "drafts.json", summary)
    return summary
