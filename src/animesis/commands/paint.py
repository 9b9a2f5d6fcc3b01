"""`animesis paint`: serve the paint app for one model on this machine."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from animesis.errors import UserError
from animesis.inference import Painter

Backend = Literal["auto", "torch", "onnx"]


@dataclass(frozen=True)
class PaintArgs:
    checkpoint: str | None = None  # checkpoints/NAME or a model folder; None: the shipped model
    iter: str = "latest"  # latest | best | iteration, for a run folder
    host: str = "127.0.0.1"
    port: int = 7860
    device: str = "auto"
    # auto: onnxruntime when a current generator.onnx sits beside the weights (onnxruntime paints the
    # shipped model faster than torch on the CPU: benchmarks/RESULTS.md), torch otherwise;
    # onnx: onnxruntime always, exporting the graph at start-up when there is none.
    backend: Backend = "auto"


def load_painter(args: PaintArgs) -> Painter:
    return Painter.open(args.checkpoint, args.iter, device=args.device)


def load_engine(painter: Painter, backend: Backend) -> tuple[Any, str]:
    """(engine, what it is, for the start-up line): None paints with the painter's torch generator."""
    if backend == "torch" or painter.weights is None:
        return None, "torch"
    if painter.device.type != "cpu":
        if backend == "onnx":
            raise UserError(
                f"--backend onnx runs on the CPU; this model is on {painter.device}: add --device cpu"
            )
        return None, f"torch on {painter.device}"
    try:
        from animesis.export import BESIDE_WEIGHTS, OnnxPainter, export_onnx, is_current
    except ImportError as e:
        if backend == "onnx":
            raise UserError(
                f"--backend onnx needs onnxruntime ({e}): pip install 'animesis[export]'"
            ) from None
        return None, "torch (onnxruntime is not installed)"
    graph = painter.weights.parent / BESIDE_WEIGHTS
    threads = torch.get_num_threads()  # as many as torch would use (OMP_NUM_THREADS)
    if graph.exists() and is_current(graph, painter.weights):
        return OnnxPainter(graph, painter.card, threads=threads), f"onnxruntime ({graph})"
    if backend == "auto":
        why = "is not from these weights" if graph.exists() else "does not exist"
        return None, f"torch ({graph} {why}; `animesis export --onnx {graph}` makes it)"
    out = Path(tempfile.mkdtemp(prefix="animesis-")) / BESIDE_WEIGHTS
    print(f"exporting the generator for onnxruntime to {out} (10 to 30 s)...", flush=True)
    engine = OnnxPainter(export_onnx(painter, out), painter.card, threads=threads)
    return engine, f"onnxruntime ({out}, exported now)"


def run_paint(args: PaintArgs) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected 0..65535")
    try:
        from animesis.app.server import serve  # starlette and uvicorn only load for this command
    except ImportError as e:
        raise UserError(
            f"the paint app needs starlette and uvicorn ({e}): pip install starlette uvicorn"
        ) from None

    painter = load_painter(args)
    engine, name = load_engine(painter, args.backend)
    serve(painter, host=args.host, port=args.port, engine=engine, note=name)
    return 0
