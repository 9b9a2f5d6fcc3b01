"""Checkpoints as folders written atomically: usable weights + config, and the full resume state.

checkpoints/NAME/models/
  140000/                        one folder per saved iteration
    config.json                  model card (configs, class and character names)
    generator_ema.safetensors    the weights to use (BatchNorm statistics refreshed)
    generator.safetensors        raw generator      \
    discriminator.safetensors                        |  resume state
    training_state.safetensors   optimizer moments, RNG states
    training_state.json          step, best metric, optimizer hyper-parameters (written last)
  latest.txt, best.txt           pointers (iteration numbers), replaced atomically

A folder is written under a temporary name and renamed into place, then the pointer is replaced,
so a kill at any moment leaves the previous checkpoint and pointer intact; a failed write (full disk,
read-only folder) raises SaveError and leaves them intact too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from animesis import files
from animesis.errors import ModelLoadError
from animesis.models.pretrained import (
    D_WEIGHTS,
    G_EMA_WEIGHTS,
    G_WEIGHTS,
    ModelCard,
    load_weights,
    save_weights,
    write_card,
)
from animesis.runs import POINTERS, STATE_JSON, models_dir, read_pointer, write_pointer

STATE_TENSORS = "training_state.safetensors"
KEEP_MARKER = "KEEP"  # folders saved every --freq_save_ckpt iterations survive clean-up


def _flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{prefix}.{idx}.{key}"] = val.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict, prefix: str) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith(prefix + "."):
            idx, key = name[len(prefix) + 1 :].split(".", 1)
            state.setdefault(int(idx), {})[key] = val
    for name, val in meta.get("scalars", {}).items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    # JSON turned the betas tuple into a list; give the optimizer back what it saved.
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: Path,
    step: int,
    card: ModelCard,
    *,
    G: nn.Module,
    G_ema: nn.Module | None,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    state: dict[str, Any],
    rng: dict[str, torch.Tensor],
    keep: bool = False,
    pointers: tuple[str, ...] = ("latest",),
) -> Path:
    """Write models/<step>/ and point `pointers` at it; SaveError (previous checkpoint intact) on failure."""
    root = models_dir(run_dir)
    folder = root / str(step)
    tmp = root / f".tmp-{step}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        # Always written afresh: an older folder of this iteration (another branch of history) must not
        # be passed off as this run's weights.
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write_card(card, tmp)
        if G_ema is not None:
            save_weights(G_ema, tmp / G_EMA_WEIGHTS)
        save_weights(G, tmp / G_WEIGHTS)
        save_weights(D, tmp / D_WEIGHTS)
        tg, meta_g = _flatten_optimizer(opt_G, "opt_G")
        td, meta_d = _flatten_optimizer(opt_D, "opt_D")
        tensors = {**tg, **td, **{f"rng.{k}": v.contiguous().cpu() for k, v in rng.items()}}
        save_file(tensors, str(tmp / STATE_TENSORS))
        full_state = {**state, "step": step, "opt_G": meta_g, "opt_D": meta_d}
        (tmp / STATE_JSON).write_text(json.dumps(full_state, indent=2) + "\n", encoding="utf-8")
        if keep:
            (tmp / KEEP_MARKER).touch()
        files.fsync_tree(tmp)
        files.replace_folder(tmp, folder)
        for name in pointers:
            write_pointer(run_dir, name, step)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise files.SaveError(
            f"{folder}: checkpoint not saved ({files.describe_os_error(e)}); the previous one is intact"
        ) from e
    _clean(root)
    return folder


def _clean(root: Path) -> None:
    """Remove folders nothing points at and nobody asked to keep, and stale temporaries."""
    live = {read_pointer(root.parent, n) for n in POINTERS}
    for p in root.iterdir():
        if p.name.startswith(".tmp-") and not p.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.isdigit() and int(p.name) not in live and not (p / KEEP_MARKER).exists():
            # Renamed first: a kill halfway through the deletion must not leave a folder that still
            # looks complete under its iteration's name.
            doomed = root / f".tmp-old-{p.name}-{os.getpid()}"
            try:
                os.replace(p, doomed)
            except OSError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)


def load_networks(folder: Path, *, G: nn.Module, G_ema: nn.Module | None, D: nn.Module) -> None:
    """Load a checkpoint's G, D and G_ema weights in place (G_ema from G when the run had no EMA)."""
    load_weights(G, folder / G_WEIGHTS)
    load_weights(D, folder / D_WEIGHTS)
    if G_ema is not None:
        ema_path = folder / G_EMA_WEIGHTS
        load_weights(G_ema, ema_path if ema_path.exists() else folder / G_WEIGHTS)


def load_training_state(
    folder: Path,
    *,
    G: nn.Module,
    G_ema: nn.Module | None,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load modules and optimizers in place; return (state json, rng tensors). A damaged or
    incomplete folder raises ModelLoadError naming the file."""
    load_networks(folder, G=G, G_ema=G_ema, D=D)
    path = folder / STATE_JSON
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        int(state["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"{path}: unreadable training state ({type(e).__name__}: {e})") from e
    path = folder / STATE_TENSORS
    try:
        tensors = load_file(str(path))
        opt_G.load_state_dict(_unflatten_optimizer(tensors, state["opt_G"], "opt_G"))
        opt_D.load_state_dict(_unflatten_optimizer(tensors, state["opt_D"], "opt_D"))
    except (OSError, SafetensorError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ModelLoadError(f"{path}: unreadable optimizer state ({type(e).__name__}: {e})") from e
    rng = {k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")}
    if not rng:
        raise ModelLoadError(f"{path}: no random-number state in it (damaged or not written by animesis)")
    return state, rng
