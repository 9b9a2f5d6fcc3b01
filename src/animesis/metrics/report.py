"""A checkpoint's full evaluation on a dataset split: FID, KID, LPIPS, diversity, identity, mIoU, colour.

Every map of the split is painted with its own character (noise from the seed) and, for identity,
as every character; the images are scored in batches as they are painted, so memory stays bounded.
Each metric is a number or {"unavailable": reason}; nothing is silently replaced.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from animesis import files
from animesis.data.check import resize_image
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo, load_dataset
from animesis.device import cpu_workers
from animesis.errors import UserError
from animesis.inference import Painter, find_model_folder
from animesis.metrics.assets import MetricUnavailable
from animesis.metrics.colour import SPACE, CastColours, load_cast_colours, region_colour_errors
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import KID_SUBSET_SIZE, KID_SUBSETS, fid_from_features, kid_from_features
from animesis.metrics.inception import NETWORK, load_inception
from animesis.metrics.judges import (
    Judges,
    confusion_matrix,
    judges_folder,
    load_judges,
    miou_from_confusion,
    predict_characters,
    predict_segments,
    train_judges,
)
from animesis.metrics.lpips import load_lpips, mean_and_std, pair_diversity
from animesis.metrics.references import ReferenceCache, pictures_key
from animesis.runs import best_or_latest
from animesis.tensors import to_signed

FORMAT = "animesis-eval"
FID_PREPROCESSING = "TF-Inception 2015-12-05, pytorch-fid preprocessing (bilinear 299, [-1,1])"
LPIPS_PREPROCESSING = "LPIPS v0.1 on RGB in [-1, 1] at the model's resolution"
JUDGE_PREPROCESSING = (
    "images at the model's resolution, resized to each judge's square (bilinear, antialias); "
    "segment logits resized back to the label map (bilinear), argmax"
)
# Metrics whose absence means missing weights or judges (the command then exits 1); the others can
# be inapplicable by nature: colour needs a synthetic cast, diversity needs noise.
REQUIRED = ("fid", "kid_x100", "lpips_paired", "identity_accuracy", "miou")


class EvalSetupError(UserError):
    """A checkpoint and a dataset that do not fit together."""


def unavailable(reason: str) -> dict[str, str]:
    return {"unavailable": reason}


def _unavailable_all(keys: tuple[str, ...], reason: str) -> dict[str, dict[str, str]]:
    return {key: unavailable(reason) for key in keys}


def _to_nchw(images: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) array or (B, 3, H, W) tensor -> (B, 3, H, W) uint8 on device."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    return images.to(device, non_blocking=True)


@dataclass
class Networks:
    """The frozen scoring networks that could be loaded, and why the others could not."""

    inception: nn.Module | None
    lpips: nn.Module | None
    judges: Judges | None
    colours: CastColours | None
    missing: dict[str, str]  # network -> reason
    lpips_net: str = "alex"

    @classmethod
    def load(cls, info: DatasetInfo, device: torch.device, lpips_net: str = "alex") -> Networks:
        missing: dict[str, str] = {}

        def attempt(name: str, fn):
            try:
                return fn()
            except MetricUnavailable as e:
                missing[name] = str(e)
                return None

        return cls(
            inception=attempt("inception", lambda: load_inception(device)),
            lpips=attempt("lpips", lambda: load_lpips(lpips_net, device)),
            judges=attempt("judges", lambda: load_judges(info.root, device)),
            colours=attempt(
                "colours", lambda: load_cast_colours(info.root, info.palette, info.num_characters)
            ),
            missing=missing,
            lpips_net=lpips_net,
        )


@dataclass
class ImageScorer:
    """Running state of every metric, fed batch by batch with (real, generated, label map, character)."""

    nets: Networks
    num_classes: int
    num_characters: int
    device: torch.device
    feats_real: list[torch.Tensor] = field(default_factory=list)
    real_features_known: bool = False  # feats_real already holds the split's (from the cache)
    feats_fake: list[torch.Tensor] = field(default_factory=list)
    lpips: list[torch.Tensor] = field(default_factory=list)
    # identity confusions (K, K): rows = requested character, columns = judged character
    id_real: np.ndarray = field(init=False)
    id_fake: np.ndarray = field(init=False)
    id_every: np.ndarray = field(init=False)
    # segmentation confusions (N, N): rows = label map class, columns = judged class
    seg_real: torch.Tensor = field(init=False)
    seg_fake: torch.Tensor = field(init=False)
    colour: dict[str, list[np.ndarray]] = field(default_factory=dict)  # (2, regions) arrays: ΔE, class

    def __post_init__(self) -> None:
        K, N = self.num_characters, self.num_classes
        self.id_real, self.id_fake, self.id_every = (np.zeros((K, K), np.int64) for _ in range(3))
        self.seg_real = torch.zeros(N, N, dtype=torch.long)
        self.seg_fake = torch.zeros(N, N, dtype=torch.long)

    @torch.no_grad()
    def add(
        self,
        real: torch.Tensor | np.ndarray,
        fake: torch.Tensor | np.ndarray,
        labels: torch.Tensor,
        requested: torch.Tensor,
    ) -> None:
        """One batch: real and generated uint8 images of the same maps, their maps and characters."""
        real, fake = _to_nchw(real, self.device), _to_nchw(fake, self.device)
        if self.nets.inception is not None:
            if not self.real_features_known:
                self.feats_real.append(self.nets.inception(real).cpu())
            self.feats_fake.append(self.nets.inception(fake).cpu())
        if self.nets.lpips is not None:
            self.lpips.append(self.nets.lpips(to_signed(real), to_signed(fake)).cpu())
        judges = self.nets.judges
        if judges is not None:
            for images, ids, seg in (
                (real, self.id_real, self.seg_real),
                (fake, self.id_fake, self.seg_fake),
            ):
                np.add.at(ids, (requested.numpy(), predict_characters(judges.character, images).numpy()), 1)
                seg += confusion_matrix(predict_segments(judges.segment, images), labels, self.num_classes)
        self._colour("real", real, labels, requested)
        self._colour("fake", fake, labels, requested)

    @torch.no_grad()
    def add_every_character(
        self, fake: torch.Tensor | np.ndarray, labels: torch.Tensor, character: int
    ) -> None:
        """A batch of maps all painted as `character`, for identity (and colour) under every request."""
        fake = _to_nchw(fake, self.device)
        requested = torch.full((len(fake),), character, dtype=torch.long)
        if self.nets.judges is not None:
            pred = predict_characters(self.nets.judges.character, fake).numpy()
            np.add.at(self.id_every, (requested.numpy(), pred), 1)
        self._colour("every", fake, labels, requested)

    def _colour(self, key: str, images: torch.Tensor, labels: torch.Tensor, requested: torch.Tensor) -> None:
        if self.nets.colours is None:
            return
        errors, classes = region_colour_errors(images, labels, requested, self.nets.colours)
        self.colour.setdefault(key, []).append(np.stack([errors, classes]))

    def results(self, class_names: tuple[str, ...], kid_seed: int = 0) -> tuple[dict, dict]:
        """(metrics: number or {"unavailable": reason} each, details behind them)."""
        m: dict[str, Any] = {}
        d: dict[str, Any] = {}
        gone = self.nets.missing
        n = sum(len(f) for f in self.feats_fake)
        if self.nets.inception is None:
            for key in ("fid", "kid_x100", "kid_x100_std"):
                m[key] = unavailable(gone["inception"])
        elif n < 2:
            for key in ("fid", "kid_x100", "kid_x100_std"):
                m[key] = unavailable(f"FID/KID need at least 2 images, the split has {n}")
        else:
            real, fake = torch.cat(self.feats_real), torch.cat(self.feats_fake)
            kid = kid_from_features(real, fake, seed=kid_seed)
            m["fid"] = fid_from_features(real, fake)
            m["kid_x100"], m["kid_x100_std"] = 100 * kid.mean, 100 * kid.std
            d["kid"] = {"subsets": kid.subsets, "subset_size": kid.subset_size}
        if self.nets.lpips is None:
            m["lpips_paired"] = m["lpips_paired_std"] = unavailable(gone["lpips"])
        else:
            m["lpips_paired"], m["lpips_paired_std"] = mean_and_std(torch.cat(self.lpips))
        self._judge_results(m, d, class_names)
        self._colour_results(m, d, class_names)
        return m, d

    def _judge_results(self, m: dict, d: dict, class_names: tuple[str, ...]) -> None:
        keys = ("identity_accuracy_real", "identity_accuracy", "identity_accuracy_every_character")
        if self.nets.judges is None:
            for key in (*keys, "miou_real", "miou"):
                m[key] = unavailable(self.nets.missing["judges"])
            return
        for key, conf in zip(keys, (self.id_real, self.id_fake, self.id_every), strict=True):
            total = conf.sum()
            m[key] = float(np.trace(conf) / total) if total else unavailable("no images were judged")
        d["identity"] = {
            "chance": 1 / self.num_characters,
            "per_character_real": _per_row_accuracy(self.id_real),
            "per_character": _per_row_accuracy(self.id_fake),
            "per_character_every": _per_row_accuracy(self.id_every),
            "every_character_confusion": self.id_every.tolist(),  # rows requested, columns judged
            "n_every_character": int(self.id_every.sum()),
        }
        d["miou"] = {}
        for key, conf in (("miou_real", self.seg_real), ("miou", self.seg_fake)):
            value, per_class = miou_from_confusion(conf)
            m[key] = value
            d["miou"][f"per_class_{key}"] = {
                name: (None if np.isnan(v) else float(v))
                for name, v in zip(class_names, per_class, strict=True)
            }

    def _colour_results(self, m: dict, d: dict, class_names: tuple[str, ...]) -> None:
        keys = {"real": "colour_error_real", "fake": "colour_error", "every": "colour_error_every_character"}
        if self.nets.colours is None:
            for key in keys.values():
                m[key] = unavailable(self.nets.missing["colours"])
            return
        d["colour"] = {"space": SPACE}
        for src, key in keys.items():
            rows = np.concatenate(self.colour.get(src, [np.zeros((2, 0))]), axis=1)
            errors, classes = rows[0], rows[1].astype(int)
            if not len(errors):
                m[key] = unavailable("no region with a known colour was large enough to score")
                continue
            m[key] = float(errors.mean())
            d["colour"][key] = {
                "regions_scored": len(errors),
                "per_class": {class_names[c]: float(errors[classes == c].mean()) for c in np.unique(classes)},
            }


def _per_row_accuracy(conf: np.ndarray) -> list[float | None]:
    rows = conf.sum(axis=1)
    return [float(conf[k, k] / rows[k]) if rows[k] else None for k in range(len(conf))]


@torch.no_grad()
def diversity(
    painter: Painter,
    labels: torch.Tensor,
    characters: torch.Tensor,
    samples: int,
    seed: int,
    lpips: nn.Module,
) -> tuple[float, float]:
    """(mean, std over maps) of the LPIPS between every pair of `samples` paintings of each map with new noise."""
    per_map = []
    for m in range(len(labels)):
        z = painter.noise(samples, seed + 1 + m)  # a noise stream per map, apart from the paired run's
        images = painter.paint(
            labels[m : m + 1].expand(samples, -1, -1), characters[m : m + 1].expand(samples), z
        )
        x = to_signed(_to_nchw(images, painter.device))  # (S, 3, H, W)
        per_map.append(pair_diversity(x[None], lpips, batch_size=None).item())  # a map's pairs in one batch
    return mean_and_std(torch.tensor(per_map))


REAL_DIVERSITY = ("lpips_diversity_real", "lpips_diversity_real_std")


def real_references(
    info: DatasetInfo,
    split: str,
    size: tuple[int, int],
    nets: Networks,
    scorer: ImageScorer,
    n_maps: int,
    samples_per_map: int,
    cache: ReferenceCache | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What real pictures score, so that generated scores can be read: (metrics, details).

    fid_real: FID between the scored split's real pictures and as many others (val, or train where val
    is smaller), at the generated FID's N where the data has them (`details["fid_real"]` gives N).
    lpips_diversity_real: for a built-in dataset, the same maps drawn again with other backgrounds and
    light, scored like the generated diversity: the variety real pictures of one map and character have.
    """
    cache = cache or ReferenceCache(None)
    out, details = _fid_real(info, split, size, nets, scorer, cache)
    if nets.lpips is None:
        out.update(_unavailable_all(REAL_DIVERSITY, nets.missing["lpips"]))
        return out, details
    key = {
        "what": "lpips_diversity_real",
        "pictures": pictures_key(info.splits[split][:n_maps]),
        "size": list(size),
        "net": nets.lpips_net,
        "samples_per_map": samples_per_map,
    }
    name = f"lpips_diversity_real_{split}_{size[1]}x{size[0]}"
    diversity_real: tuple[float, float] | str
    if (found := cache.load(name, key)) is not None:
        diversity_real = (found["mean_std"][0].item(), found["mean_std"][1].item())
    else:
        diversity_real = _real_diversity(
            info, split, size, nets.lpips, scorer.device, n_maps, samples_per_map
        )
        if not isinstance(diversity_real, str):
            cache.save(name, key, {"mean_std": torch.tensor(diversity_real, dtype=torch.float64)})
    if isinstance(diversity_real, str):
        out.update(_unavailable_all(REAL_DIVERSITY, diversity_real))
        return out, details
    out["lpips_diversity_real"], out["lpips_diversity_real_std"] = diversity_real
    details["lpips_diversity_real"] = {
        "maps": len(info.splits[split][:n_maps]),
        "samples_per_map": samples_per_map,
    }
    return out, details


def _fid_real(
    info: DatasetInfo,
    split: str,
    size: tuple[int, int],
    nets: Networks,
    scorer: ImageScorer,
    cache: ReferenceCache,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """FID of other real pictures against the scored split's, at the scored FID's N: (metrics, details).

    The other held-out split when it holds N pictures, else the train split's first N (independent
    pictures of the same kind): FID grows as N shrinks (on the built-in 64x64 pictures 41.0 at 180
    against 57.4 at 90), so a floor at a smaller N than the FID beside it reads too high.
    """
    n_scored = sum(len(f) for f in scorer.feats_real)
    other = "val" if split != "val" else "test"
    if len(info.splits.get(other, ())) < n_scored and split != "train":
        other = max((other, "train"), key=lambda name: len(info.splits.get(name, ())))
    n_fid = min(len(info.splits.get(other, ())), n_scored)
    if nets.inception is None:
        return {"fid_real": unavailable(nets.missing["inception"])}, {}
    if n_fid < 2 or not scorer.feats_real:
        return {"fid_real": unavailable(f"needs the {other} split to hold at least 2 pictures")}, {}
    samples = list(info.splits[other][:n_fid])
    ds = SegmentationDataset(samples, info.palette, size)
    make = lambda: {
        "features": stream_features(
            lambda i: ds[i]["image"], n_fid, nets.inception, device=scorer.device, progress=False
        )
    }
    feats = cache.get(*inception_entry(other, samples, size), make)["features"]
    fid = fid_from_features(feats, torch.cat(scorer.feats_real)[:n_fid])
    return {"fid_real": fid}, {"fid_real": {"n": n_fid, "pictures": f"{other} against {split}"}}


def inception_entry(split: str, samples: list, size: tuple[int, int]) -> tuple[str, dict[str, Any]]:
    """The reference cache's name and key for the Inception features of a split's real pictures: they
    depend on the pictures, the resolution and the network."""
    key = {"what": "inception", "pictures": pictures_key(samples), "size": list(size), "net": NETWORK}
    return f"inception_{split}_{size[1]}x{size[0]}_n{len(samples)}", key


def _real_diversity(
    info: DatasetInfo,
    split: str,
    size: tuple[int, int],
    lpips: nn.Module,
    device: torch.device,
    n_maps: int,
    samples_per_map: int,
) -> tuple[float, float] | str:
    """(mean, std over maps) of the LPIPS between real redraws of each map, or why there is none."""
    try:
        from animesis.synth.cast import SynthError
        from animesis.synth.dataset import draw_variations
    except ImportError as e:  # pragma: no cover - the package always has it
        return str(e)
    per_map = []
    for s in info.splits[split][:n_maps]:
        index = int(s.name.rsplit("_", 1)[-1]) if s.name.rsplit("_", 1)[-1].isdigit() else -1
        try:
            _, images = draw_variations(info.root, split, index, samples_per_map)
        except (FileNotFoundError, KeyError, ValueError, SynthError):
            return "not a built-in dataset: real pictures of one map with other backgrounds cannot be drawn"
        x = torch.from_numpy(np.stack([resize_image(im, size) for im in images])).permute(0, 3, 1, 2)
        x = to_signed(x.to(device))  # (S, 3, H, W)
        per_map.append(pair_diversity(x[None], lpips, batch_size=None).item())
    return mean_and_std(torch.tensor(per_map))


def evaluate_checkpoint(
    path: Path,
    which: str | int,
    info: DatasetInfo,
    *,
    split: str = "test",
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 16,
    n_diversity_maps: int = 50,
    samples_per_map: int = 4,
    every_character_maps: int | None = None,  # maps painted as every character (None: all of them)
    lpips_net: str = "alex",
    workers: int | None = None,
    progress: bool = True,
    reference_cache: bool = True,  # keep the real pictures' scores in DATAROOT/references
    use_ema: bool = True,  # False: the raw generator's weights (what the EMA adds, measured)
) -> dict[str, Any]:
    """Paint a split with a checkpoint (run folder + which, or a model folder) and score every metric."""
    started = time.perf_counter()
    folder = find_model_folder(path, which)
    painter = Painter.load(folder, device=device, use_ema=use_ema)
    samples = info.splits.get(split, ())
    _check_fit(painter, info, split, samples)
    H, W = painter.card.image_size
    dataset = SegmentationDataset(list(samples), info.palette, (H, W))
    n = len(dataset)
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=cpu_workers(4) if workers is None else workers
    )
    nets = Networks.load(info, painter.device, lpips_net)
    warnings = _fit_judges(nets, painter, info)
    scorer = ImageScorer(nets, info.num_classes, painter.num_characters, painter.device)
    cache = ReferenceCache(info.root if reference_cache else None)
    real_name, real_key = inception_entry(split, list(samples), (H, W))
    if nets.inception is not None and (known := cache.load(real_name, real_key)) is not None:
        scorer.feats_real, scorer.real_features_known = [known["features"]], True
    run = _Evaluation(painter, info, split, seed, nets, scorer)
    n_every = n if every_character_maps is None else min(n, every_character_maps)
    div_labels, div_chars = _paint_and_score(run, loader, n_every, n_diversity_maps, progress)
    if nets.inception is not None and not scorer.real_features_known and scorer.feats_real:
        cache.save(real_name, real_key, {"features": torch.cat(scorer.feats_real)})
    with _timed(run.clock, "fid_kid_and_summaries"):
        metrics, details = scorer.results(info.palette.names, kid_seed=seed)
    with _timed(run.clock, "real_references"):
        refs, details["real_references"] = real_references(
            info, split, (H, W), nets, scorer, n_diversity_maps, samples_per_map, cache
        )
        metrics.update(refs)
    details["real_references"]["from_cache"] = sorted(cache.hits)
    metrics.update(_model_diversity(run, div_labels, div_chars, samples_per_map))
    details["diversity"] = {
        "maps": min(n, n_diversity_maps),
        "samples_per_map": samples_per_map,
        "net": lpips_net,
    }
    details["lpips"] = {"net": lpips_net, "pairs": n}
    _judge_details(details, nets.judges, n_every)
    return _result(run, folder, n, metrics, details, warnings, time.perf_counter() - started)


@dataclass
class _Evaluation:
    """What the steps of one checkpoint's evaluation share."""

    painter: Painter
    info: DatasetInfo
    split: str
    seed: int
    nets: Networks
    scorer: ImageScorer
    clock: dict[str, float] = field(default_factory=dict)  # seconds by stage: painting, scoring, ...


def _judge_details(details: dict[str, Any], judges: Judges | None, n_every: int) -> None:
    """Which judges scored, and how well they did at training time; the maps painted as every character."""
    if judges is not None:
        details["judges"] = {
            "folder": str(judges.folder),
            "character_training": judges.character_meta.get("training"),
            "segment_training": judges.segment_meta.get("training"),
        }
    if "identity" in details:
        details["identity"]["maps_every_character"] = n_every


def _fit_judges(nets: Networks, painter: Painter, info: DatasetInfo) -> list[str]:
    """Drop judges that know other characters or classes than the checkpoint; warnings for stale ones."""
    if nets.judges is None:
        return []
    judged = (nets.judges.character.cfg.num_characters, nets.judges.segment.cfg.num_classes)
    if judged != (painter.num_characters, info.num_classes):
        nets.missing["judges"] = (
            f"the judges in {nets.judges.folder} know {judged[0]} characters and {judged[1]} classes, "
            f"the checkpoint {painter.num_characters} and {info.num_classes}; retrain them with "
            f"`animesis judges --dataroot {info.root} --force`"
        )
        nets.judges = None
        return []
    stale = nets.judges.stale_warning(info)
    return [stale] if stale else []


def _paint_and_score(
    run: _Evaluation, loader: DataLoader, n_every: int, n_diversity_maps: int, progress: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint and score every map of the split, the first n_every also as every character.

    Returns the label maps and characters of the first n_diversity_maps maps, for diversity.
    """
    painter, n = run.painter, len(loader.dataset)
    z_all = painter.noise(n, run.seed)  # one draw per map in file order: independent of the batch size
    div_labels, div_chars = [], []
    bar = tqdm(total=n, desc=f"painting and scoring {run.split}", unit="map", disable=not progress)
    for batch in loader:
        idx, labels, chars = batch["index"], batch["label"], batch["character"]
        z = z_all[idx] if z_all is not None else None
        with _timed(run.clock, "painting"):
            fake = painter.paint(labels, chars, z)
        with _timed(run.clock, "scoring"):
            run.scorer.add(batch["image"], fake, labels, chars)
        every = idx < n_every
        if every.any():
            _paint_every_character(run, labels[every], z[every] if z is not None else None)
        keep = idx < n_diversity_maps
        div_labels.append(labels[keep])
        div_chars.append(chars[keep])
        bar.update(len(idx))
    bar.close()
    return torch.cat(div_labels), torch.cat(div_chars)


def _paint_every_character(run: _Evaluation, labels: torch.Tensor, z: torch.Tensor | None) -> None:
    """The same maps and noise, requested as each character in turn."""
    for k in range(run.painter.num_characters):
        k_ids = torch.full((len(labels),), k, dtype=torch.long)
        with _timed(run.clock, "painting_every_character"):
            fake = run.painter.paint(labels, k_ids, z)
        with _timed(run.clock, "scoring_every_character"):
            run.scorer.add_every_character(fake, labels, k)


def _model_diversity(
    run: _Evaluation, labels: torch.Tensor, chars: torch.Tensor, samples_per_map: int
) -> dict[str, Any]:
    """lpips_diversity and its std over maps, or the reason they cannot be measured."""
    keys = ("lpips_diversity", "lpips_diversity_std")
    if not run.painter.card.generator.z_dim:
        reason = "the model has no noise (z_dim=0): every painting of a map is the same image"
        return _unavailable_all(keys, reason)
    if run.nets.lpips is None:
        return _unavailable_all(keys, run.nets.missing["lpips"])
    if samples_per_map < 2 or len(labels) < 1:
        return _unavailable_all(keys, "diversity needs at least 2 samples of at least 1 map")
    with _timed(run.clock, "diversity"):
        mean, std = diversity(run.painter, labels, chars, samples_per_map, run.seed, run.nets.lpips)
    return dict(zip(keys, (mean, std), strict=True))


def _result(
    run: _Evaluation,
    folder: Path,
    n: int,
    metrics: dict[str, Any],
    details: dict[str, Any],
    warnings: list[str],
    seconds: float,
) -> dict[str, Any]:
    """The evaluation as written to JSON: the checkpoint, the data, every metric and how it was made."""
    painter, card = run.painter, run.painter.card
    return {
        "format": FORMAT,
        "checkpoint": str(folder),
        "weights": painter.weights.name,
        "step": card.step,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": str(run.info.root),
        "split": run.split,
        "n_images": n,
        "resolution": list(card.image_size),
        "num_characters": painter.num_characters,
        "character_names": list(card.character_names),
        "device": str(painter.device),
        "painting_precision": "bf16" if painter.bf16 else "fp32",
        "seed": run.seed,
        "metrics": metrics,
        "details": details,
        "preprocessing": {
            "fid_kid": FID_PREPROCESSING,
            "fid_kid_network": NETWORK,
            "kid": f"mean ± std of MMD² (cubic kernel) over {KID_SUBSETS} subsets of up to {KID_SUBSET_SIZE}",
            "lpips": LPIPS_PREPROCESSING,
            "judges": JUDGE_PREPROCESSING,
        },
        "warnings": warnings,
        "seconds": round(seconds, 1),
        "seconds_by_stage": {k: round(v, 1) for k, v in run.clock.items()},
    }


@contextmanager
def _timed(clock: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of the block to clock[key] (results come back to the CPU, so it is synchronised)."""
    start = time.perf_counter()
    yield
    clock[key] = clock.get(key, 0.0) + time.perf_counter() - start


def _check_fit(painter: Painter, info: DatasetInfo, split: str, samples: tuple) -> None:
    if not samples:
        raise EvalSetupError(f"{info.root}: the {split} split is empty: nothing to evaluate")
    if info.num_classes != painter.num_classes:
        raise EvalSetupError(
            f"{info.root} has {info.num_classes} label classes but the checkpoint was trained on {painter.num_classes}"
        )
    bad = [s for s in samples if s.character >= painter.num_characters]
    if bad:
        raise EvalSetupError(
            f"{bad[0].image}: character {bad[0].character} unknown to the checkpoint "
            f"({painter.num_characters} characters)"
        )


# --- the report ----------------------------------------------------------------------------------


def _num(value: Any, std: Any = None, digits: int = 4) -> str:
    if isinstance(value, dict):
        return "unavailable"
    text = f"{value:.{digits}f}"
    return text if std is None or isinstance(std, dict) else f"{text} ± {std:.{digits}f}"


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    return "unavailable" if isinstance(value, dict) else f"{100 * value:.1f}%"


def format_report(result: dict[str, Any]) -> str:
    """The evaluation as a Markdown table (generated beside real test images), with N and preprocessing."""
    n = result["n_images"]
    lines = [
        f"Checkpoint {result['checkpoint']} (step {result['step']}, {result['weights']}), "
        f"{result['split']} split of "
        f"{result['dataset']}: {n} maps at {result['resolution'][0]}×{result['resolution'][1]}, seed "
        f"{result['seed']}, {result['device']} ({result['painting_precision']} painting), {result['date']}",
        "",
        f"| metric | generated | real {result['split']} images | N | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows = _distribution_rows(result) + _judge_rows(result)
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", *(f"- {k}: {v}" for k, v in result["preprocessing"].items())]
    judges = result["details"].get("judges")
    if judges:
        c, s = judges["character_training"] or {}, judges["segment_training"] or {}
        lines.append(
            f"- judges ({judges['folder']}): character held-out accuracy {_pct(c.get('held_out_accuracy'))}, "
            f"segment held-out mIoU {_pct(s.get('held_out_miou'))} at training time"
        )
    lines += [f"- warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


_NO_REAL = "—"  # a row without a real-image counterpart
Row = tuple[str, str, str, str, str]  # metric, generated, real, N, notes


def _why(metrics: dict[str, Any], key: str, text: str) -> str:
    """The notes cell: the reason when the metric is unavailable, else `text`."""
    return metrics[key]["unavailable"] if isinstance(metrics[key], dict) else text


def _distribution_rows(result: dict[str, Any]) -> list[Row]:
    """FID, KID and the LPIPS rows: how the generated pictures compare with the real ones."""
    m, d, n = result["metrics"], result["details"], result["n_images"]
    kid = d.get("kid", {})
    kid_note = f"mean ± std over {kid.get('subsets')} subsets of {kid.get('subset_size')}"
    if kid.get("subset_size") == n:
        kid_note += " (each subset is the whole split, so the std is 0)"
    div = d["diversity"]
    floor = d.get("real_references", {}).get("fid_real", {})  # {"n", "pictures": "train against test"}
    fid_n = f" (real: {floor['n']} {floor['pictures'].split()[0]} vs {floor['n']})" if floor else ""
    return [
        (
            "FID ↓",
            _num(m["fid"], digits=2),
            _num(m.get("fid_real", unavailable("not computed")), digits=2),
            f"{n} vs {n}{fid_n}",
            _why(m, "fid", "TF-Inception pool3; real: other real pictures (val, or train) against these"),
        ),
        (
            "KID ×100 ↓",
            _num(m["kid_x100"], m["kid_x100_std"], 3),
            _NO_REAL,
            f"{n} vs {n}",
            _why(m, "kid_x100", kid_note),
        ),
        (
            f"LPIPS to ground truth ({d['lpips']['net']}) ↓",
            _num(m["lpips_paired"], m["lpips_paired_std"]),
            _NO_REAL,
            f"{n} pairs",
            _why(m, "lpips_paired", "mean ± std over pairs"),
        ),
        (
            f"diversity LPIPS ({div['net']}) ↑",
            _num(m["lpips_diversity"], m["lpips_diversity_std"]),
            _num(m.get("lpips_diversity_real", unavailable("")), m.get("lpips_diversity_real_std")),
            f"{div['maps']} maps × {div['samples_per_map']}",
            _why(
                m,
                "lpips_diversity",
                "mean over sample pairs of a map; ± std over maps; real: same maps redrawn with other backgrounds and light",
            ),
        ),
    ]


def _judge_rows(result: dict[str, Any]) -> list[Row]:
    """Identity, mIoU and colour rows: what the judges and the cast's colours say."""
    m, d = result["metrics"], result["details"]
    n, K = result["n_images"], result["num_characters"]
    n_every = d.get("identity", {}).get("maps_every_character", n)
    regions = lambda key: f"{d.get('colour', {}).get(key, {}).get('regions_scored', 0)} regions"
    every = "each map painted as each character"
    return [
        (
            "identity accuracy, own character ↑",
            _pct(m["identity_accuracy"]),
            _pct(m["identity_accuracy_real"]),
            str(n),
            _why(m, "identity_accuracy", f"character judge; chance {100 / K:.1f}%"),
        ),
        (
            "identity accuracy, every character ↑",
            _pct(m["identity_accuracy_every_character"]),
            _NO_REAL,
            f"{n_every} × {K}",
            _why(m, "identity_accuracy_every_character", every),
        ),
        (
            "mIoU ↑",
            _pct(m["miou"]),
            _pct(m["miou_real"]),
            str(n),
            _why(m, "miou", "segment judge vs the input maps"),
        ),
        (
            "colour error ΔE ↓",
            _num(m["colour_error"], digits=2),
            _num(m["colour_error_real"], digits=2),
            regions("colour_error"),
            _why(m, "colour_error", "per region: 10th-percentile pixel ΔE76 to the cast's colour"),
        ),
        (
            "colour error ΔE, every character ↓",
            _num(m["colour_error_every_character"], digits=2),
            _NO_REAL,
            regions("colour_error_every_character"),
            _why(m, "colour_error_every_character", every),
        ),
    ]


# --- command hooks -------------------------------------------------------------------------------


def main_judges(
    dataroot: Path, class_file: Path | None, device: str, epochs: int | None, seed: int, force: bool
) -> int:
    """`animesis judges`: train (or keep) the dataset's judges in DATAROOT/judges and print their summary."""
    info = load_dataset(Path(dataroot), class_file)
    folder = judges_folder(info.root)
    if not force:
        try:
            judges = load_judges(info.root)
        except MetricUnavailable:
            pass  # nothing usable yet: train
        else:
            stale = judges.stale_warning(info)
            if stale is None:
                print(f"judges already trained in {folder} (retrain with --force):")
                training = {
                    "character": judges.character_meta["training"],
                    "segment": judges.segment_meta["training"],
                }
                print(json.dumps(training, indent=2))
                return 0
            print(f"note: {stale}; retraining", file=sys.stderr)
    summary = train_judges(info, folder, device=device, epochs=epochs, seed=seed, progress=True)
    print(json.dumps(summary, indent=2))
    return 0


def main_eval_checkpoint(
    name: str,
    checkpoints_dir: Path,
    ckpt_iter: str | int,
    dataroot: Path,
    class_file: Path | None,
    device: str,
    json_path: Path | None,
    seed: int,
    batch_size: int,
    split: str,
    *,
    every_character_maps: int | None = None,  # maps painted as every character (None: all)
    n_diversity_maps: int = 50,
    samples_per_map: int = 4,
    reference_cache: bool = True,
    use_ema: bool = True,
) -> int:
    """`animesis eval --name`: evaluate checkpoints/NAME on a split; print the table, optionally write JSON.

    Exits 1 when a metric that needs weights or judges is unavailable, 0 otherwise.
    """
    run_dir = Path(checkpoints_dir) / name
    which = best_or_latest(run_dir, str(ckpt_iter))
    info = load_dataset(Path(dataroot), class_file, need=(split,))
    result = evaluate_checkpoint(
        run_dir,
        which,
        info,
        split=split,
        device=device,
        seed=seed,
        batch_size=batch_size,
        every_character_maps=every_character_maps,
        n_diversity_maps=n_diversity_maps,
        samples_per_map=samples_per_map,
        reference_cache=reference_cache,
        use_ema=use_ema,
    )
    print(format_report(result))
    if json_path is not None:
        json_path = Path(json_path)
        files.ensure_writable_dir(json_path.parent, "JSON report")
        files.write_json(json_path, result)
    return 1 if any(isinstance(result["metrics"][k], dict) for k in REQUIRED) else 0
