"""`animesis paint`: serve the paint app for one model on this machine."""

from __future__ import annotations

from dataclasses import dataclass

from animesis.errors import UserError
from animesis.inference import Painter


@dataclass(frozen=True)
class PaintArgs:
    checkpoint: str | None = None  # checkpoints/NAME or a model folder; None: the shipped model
    iter: str = "latest"  # latest | best | iteration, for a run folder
    host: str = "127.0.0.1"
    port: int = 7860
    device: str = "auto"


def load_painter(args: PaintArgs) -> Painter:
    return Painter.open(args.checkpoint, args.iter, device=args.device)


def run_paint(args: PaintArgs) -> int:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: expected 0..65535")
    try:
        from animesis.app.server import serve  # starlette and uvicorn only load for this command
    except ImportError as e:
        raise UserError(
            f"the paint app needs starlette and uvicorn ({e}): pip install starlette uvicorn"
        ) from None

    serve(load_painter(args), host=args.host, port=args.port)
    return 0
