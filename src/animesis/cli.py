"""The `animesis` command. The only place that knows the seed's and OASIS's flags: they are
translated here, once, into typed configs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from animesis.config import (
    PRESETS,
    CannyConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LossConfig,
    TrainConfig,
    check_image_size,
    to_dict,
)
from animesis.errors import UserError


class UsageError(UserError):
    """Flags that contradict each other or the data."""


# --- flags ---------------------------------------------------------------------------------------


def _add_data_flags(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_argument_group("data (seed flags)")
    g.add_argument("--dataroot", required=required, help="dataset folder in the seed layout")
    g.add_argument("--dataset_mode", default="custom", help="only 'custom' (the seed layout) is supported")
    g.add_argument(
        "--class_dir",
        default=None,
        help="class.txt with the character id of every image (default: DATAROOT/class.txt)",
    )
    g.add_argument(
        "--class_num", type=int, default=None, help="number of characters K (checked against the data)"
    )
    g.add_argument("--gpu_ids", default="0", help="'-1' for the CPU; '0' one GPU; '0,1' several (DDP)")
    g.add_argument("--num_workers", type=int, default=None, help="data-loading processes")
    g.add_argument("--checkpoints_dir", default="./checkpoints")
    g.add_argument("--name", required=True, help="run name: checkpoints/NAME")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--batch_size", type=int, default=1)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model size (OASIS flags override the preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    g.add_argument("--channels_G", type=int, default=None)
    g.add_argument("--channels_D", type=int, default=None)
    g.add_argument("--num_res_blocks", type=int, default=None)
    g.add_argument("--crop_size", type=int, default=None, help="square training size (multiple of 2^blocks)")
    g.add_argument("--aspect_ratio", type=float, default=1.0, help="width / height")
    g.add_argument(
        "--load_size",
        type=int,
        default=None,
        help="accepted for OASIS compatibility; images are resized straight to --crop_size",
    )
    g.add_argument("--z_dim", type=int, default=None, help="noise dimension")
    g.add_argument("--no_3dnoise", action="store_true", help="no noise: one image per (map, character)")
    g.add_argument(
        "--id_dim",
        type=int,
        default=None,
        help="character code dimension (0: ignore the character, as OASIS)",
    )
    g.add_argument("--spade_ks", type=int, default=3)
    g.add_argument(
        "--param_free_norm",
        choices=["batch", "syncbatch", "instance"],
        default="syncbatch",
        help="'syncbatch' is BatchNorm, synchronised across processes under DDP",
    )
    g.add_argument(
        "--modulation",
        choices=["spade", "style"],
        default=None,
        help="generator modulation: 'spade' (OASIS) or 'style' (a learned style per character and class)",
    )
    g.add_argument("--no_spectral_norm", action="store_true")
    g.add_argument(
        "--no_identity_head",
        action="store_true",
        help="ablation: the discriminator does not name the character (as in the seed)",
    )


def _train_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train a model (the seed's train.py flags)")
    _add_data_flags(p, required=True)
    _add_model_flags(p)
    g = p.add_argument_group("training (seed and OASIS flags)")
    g.add_argument("--num_epochs", type=int, default=200)
    g.add_argument(
        "--max_steps", type=int, default=None, help="stop after this many iterations (overrides epochs)"
    )
    g.add_argument("--freq_print", type=int, default=1000)
    g.add_argument("--freq_save_latest", type=int, default=10000)
    g.add_argument("--freq_save_ckpt", type=int, default=20000)
    g.add_argument("--freq_fid", type=int, default=5000, help="validation FID every N iterations (0: never)")
    g.add_argument("--fid_samples", type=int, default=500)
    g.add_argument("--continue_train", action="store_true")
    g.add_argument("--which_iter", default="latest", help="resume point: latest | best | iteration")
    g.add_argument("--lr_g", type=float, default=1e-4)
    g.add_argument("--lr_d", type=float, default=4e-4)
    g.add_argument("--beta1", type=float, default=0.0)
    g.add_argument("--beta2", type=float, default=0.999)
    g.add_argument("--EMA_decay", type=float, default=0.9999)
    g.add_argument("--no_EMA", action="store_true")
    g.add_argument("--no_labelmix", action="store_true")
    g.add_argument("--lambda_labelmix", type=float, default=10.0)
    g.add_argument("--lambda_edge", type=float, default=0.3)
    g.add_argument("--lambda_identity", type=float, default=0.1)
    g.add_argument(
        "--add_vgg_loss", action="store_true", help="VGG16 perceptual loss (weights from the metrics extra)"
    )
    g.add_argument("--lambda_vgg", type=float, default=10.0)
    g.add_argument("--vgg_layers", type=int, default=5, help="VGG16 taps used by --add_vgg_loss (1-5)")
    g.add_argument(
        "--lambda_fm", type=float, default=0.0, help="feature matching on the discriminator's features"
    )
    g.add_argument(
        "--paired_region",
        choices=["all", "character"],
        default="all",
        help="where the VGG and feature-matching terms compare with the real picture",
    )
    g.add_argument(
        "--ms_region",
        choices=["all", "background"],
        default="all",
        help="pixels whose difference the mode-seeking term rewards",
    )
    g.add_argument(
        "--lambda_ms",
        type=float,
        default=0.0,
        help="mode-seeking term (MSGAN): samples of one map with other noise should differ (0: off; "
        "0.1 and 1 lost the character in the ablation, see benchmarks/RESULTS.md)",
    )
    g.add_argument("--no_balancing_inloss", action="store_true")
    g.add_argument("--no_flip", action="store_true")
    g.add_argument(
        "--canny_low", type=float, default=CannyConfig.low, help="Canny weak threshold (no *_edge maps)"
    )
    g.add_argument("--canny_high", type=float, default=CannyConfig.high, help="Canny strong threshold")
    g.add_argument("--bn_refresh_batches", type=int, default=50)
    g.add_argument("--cache_images", action="store_true", help="keep decoded images in memory")
    f = p.add_argument_group("speed")
    f.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    f.add_argument("--compile", action="store_true", help="torch.compile the networks")
    f.add_argument("--no_channels_last", action="store_true")
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no_progress", action="store_true")
    return p


def _test_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("test", help="paint every test map (the seed's test.py flags)")
    _add_data_flags(p, required=True)
    p.add_argument("--ckpt_iter", default="best", help="iteration, 'latest' or 'best' (falls back to latest)")
    p.add_argument("--results_dir", default="./results/")
    p.add_argument("--character", type=int, default=None, help="render every map as this character")
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    p.add_argument("--no_EMA", action="store_true")
    _add_paint_speed_flags(p)
    _add_model_flags(p)  # accepted so the seed's commands run; checked against the checkpoint
    return p


def _generate_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("generate", help="paint one label map as a character")
    p.add_argument("--checkpoint", required=True, help="checkpoints/NAME (or a model folder)")
    p.add_argument("--iter", default="latest", help="latest | best | iteration")
    p.add_argument("--label", required=True, help="label map PNG: class indices or palette colours, any size")
    p.add_argument("--character", required=True, help="character id, or 'a:b:t' to mix a and b (t of b)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=4, help="samples with different noise")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    _add_paint_speed_flags(p)
    return p


def _add_paint_speed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (CUDA graphs on GPUs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animesis", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _test_parser(sub)
    _generate_parser(sub)
    ds = sub.add_parser("dataset", help="check a dataset or draw the built-in one").add_subparsers(
        dest="dataset_command", required=True
    )
    c = ds.add_parser("check", help="validate a dataset in the seed layout and summarise it")
    c.add_argument("dataroot")
    c.add_argument("--class_dir", default=None)
    c.add_argument("--class_num", type=int, default=None)
    c.add_argument("--workers", type=int, default=None)
    s = ds.add_parser("synth", help="draw the built-in character dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--characters", type=int, default=9)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--train", type=int, default=4000)
    s.add_argument("--val", type=int, default=200)
    s.add_argument("--test", type=int, default=400)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--characters-file", "--characters_file", dest="characters_file", default=None)
    s.add_argument("--workers", type=int, default=None)
    e = sub.add_parser(
        "eval",
        help="score images: two folders (--real/--fake) or a checkpoint on a dataset split (--name)",
    )
    e.add_argument("--real", default=None, help="folder of real images")
    e.add_argument("--fake", default=None, help="folder of generated images")
    e.add_argument("--paired", action="store_true", help="also LPIPS between same-named real and fake images")
    e.add_argument("--lpips_net", choices=["alex", "vgg"], default="alex")
    e.add_argument("--name", default=None, help="run name: evaluate checkpoints/NAME on --dataroot")
    e.add_argument("--checkpoints_dir", default="./checkpoints")
    e.add_argument("--ckpt_iter", default="best", help="iteration, 'latest' or 'best' (falls back to latest)")
    e.add_argument("--dataroot", default=None)
    e.add_argument("--class_dir", default=None)
    e.add_argument("--split", choices=["test", "val"], default="test")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--batch_size", type=int, default=16)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", default=None, help="also write the results as JSON here")
    e.add_argument(
        "--every_character_maps",
        type=int,
        default=None,
        help="maps painted as every character (default: all; K paintings each, so cap it on a CPU)",
    )
    e.add_argument(
        "--n_diversity_maps", type=int, default=50, help="maps painted several times for diversity LPIPS"
    )
    e.add_argument("--samples_per_map", type=int, default=4)
    j = sub.add_parser("judges", help="train the identity and segmentation judges of a dataset")
    j.add_argument("--dataroot", required=True)
    j.add_argument("--class_dir", default=None)
    j.add_argument("--device", default="auto")
    j.add_argument("--epochs", type=int, default=None)
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--force", action="store_true", help="retrain even if judges exist")
    return parser


# --- flag translation ----------------------------------------------------------------------------


def device_from_gpu_ids(gpu_ids: str) -> str:
    """'-1' -> cpu; '0' -> cuda:0 (CPU with a note when torch sees no GPU); '0,1' -> cuda (DDP)."""
    import torch

    ids = [s for s in gpu_ids.replace(" ", "").split(",") if s]
    if not ids or ids == ["-1"]:
        return "cpu"
    if not all(s.isdigit() for s in ids):
        raise UsageError(f"--gpu_ids {gpu_ids!r}: expected -1 or comma-separated GPU numbers")
    if not torch.cuda.is_available():
        print(
            f"note: --gpu_ids {gpu_ids} but this torch sees no CUDA GPU: running on the CPU", file=sys.stderr
        )
        return "cpu"
    if "LOCAL_RANK" in os.environ:
        return "cuda"  # torchrun assigns one GPU per process
    return f"cuda:{ids[0]}" if len(ids) == 1 else "cuda"


def model_configs(
    args, num_classes: int, num_characters: int
) -> tuple[GeneratorConfig, DiscriminatorConfig, tuple[int, int]]:
    """Preset + OASIS overrides -> (G config, D config, (H, W))."""
    p = PRESETS[args.preset]
    blocks = args.num_res_blocks or p["blocks"]
    z_dim = 0 if args.no_3dnoise else (args.z_dim if args.z_dim is not None else p["z_dim"])
    id_dim = p["id_dim"] if args.id_dim is None else args.id_dim
    if id_dim < 0 or z_dim < 0:
        raise UsageError(f"--id_dim and --z_dim must be 0 or more, got {id_dim} and {z_dim}")
    if id_dim == 0 and z_dim == 0:
        raise UsageError("--id_dim 0 with no noise leaves the generator no code input: keep one of them")
    crop = args.crop_size or p["size"]
    size = (crop, round(crop * args.aspect_ratio))
    g = GeneratorConfig(
        num_classes=num_classes,
        num_characters=num_characters,
        base_channels=args.channels_G or p["base_g"],
        num_blocks=blocks,
        z_dim=z_dim,
        id_dim=id_dim,
        spade_hidden=p["spade_hidden"],
        spade_kernel=args.spade_ks,
        norm="instance" if args.param_free_norm == "instance" else "batch",
        spectral_norm=not args.no_spectral_norm,
        modulation=args.modulation or p.get("modulation", "spade"),
    )
    d = DiscriminatorConfig(
        num_classes=num_classes,
        num_characters=num_characters,
        base_channels=args.channels_D or p["base_d"],
        num_blocks=blocks,
        identity_head=not args.no_identity_head,
        spectral_norm=not args.no_spectral_norm,
    )
    try:
        check_image_size(size, g.num_blocks)
    except ValueError as e:
        raise UsageError(str(e)) from e
    return g, d, size


def default_workers() -> int:
    return min(8, max(0, (os.cpu_count() or 1) - 1))


def train_config(args, info) -> TrainConfig:
    """Seed/OASIS training flags + the dataset's N and K -> TrainConfig."""
    num_characters = _check_class_num(args, info)
    g, d, size = model_configs(args, info.num_classes, num_characters)
    if args.lambda_ms > 0 and g.z_dim == 0:
        raise UsageError("--lambda_ms needs noise: it is meaningless with --no_3dnoise or --z_dim 0")
    loss = LossConfig(
        lambda_labelmix=0.0 if args.no_labelmix else args.lambda_labelmix,
        lambda_edge=args.lambda_edge,
        lambda_identity=0.0 if args.no_identity_head else args.lambda_identity,
        lambda_vgg=args.lambda_vgg if args.add_vgg_loss else 0.0,
        vgg_layers=args.vgg_layers,
        lambda_fm=args.lambda_fm,
        paired_region=args.paired_region,
        lambda_ms=args.lambda_ms,
        ms_region=args.ms_region,
        class_balancing=not args.no_balancing_inloss,
    )
    return TrainConfig(
        name=args.name,
        dataroot=str(args.dataroot),
        class_file=args.class_dir,
        generator=g,
        discriminator=d,
        loss=loss,
        checkpoints_dir=str(args.checkpoints_dir),
        image_size=size,
        batch_size=args.batch_size,
        num_epochs=args.num_epochs,
        max_steps=args.max_steps,
        lr_g=args.lr_g,
        lr_d=args.lr_d,
        beta1=args.beta1,
        beta2=args.beta2,
        ema_decay=args.EMA_decay,
        use_ema=not args.no_EMA,
        seed=args.seed,
        flip=not args.no_flip,
        num_workers=default_workers() if args.num_workers is None else args.num_workers,
        cache_images=args.cache_images,
        canny=CannyConfig(low=args.canny_low, high=args.canny_high),
        freq_print=args.freq_print,
        freq_save_latest=args.freq_save_latest,
        freq_save_ckpt=args.freq_save_ckpt,
        freq_fid=args.freq_fid,
        fid_samples=args.fid_samples,
        bn_refresh_batches=args.bn_refresh_batches,
        device=device_from_gpu_ids(args.gpu_ids),
        precision=args.precision,
        channels_last=not args.no_channels_last,
        compile=args.compile,
        continue_train=args.continue_train,
        which_iter=str(args.which_iter),
    )


def _check_class_num(args, info) -> int:
    if args.class_num is not None and args.class_num != info.num_characters:
        raise UsageError(
            f"--class_num {args.class_num} but the dataset in {args.dataroot} has {info.num_characters} characters"
        )
    return info.num_characters


def _check_mode(args) -> None:
    if args.dataset_mode != "custom":
        raise UsageError(
            f"--dataset_mode {args.dataset_mode!r} is not supported: use 'custom' (the seed layout)"
        )


# --- commands ------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from animesis.data.layout import load_dataset

    _check_mode(args)
    ids = [s for s in args.gpu_ids.split(",") if s.strip()]
    if len(ids) > 1 and "WORLD_SIZE" not in os.environ and not args.dry_run:
        return _relaunch_with_torchrun(ids, args.argv)
    # Under torchrun one process decodes every file; the others take the cheap listing checks.
    deep = int(os.environ.get("RANK", "0")) == 0
    info = load_dataset(
        Path(args.dataroot), Path(args.class_dir) if args.class_dir else None, args.class_num, deep=deep
    )
    cfg = train_config(args, info)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(to_dict(cfg), indent=2))
    if args.dry_run:
        return 0
    _check_resume(cfg)
    from animesis.training.loop import train

    train(cfg, info, progress=not args.no_progress)
    return 0


def _check_resume(cfg: TrainConfig) -> None:
    """--continue_train must resume a run of the same model; a new run must not overwrite an old one."""
    from animesis.models.pretrained import read_card
    from animesis.training.checkpoint import list_checkpoints, resolve_checkpoint

    if cfg.continue_train:
        card = read_card(resolve_checkpoint(cfg.run_dir, cfg.which_iter))
        if card.generator != cfg.generator or card.discriminator != cfg.discriminator:
            raise UsageError(
                f"{cfg.run_dir}: the checkpoint's model differs from these flags:\n"
                f"  checkpoint: {to_dict(card.generator)}\n  flags:      {to_dict(cfg.generator)}"
            )
    elif list_checkpoints(cfg.run_dir):
        raise UsageError(
            f"{cfg.run_dir} already holds checkpoints: pass --continue_train to resume, or choose another --name"
        )


def _relaunch_with_torchrun(ids: list[str], argv: list[str]) -> int:
    """`--gpu_ids 0,1` without torchrun: start one process per GPU through torchrun."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(ids)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={len(ids)}",
        "-m",
        "animesis",
        *argv,
    ]
    print("starting:", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd, env=env)


def cmd_test(args) -> int:
    from animesis.commands.test import run_test

    _check_mode(args)
    return run_test(args)


def cmd_generate(args) -> int:
    from animesis.commands.generate import run_generate

    return run_generate(args)


def cmd_dataset(args) -> int:
    if args.dataset_command == "check":
        from animesis.data.layout import main_check

        return main_check(
            Path(args.dataroot),
            Path(args.class_dir) if args.class_dir else None,
            args.class_num,
            args.workers,
        )
    from animesis.data.synthetic import synthesize

    summary = synthesize(
        Path(args.out),
        characters=args.characters,
        size=args.size,
        train=args.train,
        val=args.val,
        test=args.test,
        seed=args.seed,
        characters_file=Path(args.characters_file) if args.characters_file else None,
        workers=args.workers,
    )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_eval(args) -> int:
    if args.name:
        if not args.dataroot:
            raise UsageError("eval --name needs --dataroot (the dataset whose split is painted)")
        from animesis.metrics.report import main_eval_checkpoint

        return main_eval_checkpoint(
            args.name,
            Path(args.checkpoints_dir),
            args.ckpt_iter,
            Path(args.dataroot),
            Path(args.class_dir) if args.class_dir else None,
            args.device,
            Path(args.json) if args.json else None,
            args.seed,
            args.batch_size,
            args.split,
            every_character_maps=args.every_character_maps,
            n_diversity_maps=args.n_diversity_maps,
            samples_per_map=args.samples_per_map,
        )
    if not (args.real and args.fake):
        raise UsageError("eval needs --real DIR --fake DIR, or --name NAME --dataroot DIR")
    from animesis.metrics.evaluate import run_eval

    try:
        result = run_eval(
            Path(args.real),
            Path(args.fake),
            paired=args.paired,
            json_path=Path(args.json) if args.json else None,
            lpips_net=args.lpips_net,
        )
    except (FileNotFoundError, ValueError) as e:  # folder problems, already phrased for the user
        raise UsageError(str(e)) from None
    return 1 if result.get("unavailable") else 0


def cmd_judges(args) -> int:
    from animesis.metrics.report import main_judges

    return main_judges(
        Path(args.dataroot),
        Path(args.class_dir) if args.class_dir else None,
        args.device,
        args.epochs,
        args.seed,
        args.force,
    )


COMMANDS = {
    "train": cmd_train,
    "test": cmd_test,
    "generate": cmd_generate,
    "dataset": cmd_dataset,
    "eval": cmd_eval,
    "judges": cmd_judges,
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input: printed as one message, not a traceback."""
    from animesis.data.layout import DatasetError
    from animesis.data.palette import PaletteError
    from animesis.models.pretrained import ModelLoadError
    from animesis.training.loop import TrainingError

    errors: list[type[BaseException]] = [UserError, DatasetError, PaletteError, ModelLoadError, TrainingError]
    try:
        from animesis.metrics.assets import MetricUnavailable

        errors.append(MetricUnavailable)
    except ImportError:
        pass
    try:
        from animesis.data.synthetic import SynthError

        errors.append(SynthError)
    except ImportError:
        pass
    return tuple(errors)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
