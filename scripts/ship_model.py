"""Copy a trained run's EMA generator into the package (src/animesis/shipped/) with its model card.

  python scripts/ship_model.py --run checkpoints/shipped_128 --metrics results/shipped_128/metrics.json \
      --command "bash scripts/train_shipped.sh" --out src/animesis/shipped
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
from pathlib import Path

from animesis.export import BESIDE_WEIGHTS, export_onnx
from animesis.inference import Painter
from animesis.models.pretrained import CONFIG_NAME, G_EMA_WEIGHTS, read_card
from animesis.runs import resolve_checkpoint, status_intervals

MAX_BYTES = 25 * 2**20


def training_cost(run: Path) -> str:
    """Iterations and wall-clock from the run's log (img/s per status line), and those of the run its
    weights started from (--init_from), if any."""
    intervals = status_intervals(run)
    if not intervals:
        return "unknown"
    steps, seconds = sum(n for n, _ in intervals), sum(t for _, t in intervals)
    saved = json.loads((run / "run.json").read_text())
    size = "x".join(map(str, saved["image_size"][::-1]))
    text = f"{steps} iterations at {size}, about {seconds / 60:.0f} minutes of training (status lines' img/s)"
    init = saved.get("init_from")
    if init:  # checkpoints/BASE/models/ITER
        text += f", after {training_cost(Path(init).parent.parent)} whose weights it started from"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--iter", default="latest")
    ap.add_argument("--metrics", required=True, help="`animesis eval --json` of this run")
    ap.add_argument("--command", required=True, help="the exact training command, for the card")
    ap.add_argument("--out", default="src/animesis/shipped")
    ap.add_argument("--notes", default=None, help="a Markdown file appended to the card (its limits)")
    args = ap.parse_args()
    folder = resolve_checkpoint(Path(args.run), args.iter)
    weights = folder / G_EMA_WEIGHTS
    if weights.stat().st_size > MAX_BYTES:
        raise SystemExit(
            f"{weights}: {weights.stat().st_size / 2**20:.1f} MB is over the 25 MB the package carries"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, G_EMA_WEIGHTS):
        shutil.copyfile(folder / name, out / name)
    # The graph `animesis paint` runs with onnxruntime (faster than torch on the CPU), from these weights.
    export_onnx(Painter.load(out, device="cpu"), out / BESIDE_WEIGHTS)
    total = sum(f.stat().st_size for f in out.iterdir())
    if total > MAX_BYTES:
        raise SystemExit(f"{out}: {total / 2**20:.1f} MB is over the 25 MB the package carries")
    card = read_card(out)
    metrics = json.loads(Path(args.metrics).read_text())["metrics"]
    rows = "\n".join(
        f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in metrics.items()
    )
    H, W = card.image_size
    text = f"""# The built-in model

The model `animesis paint`, `animesis generate` and `animesis export` use when no `--checkpoint` is given.

- Trained on the built-in dataset (`animesis dataset synth`, nine characters) at {W}x{H}, iteration {card.step},
  with: `{args.command}`.
- Training cost: {training_cost(Path(args.run))}; {platform.machine()} CPU, {datetime.date.today().isoformat()}.
- Characters: {", ".join(card.character_names)}. Classes: {", ".join(card.palette.names)}.
- Files: `{CONFIG_NAME}` (configs, palette, names), `{G_EMA_WEIGHTS}` (the EMA generator) and
  `{BESIDE_WEIGHTS}` (the same weights as an ONNX graph for onnxruntime, which `animesis paint` uses),
  nothing pickled; {total / 2**20:.1f} MB in all.

## Its scores (`animesis eval` on the test split, with the real-vs-real reference)

| metric | value |
|---|---|
{rows}
"""
    if args.notes:
        text += "\n" + Path(args.notes).read_text(encoding="utf-8")
    (out / "README.md").write_text(text, encoding="utf-8")
    print(f"shipped {folder} -> {out}")


if __name__ == "__main__":
    main()
