"""CPU latency of painting one picture: torch (Painter, fp32, channels_last) vs onnxruntime (OnnxPainter).

A generator shaped like the `small` preset (untrained: latency does not depend on the weights) is saved,
loaded as a Painter, exported to ONNX and loaded as an OnnxPainter; both then paint batch-1 label maps
at each size. Two figures per engine: `paint` (the whole call: one-hot, generator, uint8 image) and
`forward` (the generator alone). Prints JSON; `--out` also writes it.

    OMP_NUM_THREADS=2 python benchmarks/onnx_speed.py --threads 2 --out onnx_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

from animesis.config import GeneratorConfig
from animesis.data.palette import Palette
from animesis.export import OnnxPainter, export_onnx
from animesis.inference import Painter
from animesis.models.generator import Generator
from animesis.models.pretrained import ModelCard, save_pretrained

NUM_CLASSES, NUM_CHARACTERS = 11, 9  # the seed's classes; the built-in dataset's cast
# The `small` preset's generator (base_g 16, 4 blocks, z_dim 16, id_dim 16, spade_hidden 32, 64x64).
SMALL = dict(base_channels=16, num_blocks=4, z_dim=16, id_dim=16, spade_hidden=32)


def small_model(folder: Path, modulation: str) -> Path:
    cfg = GeneratorConfig(NUM_CLASSES, NUM_CHARACTERS, modulation=modulation, **SMALL)  # type: ignore[arg-type]
    palette = Palette(
        tuple(f"class{i}" for i in range(NUM_CLASSES)), tuple((20 * i, 0, 0) for i in range(NUM_CLASSES))
    )
    names = tuple(f"c{k}" for k in range(NUM_CHARACTERS))
    torch.manual_seed(0)
    save_pretrained(folder, Generator(cfg).eval(), ModelCard(cfg, None, palette, names, (64, 64)))
    return folder


def stats_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "mean": round(float(ms.mean()), 3),
        "p50": round(float(np.percentile(ms, 50)), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "min": round(float(ms.min()), 3),
        "max": round(float(ms.max()), 3),
        "std": round(float(ms.std()), 3),
    }


def timed_runs(fn: Callable[[], object], warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):  # oneDNN / onnxruntime pick kernels and allocate on the first calls
        fn()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


@torch.no_grad()
def measure_size(painter: Painter, onnx_painter: OnnxPainter, size: int, args) -> dict:
    """Both engines on the same batch-1 inputs: whole paint calls, then the generator alone."""
    gen = torch.Generator().manual_seed(size)
    labels = torch.randint(0, NUM_CLASSES, (1, size, size), generator=gen).numpy().astype(np.uint8)
    chars, z = [3], painter.noise(1, seed=0)
    onehot = F.one_hot(torch.as_tensor(labels, dtype=torch.long), NUM_CLASSES).permute(0, 3, 1, 2).float()
    weights = F.one_hot(torch.tensor(chars), NUM_CHARACTERS).float()
    feeds = {"label": np.ascontiguousarray(onehot.numpy()), "character": weights.numpy(), "z": z.numpy()}
    engines: dict[str, dict[str, Callable[[], object]]] = {
        "torch": {
            "paint": lambda: painter.paint(labels, chars, z),
            "forward": lambda: painter.G(onehot, weights, z),  # onehot keeps NHWC strides, as in paint
        },
        "onnxruntime": {
            "paint": lambda: onnx_painter.paint(labels, chars, z),
            "forward": lambda: onnx_painter.session.run(["image"], feeds),
        },
    }
    result: dict = {}
    for engine, calls in engines.items():  # one engine at a time: no idle pool spins beside the other
        result[engine] = {
            what: stats_ms(timed_runs(fn, args.warmup, args.runs)) for what, fn in calls.items()
        }
    result["onnxruntime_speedup_p50"] = {
        what: round(result["torch"][what]["p50"] / result["onnxruntime"][what]["p50"], 3)
        for what in ("paint", "forward")
    }
    return result


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "onnx": version("onnx"),
        "numpy": np.__version__,
        "animesis": version("animesis"),
    }


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--runs", type=int, default=30, help="timed calls per engine and size (at least 30)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--modulation", choices=["spade", "style"], default="spade")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.runs < 30:
        ap.error("--runs must be at least 30")
    torch.set_num_threads(args.threads)
    before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        folder = small_model(Path(tmp) / "small", args.modulation)
        painter = Painter.load(folder, device="cpu", precision="fp32")
        start = time.perf_counter()
        path = export_onnx(painter, Path(tmp) / "small.onnx")
        export_s = time.perf_counter() - start
        onnx_painter = OnnxPainter.load(path, threads=args.threads)
        sizes = {f"{s}x{s}": measure_size(painter, onnx_painter, s, args) for s in args.sizes}
        onnx_mb = path.stat().st_size / 2**20
    report = {
        "benchmark": "onnx_speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"preset": "small", "modulation": args.modulation, "weights": "untrained", **SMALL},
        "batch": 1,
        "threads": {
            "torch": torch.get_num_threads(),
            "onnxruntime_intra_op": onnx_painter.threads,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "runs": args.runs,
        "warmup": args.warmup,
        "unit": "ms per call",
        "sizes": sizes,
        "export_s": round(export_s, 2),
        "onnx_megabytes": round(onnx_mb, 2),
        "load_average_before_after": [before, load_average()],
        "machine": machine(),
        "versions": versions(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
