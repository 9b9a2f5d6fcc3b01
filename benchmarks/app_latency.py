"""Latency of the paint app as a person feels it: stroke-like paint requests over real HTTP.

The app runs in its own process (`animesis paint`), as it does for a person; each request
sends the label map with one more brush dab, as the page does after a stroke, and waits for the PNG.
Latency does not depend on training, so without --checkpoint untrained generators of the preset
sizes are built and timed. Prints JSON; --out also writes it.

python benchmarks/app_latency.py                                   # tiny@32, small@128, base@128
python benchmarks/app_latency.py --models small:128 --threads 2 --out results/app_latency.json
python benchmarks/app_latency.py --checkpoint checkpoints/NAME --iter best
python benchmarks/app_latency.py --checkpoint src/animesis/shipped --threads 2 --backends torch,onnx
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from animesis import files
from animesis.app.untrained import save_untrained_model

WARMUP = 3  # requests not counted: the first ones pay for lazy initialisation


def start_app(
    model: Path, which: str, threads: int, device: str, backend: str = "auto"
) -> tuple[subprocess.Popen, str]:
    """Start `animesis paint` on a free port; return the process and its URL once it answers."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "animesis", "paint", "--checkpoint", str(model), "--iter", which]
    cmd += ["--port", "0", "--device", device, "--backend", backend]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    found = re.search(r"http://\S+/", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the app did not start: {line}{proc.stderr.read()}")
    return proc, found.group(0)


def stop_app(proc: subprocess.Popen) -> None:
    proc.send_signal(2)  # Ctrl-C: the app's own clean shutdown
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def post(url: str, body: dict) -> bytes:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def strokes(label: np.ndarray, n: int, num_classes: int, seed: int = 0):
    """n label maps, each the previous one with one more round dab of a random class."""
    rng = np.random.default_rng(seed)
    H, W = label.shape
    y, x = np.mgrid[0:H, 0:W]
    label = label.copy()
    for _ in range(n):
        cy, cx, r = rng.integers(0, H), rng.integers(0, W), max(1, H // 32)
        label[(y - cy) ** 2 + (x - cx) ** 2 <= r * r] = rng.integers(0, num_classes)
        yield label


def measure(url: str, n: int) -> dict:
    info = get_json(url + "api/model")
    H, W = info["size"]
    examples = get_json(url + "api/examples")["examples"]
    if examples:
        start = get_json(url + f"api/examples/{examples[0]['name']}")["label"]
        label = np.frombuffer(base64.b64decode(start), np.uint8).reshape(H, W)
    else:
        label = np.full((H, W), info["background"], np.uint8)
    times = []
    for i, lab in enumerate(strokes(label, n + WARMUP, len(info["classes"]))):
        body = {"label": base64.b64encode(lab.tobytes()).decode(), "character": i % len(info["characters"])}
        t0 = time.perf_counter()
        png = post(url + "api/paint", {**body, "seed": i})
        if i >= WARMUP:
            times.append((time.perf_counter() - t0) * 1000)
        assert png.startswith(b"\x89PNG"), "the app did not answer with a PNG"
    t = np.array(times)
    stats = {k: round(float(v), 2) for k, v in (("p50", np.percentile(t, 50)), ("p95", np.percentile(t, 95)),
                                               ("mean", t.mean()), ("min", t.min()), ("max", t.max()))}  # fmt: skip
    return {"size": [H, W], "device": info["device"], "engine": info["engine"],
            "threads": info["torch_threads"], "requests": n, "latency_ms": stats}  # fmt: skip


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tiny:32,small:128,base:128", help="untrained PRESET:SIZE list")
    p.add_argument("--checkpoint", default=None, help="time this model instead of untrained ones")
    p.add_argument("--iter", default="latest")
    p.add_argument("--requests", type=int, default=50)
    p.add_argument(
        "--threads", type=int, default=1, help="the app's threads (OMP_NUM_THREADS; onnxruntime's too)"
    )
    p.add_argument(
        "--backends", default="auto", help="comma list of `animesis paint --backend` values to time"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    if args.out:  # before the timing, not after it
        files.ensure_writable_dir(Path(args.out).parent, "report")
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            models = {args.checkpoint: Path(args.checkpoint)}
        else:
            models = {}
            for spec in args.models.split(","):
                preset, size = spec.split(":")
                folder = Path(tmp) / spec.replace(":", "_")
                models[spec] = save_untrained_model(
                    folder, preset=preset, size=(int(size), int(size)), num_characters=9
                )
        results = []
        for (name, folder), backend in itertools.product(models.items(), args.backends.split(",")):
            proc, url = start_app(folder, args.iter, args.threads, args.device, backend)
            try:
                weights = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
                results.append(
                    {"model": name, "weights_bytes": weights or None, **measure(url, args.requests)}
                )
            finally:
                stop_app(proc)
            print(f"{name} ({results[-1]['engine']}): {results[-1]['latency_ms']}", file=sys.stderr)
    report = {"benchmark": "app_latency", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "results": results}  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.out:
        files.write_json(Path(args.out), report)


if __name__ == "__main__":
    main()
