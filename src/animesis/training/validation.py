"""Validation FID during training: a fixed subset of the val split (never the test split)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from animesis.config import TrainConfig
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo
from animesis.metrics.assets import MetricUnavailable
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import GaussianStats, frechet_distance
from animesis.metrics.inception import load_inception
from animesis.tensors import one_hot, to_uint8
from animesis.training.distributed import DistEnv
from animesis.training.step import autocast_context


def make_fid_validator(
    cfg: TrainConfig, info: DatasetInfo, device: torch.device, env: DistEnv
) -> Callable[[nn.Module], dict[str, float]] | None:
    """A function G -> {"val_fid": FID(G's paintings of the val maps, the real val images), "val_fid_real":
    the same N of other real pictures against those val images}, or None without weights.

    The real statistics are computed once; each call paints the same maps with the same noise, so
    successive values differ only through the generator.
    """
    try:
        net = load_inception(device)
    except MetricUnavailable as e:
        if env.is_main:
            print(f"validation FID unavailable ({e}); no 'best' checkpoint will be kept")
        return None
    samples = info.splits["val"][: cfg.fid_samples]
    dataset = SegmentationDataset(samples, info.palette, cfg.image_size, cache=True)
    n = len(dataset)
    real_stats = _real_stats(dataset, net, device, "val real")
    # The floor a perfect generator would reach at this N: as many other real pictures (test, or train
    # without a test split) against the same val pictures.
    others = info.splits["test"] or info.splits["train"]
    fid_real = None
    if 2 <= n <= len(others):
        reference = SegmentationDataset(others[:n], info.palette, cfg.image_size, cache=False)
        fid_real = frechet_distance(real_stats, _real_stats(reference, net, device, "reference real"))
    g = torch.Generator().manual_seed(cfg.seed + 777)
    z_all = torch.randn(n, cfg.generator.z_dim, generator=g)  # fixed noise, one vector per map
    amp = autocast_context(device, cfg.precision)
    N = info.num_classes

    @torch.no_grad()
    def validate(G: nn.Module) -> dict[str, float]:
        was_training = G.training
        G.eval()
        fakes = []
        for batch in DataLoader(dataset, batch_size=16):
            onehot = one_hot(batch["label"].to(device), N)
            z = z_all[batch["index"]].to(device) if cfg.generator.z_dim else None
            with amp:
                fake = G(onehot, batch["character"].to(device), z)
            fakes.append(to_uint8(fake).cpu())
        G.train(was_training)
        fake_all = torch.cat(fakes)
        feats = stream_features(lambda i: fake_all[i], n, net, device=device, progress=False, desc="val fake")
        fid = frechet_distance(real_stats, GaussianStats.from_features(feats))
        return {"val_fid": fid} if fid_real is None else {"val_fid": fid, "val_fid_real": fid_real}

    return validate


def _real_stats(
    dataset: SegmentationDataset, net: nn.Module, device: torch.device, desc: str
) -> GaussianStats:
    feats = stream_features(
        lambda i: dataset[i]["image"], len(dataset), net, device=device, progress=False, desc=desc
    )
    return GaussianStats.from_features(feats)
