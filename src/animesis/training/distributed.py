"""One code path from one CPU process to N GPUs: torchrun's environment, rank-aware sampling."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from animesis.device import ranks, resolve_device


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistEnv:
    """Read torchrun's RANK/WORLD_SIZE/LOCAL_RANK; start a process group when there are several."""
    r = ranks()
    world, rank, local = r.world_size, r.rank, r.local_rank
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(
            backend="nccl" if dev.type == "cuda" else "gloo", device_id=dev if dev.type == "cuda" else None
        )
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def shutdown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose gradient is again the sum over processes (each rank's loss uses the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlooSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics span all processes, for CPU (gloo) runs.

    torch's SyncBatchNorm only runs on GPUs. This one all-reduces per-channel sums with a
    differentiable all_reduce, so gradients match a single process holding the whole batch.
    Assumes every process holds the same number of samples (the training loop guarantees it).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        world = dist.get_world_size()
        xf = x.float()
        local = torch.cat([xf.mean(dim=(0, 2, 3)), xf.square().mean(dim=(0, 2, 3))])  # (2C,)
        mean, sq = (_AllReduceSum.apply(local) / world).chunk(2)
        var = (sq - mean.square()).clamp(min=0)
        with torch.no_grad():
            n = x.numel() // x.shape[1] * world
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * n / max(n - 1, 1), m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm -> statistics synchronised across processes (torch's SyncBatchNorm on GPUs)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlooSyncBatchNorm):
            new = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            convert_sync_batchnorm(child, device)
    return module


class InfiniteSampler(Sampler[int]):
    """An endless stream of shuffled epochs; rank r takes every world_size-th position from `start`.

    Position p of the global stream is index perm_e[p % n] with e = p // n, so the stream is a pure
    function of (seed, p): resuming at position step * global_batch continues exactly, and the ranks
    of one step together see the same samples a single process with the global batch would.
    """

    def __init__(
        self,
        size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        start: int = 0,
    ):
        if size <= 0:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.rank, self.world_size = size, rank, world_size
        self.seed, self.start = seed, start

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[int]:
        p = self.start + self.rank
        epoch, perm = -1, None
        while True:
            e = p // self.size
            if e != epoch:
                epoch, perm = e, self._perm(e)
            yield int(perm[p % self.size])  # type: ignore[index]
            p += self.world_size
