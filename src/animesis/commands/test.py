"""`animesis test` / `python test.py`: paint every map of a split, as the seed's test.py does."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from animesis import files
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import load_dataset
from animesis.errors import UserError
from animesis.inference import Painter
from animesis.models.pretrained import ModelLoadError
from animesis.runs import best_or_latest


class TestSetupError(UserError):
    """Flags, dataset and checkpoint that do not fit together."""


@dataclass(frozen=True)
class TestArgs:
    """What `test` needs; the CLI translates the seed's flags into it."""

    name: str
    dataroot: Path
    checkpoints_dir: Path = Path("checkpoints")
    ckpt_iter: str = "best"
    class_dir: Path | None = None
    class_num: int | None = None
    split: str = "test"
    character: int | None = None
    results_dir: Path = Path("results")
    batch_size: int = 1
    num_workers: int = 0
    seed: int = 42
    device: str = "auto"
    use_ema: bool = True
    precision: str = "auto"
    compile: bool = False
    # Model-size flags the seed's command repeats: when given, they must describe the checkpoint.
    model_flags: dict[str, int | None] = field(default_factory=dict)


def _check_flags(args: TestArgs, painter: Painter) -> None:
    """Model-size flags, when given, must describe the checkpoint."""
    g = painter.card.generator
    d = painter.card.discriminator
    have = {
        "--channels_G": g.base_channels,
        "--channels_D": d.base_channels if d else None,
        "--num_res_blocks": g.num_blocks,
        "--z_dim": g.z_dim,
        "--crop_size": painter.card.image_size[1],  # OASIS: the width
    }
    given = {flag: (args.model_flags.get(flag), value) for flag, value in have.items()}
    bad = [
        f"{flag} {want} (checkpoint: {have})"
        for flag, (want, have) in given.items()
        if want is not None and want != have
    ]
    if bad:
        raise TestSetupError("the checkpoint does not match the flags: " + "; ".join(bad))


def run_test(args: TestArgs) -> int:
    run_dir = Path(args.checkpoints_dir) / args.name
    out = Path(args.results_dir) / args.name / str(args.ckpt_iter)
    files.ensure_writable_dir(out / "image", "results folder")  # before any work
    files.ensure_writable_dir(out / "label", "results folder")
    which = best_or_latest(run_dir, str(args.ckpt_iter))
    painter = Painter.load(
        run_dir,
        which,
        device=args.device,
        use_ema=args.use_ema,
        precision=args.precision,
        compile=args.compile,
    )
    _check_flags(args, painter)
    info = load_dataset(args.dataroot, args.class_dir, args.class_num, need=(args.split,))
    if args.class_num is not None and args.class_num != painter.num_characters:
        raise TestSetupError(
            f"--class_num {args.class_num} but the checkpoint knows {painter.num_characters} characters"
        )
    if info.num_classes != painter.num_classes:
        raise TestSetupError(
            f"{args.dataroot} has {info.num_classes} label classes but the checkpoint was trained on {painter.num_classes}"
        )
    if args.character is not None:
        painter.check_character(args.character)
    samples = info.splits[args.split]
    if not samples:
        raise TestSetupError(f"{args.dataroot}: the {args.split} split is empty")
    for s in samples:
        if s.character >= painter.num_characters:
            raise ModelLoadError(
                f"{s.image}: character {s.character} unknown to the checkpoint "
                f"({painter.num_characters} characters)"
            )

    dataset = SegmentationDataset(samples, info.palette, painter.card.image_size)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
    z_all = painter.noise(len(dataset), args.seed)  # one draw per map in file order: batch-size independent
    for batch in tqdm(loader, desc=f"painting {args.split}", unit="batch"):
        idx = batch["index"]
        chars = (
            batch["character"]
            if args.character is None
            else torch.full_like(batch["character"], args.character)
        )
        z = z_all[idx] if z_all is not None else None
        labels = batch["label"].numpy()
        images = painter.paint(labels, chars, z)
        for i, img, label in zip(idx.tolist(), images, labels, strict=True):
            name = samples[i].name + ".png"
            Image.fromarray(img).save(out / "image" / name)
            Image.fromarray(painter.colorize(label)).save(out / "label" / name)
    print(f"wrote {len(dataset)} images to {out}")
    return 0
