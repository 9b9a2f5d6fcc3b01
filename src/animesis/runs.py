"""A run folder (checkpoints/NAME): its saved iterations, the latest/best pointers, and its lock.

checkpoints/NAME/
  models/<step>/        one complete checkpoint per saved iteration (see training.checkpoint)
  models/latest.txt     pointers: iteration numbers, replaced atomically
  models/best.txt
  run.json              the training config; history.jsonl: one line per start and resume
  log.jsonl             one status line per print interval (losses, step, img/s)
  lock                  held by the process training in this folder (PID and host inside)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from animesis import files
from animesis.errors import ModelLoadError, UserError

MODELS_DIR = "models"
STATE_JSON = "training_state.json"  # written last: a folder holding it is complete
POINTERS = ("latest", "best")
LOCK_NAME = "lock"
LOG_NAME = "log.jsonl"
RUN_JSON = "run.json"


def models_dir(run_dir: Path) -> Path:
    return Path(run_dir) / MODELS_DIR


def list_checkpoints(run_dir: Path) -> list[int]:
    """Complete checkpoints of a run, oldest first."""
    root = models_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / STATE_JSON).exists())


def read_pointer(run_dir: Path, name: str) -> int | None:
    path = models_dir(run_dir) / f"{name}.txt"
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: does not hold an iteration number") from e


def write_pointer(run_dir: Path, name: str, step: int) -> None:
    files.write_text(models_dir(run_dir) / f"{name}.txt", f"{step}\n")


def _available(run_dir: Path) -> str:
    steps = list_checkpoints(run_dir)
    return ", ".join(map(str, steps)) if steps else "none"


def resolve_checkpoint(run_dir: Path, which: str | int) -> Path:
    """'latest', 'best' or an iteration number -> that checkpoint folder, or a one-line error.

    'latest' is the newest complete checkpoint: when latest.txt is gone (deleted by hand, a copy
    without it) or behind a newer complete folder (a save killed before its pointer moved, a snapshot
    kept only for 'best'), the newest folder is used, with a note.
    """
    run_dir, which = Path(run_dir), str(which)
    if which in POINTERS:
        step = read_pointer(run_dir, which)
        saved = list_checkpoints(run_dir)
        if which == "latest" and saved and (step is None or step < saved[-1]):
            # A complete folder newer than the pointer: a save killed between renaming its folder into
            # place and moving latest.txt, or a snapshot taken only for 'best'. Both hold the full state.
            why = "is missing" if step is None else f"says {step}"
            print(f"note: {models_dir(run_dir)}/latest.txt {why}: using the newest checkpoint, {saved[-1]}",
                  file=sys.stderr)  # fmt: skip
            step = saved[-1]
        elif step is None:
            if which == "best" and saved:
                raise ModelLoadError(
                    f"{run_dir}: no 'best' checkpoint (the run had no validation FID); saved: {_available(run_dir)}"
                )
            raise ModelLoadError(
                f"{run_dir}: no {which!r} checkpoint: nothing saved yet in {models_dir(run_dir)}"
            )
    elif which.isdigit():
        step = int(which)
    else:
        raise ModelLoadError(f"checkpoint iteration must be 'latest', 'best' or a number, not {which!r}")
    folder = models_dir(run_dir) / str(step)
    if not (folder / STATE_JSON).exists():
        raise ModelLoadError(f"{folder}: no checkpoint at iteration {step}; saved: {_available(run_dir)}")
    return folder


def best_or_latest(run_dir: Path, which: str) -> str:
    """'best' falls back to 'latest' (with a note) for a run that kept no best: it had no val split."""
    if which == "best" and read_pointer(run_dir, "best") is None and list_checkpoints(run_dir):
        print(
            f"note: {run_dir} has no 'best' checkpoint (no validation FID): using 'latest'", file=sys.stderr
        )
        return "latest"
    return which


# --- the lock ----------------------------------------------------------------------------------------


def status_intervals(run_dir: Path) -> list[tuple[int, float]]:
    """(iterations, seconds) of each print interval in log.jsonl, the seconds from its img/s and the
    run's batch size: what a run cost, read after the fact."""
    batch = json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))["batch_size"]
    intervals, prev = [], 0
    for line in (Path(run_dir) / LOG_NAME).read_text(encoding="utf-8").splitlines():
        status = json.loads(line) if line.strip() else {}
        if status.get("img_per_s"):
            n = status["step"] - prev
            intervals.append((n, n * batch / status["img_per_s"]))
            prev = status["step"]
    return intervals


def pid_alive(pid: int) -> bool:
    """Whether a process of this host runs under `pid` (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _read_lock(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _try_create(path: Path, record: dict) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    except OSError as e:
        raise files.SaveError(f"{path}: cannot take the run's lock ({files.describe_os_error(e)})") from e
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(record, f)
    return True


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold checkpoints/NAME/lock while training: a second run with the same --name refuses to start.

    A lock left by a killed run (same host, its PID gone) is taken over with a note.
    """
    run_dir = files.ensure_writable_dir(Path(run_dir), "run folder")
    path = run_dir / LOCK_NAME
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    if not _try_create(path, record):
        held = _read_lock(path)
        pid, host = held.get("pid"), held.get("host")
        if host == record["host"] and isinstance(pid, int) and not pid_alive(pid):
            print(f"note: {path}: taking over the lock of a run that ended without releasing it (PID {pid})",
                  file=sys.stderr)  # fmt: skip
            path.unlink(missing_ok=True)
            if not _try_create(path, record):
                raise UserError(f"{path}: another run took this run folder at the same moment")
        else:
            where = f"PID {pid} on {host}" if pid else "another process"
            raise UserError(
                f"{run_dir}: in use by {where} since {held.get('since', '?')}; wait for it, choose another "
                f"--name, or delete {path} if no run is using it"
            )
    try:
        yield
    finally:
        if _read_lock(path).get("pid") == os.getpid():
            path.unlink(missing_ok=True)
