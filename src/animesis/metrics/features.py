"""Stream images through a feature network in batches: progress bar, prefetching, torchrun sharding."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.distributed as dist
from tqdm import tqdm

from animesis.device import ranks

Loader = Callable[[int], torch.Tensor]  # index -> (C, H, W) uint8 image
Network = Callable[[torch.Tensor], torch.Tensor]  # (B, C, H, W) uint8 -> (B, D)


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Plain fp32 for a metric network: no autocast, no TF32; either would shift features and so the score."""
    if device.type != "cuda":
        with torch.autocast(device.type, enabled=False):
            yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.autocast("cuda", enabled=False):
            yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _run_batch(net: Network, images: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Features of a list of images; images of different sizes go through the net in same-size groups."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    out: torch.Tensor | None = None
    for indices in groups.values():
        batch = torch.stack([images[i] for i in indices]).to(device, non_blocking=True)  # (B, C, H, W)
        with full_precision(device):
            feats = net(batch).float()  # (B, D)
        if out is None:
            out = feats.new_empty(len(images), feats.shape[1])
        out[indices] = feats
    return out


@torch.no_grad()
def stream_features(
    load: Loader,
    count: int,
    net: Network,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    progress: bool = True,
    desc: str = "features",
    workers: int = 4,
) -> torch.Tensor:
    """(count, D) float32 CPU features of images 0..count-1, in index order, equal on every rank.

    Under torchrun each rank takes every world_size-th batch and the results are all-gathered.
    """
    if count <= 0:
        raise ValueError("no images to stream")
    device = torch.device(device)
    r = ranks()
    rank, world = r.rank, r.world_size
    show = progress and rank == 0  # rank 0 speaks for all ranks
    n_batches = -(-count // batch_size)
    if n_batches < world:  # too few batches to give every rank one: each rank does the (small) job alone
        rank, world = 0, 1
    mine = list(range(rank, n_batches, world))
    spans = [range(b * batch_size, min((b + 1) * batch_size, count)) for b in mine]
    local: list[torch.Tensor] = []
    # Decoding in threads overlaps with the network (PIL releases the GIL while decoding).
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.map(load, spans[0])] if spans else []
        bar = tqdm(total=count, desc=desc, unit="img", disable=not show)
        for k in range(len(spans)):
            images = list(pending.pop())
            if k + 1 < len(spans):
                pending.append(pool.map(load, spans[k + 1]))  # prefetch the next batch
            local.append(_run_batch(net, images, device))
            bar.update(min(len(images) * world, count - bar.n))
        bar.close()
    if world == 1:
        return torch.cat(local).cpu()
    return _gather(local, count, batch_size, n_batches, world, device)


def _gather(
    local: list[torch.Tensor],
    count: int,
    batch_size: int,
    n_batches: int,
    world: int,
    device: torch.device,
) -> torch.Tensor:
    """All-gather per-rank batch features and put every row back at its image index."""
    per_rank = -(-n_batches // world)
    dim = local[0].shape[1]
    # NCCL gathers device tensors, gloo CPU ones; shapes are padded equal as all_gather requires.
    comm_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    padded = torch.zeros(per_rank * batch_size, dim, device=comm_device)
    for k, feats in enumerate(local):
        padded[k * batch_size : k * batch_size + feats.shape[0]] = feats.to(comm_device)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    out = torch.empty(count, dim)
    for r, rows in enumerate(gathered):
        rows = rows.cpu()
        for k, b in enumerate(range(r, n_batches, world)):
            n = min(batch_size, count - b * batch_size)
            out[b * batch_size : b * batch_size + n] = rows[k * batch_size : k * batch_size + n]
    return out
