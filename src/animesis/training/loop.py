"""The training loop: set up -> (D step, G step, EMA) per iteration -> periodic ticks."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from animesis.config import TrainConfig, save_json
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import DatasetInfo
from animesis.errors import UserError
from animesis.models.pretrained import ModelCard
from animesis.training import checkpoint as ckpt
from animesis.training.distributed import DistEnv, InfiniteSampler, barrier, init_distributed, shutdown
from animesis.training.ema import refresh_batchnorm
from animesis.training.step import build_train_step, to_device_batch


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
    cols = [((r.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu() for r in rows]
    grid = torch.cat([torch.cat(list(c), dim=1) for c in cols], dim=2)  # (3, B*H, cols*W)
    return grid.permute(1, 2, 0).numpy()


# --- the loop ------------------------------------------------------------------------------------


def train(cfg: TrainConfig, info: DatasetInfo, *, progress: bool = True) -> Path:
    """Train G and D on `info`'s train split; checkpoints and logs go to cfg.run_dir. Returns run_dir."""
    env = init_distributed(cfg.device)
    try:
        return _train(cfg, info, env, progress)
    finally:
        shutdown(env)


def _train(cfg: TrainConfig, info: DatasetInfo, env: DistEnv, progress: bool) -> Path:
    device, run_dir = env.device, cfg.run_dir
    N = info.num_classes
    if cfg.batch_size % env.world_size:
        raise TrainingError(
            f"batch size {cfg.batch_size} must be a multiple of the {env.world_size} processes"
        )
    local_batch = cfg.batch_size // env.world_size
    train_samples = info.splits["train"]
    steps = total_steps(cfg, len(train_samples))
    ts = build_train_step(cfg, env, info.palette.names)
    G, D, G_ema, opt_G, opt_D = ts.G, ts.D, ts.G_ema, ts.opt_G, ts.opt_D
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * env.world_size + env.rank + 1)

    # Resume.
    step, best_fid, best_step = 0, math.inf, None
    if cfg.continue_train:
        folder = ckpt.resolve_checkpoint(run_dir, cfg.which_iter)
        state, rng = ckpt.load_training_state(folder, G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D)
        step = int(state["step"])
        best_fid, best_step = state.get("best_fid") or math.inf, state.get("best_step")
        if state.get("world_size", 1) == env.world_size:
            gen.set_state(rng[f"noise.{env.rank}"])  # another process count draws other streams anyway
        if env.is_main:
            print(f"resumed from {folder} at iteration {step}")
    if step >= steps and env.is_main:
        print(f"nothing to do: iteration {step} >= {steps} iterations asked for")

    dataset = SegmentationDataset(train_samples, info.palette, cfg.image_size, cache=cfg.cache_images)
    sampler = InfiniteSampler(
        len(dataset), rank=env.rank, world_size=env.world_size, seed=cfg.seed, start=step * cfg.batch_size
    )
    batches: Iterator = iter(_loader(dataset, sampler, local_batch, cfg, device))
    # Logging (rank 0 only).
    writer, log_file = None, None
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_json(cfg, run_dir / "run.json")
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
        log_file = open(run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    vis = _vis_batch(info, cfg, device, N)
    validator = _make_validator(cfg, info, device, env)

    def bn_batches() -> Iterator[tuple]:
        """Deterministic G inputs for re-estimating G_ema's BatchNorm statistics (no training RNG used)."""
        n = min(len(dataset), cfg.bn_refresh_batches * local_batch)
        loader = DataLoader(Subset(dataset, range(n)), batch_size=local_batch, num_workers=0)
        g = torch.Generator(device=device)
        g.manual_seed(cfg.seed + 12345)
        for raw in loader:
            b = to_device_batch(raw, device, cfg, N, None)
            z = torch.randn(b["char"].shape[0], cfg.generator.z_dim, device=device, generator=g)
            yield (b["onehot"], b["char"], z)

    def snapshot(pointers: tuple[str, ...], keep: bool) -> None:
        rng = _rng_states(gen, env)
        if env.is_main:
            ckpt.save_checkpoint(
                run_dir,
                step,
                make_card(cfg, info, step),
                G=G,
                G_ema=G_ema,
                D=D,
                opt_G=opt_G,
                opt_D=opt_D,
                state={
                    "best_fid": None if math.isinf(best_fid) else best_fid,
                    "best_step": best_step,
                    "world_size": env.world_size,
                    "batch_size": cfg.batch_size,
                },
                rng=rng,
                keep=keep,
                pointers=pointers,
            )
        barrier(env)

    bar = tqdm(
        total=steps, initial=step, disable=not (progress and env.is_main), dynamic_ncols=True, unit="it"
    )
    sums: dict[str, torch.Tensor] = {}
    n_sum, t_tick, step_tick = 0, time.perf_counter(), step
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    while step < steps:
        b = to_device_batch(next(batches), device, cfg, N, gen if cfg.flip else None)
        terms = ts(b, gen, step=step)
        step += 1
        bar.update(1)

        for k, v in terms.items():
            sums[k] = sums.get(k, 0) + v.detach()
        n_sum += 1
        if step % max(1, min(cfg.freq_print, 50)) == 0 or step == steps:
            bar.set_postfix(
                {k: f"{v.item() / n_sum:.3f}" for k, v in sums.items() if k in ("D_real", "D_fake", "G_adv")}
            )

        last = step == steps
        do_print = step % cfg.freq_print == 0 or last
        do_fid = validator is not None and (step % cfg.freq_fid == 0 or last)
        do_save = step % cfg.freq_save_latest == 0 or step % cfg.freq_save_ckpt == 0 or last
        if G_ema is not None and (do_print or do_fid or do_save):
            refresh_batchnorm(G_ema, bn_batches())
        if do_print:
            elapsed = time.perf_counter() - t_tick
            stats = {k: v.item() / n_sum for k, v in sums.items()}
            stats.update(
                step=step,
                epoch=step * cfg.batch_size / len(train_samples),
                img_per_s=(step - step_tick) * cfg.batch_size / max(elapsed, 1e-9),
            )
            if device.type == "cuda":
                stats["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            sums, n_sum = {}, 0
            if env.is_main:
                _log(stats, writer, log_file, bar)
                _save_grid(run_dir, step, vis, G, G_ema, writer, info)
        if do_fid:
            fid = validator(G_ema if G_ema is not None else G)
            if env.is_main:
                _log({"step": step, "val_fid": fid}, writer, log_file, bar)
            if fid < best_fid:
                best_fid, best_step = fid, step
                snapshot(("best",), keep=False)
        if do_save:
            snapshot(("latest",), keep=step % cfg.freq_save_ckpt == 0)
        if do_print:
            t_tick, step_tick = time.perf_counter(), step  # speed excludes the tick's own work
    bar.close()
    if env.is_main:
        if writer is not None:
            writer.close()
        if log_file is not None:
            log_file.close()
    return run_dir


def _log(stats: dict[str, Any], writer, log_file, bar) -> None:
    line = json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in stats.items()})
    bar.write(line) if not bar.disable else print(line, flush=True)
    log_file.write(line + "\n")
    log_file.flush()
    for k, v in stats.items():
        if k != "step" and isinstance(v, (int, float)):
            writer.add_scalar(k, v, stats["step"])


def _vis_batch(info: DatasetInfo, cfg: TrainConfig, device: torch.device, N: int) -> dict[str, torch.Tensor]:
    """A fixed batch (val split if any) and fixed noise for the image grids."""
    samples = info.splits["val"] or info.splits["train"]
    ds = SegmentationDataset(samples[: min(4, len(samples))], info.palette, cfg.image_size)
    raw = next(iter(DataLoader(ds, batch_size=len(ds))))
    b = to_device_batch(raw, device, cfg, N, None)
    g = torch.Generator(device=device)
    g.manual_seed(cfg.seed + 999)
    b["z"] = torch.randn(len(ds), cfg.generator.z_dim, device=device, generator=g)
    return b


@torch.no_grad()
def _save_grid(run_dir: Path, step: int, vis, G: nn.Module, G_ema: nn.Module | None, writer, info) -> None:
    """label | real | fake (G) | fake (G_ema), one row per fixed sample."""
    was_training = G.training
    G.eval()
    z = vis["z"] if vis["z"].shape[1] else None
    cols = [vis["real"], G(vis["onehot"], vis["char"], z)]
    if G_ema is not None:
        cols.append(G_ema(vis["onehot"], vis["char"], z))
    G.train(was_training)
    colors = torch.from_numpy(info.palette.colorize(vis["label"].cpu().numpy())).permute(0, 3, 1, 2)
    cols.insert(0, colors.float().div(127.5).sub(1))
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
