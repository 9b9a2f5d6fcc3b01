"""Speed of `animesis dataset synth`: pictures drawn and written per second, on every usable core.

Draws a training split into a temporary folder and prints JSON. `seconds` covers the whole call:
starting the worker processes, drawing, edges, PNG files, class.txt, contact sheet, README. The
target is 100 pictures/s at 256x256 on a 2-core machine; `--cpus 2` restricts this process and its
workers to two cores of a larger one (Linux).

On a machine that other work keeps busy, wall-clock figures measure the share of the CPU this run got;
`cpu_ms_per_image` (user + system time of this process and its workers, per picture) does not depend
much on that, and `projected_images_per_s` = cores / CPU time per picture is what the cores give when
they are free.

    python benchmarks/synth_speed.py --images 1000 --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from animesis.synth.dataset import synthesize


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None, help="default: one per usable core")
    ap.add_argument("--cpus", type=int, default=None, help="use only the first N cores (Linux)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    cpu0 = _cpu_seconds()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = synthesize(
            Path(tmp) / "Synth",
            characters=9,
            size=args.size,
            train=args.images,
            val=0,
            test=0,
            seed=args.seed,
            workers=args.workers,
            progress=False,
        )
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0  # workers have exited: their time is in RUSAGE_CHILDREN
        megabytes = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        json.dumps(
            {
                "images": args.images,
                "size": args.size,
                "seconds": round(seconds, 2),
                "images_per_s": round(args.images / seconds, 1),
                "workers": s["workers"],
                "cpus": cpus,
                "cpu_ms_per_image": round(1000 * cpu / args.images, 2),
                "projected_images_per_s": round(min(cpus, s["workers"]) * args.images / cpu, 1),
                "megabytes": round(megabytes, 1),
                "load_average_before": None if load is None else [round(x, 2) for x in load],
                "machine": {
                    "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
