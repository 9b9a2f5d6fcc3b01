"""The recipe comparison's staged recipes (benchmarks/recipes.py): a first stage trained at a smaller size
starts the run, and its minutes count in the run's training time and in its FID-against-minutes curve."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from datagen import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("recipes", ROOT / "benchmarks" / "recipes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_staged_run_starts_from_its_smaller_first_stage(tmp_path: Path) -> None:
    recipes = load_benchmark()
    data = write_tiny_dataset(tmp_path / "data", size=(32, 32))
    args = argparse.Namespace(
        data=str(data), flags=["--preset", "tiny", "--batch_size", "2"], fid_points=0, fid_samples=2
    )
    ckdir = tmp_path / "runs"
    recipes.train(args, "run", ["--lambda_l1", "20"], 3, 7, str(ckdir), 1, first_stage=(16, 2))

    low, main = ckdir / f"run{recipes.LOW}", ckdir / "run"
    low_cfg = json.loads((low / "run.json").read_text())
    main_cfg = json.loads((main / "run.json").read_text())
    assert low_cfg["image_size"] == [16, 16] and low_cfg["max_steps"] == 2
    assert main_cfg["image_size"] == [32, 32] and main_cfg["max_steps"] == 3
    assert Path(main_cfg["init_from"]) == low / "models" / "2"  # the first stage's last checkpoint
    assert low_cfg["seed"] == main_cfg["seed"] == 7 and main_cfg["loss"]["lambda_l1"] == 20
    assert (main / "models" / "3").is_dir()

    # Both stages' minutes count: in the training time, and before the run's own validation points.
    assert recipes.stage_dirs(main) == [low, main]
    low_s = sum(t for _, t in recipes.status_intervals(low))
    main_s = sum(t for _, t in recipes.status_intervals(main))
    assert low_s > 0 and main_s > 0
    assert recipes.status_seconds(main) == round(low_s + main_s, 1)
    with (main / "log.jsonl").open("a") as f:  # a validation FID at the last step, as --freq_fid writes
        f.write(json.dumps({"step": 3, "val_fid": 90.0, "val_fid_real": 40.0}) + "\n")
    (point,) = recipes.fid_curve(main)
    assert point["step"] == 3 and point["minutes"] == round((low_s + main_s) / 60, 3)

    # A run without a first stage is its own folder alone.
    assert recipes.stage_dirs(low) == [low]
