"""Kill -9 soak: is resuming after a hard kill safe, whenever the kill lands?

Trains a tiny model uninterrupted to S iterations (the reference), then trains the same run again and
SIGKILLs it at random moments, a share of them while a checkpoint is being written (a `models/.tmp-*`
folder is seen), resuming with --continue_train after every kill until it reaches S. After each kill
every `models/<step>/` folder must load; at the end the weights must be bit-identical to the reference.
Prints one JSON object (and writes it to --out).

  OMP_NUM_THREADS=1 python benchmarks/kill_soak.py --kills 20 --steps 60 --out results/kill_soak.json

A kill is classed by what it left on disk (the process is dead, so the folder is frozen): a temporary
folder of the killed process, or a checkpoint folder newer than models/latest.txt, means it landed
while a checkpoint was being written; a lock holding its PID means it was past start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from animesis.errors import UserError
from animesis.runs import pid_alive

ROOT = Path(__file__).resolve().parents[1]
NAME = "soak"
STATE_JSON = "training_state.json"  # written last: a models/<step>/ holding it is complete
WEIGHTS = ("generator.safetensors", "discriminator.safetensors", "generator_ema.safetensors")
POLL_S = 0.001  # a tiny model's checkpoint takes milliseconds to write (more with a slow fsync)
TOOK_OVER = "taking over the lock"


@dataclass(frozen=True)
class SoakConfig:
    """One soak: how many kills, how long the run, how often it saves; everything else is tiny."""

    kills: int = 20
    steps: int = 60  # S: the reference and the killed run both end here
    save_every: int = 3  # --freq_save_latest: frequent saves, so many kills can land in one
    seed: int = 0  # the kill schedule and the training seed
    train_images: int = 16
    batch_size: int = 2
    segment_timeout_s: float = 900.0  # one launch making no progress this long is an error

    def check(self) -> None:
        """Raise UserError naming the first setting the soak cannot run with."""
        for name, low in (("kills", 1), ("steps", 1), ("save_every", 1), ("seed", 0)):
            if getattr(self, name) < low:
                raise UserError(f"--{name} {getattr(self, name)}: must be at least {low}")
        if self.steps < 2 * self.save_every:
            raise UserError(f"--steps {self.steps}: need at least two saves (--save_every {self.save_every})")


@dataclass(frozen=True)
class Timing:
    """Measured on the reference run; sets how long a random kill may wait."""

    startup_s: float  # launch -> first iteration
    interval_s: float  # between two saves
    save_s: float  # temporary folder appears -> latest.txt moves
    wall_s: float


@dataclass(frozen=True)
class Kill:
    """One planned SIGKILL. Modes: "save", inside a checkpoint's write; "rename", as its folder is
    renamed into place, before latest.txt moves; "random", after a random delay (start-up, resume,
    an iteration or a save)."""

    mode: str
    after_step: int  # not before a checkpoint of this iteration (or a later one) is complete


@dataclass
class Counts:
    """What the soak saw; events lists every kill, failure, recovery and corrupt folder in order."""

    kills: int = 0
    kills_during_save: int = 0
    kills_before_pointer: int = 0
    kills_before_lock: int = 0
    failed_resumes: int = 0
    corrupt_checkpoints: int = 0
    locks_left: int = 0
    locks_taken_over: int = 0
    launches: int = 0
    events: list[dict] = field(default_factory=list)


# --- the run folder, read from its documented layout ---------------------------------------------


def models(run_dir: Path) -> Path:
    return run_dir / "models"


def latest(run_dir: Path) -> int | None:
    try:
        return int((models(run_dir) / "latest.txt").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def complete_steps(run_dir: Path) -> list[int]:
    root = models(run_dir)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and (p / STATE_JSON).exists())


def saved(run_dir: Path) -> int:
    """The newest complete checkpoint (0 before any): how far the run got, whatever latest.txt says."""
    steps = complete_steps(run_dir)
    return steps[-1] if steps else 0


SAVE_TMP = re.compile(r"\.tmp-(\d+)-(\d+)")


def temporaries(run_dir: Path, pid: int | None = None) -> list[str]:
    """Checkpoint folders being written (by `pid`, or by anyone): `.tmp-<step>-<pid>`. Folders renamed
    for deletion (`.tmp-old-...`) are clean-up, not a save."""
    try:
        names = os.listdir(models(run_dir))
    except FileNotFoundError:
        return []
    writing = [n for n in names if SAVE_TMP.fullmatch(n)]
    return [n for n in writing if pid is None or n.endswith(f"-{pid}")]


def pointer_lags(run_dir: Path) -> bool:
    """A complete checkpoint newer than latest.txt: a save renamed its folder but never moved the pointer."""
    steps = complete_steps(run_dir)
    return bool(steps) and (latest(run_dir) or 0) < steps[-1]


def lock_pid(run_dir: Path) -> int | None:
    try:
        return json.loads((run_dir / "lock").read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


# --- launching and watching one training process -------------------------------------------------


def train_argv(cfg: SoakConfig, data: Path, checkpoints: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable, "-m", "animesis", "train", "--name", NAME, "--dataroot", str(data),
        "--checkpoints_dir", str(checkpoints), "--preset", "tiny", "--crop_size", "32", "--gpu_ids", "-1",
        "--no_progress", "--freq_fid", "0", "--num_workers", "0", "--bn_refresh_batches", "1",
        "--batch_size", str(cfg.batch_size), "--max_steps", str(cfg.steps), "--freq_print", str(cfg.steps),
        "--freq_save_latest", str(cfg.save_every), "--freq_save_ckpt", str(10 * cfg.steps),
        "--seed", str(cfg.seed), *extra,
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    # One thread, like the rest of a busy machine's jobs; the working tree's package, not an installed one.
    src = str(ROOT / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


@dataclass
class Launch:
    proc: subprocess.Popen
    started: float
    stdout: Path
    stderr: Path

    def stderr_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def launch(argv: list[str], logs: Path, tag: str) -> Launch:
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{tag}.out", logs / f"{tag}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        # Its own process group, so the kill also takes anything it started.
        proc = subprocess.Popen(argv, stdout=fo, stderr=fe, env=child_env(), start_new_session=True)
    return Launch(proc, time.perf_counter(), out, err)


@contextlib.contextmanager
def launched(argv: list[str], logs: Path, tag: str) -> Iterator[Launch]:
    """A launch killed when the soak stops early (an error, Ctrl-C, which its own session never sees)."""
    run = launch(argv, logs, tag)
    try:
        yield run
    finally:
        if run.proc.poll() is None:
            sigkill(run)


def wait_for(run: Launch, condition: Callable[[], bool], timeout_s: float, every: float = POLL_S) -> bool:
    """Poll every `every` seconds until `condition` holds (True) or the process ends (False)."""
    deadline = time.perf_counter() + timeout_s
    while run.proc.poll() is None:
        if condition():
            return True
        if time.perf_counter() > deadline:
            sigkill(run)
            raise UserError(f"{run.stderr}: training made no progress in {timeout_s:.0f} s")
        time.sleep(every)
    return False


def sigkill(run: Launch) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself a moment ago
        os.killpg(run.proc.pid, signal.SIGKILL)
    run.proc.wait()


def measure_reference(cfg: SoakConfig, data: Path, checkpoints: Path, logs: Path) -> Timing:
    """Train uninterrupted to cfg.steps, timing start-up, the save interval and how long a save takes."""
    run_dir = checkpoints / NAME
    seen_tmp: dict[str, float] = {}
    saves: list[tuple[float, float]] = []  # (temporary folder seen, pointer moved)
    pointer = None
    with launched(train_argv(cfg, data, checkpoints, []), logs, "reference") as run:
        while run.proc.poll() is None:
            now = time.perf_counter()
            for name in temporaries(run_dir):
                seen_tmp.setdefault(name, now)
            step = latest(run_dir)
            if step != pointer and step is not None:
                pointer = step
                saves.append((seen_tmp.get(f".tmp-{step}-{run.proc.pid}", now), now))
            time.sleep(POLL_S)
    wall = time.perf_counter() - run.started
    check_exit(run, "reference run")
    starts = [s for s, _ in saves]
    interval = (starts[-1] - starts[0]) / max(len(starts) - 1, 1) if len(starts) > 1 else wall / 2
    durations = sorted(e - s for s, e in saves)
    return Timing(
        startup_s=max(starts[0] - run.started - interval, 0.0) if starts else wall / 2,
        interval_s=interval,
        save_s=durations[len(durations) // 2] if durations else 0.02,
        wall_s=wall,
    )


def check_exit(run: Launch, what: str) -> None:
    if run.proc.returncode != 0 or "Traceback" in run.stderr_text():
        tail = run.stderr_text().strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"{run.stderr}: {what} failed (exit {run.proc.returncode}): {tail[0]}")


# --- the kills -----------------------------------------------------------------------------------


def plan_kills(cfg: SoakConfig, rng: random.Random) -> list[Kill]:
    """Half the kills wait for a save (at least a third must land in one), a third of those for its
    rename; progress points ascend so the run moves on, and several kills may fall on the same point
    (killed again before any progress)."""
    n_during = min(cfg.kills, max(math.ceil(cfg.kills / 3), cfg.kills // 2, 2))
    n_rename = max(1, n_during // 3) if n_during > 1 else 0
    modes = ["rename"] * n_rename + ["save"] * (n_during - n_rename) + ["random"] * (cfg.kills - n_during)
    points = list(range(0, cfg.steps, cfg.save_every))  # iterations latest.txt can hold before the end
    # Neither waits for the final save: a rename kill there leaves a resume with nothing to do (so no
    # run for the later kills), and a save kill that misses it would be lost. A rename kill also comes
    # after the first save, so that there is a pointer to lag behind.
    # A random kill neither: it fires at the latest when the next save short of the final one is done.
    choices = {
        "rename": points[1:-1] or points[:1],
        "save": points[:-1] or points,
        "random": points[:-1] or points,
    }
    kills = [Kill(m, rng.choice(choices[m])) for m in modes]
    rng.shuffle(kills)
    return sorted(kills, key=lambda k: k.after_step)


def final_save_started(run_dir: Path, run: Launch, steps: int) -> bool:
    return f".tmp-{steps}-{run.proc.pid}" in temporaries(run_dir, run.proc.pid)


def next_save(cfg: SoakConfig, done: int) -> int | None:
    """The first save after iteration `done` short of the final one; None when only the final is left."""
    return next((p for p in range(cfg.save_every, cfg.steps, cfg.save_every) if p > done), None)


def strike(
    run: Launch, kill: Kill, run_dir: Path, timing: Timing, cfg: SoakConfig, rng: random.Random
) -> bool:
    """Kill `run` as `kill` plans; False if it finished first."""
    if saved(run_dir) >= kill.after_step:
        spread = timing.startup_s + 1.5 * timing.interval_s  # from launch: may land in start-up or resume
    elif wait_for(run, lambda: saved(run_dir) >= kill.after_step, cfg.segment_timeout_s, every=0.01):
        spread = 1.5 * timing.interval_s
    else:
        return False
    if kill.mode == "save":
        return strike_save(run, run_dir, timing, cfg, rng)
    if kill.mode == "rename":
        return strike_rename(run, run_dir, cfg)
    # At the latest when the next save short of the final one is complete, so every planned kill
    # happens: a complete folder stays, where the final save's temporary folder can come and go
    # between two polls on a loaded machine (or the run outpaces the reference run's timing).
    nxt = next_save(cfg, saved(run_dir))
    if nxt is None:  # a resume with only the final save left: within its start-up
        spread = min(spread, timing.startup_s)
    deadline = time.perf_counter() + rng.uniform(0, spread)
    fire = lambda: (
        time.perf_counter() >= deadline
        or (nxt is not None and saved(run_dir) >= nxt)
        or final_save_started(run_dir, run, cfg.steps)
    )
    if not wait_for(run, fire, cfg.segment_timeout_s + spread):
        return False
    sigkill(run)
    return True


def strike_rename(run: Launch, run_dir: Path, cfg: SoakConfig) -> bool:
    """Kill the moment a checkpoint's folder is renamed into place, before latest.txt points at it. When
    the pointer moved first (the poll came late), try the next save, unless that is the final one: then
    kill at once (in the clean-up after the save), so that the kill is not lost."""
    pid = run.proc.pid
    while wait_for(run, lambda: bool(temporaries(run_dir, pid)), cfg.segment_timeout_s):
        before, names = latest(run_dir), temporaries(run_dir, pid)
        if not wait_for(run, lambda: not temporaries(run_dir, pid), cfg.segment_timeout_s):
            return False
        step = int(SAVE_TMP.fullmatch(names[0]).group(1)) if names else cfg.steps
        if latest(run_dir) == before or step + cfg.save_every >= cfg.steps:
            sigkill(run)
            return True
    return False


def strike_save(run: Launch, run_dir: Path, timing: Timing, cfg: SoakConfig, rng: random.Random) -> bool:
    """Kill while a checkpoint is being written: a random part of a save's duration after its temporary
    folder appears, or at once when that folder is renamed into place (the pointer comes next). A save
    that ended unseen (a quick one) is passed over for the next."""
    pid = run.proc.pid
    while wait_for(run, lambda: bool(temporaries(run_dir, pid)), cfg.segment_timeout_s):
        before = latest(run_dir)
        deadline = time.perf_counter() + rng.uniform(0, timing.save_s)
        fire = lambda end=deadline: time.perf_counter() >= end or not temporaries(run_dir, pid)
        if not wait_for(run, fire, cfg.segment_timeout_s):
            return False
        if temporaries(run_dir, pid) or latest(run_dir) == before:  # still writing or not yet pointed at
            sigkill(run)
            return True
    return False


def classify(run_dir: Path, pid: int, saved_before: int) -> dict:
    """Where a kill landed, read from what it left behind."""
    writing = bool(temporaries(run_dir, pid))
    pointing = not writing and pointer_lags(run_dir) and saved(run_dir) > saved_before
    return {
        "during_save": writing or pointing,
        "before_pointer": pointing,  # its folder in place, latest.txt not yet moved
        "lock_left": lock_pid(run_dir) == pid,
        "lock_file": (run_dir / "lock").exists(),
        "latest": latest(run_dir),
    }


# --- checks --------------------------------------------------------------------------------------


def load_error(folder: Path) -> str | None:
    """Why `folder` does not load as a checkpoint (resume state and usable generator), or None."""
    from animesis.models.discriminator import Discriminator
    from animesis.models.pretrained import from_pretrained
    from animesis.training.checkpoint import load_training_state

    try:
        G, card = from_pretrained(folder, use_ema=False)
        G_ema, _ = from_pretrained(folder)
        if card.discriminator is None:
            return f"{folder}: config.json has no discriminator"
        D = Discriminator(card.discriminator)
        opt_G, opt_D = torch.optim.Adam(G.parameters()), torch.optim.Adam(D.parameters())
        state, _ = load_training_state(folder, G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D)
    except Exception as e:  # whatever the reason, the folder does not load
        return f"{type(e).__name__}: {e}"
    if int(state["step"]) != int(folder.name):
        return f"{folder}: holds iteration {state['step']}"
    return None


def check_checkpoints(run_dir: Path, checked: dict[tuple[int, int], str | None]) -> list[dict]:
    """Load every models/<step>/ not checked before (a folder rewritten later is checked again)."""
    root = models(run_dir)
    bad = []
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        if not p.name.isdigit():
            continue
        key = (int(p.name), p.stat().st_ino)
        if key not in checked:
            checked[key] = load_error(p)
            if checked[key] is not None:
                bad.append({"step": int(p.name), "error": checked[key], "latest": latest(run_dir)})
    return bad


def identical_weights(a: Path, b: Path) -> tuple[bool, list[str]]:
    """Every tensor of the three weight files equal, bit for bit; the differing ones otherwise."""
    differ = []
    for name in WEIGHTS:
        ta, tb = load_file(str(a / name)), load_file(str(b / name))
        if ta.keys() != tb.keys():
            differ.append(f"{name}: other tensor names")
            continue
        differ += [f"{name}:{k}" for k in ta if not torch.equal(ta[k], tb[k])]
    return not differ, differ


# --- the soak ------------------------------------------------------------------------------------


def restart_args(run_dir: Path) -> list[str]:
    """--continue_train once a checkpoint exists; a run killed before its first save starts afresh."""
    return ["--continue_train"] if complete_steps(run_dir) else []


def recovery(run_dir: Path, stderr: str) -> list[str] | None:
    """What a user would do after a refused resume, or None when there is nothing sensible to try."""
    if pointer_lags(run_dir):  # resume from the newest complete checkpoint, named explicitly
        return ["--continue_train", "--which_iter", str(complete_steps(run_dir)[-1])]
    pid = lock_pid(run_dir)
    if "in use by" in stderr and (pid is None or not pid_alive(pid)):
        (run_dir / "lock").unlink(missing_ok=True)  # what the message says to do when no run uses it
        return restart_args(run_dir)
    return None


def record_kill(counts: Counts, kill: Kill, run: Launch, run_dir: Path, saved_before: int) -> None:
    where = classify(run_dir, run.proc.pid, saved_before)
    counts.kills += 1
    counts.kills_during_save += where["during_save"]
    counts.kills_before_pointer += where["before_pointer"]
    counts.kills_before_lock += not where["lock_left"]
    counts.locks_left += where["lock_left"]  # a lock of an earlier kill still there is not counted twice
    counts.events.append({"kill": counts.kills, "mode": kill.mode, **where})


def record_failure(counts: Counts, run: Launch) -> None:
    counts.failed_resumes += 1
    lines = run.stderr_text().strip().splitlines() or ["(no output)"]
    counts.events.append({"failed": str(run.stderr.name), "exit": run.proc.returncode, "stderr": lines[-1]})


def soak(cfg: SoakConfig, data: Path, checkpoints: Path, logs: Path, timing: Timing) -> Counts:
    """Train to cfg.steps through the planned kills, resuming after each; count what went wrong."""
    rng = random.Random(cfg.seed)
    plan, counts, checked = plan_kills(cfg, rng), Counts(), {}
    run_dir, extra = checkpoints / NAME, []
    while True:
        saved_before = saved(run_dir)
        with launched(train_argv(cfg, data, checkpoints, extra), logs, f"{counts.launches:02d}") as run:
            counts.launches += 1
            killed = bool(plan) and strike(run, plan[0], run_dir, timing, cfg, rng)
            if not killed:
                wait_for(run, lambda: False, cfg.segment_timeout_s, every=0.05)  # until it ends by itself
        counts.locks_taken_over += TOOK_OVER in run.stderr_text()
        if killed:
            record_kill(counts, plan.pop(0), run, run_dir, saved_before)
        failed = "Traceback" in run.stderr_text() or (not killed and run.proc.returncode != 0)
        if failed:
            record_failure(counts, run)
        bad = check_checkpoints(run_dir, checked)
        counts.corrupt_checkpoints += len(bad)
        counts.events += [{"corrupt": b} for b in bad]
        if killed:
            extra = restart_args(run_dir)
        elif not failed:
            return counts  # reached cfg.steps
        else:
            fix = recovery(run_dir, run.stderr_text())
            # A recovery resumes, so only a kill can make it fail again: more failures than kills is a loop.
            if fix is None or counts.failed_resumes > cfg.kills:
                return counts  # nothing sensible left to try: reported as not identical
            counts.events.append({"recovery": " ".join(fix)})
            extra = fix


def make_dataset(root: Path, cfg: SoakConfig) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from datagen import write_tiny_dataset

    return write_tiny_dataset(root, n_train=cfg.train_images, n_val=0, n_test=4, num_characters=3)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()})"


def run_soak(cfg: SoakConfig, workdir: Path) -> dict:
    """The whole benchmark in `workdir` (dataset, reference, killed run, logs): the report."""
    cfg.check()
    t0 = time.perf_counter()
    data = make_dataset(workdir / "data", cfg)
    timing = measure_reference(cfg, data, workdir / "reference", workdir / "logs")
    counts = soak(cfg, data, workdir / "killed", workdir / "logs", timing)
    final = [workdir / c / NAME / "models" / str(cfg.steps) for c in ("reference", "killed")]
    reached = saved(workdir / "killed" / NAME) == cfg.steps and all(p.is_dir() for p in final)
    same, differ = identical_weights(*final) if reached else (False, [f"did not reach {cfg.steps}"])
    return {
        "benchmark": "kill_soak",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "config": asdict(cfg),
        **{k: v for k, v in asdict(counts).items() if k != "events"},
        "identical": same,
        "differing_tensors": differ[:10],
        "reference_timing": {k: round(v, 4) for k, v in asdict(timing).items()},
        "wall_s": round(time.perf_counter() - t0, 1),
        "events": counts.events,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=SoakConfig.kills, help="SIGKILLs to deliver")
    p.add_argument("--steps", type=int, default=SoakConfig.steps, help="iterations S of both runs")
    p.add_argument("--save_every", type=int, default=SoakConfig.save_every, help="--freq_save_latest")
    p.add_argument("--seed", type=int, default=SoakConfig.seed, help="kill schedule and training seed")
    p.add_argument("--out", type=Path, default=None, help="also write the JSON report here")
    p.add_argument("--workdir", type=Path, default=None, help="keep the runs and logs here (empty folder)")
    return p.parse_args(argv)


def prepare_workdir(path: Path | None) -> Path:
    if path is None:
        return Path(tempfile.mkdtemp(prefix="kill-soak-"))
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path}: --workdir must be an empty folder (or not exist yet)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_writable(out: Path) -> None:
    """Fail before a run of minutes, not after it, when the report could not be written."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out}: cannot write the report there ({e.strerror or e})") from e
    if out.is_dir():
        raise UserError(f"{out}: is a folder; --out takes a file name")


def write_report(report: dict, out: Path | None) -> None:
    text = json.dumps(report, indent=2)
    print(text)
    if out is None:
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as e:
        raise UserError(f"{out}: cannot write the report ({e.strerror or e})") from e


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = SoakConfig(kills=args.kills, steps=args.steps, save_every=args.save_every, seed=args.seed)
        cfg.check()  # before any folder is made
        if args.out is not None:
            check_writable(args.out)
        workdir = prepare_workdir(args.workdir)
        try:
            report = run_soak(cfg, workdir)
        finally:
            if args.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
        write_report(report, args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the training it had started is killed)", file=sys.stderr)
        return 130
    ok = report["identical"] and not report["failed_resumes"] and not report["corrupt_checkpoints"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
