"""Folder evaluation behind `animesis eval`: FID, KID and paired LPIPS, each number reported with its N."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from animesis import files
from animesis.data import check
from animesis.data.check import IMAGE_SUFFIXES, DatasetError, open_image
from animesis.device import ranks, resolve_device
from animesis.metrics.assets import MetricUnavailable
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import KID_SUBSET_SIZE, KID_SUBSETS, fid_from_features, kid_from_features
from animesis.metrics.inception import NETWORK, PREPROCESSING, load_inception
from animesis.metrics.lpips import load_lpips, mean_and_std, pair_diversity
from animesis.tensors import to_signed

LPIPS_PREPROCESSING = (
    "RGB uint8 -> [-1, 1]; a fake whose size differs from its real is resized to the real's size "
    "(bilinear, antialias) before LPIPS"
)


def list_images(folder: Path, role: str) -> list[Path]:
    """Sorted image files of a folder whose headers can be read; errors name the folder and the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{role} folder {folder} does not exist or is not a folder")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{role} folder {folder} holds no {'/'.join(sorted(IMAGE_SUFFIXES))} images")
    for path in paths:
        # Header only (cheap), so a bad file fails here rather than after minutes of features.
        try:
            with open_image(path):
                pass
        except DatasetError as e:
            raise ValueError(f"unreadable image {path.name} in {role} folder {folder}: {e.reason}") from None
    return paths


def read_image(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB read by the dataset's reader; a bad file raises DatasetError naming it."""
    return torch.from_numpy(check.read_image(path).copy()).permute(2, 0, 1)  # copy: PIL's array is read-only


def inception_features(
    paths: list[Path],
    *,
    device: torch.device,
    batch_size: int = 50,
    progress: bool = True,
    desc: str = "inception",
) -> torch.Tensor:
    """(N, 2048) Inception features of image files (raises MetricUnavailable without the weights)."""
    net = load_inception(device)
    return stream_features(
        lambda i: read_image(paths[i]),
        len(paths),
        net,
        device=device,
        batch_size=batch_size,
        progress=progress,
        desc=desc,
    )


def pair_by_stem(real: list[Path], fake: list[Path]) -> list[tuple[Path, Path]]:
    """(real, fake) pairs with equal file stems; any stem without a partner is an error that lists a few."""
    real_by, fake_by = {p.stem: p for p in real}, {p.stem: p for p in fake}
    for paths, by, role in ((real, real_by, "real"), (fake, fake_by, "fake")):
        if len(by) != len(paths):
            raise ValueError(f"--paired: two {role} images share a file stem (e.g. a.png and a.jpg)")
    only_real, only_fake = sorted(real_by.keys() - fake_by.keys()), sorted(fake_by.keys() - real_by.keys())
    if only_real or only_fake:
        raise ValueError(
            f"--paired needs the same file stems in both folders: {len(only_real)} only in real "
            f"(e.g. {only_real[:5]}), {len(only_fake)} only in fake (e.g. {only_fake[:5]})"
        )
    return [(real_by[s], fake_by[s]) for s in sorted(real_by)]


def _load_pair(real: Path, fake: Path) -> torch.Tensor:
    """(6, H, W) float: real then fake in [-1, 1], the fake resized to the real's size when they differ."""
    r, f = read_image(real).float(), read_image(fake).float()
    if f.shape != r.shape:
        f = F.interpolate(f[None], size=r.shape[1:], mode="bilinear", align_corners=False, antialias=True)[0]
    return to_signed(torch.cat([r, f]))


def paired_lpips(
    pairs: list[tuple[Path, Path]],
    *,
    net: str = "alex",
    device: torch.device,
    batch_size: int = 50,
    progress: bool = True,
) -> torch.Tensor:
    """(N,) LPIPS between each real image and its generated counterpart (raises MetricUnavailable)."""
    model = load_lpips(net, device)
    run = lambda batch: model(batch[:, :3], batch[:, 3:])[:, None]  # (B, 6, H, W) -> (B, 1)
    feats = stream_features(
        lambda i: _load_pair(*pairs[i]),
        len(pairs),
        run,
        device=device,
        batch_size=batch_size,
        progress=progress,
        desc=f"lpips-{net}",
    )
    return feats[:, 0]


def diversity_lpips(samples: torch.Tensor, net: str = "alex") -> dict:
    """Mean LPIPS over all pairs of the S samples of each of M maps; (M, S, 3, H, W) in [-1, 1]; higher = more diverse."""
    per_map = pair_diversity(samples, net)  # (M,)
    mean, std = mean_and_std(per_map)  # std: the spread across maps
    return {
        "lpips_diversity": mean,
        "lpips_diversity_std": std,
        "lpips_net": net,
        "n_maps": samples.shape[0],
        "samples_per_map": samples.shape[1],
    }


def evaluate_folders(
    real: Path,
    fake: Path,
    *,
    paired: bool = False,
    lpips_net: str = "alex",
    device: str | torch.device | None = None,
    batch_size: int = 50,
    progress: bool = True,
    kid_seed: int = 0,
) -> dict:
    """FID, KID x100 (+- std over subsets) and, with paired=True, paired LPIPS of two image folders."""
    device = resolve_device("auto" if device is None else str(device))
    real_paths, fake_paths = list_images(real, "real"), list_images(fake, "fake")
    pairs = pair_by_stem(real_paths, fake_paths) if paired else None  # fail early, before any features
    for paths, role in ((real_paths, "real"), (fake_paths, "fake")):
        if len(paths) < 2:
            raise ValueError(f"FID/KID need at least 2 {role} images, got {len(paths)}")
    result: dict = {
        "real_dir": str(real),
        "fake_dir": str(fake),
        "n_real": len(real_paths),
        "n_fake": len(fake_paths),
        "fid": None,
        "kid_x100": None,
        "kid_x100_std": None,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": min(KID_SUBSET_SIZE, len(real_paths), len(fake_paths)),
        "feature_network": NETWORK,
        "preprocessing": PREPROCESSING,
        "unavailable": {},
    }
    try:
        kw = dict(device=device, batch_size=batch_size, progress=progress)
        real_feats = inception_features(real_paths, desc="inception real", **kw)
        fake_feats = inception_features(fake_paths, desc="inception fake", **kw)
    except MetricUnavailable as e:
        result["unavailable"].update(fid=str(e), kid=str(e))
    else:
        kid = kid_from_features(real_feats, fake_feats, seed=kid_seed)
        result.update(
            fid=fid_from_features(real_feats, fake_feats), kid_x100=100 * kid.mean, kid_x100_std=100 * kid.std
        )
    if pairs is not None:
        result.update(lpips_paired=None, lpips_paired_std=None, lpips_net=lpips_net, n_pairs=len(pairs))
        result["lpips_preprocessing"] = LPIPS_PREPROCESSING
        try:
            dist = paired_lpips(pairs, net=lpips_net, device=device, batch_size=batch_size, progress=progress)
        except MetricUnavailable as e:
            result["unavailable"]["lpips_paired"] = str(e)
        else:
            mean, std = mean_and_std(dist)
            result.update(lpips_paired=mean, lpips_paired_std=std)
    return result


def _cell(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "unavailable"
    return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"


def format_table(result: dict) -> str:
    """Markdown table of an evaluate_folders result, with N, preprocessing and reasons for unavailable metrics."""
    n = f"N real {result['n_real']}, N fake {result['n_fake']}"
    gone = result.get("unavailable", {})
    kid = f"{n}; mean ± std over {result['kid_subsets']} subsets of {result['kid_subset_size']}"
    if result["kid_subset_size"] == min(result["n_real"], result["n_fake"]):
        # Then every draw of the smaller set is that whole set: the std only reflects the larger one.
        kid += " (subsets = the whole smaller set; std 0 when N real = N fake)"
    rows = [
        ("FID", _cell(result["fid"]), gone.get("fid", n)),
        ("KID ×100", _cell(result["kid_x100"], result["kid_x100_std"]), gone.get("kid", kid)),
    ]
    if "lpips_paired" in result:
        rows.append(
            (
                f"LPIPS paired ({result['lpips_net']})",
                _cell(result["lpips_paired"], result["lpips_paired_std"]),
                gone.get(
                    "lpips_paired", f"{result['n_pairs']} pairs; mean ± std; lower = closer to the real"
                ),
            )
        )
    lines = ["| metric | value | details |", "| --- | --- | --- |"]
    lines += [f"| {name} | {value} | {details} |" for name, value, details in rows]
    lines += [
        "",
        f"FID/KID features: {result['feature_network']}",
        f"FID/KID preprocessing: {result['preprocessing']}",
    ]
    if "lpips_preprocessing" in result:
        lines.append(f"LPIPS preprocessing: {result['lpips_preprocessing']}")
    return "\n".join(lines)


def run_eval(
    real: Path, fake: Path, *, paired: bool = False, json_path: Path | None = None, **kwargs: object
) -> dict:
    """What `animesis eval` does: evaluate, print the table and optionally write the JSON (rank 0 only)."""
    result = evaluate_folders(real, fake, paired=paired, **kwargs)
    if ranks().is_main:
        print(format_table(result))
        if json_path is not None:
            json_path = Path(json_path)
            files.ensure_writable_dir(json_path.parent, "JSON report")
            files.write_json(json_path, result)
    return result
