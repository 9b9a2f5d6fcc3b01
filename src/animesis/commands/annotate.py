"""`animesis annotate`: draft label maps for new pictures with a segmenter learnt from a dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from animesis.annotate import AnnotateJob, IntoDataset, SegmenterSettings, annotate
from animesis.errors import UserError

SHOWN = 5  # least confident drafts listed on the terminal (drafts.json lists them all)


@dataclass(frozen=True)
class AnnotateArgs:
    dataroot: Path  # the dataset whose labelled training pictures teach the segmenter
    images: Path  # the pictures to draft label maps for
    out: Path | None = None  # label/, preview/, confidence/ and drafts.json; required without `into`
    into: Path | None = None  # add the pictures and their drafts to this dataset
    split: str | None = None  # with `into`: train (default), val or test
    character: int | None = None  # with `into`: the pictures' character id
    force: bool = False  # replace earlier drafts, or pictures of the same name in `into`
    class_dir: Path | None = None  # class.txt of `dataroot` (default: DATAROOT/class.txt)
    train_pictures: int | None = None  # labelled pictures the segmenter learns from (None: all)
    resolution: int | None = None  # the segmenter's working size (None: the pictures', at most 128)
    epochs: int | None = None  # the segmenter's passes over its pictures (None: from their number)
    retrain: bool = False  # train the segmenter again even when the cached one is valid
    device: str = "auto"
    seed: int = 0
    workers: int | None = None  # decoding processes
    progress: bool = True


def _into(args: AnnotateArgs) -> IntoDataset | None:
    if args.into is None:
        if args.out is None:
            raise UserError("annotate needs --out DIR (where the drafts go) or --into DATAROOT")
        if args.character is not None or args.split is not None:
            raise UserError(
                "--character and --split say where pictures go in a dataset: use them with --into"
            )
        return None
    if args.character is None:
        raise UserError(f"--into {args.into}: give the pictures' character with --character K")
    return IntoDataset(Path(args.into), args.split or "train", args.character, args.force)


def run_annotate(args: AnnotateArgs) -> int:
    settings = SegmenterSettings(
        resolution=args.resolution, train_pictures=args.train_pictures, epochs=args.epochs, seed=args.seed
    )
    job = AnnotateJob(
        dataroot=Path(args.dataroot),
        images=Path(args.images),
        out=Path(args.out) if args.out is not None else None,
        into=_into(args),
        class_file=Path(args.class_dir) if args.class_dir else None,
        settings=settings,
        device=args.device,
        retrain=args.retrain,
        force=args.force,
        workers=args.workers,
        progress=args.progress,
    )
    summary = annotate(job)
    seg = summary["segmenter"]
    how = "reused" if seg["reused"] else f"trained in {seg['seconds']} s"
    held = f", held-out mIoU {seg['held_out_miou']:.3f}" if seg.get("held_out_miou") is not None else ""
    print(f"segmenter: {how} on {seg['train_pictures']} labelled pictures{held} ({seg['folder']})")
    into = summary["into"]
    where = (
        f"added to {into['dataset']} ({into['split']} split, character {into['character']}); " if into else ""
    )
    print(f"drafted {summary['pictures']} label maps: {where}review them in {summary['review']}")
    print("least sure first (mean confidence, share of pixels under 0.5):")
    for d in summary["drafts"][:SHOWN]:
        print(f"  {d['picture']}: {d['mean_confidence']:.3f}, {d['low_confidence_share']:.1%}")
    return 0
