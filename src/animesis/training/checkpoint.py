"""Checkpoints as folders written atomically: usable weights + config, and the full resume state.

checkpoints/NAME/models/
  140000/                        one folder per saved iteration
    config.json                  model card (configs, class and character names)
    generator_ema.safetensors    the weights to use (BatchNorm statistics refreshed)
    generator.safetensors        raw generator      \
    discriminator.safetensors                        |  resume state
    training_state.safetensors   optimizer moments, RNG states
    training_state.json          step, best metric, optimizer hyper-parameters
  latest.txt, best.txt           pointers (iteration numbers), replaced atomically

A folder is written under a temporary name and renamed into place, then the pointer is replaced,
so a kill at any moment leaves the previous checkpoint and pointer intact.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from animesis.models.pretrained import (
    D_WEIGHTS,
    G_EMA_WEIGHTS,
    G_WEIGHTS,
    ModelCard,
    ModelLoadError,
    load_weights,
    save_weights,
    write_card,
)

MODELS_DIR = "models"
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
KEEP_MARKER = "KEEP"  # folders saved every --freq_save_ckpt iterations survive clean-up
POINTERS = ("latest", "best")


def models_dir(run_dir: Path) -> Path:
    return Path(run_dir) / MODELS_DIR


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    """Write models/<step>/ (unless it exists already) and point `pointers` at it."""
    root = models_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / str(step)
    if not (folder / STATE_JSON).exists():
        tmp = root / f".tmp-{step}-{os.getpid()}"
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
        _fsync_tree(tmp)
        if folder.exists():  # an incomplete folder from an interrupted save of the same step
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    elif keep:
        (folder / KEEP_MARKER).touch()
    for name in pointers:
        write_text_atomic(root / f"{name}.txt", f"{step}\n")
    _clean(root)
    return folder


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


def read_pointer(run_dir: Path, name: str) -> int | None:
    path = models_dir(run_dir) / f"{name}.txt"
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise ModelLoadError(f"{path}: does not hold an iteration number") from e


def best_or_latest(run_dir: Path, which: str) -> str:
    """'best' falls back to 'latest' (with a note) for a run that kept no best: it had no val split."""
    if (
        which == "best"
        and read_pointer(run_dir, "best") is None
        and read_pointer(run_dir, "latest") is not None
    ):
        print(
            f"note: {run_dir} has no 'best' checkpoint (no validation split): using 'latest'", file=sys.stderr
        )
        return "latest"
    return which


def list_checkpoints(run_dir: Path) -> list[int]:
    root = models_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / STATE_JSON).exists())


def _clean(root: Path) -> None:
    """Remove folders nothing points at and nobody asked to keep, and stale temporaries."""
    live = {read_pointer(root.parent, n) for n in POINTERS}
    for p in root.iterdir():
        if (p.name.startswith(".tmp-") and not p.name.endswith(f"-{os.getpid()}")) or (
            p.name.isdigit() and int(p.name) not in live and not (p / KEEP_MARKER).exists()
        ):
            shutil.rmtree(p, ignore_errors=True)


def resolve_checkpoint(run_dir: Path, which: str | int) -> Path:
    """'latest', 'best' or an iteration number -> the checkpoint folder, or a clear error."""
    run_dir = Path(run_dir)
    which = str(which)
    if which in POINTERS:
        step = read_pointer(run_dir, which)
        if step is None:
            hint = "no validation split, so no best" if which == "best" else "nothing saved yet"
            raise ModelLoadError(f"{run_dir}: no '{which}' checkpoint ({hint}); saved: {_available(run_dir)}")
    elif which.isdigit():
        step = int(which)
    else:
        raise ModelLoadError(f"checkpoint iteration must be 'latest', 'best' or a number, not {which!r}")
    folder = models_dir(run_dir) / str(step)
    if not (folder / STATE_JSON).exists():
        raise ModelLoadError(f"{folder}: no checkpoint at iteration {step}; saved: {_available(run_dir)}")
    return folder


def _available(run_dir: Path) -> str:
    steps = list_checkpoints(run_dir)
    return ", ".join(map(str, steps)) if steps else "none"


def load_training_state(
    folder: Path,
    *,
    G: nn.Module,
    G_ema: nn.Module | None,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load modules and optimizers in place; return (state json, rng tensors)."""
    load_weights(G, folder / G_WEIGHTS)
    load_weights(D, folder / D_WEIGHTS)
    if G_ema is not None:
        ema_path = folder / G_EMA_WEIGHTS
        load_weights(G_ema, ema_path if ema_path.exists() else folder / G_WEIGHTS)
    state = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / STATE_TENSORS))
    opt_G.load_state_dict(_unflatten_optimizer(tensors, state["opt_G"], "opt_G"))
    opt_D.load_state_dict(_unflatten_optimizer(tensors, state["opt_D"], "opt_D"))
    rng = {k[len("rng.") :]: v for k, v in tensors.items() if k.startswith("rng.")}
    return state, rng
