"""The training loop: set up -> (D step, G step, EMA) per iteration -> periodic ticks."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from animesis import runs
from animesis.config import TrainConfig
from animesis.data.batch import Batch, to_batch
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo
from animesis.errors import UserError
from animesis.models.pretrained import ModelCard
from animesis.tensors import to_signed, to_uint8
from animesis.training import checkpoint as ckpt
from animesis.training.distributed import DistEnv, InfiniteSampler, barrier, init_distributed, shutdown
from animesis.training.ema import refresh_batchnorm
from animesis.training.resume import record_start
from animesis.training.step import build_train_step, lr_scale_at


class TrainingError(UserError):
    """A run that cannot start or continue (bad resume point, batch larger than the data, ...)."""


# --- set-up helpers ------------------------------------------------------------------------------


def _rng_states(gen: torch.Generator, env: DistEnv) -> dict[str, torch.Tensor]:
    """Every rank's noise-generator state (all training randomness flows from it; data order is a
    pure function of seed and position). Collective: every rank must call it."""
    state = gen.get_state()
    if not env.distributed:
        return {"noise.0": state}
    states: list = [None] * env.world_size
    torch.distributed.all_gather_object(states, state)
    return {f"noise.{r}": s for r, s in enumerate(states)}


def total_steps(cfg: TrainConfig, n_train: int) -> int:
    if cfg.max_steps is not None:
        return cfg.max_steps
    per_epoch = n_train // cfg.batch_size
    if per_epoch == 0:
        raise TrainingError(f"batch size {cfg.batch_size} is larger than the train split ({n_train} images)")
    return cfg.num_epochs * per_epoch


def _loader(dataset, sampler, batch_size: int, cfg: TrainConfig, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
        prefetch_factor=4 if cfg.num_workers > 0 else None,
        drop_last=True,
    )


def make_card(cfg: TrainConfig, info: DatasetInfo, step: int) -> ModelCard:
    return ModelCard(
        generator=cfg.generator,
        discriminator=cfg.discriminator,
        palette=info.palette,
        character_names=info.character_names,
        image_size=cfg.image_size,
        step=step,
    )


def _grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Columns of images in [-1, 1] (B, 3, H, W) -> one uint8 (B*H, cols*W, 3) grid."""
    cols = [to_uint8(r).cpu() for r in rows]
    grid = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)  # (3, B*H, cols*W)
    return grid.permute(1, 2, 0).numpy()


# --- the loop ------------------------------------------------------------------------------------


def train(
    cfg: TrainConfig,
    info: DatasetInfo,
    *,
    progress: bool = True,
    changes: list[str] | None = None,
    argv: list[str] | None = None,
) -> Path:
    """Train G and D on `info`'s train split; checkpoints and logs go to cfg.run_dir. Returns run_dir.

    The main process holds the run folder's lock for the whole run, so a second run with the same
    name refuses to start instead of overwriting this one's files.
    """
    env = init_distributed(cfg.device)
    try:
        lock = runs.run_lock(cfg.run_dir) if env.is_main else contextlib.nullcontext()
        with lock:
            return _train(cfg, info, env, progress, changes or [], argv)
    finally:
        shutdown(env)


@dataclass
class _State:
    """What changes as training goes: the iteration, the best validation FID, the noise generator."""

    step: int
    best_fid: float
    best_step: int | None
    gen: torch.Generator

    def to_json(self, world_size: int, batch_size: int) -> dict[str, Any]:
        best = None if math.isinf(self.best_fid) else self.best_fid
        return {
            "best_fid": best,
            "best_step": self.best_step,
            "world_size": world_size,
            "batch_size": batch_size,
        }


def _resume(cfg: TrainConfig, env: DistEnv, ts, state: _State) -> None:
    """Load the resume point into the networks, optimizers and `state` (in place)."""
    folder = runs.resolve_checkpoint(cfg.run_dir, cfg.which_iter)
    saved, rng = ckpt.load_training_state(
        folder, G=ts.G, G_ema=ts.G_ema, D=ts.D, opt_G=ts.opt_G, opt_D=ts.opt_D
    )
    state.step = int(saved["step"])
    state.best_fid, state.best_step = saved.get("best_fid") or math.inf, saved.get("best_step")
    if saved.get("world_size", 1) == env.world_size:
        state.gen.set_state(rng[f"noise.{env.rank}"])  # another process count draws other streams anyway
    if env.is_main:
        print(f"resumed from {folder} at iteration {state.step}")


class _Logs:
    """Status lines, log.jsonl and TensorBoard, written by the main process only."""

    def __init__(self, run_dir: Path, env: DistEnv, bar: tqdm):
        self.bar, self.writer, self.file = bar, None, None
        if env.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"))
            self.file = open(run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def log(self, stats: dict[str, Any]) -> None:
        if self.file is None:
            return
        line = json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in stats.items()})
        self.bar.write(line) if not self.bar.disable else print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()
        for k, v in stats.items():
            if k != "step" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, stats["step"])

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.file.close()


class _Data:
    """This process's endless stream of training batches, resumable at any iteration."""

    def __init__(self, cfg: TrainConfig, info: DatasetInfo, env: DistEnv, start_step: int):
        if cfg.batch_size % env.world_size:
            raise TrainingError(
                f"batch size {cfg.batch_size} must be a multiple of the {env.world_size} processes"
            )
        self.local_batch = cfg.batch_size // env.world_size
        self.dataset = SegmentationDataset(
            info.splits["train"], info.palette, cfg.image_size, cache=cfg.cache_images
        )
        sampler = InfiniteSampler(
            len(self.dataset), rank=env.rank, world_size=env.world_size, seed=cfg.seed,
            start=start_step * cfg.batch_size,
        )  # fmt: skip
        self.batches: Iterator = iter(_loader(self.dataset, sampler, self.local_batch, cfg, env.device))
        self.prepare = partial(
            to_batch,
            device=env.device,
            num_classes=info.num_classes,
            canny=cfg.canny,
            channels_last=cfg.channels_last,
        )

    def next(self, flip: torch.Generator | None) -> Batch:
        return self.prepare(next(self.batches), flip=flip)


def _snapshot(
    cfg: TrainConfig, info: DatasetInfo, env: DistEnv, ts, state: _State, pointers, keep: bool
) -> None:
    """Save this iteration (collective: every rank takes part in gathering the noise states)."""
    rng = _rng_states(state.gen, env)
    if env.is_main:
        ckpt.save_checkpoint(
            cfg.run_dir, state.step, make_card(cfg, info, state.step), G=ts.G, G_ema=ts.G_ema, D=ts.D,
            opt_G=ts.opt_G, opt_D=ts.opt_D, state=state.to_json(env.world_size, cfg.batch_size),
            rng=rng, keep=keep, pointers=tuple(pointers),
        )  # fmt: skip
    barrier(env)


def _train(
    cfg: TrainConfig,
    info: DatasetInfo,
    env: DistEnv,
    progress: bool,
    changes: list[str],
    argv: list[str] | None,
) -> Path:
    # --- set-up: networks, state (fresh or resumed), data, logs ------------------------------------
    ts = build_train_step(cfg, env, info.palette.names)
    gen = torch.Generator(device=env.device)
    gen.manual_seed(cfg.seed * env.world_size + env.rank + 1)
    state = _State(step=0, best_fid=math.inf, best_step=None, gen=gen)
    if cfg.continue_train:
        _resume(cfg, env, ts, state)
    elif cfg.init_from:
        ckpt.load_networks(Path(cfg.init_from), G=ts.G, G_ema=ts.G_ema, D=ts.D)
        if env.is_main:
            print(f"started from the weights in {cfg.init_from} (fresh optimizers, iteration 0)")
    steps = total_steps(cfg, len(info.splits["train"]))
    if state.step >= steps and env.is_main:
        print(f"nothing to do: iteration {state.step} >= {steps} iterations asked for")
    data = _Data(cfg, info, env, state.step)
    if env.is_main:
        record_start(cfg, state.step, changes, argv)
    bar = tqdm(
        total=steps, initial=state.step, disable=not (progress and env.is_main), dynamic_ncols=True, unit="it"
    )
    logs, meter = _Logs(cfg.run_dir, env, bar), _Meter(cfg.batch_size, len(data.dataset), env.device)
    vis, validator = _vis_batch(info, cfg, env.device), _make_validator(cfg, info, env.device, env)
    bn_batches = partial(_bn_batches, data.dataset, cfg, data.local_batch, data.prepare)
    save = partial(_snapshot, cfg, info, env, ts, state)

    # --- the loop: one iteration, then whatever periodic work falls on it ------------------------
    while state.step < steps:
        if cfg.lr_decay:
            ts.set_lr_scale(lr_scale_at(state.step, steps, cfg.lr_decay))
        terms = ts(data.next(flip=gen if cfg.flip else None), gen, step=state.step)
        state.step += 1
        meter.add(terms, bar)
        step, last = state.step, state.step == steps
        do_print = step % cfg.freq_print == 0 or last
        do_fid = validator is not None and (step % cfg.freq_fid == 0 or last)
        do_save = step % cfg.freq_save_latest == 0 or step % cfg.freq_save_ckpt == 0 or last
        if ts.G_ema is not None and (do_print or do_fid or do_save):
            refresh_batchnorm(ts.G_ema, bn_batches())
        if do_print:
            logs.log(meter.stats(step))
            if env.is_main:
                _save_grid(cfg.run_dir, step, vis, ts.G, ts.G_ema, logs.writer, info)
        pointers = ["latest"] if do_save else []
        if do_fid:
            scores = validator(ts.G_ema if ts.G_ema is not None else ts.G)
            logs.log({"step": step, **scores})  # with the real-vs-real FID at the same N beside it
            fid = scores["val_fid"]
            if fid < state.best_fid:
                state.best_fid, state.best_step = fid, step
                pointers.append("best")
        if pointers:  # one folder serves both pointers when they fall on the same iteration
            save(pointers, keep=do_save and step % cfg.freq_save_ckpt == 0)
        if do_print:
            meter.restart()  # speed excludes the tick's own work
    logs.close()
    return cfg.run_dir


class _Meter:
    """Running means of the loss terms and the training speed between status lines."""

    def __init__(self, batch_size: int, n_train: int, device: torch.device):
        self.batch_size, self.n_train, self.device = batch_size, n_train, device
        self.sums: dict[str, torch.Tensor] = {}
        self.n, self.t = 0, time.perf_counter()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def add(self, terms: dict[str, torch.Tensor], bar: tqdm) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0) + v.detach()
        self.n += 1
        bar.update(1)
        if bar.n % 50 == 0 and not bar.disable:  # .item() syncs: not every iteration
            bar.set_postfix({k: f"{self.sums[k].item() / self.n:.3f}" for k in ("D_real", "D_fake", "G_adv")})

    def stats(self, step: int) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.t
        stats: dict[str, Any] = {k: v.item() / self.n for k, v in self.sums.items()}
        stats.update(
            step=step,
            epoch=step * self.batch_size / self.n_train,
            img_per_s=self.n * self.batch_size / max(elapsed, 1e-9),
        )
        if self.device.type == "cuda":
            stats["peak_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.sums, self.n = {}, 0
        return stats

    def restart(self) -> None:
        self.t = time.perf_counter()


def _bn_batches(dataset, cfg: TrainConfig, local_batch: int, prepare) -> Iterator[tuple]:
    """Deterministic G inputs for re-estimating G_ema's BatchNorm statistics (no training RNG used)."""
    n = min(len(dataset), cfg.bn_refresh_batches * local_batch)
    loader = DataLoader(Subset(dataset, range(n)), batch_size=local_batch, num_workers=0)
    device = prepare.keywords["device"]
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 12345)
    for raw in loader:
        b = prepare(raw)
        z = torch.randn(len(b), cfg.generator.z_dim, device=device, generator=g)
        yield (b.onehot, b.char, z)


def _vis_batch(info: DatasetInfo, cfg: TrainConfig, device: torch.device) -> tuple[Batch, torch.Tensor]:
    """A fixed batch (val split if any) and fixed noise for the image grids."""
    samples = info.splits["val"] or info.splits["train"]
    ds = SegmentationDataset(samples[: min(4, len(samples))], info.palette, cfg.image_size)
    raw = next(iter(DataLoader(ds, batch_size=len(ds))))
    b = to_batch(raw, device, num_classes=info.num_classes, canny=cfg.canny, channels_last=cfg.channels_last)
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 999)
    return b, torch.randn(len(ds), cfg.generator.z_dim, device=device, generator=g)


@torch.no_grad()
def _save_grid(run_dir: Path, step: int, vis, G: nn.Module, G_ema: nn.Module | None, writer, info) -> None:
    """label | real | fake (G) | fake (G_ema), one row per fixed sample."""
    b, z = vis
    z = z if z.shape[1] else None
    was_training = G.training
    G.eval()
    cols = [b.real, G(b.onehot, b.char, z)]
    if G_ema is not None:
        cols.append(G_ema(b.onehot, b.char, z))
    G.train(was_training)
    colors = torch.from_numpy(info.palette.colorize(b.label.cpu().numpy())).permute(0, 3, 1, 2)
    cols.insert(0, to_signed(colors))
    grid = _grid(cols)
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(run_dir / "images" / f"{step}.png")
    writer.add_image("label|real|fake|fake_ema", grid, step, dataformats="HWC")


def _make_validator(cfg: TrainConfig, info: DatasetInfo, device: torch.device, env: DistEnv):
    """Validation FID on a fixed subset of the val split, or None (no val split, or FID unavailable)."""
    if not cfg.freq_fid:
        return None
    if not info.splits["val"]:
        if env.is_main:
            print("no val split: no validation FID and no 'best' checkpoint (the test split is never used)")
        return None
    from animesis.training.validation import make_fid_validator

    return make_fid_validator(cfg, info, device, env)
