"""Resuming a run honestly: the saved training config wins, a short list of settings may change, and
every start and resume is recorded.

A resumed run continues the saved run.json. A flag given again with another value is applied only
when it cannot change what the run computes (how long, how often to log and save, how fast); any
other difference is refused with one message listing each flag, its saved and its new value.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

from animesis import files
from animesis.config import TrainConfig, from_dict, to_dict
from animesis.errors import ModelLoadError, UserError
from animesis.runs import RUN_JSON, list_checkpoints, resolve_checkpoint

HISTORY = "history.jsonl"

# Settings a resume may change: length, logging, saving, speed, and where the files are.
SAFE = frozenset(
    {
        "max_steps", "num_epochs", "freq_print", "freq_save_latest", "freq_save_ckpt", "freq_fid",
        "fid_samples", "num_workers", "cache_images", "device", "precision", "compile", "channels_last",
        "dataroot", "class_file", "checkpoints_dir", "continue_train", "which_iter",
    }
)  # fmt: skip


class ResumeError(UserError):
    """A resume that would not continue the saved run."""


def load_run_config(run_dir: Path) -> TrainConfig | None:
    """The run's saved training config, or None for a run saved before run.json was read back."""
    path = Path(run_dir) / RUN_JSON
    if not path.exists():
        return None
    try:
        return from_dict(TrainConfig, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ModelLoadError(f"{path}: unreadable training config ({e})") from e


def _flat(cfg: TrainConfig) -> dict[str, Any]:
    """Dotted keys: generator.base_channels, loss.lambda_vgg, ... (the units a flag changes)."""
    out: dict[str, Any] = {}
    for key, value in to_dict(cfg).items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def merge(saved: TrainConfig, new: TrainConfig, asked: set[str]) -> tuple[TrainConfig, list[str]]:
    """The config a resume trains with: `saved`, plus the `asked` (explicitly given) safe changes.

    `asked` holds dotted config keys the command line set explicitly; differences in keys nobody
    asked about are flags left at their defaults, so the saved value stays. Returns the config and
    the changes applied, as 'key: old -> new' lines.
    """
    old, cur = _flat(saved), _flat(new)
    differ = [k for k in cur if k in asked and old.get(k) != cur[k]]
    refused = [k for k in differ if k.split(".")[0] not in SAFE]
    if refused:
        lines = "; ".join(f"{k}: saved {old.get(k)!r}, now {cur[k]!r}" for k in refused)
        raise ResumeError(
            f"{saved.run_dir}: --continue_train cannot change {lines}. Resume without these flags, "
            "or start a new run with another --name"
        )
    changes = {k.split(".")[0] for k in differ}
    merged = dataclasses.replace(
        saved, **{k: getattr(new, k) for k in changes | {"continue_train", "which_iter"}}
    )
    return merged, [
        f"{k}: {old.get(k)!r} -> {cur[k]!r}" for k in differ if k not in ("continue_train", "which_iter")
    ]


def check_resume_point(cfg: TrainConfig) -> Path:
    """The folder to resume from; refuses an earlier point of a run that has later checkpoints, whose
    saves would otherwise replace that history under the same iteration numbers."""
    folder = resolve_checkpoint(cfg.run_dir, cfg.which_iter)
    step = int(folder.name)
    later = [s for s in list_checkpoints(cfg.run_dir) if s > step]
    if later:
        shown = ", ".join(map(str, later))
        raise ResumeError(
            f"{cfg.run_dir}: resuming at iteration {step} would overwrite its later checkpoints ({shown}). "
            f"To branch from {step}, copy {folder} into checkpoints/NEW/models/ and resume with "
            f"--name NEW --continue_train --which_iter {step}"
        )
    return folder


def record_start(cfg: TrainConfig, step: int, changes: list[str], argv: list[str] | None) -> None:
    """Write run.json (the config this start trains with) and append the start to history.jsonl."""
    run_dir = files.ensure_writable_dir(cfg.run_dir, "run folder")
    files.write_json(run_dir / RUN_JSON, to_dict(cfg))
    entry = {
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "event": "resume" if cfg.continue_train else "start",
        "step": step,
        "changes": changes,
        "argv": argv,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    with open(run_dir / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
