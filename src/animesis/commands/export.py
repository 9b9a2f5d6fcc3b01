"""`animesis export --onnx OUT.onnx`: the generator as one ONNX file for onnxruntime and other runtimes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animesis.inference import Painter


@dataclass
class ExportArgs:
    onnx: str  # output file
    checkpoint: str | None = None  # checkpoints/NAME or a model folder; None: the shipped default model
    iter: str = "latest"  # latest | best | iteration, for a run folder


def load_painter(args: ExportArgs) -> Painter:
    return Painter.open(args.checkpoint, args.iter, device="cpu")


def run_export(args: ExportArgs) -> int:
    from animesis.export import check_output_path, export_onnx  # onnx and onnxruntime load only here

    out = Path(args.onnx)
    check_output_path(out)  # before loading a model: a typo in the path fails at once
    export_onnx(load_painter(args), out)
    print(out)
    return 0
