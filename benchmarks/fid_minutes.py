"""FID against training minutes, per recipe, from the outputs of benchmarks/recipes.py.

Each output is one budget (e.g. half and all of the CPU demo's); a recipe's minutes are its calibrated
training time on the quiet machine (steps x seconds per step), not the wall-clock of runs that shared
it. Points are the mean over seeds, bars the min..max, and the real-vs-real FID at the same N is drawn
as the floor. Prints the points as JSON and writes the plot (needs matplotlib: pip install matplotlib).

  python benchmarks/fid_minutes.py results/recipes_half.json results/recipes_full.json \
      --recipes default vgg style_vgg3_nolabelmix --out docs/images/fid_minutes.png

With --curves, the points are instead the validation FIDs each run scored while it trained
(`recipes.py --fid_points K`) against its measured training minutes (status lines, scoring left out):

  python benchmarks/fid_minutes.py results/recipes_paired.json --curves --recipes default vgg3_l1_nolabelmix_lr

With --at_minutes M, each recipe's validation FID at M training minutes, read off those curves.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path


def points(paths: list[str], recipes: list[str] | None) -> dict[str, list[dict]]:
    """recipe -> [{minutes, steps, fid mean/min/max, seeds}] over the outputs, sorted by minutes."""
    out: dict[str, list[dict]] = {}
    for path in paths:
        doc = json.loads(Path(path).read_text())
        for run in doc["runs"].values():
            recipe = run["recipe"]
            if recipes and recipe not in recipes:
                continue
            cal = doc["calibration"][recipe]
            minutes = run["steps"] * cal["seconds_per_step"] / 60
            rows = out.setdefault(recipe, [])
            row = next((r for r in rows if r["steps"] == run["steps"]), None)
            if row is None:
                row = {"minutes": round(minutes, 2), "steps": run["steps"], "fids": [], "fid_real": []}
                rows.append(row)
            row["fids"].append(run["metrics"]["fid"])
            if isinstance(run["metrics"].get("fid_real"), float):
                row["fid_real"].append(run["metrics"]["fid_real"])
    for rows in out.values():
        rows.sort(key=lambda r: r["minutes"])
        for r in rows:
            fids = r.pop("fids")
            r.update(fid=statistics.fmean(fids), fid_min=min(fids), fid_max=max(fids), seeds=len(fids))
    return out


def curves(paths: list[str], recipes: list[str] | None) -> dict[str, list[dict]]:
    """recipe -> [{minutes, steps, fid mean/min/max, seeds, fid_real}] from the runs' validation FIDs."""
    by_step: dict[str, dict[int, dict]] = {}
    for path in paths:
        for run in json.loads(Path(path).read_text())["runs"].values():
            if recipes and run["recipe"] not in recipes:
                continue
            for point in run.get("fid_curve", []):
                row = by_step.setdefault(run["recipe"], {}).setdefault(
                    point["step"], {"steps": point["step"], "mins": [], "fids": [], "fid_real": []}
                )
                row["mins"].append(point["minutes"])
                row["fids"].append(point["val_fid"])
                if point.get("val_fid_real") is not None:
                    row["fid_real"].append(point["val_fid_real"])
    out: dict[str, list[dict]] = {}
    for recipe, rows in by_step.items():
        for r in sorted(rows.values(), key=lambda r: r["steps"]):
            fids, mins = r.pop("fids"), r.pop("mins")
            r.update(minutes=round(statistics.fmean(mins), 2), fid=statistics.fmean(fids), fid_min=min(fids))
            r.update(fid_max=max(fids), seeds=len(fids))
            out.setdefault(recipe, []).append(r)
    return out


def at_minutes(paths: list[str], recipes: list[str] | None, minutes: float) -> dict[str, dict]:
    """recipe -> validation FID at `minutes` of training, read off each run's curve by linear
    interpolation between its two nearest points (mean, min, max over seeds): a comparison at equal
    minutes for runs whose steps did not take the same time."""
    fids: dict[str, list[float]] = {}
    for path in paths:
        for run in json.loads(Path(path).read_text())["runs"].values():
            if recipes and run["recipe"] not in recipes:
                continue
            for a, b in itertools.pairwise(run.get("fid_curve", [])):
                if a["minutes"] <= minutes <= b["minutes"] and b["minutes"] > a["minutes"]:
                    t = (minutes - a["minutes"]) / (b["minutes"] - a["minutes"])
                    fids.setdefault(run["recipe"], []).append(
                        a["val_fid"] + t * (b["val_fid"] - a["val_fid"])
                    )
                    break
    return {
        r: {
            "minutes": minutes,
            "fid": statistics.fmean(v),
            "fid_min": min(v),
            "fid_max": max(v),
            "seeds": len(v),
        }
        for r, v in fids.items()
    }


def plot(data: dict[str, list[dict]], out: Path, xlabel: str, ylabel: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for recipe, rows in data.items():
        x = [r["minutes"] for r in rows]
        y = [r["fid"] for r in rows]
        err = [[r["fid"] - r["fid_min"] for r in rows], [r["fid_max"] - r["fid"] for r in rows]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label=recipe)
    floors = [v for rows in data.values() for r in rows for v in r["fid_real"]]
    if floors:
        ax.axhline(statistics.fmean(floors), color="grey", ls="--", label="real vs real (same N)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outputs", nargs="+", help="outputs of benchmarks/recipes.py, one per budget")
    ap.add_argument("--recipes", nargs="+", default=None)
    ap.add_argument("--out", default="docs/images/fid_minutes.png")
    ap.add_argument("--curves", action="store_true", help="the validation FIDs scored during training")
    ap.add_argument("--rename", nargs="+", default=[], metavar="RECIPE=LABEL", help="legend labels")
    ap.add_argument(
        "--at_minutes",
        type=float,
        default=None,
        help="only print each recipe's validation FID at these minutes",
    )
    args = ap.parse_args()
    if args.at_minutes is not None:
        print(json.dumps(at_minutes(args.outputs, args.recipes, args.at_minutes), indent=2))
        return
    if args.curves:
        data = curves(args.outputs, args.recipes)
        labels = (
            "training minutes (2 CPU cores, measured)",
            "validation FID (N=180; mean, min..max of seeds)",
        )
    else:
        data = points(args.outputs, args.recipes)
        labels = (
            "training minutes (2 CPU cores, calibrated)",
            "FID (test split, N=180; mean, min..max of seeds)",
        )
    print(json.dumps(data, indent=2))
    names = dict(r.split("=", 1) for r in args.rename)
    plot({names.get(k, k): v for k, v in data.items()}, Path(args.out), *labels)


if __name__ == "__main__":
    main()
