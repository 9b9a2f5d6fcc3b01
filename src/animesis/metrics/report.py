"""A checkpoint's full evaluation on a dataset split: FID, KID, LPIPS, diversity, identity, mIoU, colour.

Every map of the split is painted with its own character (noise from the seed) and, for identity,
as every character; the images are scored in batches as they are painted, so memory stays bounded.
Each metric is a number or {"unavailable": reason}; nothing is silently replaced.
"""

from __future__ import annotations

import json
import os
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

from animesis.data.check import resize_image
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo, load_dataset
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
from animesis.metrics.lpips import load_lpips
from animesis.training.checkpoint import best_or_latest, write_text_atomic

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
        )


@dataclass
class ImageScorer:
    """Running state of every metric, fed batch by batch with (real, generated, label map, character)."""

    nets: Networks
    num_classes: int
    num_characters: int
    device: torch.device
    feats_real: list[torch.Tensor] = field(default_factory=list)
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
            self.feats_real.append(self.nets.inception(real).cpu())
            self.feats_fake.append(self.nets.inception(fake).cpu())
        if self.nets.lpips is not None:
            d = self.nets.lpips(real.float() / 127.5 - 1, fake.float() / 127.5 - 1)
            self.lpips.append(d.cpu())
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
            dist = torch.cat(self.lpips)
            m["lpips_paired"], m["lpips_paired_std"] = dist.mean().item(), dist.std(unbiased=False).item()
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
    i, j = torch.triu_indices(samples, samples, offset=1)  # every unordered pair once
    for m in range(len(labels)):
        z = painter.noise(samples, seed + 1 + m)  # a noise stream per map, apart from the paired run's
        images = painter.paint(
            labels[m : m + 1].expand(samples, -1, -1), characters[m : m + 1].expand(samples), z
        )
        x = _to_nchw(images, painter.device).float() / 127.5 - 1  # (S, 3, H, W)
        per_map.append(lpips(x[i], x[j]).mean().item())
    values = torch.tensor(per_map)
    return values.mean().item(), values.std(unbiased=False).item()


def real_references(
    info: DatasetInfo,
    split: str,
    size: tuple[int, int],
    nets: Networks,
    scorer: ImageScorer,
    n_maps: int,
    samples_per_map: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What real pictures score, so that generated scores can be read: (metrics, details).

    fid_real: FID between the real pictures of the val split and those of the scored split, N each
    the smaller split's size (FID grows as N shrinks: compare it with a generated FID of similar N).
    lpips_diversity_real: for a built-in dataset, the same maps drawn again with other backgrounds and
    light, scored like the generated diversity: the variety real pictures of one map and character have.
    """
    out: dict[str, Any] = {}
    details: dict[str, Any] = {}
    other = "val" if split != "val" else "test"
    n_fid = min(len(info.splits.get(other, ())), sum(len(f) for f in scorer.feats_real))
    if nets.inception is None:
        out["fid_real"] = unavailable(nets.missing["inception"])
    elif n_fid < 2 or not scorer.feats_real:
        out["fid_real"] = unavailable(f"needs the {other} split to hold at least 2 pictures")
    else:
        ds = SegmentationDataset(list(info.splits[other][:n_fid]), info.palette, size)
        feats = stream_features(
            lambda i: ds[i]["image"],
            n_fid,
            nets.inception,
            device=scorer.device,
            progress=False,
            desc=f"{other} real",
        )
        out["fid_real"] = fid_from_features(feats, torch.cat(scorer.feats_real)[:n_fid])
        details["fid_real"] = {"n": n_fid, "pictures": f"{other} against {split}"}
    if nets.lpips is None:
        out["lpips_diversity_real"] = out["lpips_diversity_real_std"] = unavailable(nets.missing["lpips"])
        return out, details
    try:
        from animesis.data.synthetic import SynthError, draw_variations
    except ImportError as e:  # pragma: no cover - the package always has it
        out["lpips_diversity_real"] = out["lpips_diversity_real_std"] = unavailable(str(e))
        return out, details
    samples = info.splits[split][:n_maps]
    i, j = torch.triu_indices(samples_per_map, samples_per_map, offset=1)
    per_map = []
    for s in samples:
        index = int(s.name.rsplit("_", 1)[-1]) if s.name.rsplit("_", 1)[-1].isdigit() else -1
        try:
            _, images = draw_variations(info.root, split, index, samples_per_map)
        except (FileNotFoundError, KeyError, ValueError, SynthError):
            out["lpips_diversity_real"] = out["lpips_diversity_real_std"] = unavailable(
                "not a built-in dataset: real pictures of one map with other backgrounds cannot be drawn"
            )
            return out, details
        x = torch.from_numpy(np.stack([resize_image(im, size) for im in images])).permute(0, 3, 1, 2)
        x = x.to(scorer.device).float() / 127.5 - 1
        per_map.append(nets.lpips(x[i], x[j]).mean().item())
    values = torch.tensor(per_map)
    out["lpips_diversity_real"] = values.mean().item()
    out["lpips_diversity_real_std"] = values.std(unbiased=False).item()
    details["lpips_diversity_real"] = {"maps": len(samples), "samples_per_map": samples_per_map}
    return out, details


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
) -> dict[str, Any]:
    """Paint a split with a checkpoint (run folder + which, or a model folder) and score every metric."""
    started = time.perf_counter()
    folder = find_model_folder(path, which)
    painter = Painter.load(folder, device=device)
    card, dev = painter.card, painter.device
    samples = info.splits.get(split, ())
    _check_fit(painter, info, split, samples)
    H, W = card.image_size
    dataset = SegmentationDataset(list(samples), info.palette, (H, W))
    n = len(dataset)
    n_every = n if every_character_maps is None else min(n, every_character_maps)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    nets = Networks.load(info, dev, lpips_net)
    warnings = []
    if nets.judges is not None:
        judged = (nets.judges.character.cfg.num_characters, nets.judges.segment.cfg.num_classes)
        if judged != (painter.num_characters, info.num_classes):
            nets.missing["judges"] = (
                f"the judges in {nets.judges.folder} know {judged[0]} characters and {judged[1]} classes, "
                f"the checkpoint {painter.num_characters} and {info.num_classes}; retrain them with "
                f"`animesis judges --dataroot {info.root} --force`"
            )
            nets.judges = None
        elif stale := nets.judges.stale_warning(info):
            warnings.append(stale)
    scorer = ImageScorer(nets, info.num_classes, painter.num_characters, dev)
    z_all = painter.noise(n, seed)  # one draw per map in file order: independent of the batch size
    div_labels, div_chars = [], []
    clock: dict[str, float] = {}  # where the time goes: painting is the generator, the rest scoring
    bar = tqdm(total=n, desc=f"painting and scoring {split}", unit="map", disable=not progress)
    for batch in loader:
        idx, labels, chars = batch["index"], batch["label"], batch["character"]
        with _timed(clock, "painting"):
            fake = painter.paint(labels, chars, z_all[idx] if z_all is not None else None)
        with _timed(clock, "scoring"):
            scorer.add(batch["image"], fake, labels, chars)
        every = idx < n_every
        if every.any():  # the same maps and noise, requested as each character in turn
            z = z_all[idx[every]] if z_all is not None else None
            for k in range(painter.num_characters):
                k_ids = torch.full((int(every.sum()),), k, dtype=torch.long)
                with _timed(clock, "painting_every_character"):
                    fake = painter.paint(labels[every], k_ids, z)
                with _timed(clock, "scoring_every_character"):
                    scorer.add_every_character(fake, labels[every], k)
        keep = idx < n_diversity_maps
        div_labels.append(labels[keep])
        div_chars.append(chars[keep])
        bar.update(len(idx))
    bar.close()
    with _timed(clock, "fid_kid_and_summaries"):
        metrics, details = scorer.results(info.palette.names, kid_seed=seed)

    with _timed(clock, "real_references"):
        refs, details["real_references"] = real_references(
            info, split, (H, W), nets, scorer, n_diversity_maps, samples_per_map
        )
        metrics.update(refs)
    n_div = min(n, n_diversity_maps)
    if not card.generator.z_dim:
        metrics["lpips_diversity"] = metrics["lpips_diversity_std"] = unavailable(
            "the model has no noise (z_dim=0): every painting of a map is the same image"
        )
    elif nets.lpips is None:
        metrics["lpips_diversity"] = metrics["lpips_diversity_std"] = unavailable(nets.missing["lpips"])
    elif samples_per_map < 2 or n_div < 1:
        metrics["lpips_diversity"] = metrics["lpips_diversity_std"] = unavailable(
            "diversity needs at least 2 samples of at least 1 map"
        )
    else:
        labels, chars = torch.cat(div_labels), torch.cat(div_chars)
        with _timed(clock, "diversity"):
            mean, std = diversity(painter, labels, chars, samples_per_map, seed, nets.lpips)
        metrics["lpips_diversity"], metrics["lpips_diversity_std"] = mean, std
    details["diversity"] = {"maps": n_div, "samples_per_map": samples_per_map, "net": lpips_net}
    details["lpips"] = {"net": lpips_net, "pairs": n}
    if nets.judges is not None:
        details["judges"] = {
            "folder": str(nets.judges.folder),
            "character_training": nets.judges.character_meta.get("training"),
            "segment_training": nets.judges.segment_meta.get("training"),
        }
    if "identity" in details:
        details["identity"]["maps_every_character"] = n_every

    return {
        "format": FORMAT,
        "checkpoint": str(folder),
        "step": card.step,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": str(info.root),
        "split": split,
        "n_images": n,
        "resolution": [H, W],
        "num_characters": painter.num_characters,
        "character_names": list(card.character_names),
        "device": str(dev),
        "painting_precision": "bf16" if painter.bf16 else "fp32",
        "seed": seed,
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
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_by_stage": {k: round(v, 1) for k, v in clock.items()},
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
    m, d = result["metrics"], result["details"]
    n, K = result["n_images"], result["num_characters"]
    why = lambda key, text: m[key]["unavailable"] if isinstance(m[key], dict) else text
    kid = d.get("kid", {})
    kid_note = f"mean ± std over {kid.get('subsets')} subsets of {kid.get('subset_size')}"
    if kid.get("subset_size") == n:
        kid_note += " (each subset is the whole split, so the std is 0)"
    n_every = d.get("identity", {}).get("maps_every_character", n)
    div = d["diversity"]
    regions = lambda key: f"{d.get('colour', {}).get(key, {}).get('regions_scored', 0)} regions"
    na = "—"  # no real-image counterpart
    rows = [
        (
            "FID ↓",
            _num(m["fid"], digits=2),
            _num(m.get("fid_real", unavailable("not computed")), digits=2),
            f"{n} vs {n}"
            + (f" (real: {m['fid_real_n']} val vs {m['fid_real_n']})" if "fid_real_n" in m else ""),
            why("fid", "TF-Inception pool3; real: val pictures against these"),
        ),
        (
            "KID ×100 ↓",
            _num(m["kid_x100"], m["kid_x100_std"], 3),
            na,
            f"{n} vs {n}",
            why("kid_x100", kid_note),
        ),
        (
            f"LPIPS to ground truth ({d['lpips']['net']}) ↓",
            _num(m["lpips_paired"], m["lpips_paired_std"]),
            na,
            f"{n} pairs",
            why("lpips_paired", "mean ± std over pairs"),
        ),
        (
            f"diversity LPIPS ({div['net']}) ↑",
            _num(m["lpips_diversity"], m["lpips_diversity_std"]),
            _num(m.get("lpips_diversity_real", unavailable("")), m.get("lpips_diversity_real_std")),
            f"{div['maps']} maps × {div['samples_per_map']}",
            why(
                "lpips_diversity",
                "mean over sample pairs of a map; ± std over maps; real: same maps redrawn with other backgrounds and light",
            ),
        ),
        (
            "identity accuracy, own character ↑",
            _pct(m["identity_accuracy"]),
            _pct(m["identity_accuracy_real"]),
            str(n),
            why("identity_accuracy", f"character judge; chance {100 / K:.1f}%"),
        ),
        (
            "identity accuracy, every character ↑",
            _pct(m["identity_accuracy_every_character"]),
            na,
            f"{n_every} × {K}",
            why("identity_accuracy_every_character", "each map painted as each character"),
        ),
        (
            "mIoU ↑",
            _pct(m["miou"]),
            _pct(m["miou_real"]),
            str(n),
            why("miou", "segment judge vs the input maps"),
        ),
        (
            "colour error ΔE ↓",
            _num(m["colour_error"], digits=2),
            _num(m["colour_error_real"], digits=2),
            regions("colour_error"),
            why("colour_error", "per region: 10th-percentile pixel ΔE76 to the cast's colour"),
        ),
        (
            "colour error ΔE, every character ↓",
            _num(m["colour_error_every_character"], digits=2),
            na,
            regions("colour_error_every_character"),
            why("colour_error_every_character", "each map painted as each character"),
        ),
    ]
    lines = [
        f"Checkpoint {result['checkpoint']} (step {result['step']}), {result['split']} split of "
        f"{result['dataset']}: {n} maps at {result['resolution'][0]}×{result['resolution'][1]}, seed "
        f"{result['seed']}, {result['device']} ({result['painting_precision']} painting), {result['date']}",
        "",
        f"| metric | generated | real {result['split']} images | N | notes |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", *(f"- {k}: {v}" for k, v in result["preprocessing"].items())]
    judges = d.get("judges")
    if judges:
        c, s = judges["character_training"] or {}, judges["segment_training"] or {}
        lines.append(
            f"- judges ({judges['folder']}): character held-out accuracy {_pct(c.get('held_out_accuracy'))}, "
            f"segment held-out mIoU {_pct(s.get('held_out_miou'))} at training time"
        )
    lines += [f"- warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


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
    )
    print(format_report(result))
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    return 1 if any(isinstance(result["metrics"][k], dict) for k in REQUIRED) else 0
