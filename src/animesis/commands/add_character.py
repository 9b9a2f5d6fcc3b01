"""`animesis add-character`: a new character for a trained model, fitted with the generator frozen."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animesis.characters import AddCharacterJob, FitSettings, add_character


@dataclass(frozen=True)
class AddCharacterArgs:
    checkpoint: Path  # checkpoints/NAME (with `iter`) or a model folder; only read
    images: Path  # 1 to 10 pictures of the new character
    name: str  # the new character's name (not one the model has)
    out: Path  # the new model folder
    iter: str = "latest"  # latest | best | iteration, for a run folder
    labels: Path | None = None  # the pictures' label maps, named like them; None: drafted by `annotate`
    dataroot: Path | None = None  # the dataset whose segmenter drafts them (default: the run's)
    steps: int = FitSettings.steps
    lr: float = FitSettings.lr
    lambda_vgg: float = FitSettings.lambda_vgg  # weight of a VGG16 feature term (0: none)
    seed: int = 0
    device: str = "auto"
    force: bool = False  # replace an existing model folder at `out`
    progress: bool = True


def run_add_character(args: AddCharacterArgs) -> int:
    settings = FitSettings(steps=args.steps, lr=args.lr, lambda_vgg=args.lambda_vgg, seed=args.seed)
    job = AddCharacterJob(
        checkpoint=Path(args.checkpoint),
        images=Path(args.images),
        name=args.name,
        out=Path(args.out),
        iter=str(args.iter),
        labels=Path(args.labels) if args.labels is not None else None,
        dataroot=Path(args.dataroot) if args.dataroot is not None else None,
        settings=settings,
        device=args.device,
        force=args.force,
        progress=args.progress,
    )
    result = add_character(job)
    k, n = result["id"], len(result["pictures"])
    print(f"added character {k} {result['name']!r} from {n} picture(s) in {result['seconds']} s "
          f"({result['cpu_seconds']} CPU s): {args.out}")  # fmt: skip
    print(f"paint it: animesis generate --checkpoint {args.out} --label MAP.png --character {k} --out DIR")
    return 0
