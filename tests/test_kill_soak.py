"""A short kill -9 soak (benchmarks/kill_soak.py): training SIGKILLed three times (while a checkpoint is
being written, as its folder is renamed into place before latest.txt moves, and at random) resumes
every time, leaves no checkpoint that fails to load, and ends bit-identical to an uninterrupted run."""

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kill_soak", ROOT / "benchmarks" / "kill_soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_killed_training_resumes_to_identical_weights(tmp_path: Path) -> None:
    soak = load_benchmark()
    # seed 7 plans the kill inside a save first (then a random one, then one at a rename), so it has
    # every save of the run to land in: on a loaded machine a quick save can end between two polls, and
    # with seed 1 its only chance was the final save
    report = soak.run_soak(soak.SoakConfig(kills=3, steps=12, save_every=3, seed=7), tmp_path)
    events = "\n".join(json.dumps(e) for e in report["events"])  # shown in full when one fails
    assert report["failed_resumes"] == 0, events
    assert report["corrupt_checkpoints"] == 0, events
    assert report["kills"] == 3, events
    assert report["kills_during_save"] >= 1, events
    assert report["locks_taken_over"] == report["locks_left"], events  # each stale lock was taken over
    assert report["identical"], report["differing_tensors"]
