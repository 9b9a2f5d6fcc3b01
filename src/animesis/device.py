"""Where work runs: the device, this process's rank among several, and how many CPU workers to use.

The single place that reads torchrun's environment and decides CPU versus GPU; everything else asks here.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass

import torch

from animesis.errors import UserError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes torchrun started (one process: 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """The process group's view when one is running, else torchrun's environment variables."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return Ranks(torch.distributed.get_rank(), torch.distributed.get_world_size(), local)
    return Ranks(
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """'auto' -> this rank's GPU when there is one, else the CPU; 'cuda' -> this rank's GPU; 'cuda:N'."""
    local = ranks().local_rank if local_rank is None else local_rank
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: this torch sees no CUDA GPU (use --device cpu or auto)")
        index = local if name == "cuda" else name.split(":", 1)[1]
        if not str(index).isdigit() or int(index) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: there are {torch.cuda.device_count()} GPUs (0..)")
        return torch.device("cuda", int(index))
    if name == "mps" and torch.backends.mps.is_available():
        return torch.device("mps")
    raise UserError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 convolutions and matmuls in hardware: CUDA GPUs, and CPUs with
    AVX512-BF16 or AMX. Elsewhere bf16 is emulated and slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's own CPUID probes
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


# 'auto' precision takes bf16 on a CPU only where the probe's convolutions run at least this much faster
# in it: the training step gains less than its convolutions (data, the optimizers and the moving average
# stay fp32), and a CPU near 1x is better left in fp32's exact arithmetic.
BF16_MIN_SPEEDUP = 1.2


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16-autocast time of a small convolution block, forward and backward, on this CPU.

    CPUID says whether bf16 instructions exist, not whether they pay: on a 2-core AMD EPYC with
    AVX512-BF16 the training step took 0.58x its fp32 time in bf16, on a 2-core Intel Xeon with
    AVX512-BF16 (no AMX) 1.24x. So the CPU is asked by timing it, once per process (about a second).
    """
    gen = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1)
    x = torch.randn(4, 32, 64, 64, generator=gen, requires_grad=True)

    def seconds(bf16: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = conv(torch.nn.functional.leaky_relu(conv(x), 0.2))
        y.float().square().mean().backward()
        return time.perf_counter() - t

    # Taken in turn, so a machine whose speed drifts slows both alike; the best of eight each (the
    # first runs warm oneDNN's kernels up).
    times = [(seconds(False), seconds(True)) for _ in range(8)]
    return min(f for f, _ in times) / min(b for _, b in times)


def bf16_pays(device: torch.device) -> bool:
    """Whether 'auto' precision trains in bf16 on `device`: CUDA GPUs with bf16, and CPUs with bf16
    instructions where they make convolutions at least BF16_MIN_SPEEDUP times as fast as fp32."""
    if not native_bf16(device):
        return False
    return device.type != "cpu" or cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


def device_from_gpu_ids(gpu_ids: str) -> str:
    """The seed's --gpu_ids: '-1' -> cpu; '0' -> cuda:0 (the CPU, with a note, without a GPU); '0,1' -> cuda."""
    ids = [s for s in gpu_ids.replace(" ", "").split(",") if s]
    if not ids or ids == ["-1"]:
        return "cpu"
    if not all(s.isdigit() for s in ids):
        raise UserError(f"--gpu_ids {gpu_ids!r}: expected -1 or comma-separated GPU numbers")
    if not torch.cuda.is_available():
        print(
            f"note: --gpu_ids {gpu_ids} but this torch sees no CUDA GPU: running on the CPU", file=sys.stderr
        )
        return "cpu"
    if under_torchrun():
        return "cuda"  # torchrun gives each process its own GPU
    return f"cuda:{ids[0]}" if len(ids) == 1 else "cuda"


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask, e.g. a container's or taskset's share)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_workers(limit: int = 8, *, spare: int = 0) -> int:
    """Worker processes for CPU-side jobs: one per usable CPU, up to `limit`, keeping `spare` for the main one."""
    return max(0, min(limit, cpu_count() - spare))
