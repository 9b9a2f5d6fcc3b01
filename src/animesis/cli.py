"""The `animesis` command. The only place that knows the seed's and OASIS's flags: they are
translated here, once, into typed configs and typed command arguments."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from animesis import __version__
from animesis.config import (
    DEFAULT_RECIPE,
    PRESETS,
    RECIPES,
    CannyConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LossConfig,
    TrainConfig,
    check_image_size,
    preset_configs,
    to_dict,
)
from animesis.device import (
    cpu_bf16_speedup,
    cpu_workers,
    device_from_gpu_ids,
    native_bf16,
    ranks,
    resolve_device,
    under_torchrun,
)
from animesis.errors import UserError


class UsageError(UserError):
    """Flags that contradict each other or the data."""


# --- argument types: a bad value ends in one argparse line (exit 2), never deep in the work ----------


def _number(cast: type, lowest: float, *, above: bool = False, below: float = float("inf")):
    """An argparse type: `cast` of the text, at least `lowest` (more than it when `above`), under `below`."""
    what = "a whole number" if cast is int else "a number"

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        too_low = value <= lowest if above else value < lowest
        if too_low or not value < below:  # `not <` also refuses NaN
            bound = f"more than {lowest:g}" if above else f"at least {lowest:g}"
            limit = f" and under {below}" if below != float("inf") else ""
            raise argparse.ArgumentTypeError(f"{text} must be {bound}{limit}")
        return value

    parse.__name__ = f"{cast.__name__} >= {lowest:g}"
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
seed_int = _number(int, 0, below=2**63)  # what torch and NumPy both accept
positive_float = _number(float, 0, above=True)
non_negative_float = _number(float, 0)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag ends in one line (and exit code 2) instead of the whole usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
        "--class_num",
        type=positive_int,
        default=None,
        help="number of characters K (checked against the data)",
    )
    g.add_argument("--gpu_ids", default="0", help="'-1' for the CPU; '0' one GPU; '0,1' several (DDP)")
    g.add_argument("--num_workers", type=non_negative_int, default=None, help="data-loading processes")
    g.add_argument("--checkpoints_dir", default="./checkpoints")
    g.add_argument("--name", required=True, help="run name: checkpoints/NAME")
    g.add_argument("--seed", type=seed_int, default=42)
    g.add_argument("--batch_size", type=positive_int, default=1)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model size (OASIS flags override the preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    g.add_argument("--channels_G", type=positive_int, default=None)
    g.add_argument("--channels_D", type=positive_int, default=None)
    g.add_argument("--num_res_blocks", type=positive_int, default=None)
    g.add_argument(
        "--crop_size",
        type=positive_int,
        default=None,
        help="training width in pixels (a multiple of 2^(blocks-1)); default: the preset's size",
    )
    g.add_argument(
        "--aspect_ratio",
        type=positive_float,
        default=1.0,
        help="width / height: the height is crop_size / aspect_ratio, rounded to a size the generator paints",
    )
    g.add_argument(
        "--load_size",
        type=int,
        default=None,
        help="accepted for OASIS compatibility; images are resized straight to --crop_size",
    )
    g.add_argument("--z_dim", type=non_negative_int, default=None, help="noise dimension")
    g.add_argument("--no_3dnoise", action="store_true", help="no noise: one image per (map, character)")
    g.add_argument(
        "--id_dim",
        type=non_negative_int,
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
    g.add_argument(
        "--z_encoder",
        action="store_true",
        help="train with z encoded from the real picture (a VAE posterior) so paired losses leave the "
        "noise its variety; painting samples z as usual",
    )
    g.add_argument(
        "--noise_waves",
        type=non_negative_int,
        default=0,
        help="sinusoids whose frequencies and phases the noise sets, beside the code in every block: "
        "background patterns that change with the noise (0: none)",
    )
    g.add_argument(
        "--noise_region",
        choices=["all", "background"],
        default=None,
        help="pixels that take the noise: all (OASIS's) or the background's alone, so the character's "
        "pixels get it only through the convolutions around them (default: the recipe's)",
    )
    g.add_argument("--no_spectral_norm", action="store_true")
    g.add_argument(
        "--no_identity_head",
        action="store_true",
        help="ablation: the discriminator does not name the character (as in the seed)",
    )


def _train_parser(sub) -> argparse.ArgumentParser:
    # Long by nature: one declaration per seed/OASIS flag, read top to bottom like the seed's options.
    p = sub.add_parser("train", help="train a model (the seed's train.py flags)")
    _add_data_flags(p, required=True)
    _add_model_flags(p)
    g = p.add_argument_group("training (seed and OASIS flags)")
    g.add_argument("--num_epochs", type=positive_int, default=200)
    g.add_argument(
        "--max_steps",
        type=positive_int,
        default=None,
        help="stop after this many iterations (overrides epochs)",
    )
    g.add_argument("--freq_print", type=positive_int, default=1000)
    g.add_argument("--freq_save_latest", type=positive_int, default=10000)
    g.add_argument("--freq_save_ckpt", type=positive_int, default=20000)
    g.add_argument(
        "--freq_fid", type=non_negative_int, default=5000, help="validation FID every N iterations (0: never)"
    )
    g.add_argument("--fid_samples", type=non_negative_int, default=500)
    g.add_argument("--continue_train", action="store_true")
    g.add_argument("--which_iter", default="latest", help="resume point: latest | best | iteration")
    g.add_argument(
        "--init_from",
        default=None,
        metavar="RUN_DIR",
        help="start a new run from this run's G, G_ema and D weights (same model flags; any image size)",
    )
    g.add_argument("--init_iter", default="latest", help="--init_from's iteration: latest | best | N")
    g.add_argument(
        "--lr_g", type=positive_float, default=None, help="generator learning rate (default: the recipe's)"
    )
    g.add_argument(
        "--lr_d",
        type=positive_float,
        default=None,
        help="discriminator learning rate (default: the recipe's)",
    )
    g.add_argument(
        "--lr_decay",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="both learning rates fall linearly towards 0 over this last fraction of the iterations "
        "(0: constant, the seed's; 0.5: pix2pixHD's and SPADE's second half; a resume with another "
        "--max_steps plans it over the new length)",
    )
    g.add_argument("--beta1", type=float, default=0.0)
    g.add_argument("--beta2", type=float, default=0.999)
    g.add_argument("--EMA_decay", type=float, default=0.9999)
    g.add_argument(
        "--EMA_ramp",
        type=float,
        default=None,
        help="until --EMA_decay is reached the average spans about the last step / (EMA_ramp - 1) "
        "iterations (more than 1; smaller: a longer average; default: the recipe's)",
    )
    g.add_argument("--no_EMA", action="store_true")
    g.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default=DEFAULT_RECIPE,
        help="paired: the seed's losses plus VGG16 (3 taps) and L1 on the character, no LabelMix, lr 8e-4 "
        "for G and D (the best pictures per CPU minute in benchmarks/RESULTS.md); oasis: the seed's losses "
        "and learning rates; "
        "fast: style modulation, VGG16 on 3 taps, no LabelMix; other flags override",
    )
    g.add_argument("--no_labelmix", action="store_true")
    g.add_argument(
        "--lambda_labelmix",
        type=non_negative_float,
        default=None,
        help="LabelMix weight (default: 10 where the recipe has LabelMix, else off; given, it turns it on)",
    )
    g.add_argument("--lambda_edge", type=non_negative_float, default=0.3)
    g.add_argument("--lambda_identity", type=non_negative_float, default=0.1)
    g.add_argument(
        "--add_vgg_loss", action="store_true", help="VGG16 perceptual loss (weights from the metrics extra)"
    )
    g.add_argument("--lambda_vgg", type=non_negative_float, default=10.0)
    g.add_argument(
        "--vgg_layers",
        type=int,
        default=None,
        help="VGG16 taps used by the VGG loss (1-5; default: the recipe's)",
    )
    g.add_argument(
        "--vgg_fp32",
        action="store_true",
        help="the VGG term in fp32 when the rest trains in bf16 autocast (--precision)",
    )
    g.add_argument(
        "--lambda_fm",
        type=non_negative_float,
        default=0.0,
        help="feature matching on the discriminator's features",
    )
    g.add_argument(
        "--lambda_l1",
        type=non_negative_float,
        default=None,
        help="L1 to the real picture on the character's pixels (never the background, which may vary; "
        "default: the recipe's)",
    )
    g.add_argument(
        "--l1_class_balanced",
        action="store_true",
        help="every character class weighs the same in the L1 term, whatever its area (eyes as much as hair)",
    )
    g.add_argument(
        "--lambda_colour_sw",
        type=non_negative_float,
        default=None,
        help="each character region's colours matched to the real picture's as a set (sliced Wasserstein), "
        "every class weighing the same: small regions' colours (eyes) where their place is not fixed "
        "(default: the recipe's)",
    )
    g.add_argument(
        "--lambda_kl",
        type=non_negative_float,
        default=LossConfig.lambda_kl,
        help="KL weight of the z encoder's posterior (with --z_encoder)",
    )
    g.add_argument(
        "--paired_region",
        choices=["all", "character", "near"],
        default="all",
        help="where the VGG and feature-matching terms compare with the real picture (near: the "
        "character and the background within a sixteenth of the height of it)",
    )
    g.add_argument(
        "--ms_region",
        choices=["all", "background", "background_light"],
        default=None,
        help="pixels whose difference the mode-seeking term rewards (background_light: the background's, "
        "and the character's in luminance only; default: the recipe's)",
    )
    g.add_argument(
        "--lambda_ms",
        type=non_negative_float,
        default=None,
        help="mode-seeking term (MSGAN): samples of one map with other noise should differ (0: off; "
        "default: the recipe's, off without noise)",
    )
    g.add_argument(
        "--vgg_best_of_pair",
        action="store_true",
        help="the VGG term counts, for each picture mode seeking paints twice, the nearer of its two "
        "paintings, so the noise may choose among plausible backgrounds (needs mode seeking)",
    )
    g.add_argument(
        "--lambda_texture",
        type=non_negative_float,
        default=0.0,
        help="a patch critic on the background alone, real pictures' backgrounds against painted ones: "
        "patterns judged as patterns, not against the paired picture's (0: off, no critic)",
    )
    g.add_argument("--no_balancing_inloss", action="store_true")
    g.add_argument("--no_flip", action="store_true")
    g.add_argument(
        "--canny_low", type=float, default=CannyConfig.low, help="Canny weak threshold (no *_edge maps)"
    )
    g.add_argument("--canny_high", type=float, default=CannyConfig.high, help="Canny strong threshold")
    g.add_argument("--bn_refresh_batches", type=non_negative_int, default=50)
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
    p.add_argument(
        "--checkpoint", default=None, help="checkpoints/NAME or a model folder (default: the built-in model)"
    )
    p.add_argument("--iter", default="latest", help="latest | best | iteration")
    p.add_argument("--label", required=True, help="label map PNG: class indices or palette colours, any size")
    p.add_argument("--character", required=True, help="character id, or 'a:b:t' to mix a and b (t of b)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--n", type=positive_int, default=4, help="samples with different noise")
    p.add_argument("--batch_size", type=positive_int, default=16, help="pictures painted at once")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--device", default="auto")
    _add_paint_speed_flags(p)
    return p


def _paint_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("paint", help="paint a label map in the browser and see the character painted live")
    p.add_argument(
        "--checkpoint", default=None, help="checkpoints/NAME or a model folder (default: the built-in model)"
    )
    p.add_argument("--iter", default="latest", help="latest | best | iteration")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (not loopback: reachable from the network)"
    )
    p.add_argument("--port", type=non_negative_int, default=7860, help="port (0: any free one)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto: onnxruntime when a generator.onnx made from these weights sits beside them, else torch; "
        "onnx: export one at start-up if needed",
    )
    return p


def _examples_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("examples", help="write the example label maps (index PNGs in the built-in classes)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace maps of the same names")
    return p


def _annotate_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "annotate", help="draft label maps for new pictures with a segmenter learnt from a dataset"
    )
    p.add_argument(
        "--dataroot", required=True, help="dataset whose labelled train pictures teach the segmenter"
    )
    p.add_argument("--class_dir", default=None)
    p.add_argument("--images", required=True, help="folder of pictures to draft label maps for")
    p.add_argument("--out", default=None, help="output folder: label/, preview/, confidence/, drafts.json")
    p.add_argument("--into", default=None, help="add the pictures and their drafts to this dataset instead")
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default=None,
        help="with --into: the split that gets them",
    )
    p.add_argument(
        "--character", type=non_negative_int, default=None, help="with --into: the pictures' character id"
    )
    p.add_argument(
        "--force", action="store_true", help="replace earlier drafts, or pictures of the same name"
    )
    p.add_argument(
        "--train_pictures",
        type=positive_int,
        default=None,
        help="labelled training pictures to learn from (all)",
    )
    p.add_argument(
        "--resolution", type=positive_int, default=None, help="segmenter size (pictures' size, <= 128)"
    )
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument(
        "--retrain", action="store_true", help="train the segmenter again even if the cached one is valid"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--workers", type=non_negative_int, default=None)
    p.add_argument("--no_progress", action="store_true")
    return p


def _add_character_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("add-character", help="add a character to a trained model from 1 to 10 pictures")
    p.add_argument("--checkpoint", required=True, help="checkpoints/NAME or a model folder (only read)")
    p.add_argument("--iter", default="latest", help="latest | best | iteration")
    p.add_argument("--images", required=True, help="folder of 1 to 10 pictures of the new character")
    p.add_argument("--labels", default=None, help="their label maps, named like them (default: drafted)")
    p.add_argument("--dataroot", default=None, help="dataset whose segmenter drafts missing maps (the run's)")
    p.add_argument("--name", required=True, help="the new character's name")
    p.add_argument("--out", required=True, help="the new model folder")
    p.add_argument("--steps", type=positive_int, default=300, help="fitting steps")
    p.add_argument("--lr", type=positive_float, default=0.2, help="fitting learning rate (Adam)")
    p.add_argument(
        "--lambda_vgg", type=non_negative_float, default=0.0, help="weight of a VGG16 feature term"
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="replace an existing model folder at --out")
    p.add_argument("--no_progress", action="store_true")
    return p


def _export_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="write the generator as one ONNX file (onnxruntime and other runtimes)")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument(
        "--checkpoint", default=None, help="checkpoints/NAME or a model folder (default: the built-in model)"
    )
    p.add_argument("--iter", default="latest", help="latest | best | iteration")
    return p


def _add_paint_speed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto: bf16 on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the generator (CUDA graphs on GPUs)")


def build_parser() -> argparse.ArgumentParser:
    # Long by nature: the command table, one declaration per flag of the small commands.
    parser = _Parser(
        prog="animesis",
        description="Paint a chosen anime character from a label map (where hair, eyes, skin and clothes "
        "go), train such a model on your own annotated pictures, and evaluate it.",
        epilog="Start with `animesis paint` (the built-in model), or see README.md for training on your data.",
    )
    parser.add_argument("--version", action="version", version=f"animesis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    _test_parser(sub)
    _generate_parser(sub)
    _paint_parser(sub)
    _examples_parser(sub)
    _annotate_parser(sub)
    _add_character_parser(sub)
    _export_parser(sub)
    ds = sub.add_parser("dataset", help="check a dataset or draw the built-in one").add_subparsers(
        dest="dataset_command", required=True
    )
    c = ds.add_parser("check", help="validate a dataset in the seed layout and summarise it")
    c.add_argument("dataroot")
    c.add_argument("--class_dir", default=None)
    c.add_argument("--class_num", type=positive_int, default=None)
    c.add_argument("--workers", type=non_negative_int, default=None)
    s = ds.add_parser("synth", help="draw the built-in character dataset")
    s.add_argument("--out", required=True)
    s.add_argument("--characters", type=positive_int, default=9)
    s.add_argument("--size", type=positive_int, default=256)
    s.add_argument("--train", type=non_negative_int, default=4000)
    s.add_argument("--val", type=non_negative_int, default=200)
    s.add_argument("--test", type=non_negative_int, default=400)
    s.add_argument("--seed", type=seed_int, default=0)
    s.add_argument("--characters-file", "--characters_file", dest="characters_file", default=None)
    s.add_argument("--workers", type=non_negative_int, default=None)
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
    e.add_argument("--seed", type=seed_int, default=0)
    e.add_argument("--batch_size", type=positive_int, default=16)
    e.add_argument(
        "--no_reference_cache",
        action="store_true",
        help="score the real pictures afresh instead of reusing DATAROOT/references",
    )
    e.add_argument(
        "--no_EMA", action="store_true", help="paint with the raw generator, not its moving average (--name)"
    )
    e.add_argument("--device", default="auto")
    e.add_argument("--json", default=None, help="also write the results as JSON here")
    e.add_argument(
        "--every_character_maps",
        type=non_negative_int,
        default=None,
        help="maps painted as every character (default: all; K paintings each, so cap it on a CPU)",
    )
    e.add_argument(
        "--n_diversity_maps",
        type=non_negative_int,
        default=50,
        help="maps painted several times for diversity LPIPS",
    )
    e.add_argument("--samples_per_map", type=positive_int, default=4)
    j = sub.add_parser("judges", help="train the identity and segmentation judges of a dataset")
    j.add_argument("--dataroot", required=True)
    j.add_argument("--class_dir", default=None)
    j.add_argument("--device", default="auto")
    j.add_argument("--epochs", type=non_negative_int, default=None)
    j.add_argument("--seed", type=seed_int, default=0)
    j.add_argument("--force", action="store_true", help="retrain even if judges exist")
    _fill_help(parser)
    return parser


# Help for flags whose meaning is the same wherever they appear (a flag with its own help keeps it).
_HELP = {
    "checkpoints_dir": "folder holding one folder per run",
    "seed": "random seed",
    "batch_size": "images per iteration (the global batch; split across processes under DDP)",
    "preset": "model size: paper (the seed's), base, small (CPU), tiny (tests)",
    "channels_G": "generator width (overrides the preset)",
    "channels_D": "discriminator width (overrides the preset)",
    "num_res_blocks": "residual blocks of both networks (overrides the preset)",
    "spade_ks": "kernel size of the SPADE modulation convolutions",
    "no_spectral_norm": "train without spectral normalisation",
    "num_epochs": "epochs to train (unless --max_steps)",
    "freq_print": "iterations between status lines, logs and image grids",
    "freq_save_latest": "iterations between saves of the latest checkpoint",
    "freq_save_ckpt": "iterations between checkpoints that are kept",
    "fid_samples": "validation images used for the validation FID",
    "continue_train": "resume the run --name from --which_iter",
    "lr_g": "generator learning rate",
    "lr_d": "discriminator learning rate",
    "beta1": "Adam beta1",
    "beta2": "Adam beta2",
    "EMA_decay": "decay of the generator's moving average (reached after a ramp)",
    "no_EMA": "keep no moving average of the generator",
    "no_labelmix": "no LabelMix consistency term",
    "lambda_labelmix": "weight of the LabelMix term",
    "lambda_edge": "weight of the edge head's loss",
    "lambda_identity": "weight of the per-pixel character loss",
    "lambda_vgg": "weight of the VGG loss (with --add_vgg_loss)",
    "no_balancing_inloss": "no class balancing in the segmentation loss",
    "no_flip": "no random horizontal flips",
    "bn_refresh_batches": "batches that re-estimate the moving average's BatchNorm statistics",
    "precision": "auto: bf16 autocast where the hardware has it (CUDA; CPUs with AVX512-BF16 or AMX), else fp32",
    "no_channels_last": "NCHW memory layout instead of NHWC",
    "no_progress": "no progress bar",
    "results_dir": "where test.py writes its pictures (results_dir/NAME/...)",
    "split": "dataset split to paint",
    "no_EMA_test": "paint with the raw generator instead of its moving average",
    "device": "auto, cpu, cuda or cuda:N",
    "class_dir": "class.txt with each picture's character (default: DATAROOT/class.txt)",
    "class_num": "number of characters (checked against the data)",
    "workers": "worker processes (default: one per CPU)",
    "out": "output folder",
    "characters": "characters in the cast",
    "size": "picture size in pixels (square)",
    "train": "training pictures",
    "val": "validation pictures",
    "test": "test pictures",
    "characters_file": "a characters file (JSON) instead of the built-in cast",
    "lpips_net": "LPIPS backbone",
    "dataroot": "dataset folder in the seed layout",
    "epochs": "training epochs (default: chosen from the data size)",
    "samples_per_map": "noise samples per map for the diversity LPIPS",
}


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except None: those flags say in their help what they default to."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def _fill_help(parser: argparse.ArgumentParser) -> None:
    """Give every flag a help line and show defaults, in every sub-command."""
    parser.formatter_class = _ShowDefaults
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _fill_help(sub)
        elif action.option_strings and action.help is None:
            action.help = _HELP.get(action.dest, action.dest.replace("_", " "))


# --- flag translation ----------------------------------------------------------------------------


def training_size(crop_size: int, aspect_ratio: float, g_blocks: int) -> tuple[int, int]:
    """OASIS's meaning: --crop_size is the width; the height is width / aspect ratio, rounded at the
    generator's first resolution so that any ratio gives a size the generator can paint. -> (H, W)"""
    if aspect_ratio <= 0:
        raise UsageError(f"--aspect_ratio {aspect_ratio:g}: must be a positive width / height ratio")
    up = 2 ** (g_blocks - 1)
    if crop_size <= 0 or crop_size % up:
        raise UsageError(
            f"--crop_size {crop_size}: must be a positive multiple of {up} ({g_blocks} generator blocks)"
        )
    first_w = crop_size // up
    first_h = max(1, round(first_w / aspect_ratio))
    return first_h * up, crop_size


def model_configs(
    args, num_classes: int, num_characters: int
) -> tuple[GeneratorConfig, DiscriminatorConfig, tuple[int, int]]:
    """Preset + OASIS overrides -> (G config, D config, (H, W))."""
    p = PRESETS[args.preset]
    z_dim = 0 if args.no_3dnoise else (args.z_dim if args.z_dim is not None else p["z_dim"])
    id_dim = p["id_dim"] if args.id_dim is None else args.id_dim
    if id_dim == 0 and z_dim == 0:
        raise UsageError("--id_dim 0 with no noise leaves the generator no code input: keep one of them")
    if args.noise_waves and z_dim == 0:
        raise UsageError(
            "--noise_waves needs noise: the noise sets the waves (drop --no_3dnoise or --z_dim 0)"
        )
    g, d = preset_configs(
        args.preset,
        num_classes,
        num_characters,
        base_g=args.channels_G,
        base_d=args.channels_D,
        blocks=args.num_res_blocks,
        z_dim=z_dim,
        id_dim=id_dim,
        spade_kernel=args.spade_ks,
        norm="instance" if args.param_free_norm == "instance" else "batch",
        spectral_norm=not args.no_spectral_norm,
        modulation=args.modulation or RECIPES[args.recipe]["modulation"],
        z_encoder=args.z_encoder,
        noise_waves=args.noise_waves,
        identity_head=not args.no_identity_head,
    )
    if args.lambda_texture:  # the critic at twice D's width: 32 channels at `small`, ~2% of the step
        d = dataclasses.replace(d, texture_channels=2 * d.base_channels)
    size = training_size(args.crop_size or p["size"], args.aspect_ratio, g.num_blocks)
    try:
        check_image_size(size, g.num_blocks)
    except ValueError as e:
        raise UsageError(str(e)) from e
    return g, d, size


def _labelmix_weight(args, recipe: dict) -> float:
    if args.no_labelmix:
        return 0.0
    if args.lambda_labelmix is not None:
        return args.lambda_labelmix
    return LossConfig.lambda_labelmix if recipe["labelmix"] else 0.0


def _identity_free_classes(info) -> tuple[int, ...]:
    """The indices of the data set's classes that carry no identity (the background)."""
    return tuple(i for i, n in enumerate(info.palette.names) if n in LossConfig.identity_ignore)


def _noise_classes(info, g: GeneratorConfig) -> tuple[int, ...]:
    """--noise_region background -> the indices of the classes that carry no identity."""
    if g.z_dim == 0:
        raise UsageError("--noise_region needs noise (drop --no_3dnoise or --z_dim 0)")
    names = info.palette.names
    found = _identity_free_classes(info)
    if not found:
        raise UsageError(
            f"--noise_region background: the dataset's classes ({', '.join(names)}) have none named "
            f"{' or '.join(LossConfig.identity_ignore)}"
        )
    return found


def train_config(args, info) -> TrainConfig:
    """Seed/OASIS training flags + the dataset's N and K -> TrainConfig."""
    num_characters = _check_class_num(args, info)
    if args.EMA_ramp is not None and args.EMA_ramp <= 1:
        raise UsageError(f"--EMA_ramp {args.EMA_ramp}: must be more than 1")
    for flag in ("beta1", "beta2"):
        if not 0 <= getattr(args, flag) < 1:
            raise UsageError(f"--{flag} {getattr(args, flag)}: Adam's averaging factor must be in [0, 1)")
    if not 0 <= args.lr_decay <= 1:
        raise UsageError(f"--lr_decay {args.lr_decay}: must be a fraction of the iterations, 0 to 1")
    g, d, size = model_configs(args, info.num_classes, num_characters)
    if (args.lambda_ms or 0) > 0 and g.z_dim == 0:
        raise UsageError("--lambda_ms needs noise: it is meaningless with --no_3dnoise or --z_dim 0")
    recipe = RECIPES[args.recipe]
    if args.noise_region not in (None, "all"):
        g = dataclasses.replace(g, noise_classes=_noise_classes(info, g))
    elif args.noise_region is None and recipe["noise_region"] != "all" and g.z_dim:
        # the recipe's: where the data set has no class that carries no identity, noise everywhere
        g = dataclasses.replace(g, noise_classes=_identity_free_classes(info))
    # The recipe's mode seeking needs noise; without it the term is off rather than an error.
    lambda_ms = args.lambda_ms if args.lambda_ms is not None else recipe["ms"] if g.z_dim else 0.0
    lambda_vgg = args.lambda_vgg if recipe["vgg"] or args.add_vgg_loss else 0.0
    if args.vgg_best_of_pair and not (lambda_ms > 0 and lambda_vgg > 0):
        raise UsageError("--vgg_best_of_pair needs the VGG term and mode seeking (--lambda_ms above 0)")
    loss = LossConfig(
        lambda_labelmix=_labelmix_weight(args, recipe),
        lambda_edge=args.lambda_edge,
        lambda_identity=0.0 if args.no_identity_head else args.lambda_identity,
        lambda_vgg=lambda_vgg,
        vgg_layers=args.vgg_layers or recipe["vgg_layers"],
        vgg_keep_total=True,
        lambda_fm=args.lambda_fm,
        lambda_l1=recipe["l1"] if args.lambda_l1 is None else args.lambda_l1,
        l1_class_balanced=args.l1_class_balanced,
        lambda_colour_sw=recipe["colour_sw"] if args.lambda_colour_sw is None else args.lambda_colour_sw,
        vgg_fp32=args.vgg_fp32,
        lambda_kl=args.lambda_kl,
        paired_region=args.paired_region,
        lambda_ms=lambda_ms,
        vgg_best_of_pair=args.vgg_best_of_pair,
        ms_region=args.ms_region or recipe["ms_region"],
        lambda_texture=args.lambda_texture,
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
        lr_g=recipe["lr_g"] if args.lr_g is None else args.lr_g,
        lr_d=recipe["lr_d"] if args.lr_d is None else args.lr_d,
        lr_decay=args.lr_decay,
        beta1=args.beta1,
        beta2=args.beta2,
        ema_decay=args.EMA_decay,
        ema_ramp=recipe["ema_ramp"] if args.EMA_ramp is None else args.EMA_ramp,
        use_ema=not args.no_EMA,
        seed=args.seed,
        flip=not args.no_flip,
        num_workers=cpu_workers(spare=1) if args.num_workers is None else args.num_workers,
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
        init_from=args.init_from,
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
    if len(ids) > 1 and not under_torchrun() and not args.dry_run:
        return _relaunch_with_torchrun(ids, args.argv)
    # Under torchrun one process decodes every file; the others take the cheap listing checks.
    deep = ranks().is_main
    info = load_dataset(
        Path(args.dataroot), Path(args.class_dir) if args.class_dir else None, args.class_num, deep=deep
    )
    cfg, changes = _resolve_resume(train_config(args, info), args.argv, init_iter=args.init_iter)
    main_rank = ranks().is_main
    if main_rank:
        print(json.dumps(to_dict(cfg), indent=2))
        for line in changes:
            print(f"resume: changed {line}")
        H, W = cfg.image_size
        from animesis.training.step import resolved_precision

        device = resolve_device(cfg.device)
        arithmetic = resolved_precision(device, cfg.precision)
        why = ""
        if cfg.precision == "auto" and device.type == "cpu" and native_bf16(device):
            # the CPU has bf16 instructions: say what the timing that chose found
            why = f" (bf16 measured {cpu_bf16_speedup():.2f}x fp32's speed on this CPU)"
        print(
            f"training at {W}x{H} (width x height), {'bf16 autocast' if arithmetic == 'bf16' else 'fp32'}{why}"
        )
        _warn_if_squashed(args, info, cfg)
    if args.dry_run:
        return 0
    from animesis.training.loop import train

    train(cfg, info, progress=not args.no_progress, changes=changes, argv=args.argv)
    return 0


# Which config keys each training flag sets (a prefix covers a whole section): a resume compares the
# saved config with the new one only where a flag was given explicitly.
_FLAG_KEYS: dict[str, tuple[str, ...]] = {
    # the sizes it sets (its picture size is only a default for --crop_size); not what recipes set
    "preset": tuple(f"generator.{k}" for k in ("base_channels", "num_blocks", "z_dim", "id_dim", "spade_hidden"))
    + ("discriminator.base_channels", "discriminator.num_blocks"),
    "crop_size": ("image_size",),
    "aspect_ratio": ("image_size",),
    "channels_G": ("generator.base_channels",),
    "channels_D": ("discriminator.base_channels",),
    "num_res_blocks": ("generator.num_blocks", "discriminator.num_blocks"),
    "z_dim": ("generator.z_dim",),
    "no_3dnoise": ("generator.z_dim",),
    "id_dim": ("generator.id_dim",),
    "spade_ks": ("generator.spade_kernel",),
    "param_free_norm": ("generator.norm",),
    "modulation": ("generator.modulation",),
    "z_encoder": ("generator.z_encoder",),
    "noise_waves": ("generator.noise_waves",),
    "noise_region": ("generator.noise_classes",),
    "no_spectral_norm": ("generator.spectral_norm", "discriminator.spectral_norm"),
    "no_identity_head": ("discriminator.identity_head", "loss.lambda_identity"),
    "lambda_texture": ("loss.lambda_texture", "discriminator.texture_channels"),
    "EMA_decay": ("ema_decay",),
    "EMA_ramp": ("ema_ramp",),
    "no_EMA": ("use_ema",),
    "no_labelmix": ("loss.lambda_labelmix",),
    "recipe": ("generator.modulation", "loss.lambda_vgg", "loss.vgg_layers", "loss.lambda_labelmix",
               "loss.lambda_l1", "loss.lambda_colour_sw", "lr_g", "lr_d", "loss.lambda_ms", "loss.ms_region", "ema_ramp",
               "generator.noise_classes"),
    "add_vgg_loss": ("loss.lambda_vgg",),
    "no_balancing_inloss": ("loss.class_balancing",),
    "l1_class_balanced": ("loss.l1_class_balanced",),
    "vgg_fp32": ("loss.vgg_fp32",),
    "vgg_best_of_pair": ("loss.vgg_best_of_pair",),
    "no_flip": ("flip",),
    "canny_low": ("canny.low",),
    "canny_high": ("canny.high",),
    "no_channels_last": ("channels_last",),
    "gpu_ids": ("device",),
    "class_dir": ("class_file",),
    **{f: (f"loss.{f}",) for f in ("lambda_labelmix", "lambda_edge", "lambda_identity", "lambda_vgg",
                                   "vgg_layers", "lambda_fm", "lambda_l1", "lambda_colour_sw", "lambda_kl",
                                   "paired_region", "ms_region", "lambda_ms")},
}  # fmt: skip


def explicit_flags(argv: list[str]) -> set[str]:
    """The dests of the train flags given on the command line (not left at their defaults)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_parser = sub.choices["train"]
    for action in train_parser._actions:
        action.default = argparse.SUPPRESS
        action.required = False
    return set(vars(train_parser.parse_args(argv[1:] if argv and argv[0] == "train" else argv)))


def asked_keys(argv: list[str], cfg: TrainConfig) -> set[str]:
    from animesis.training.resume import _flat

    keys = set(_flat(cfg))
    asked: set[str] = set()
    for dest in explicit_flags(argv):
        prefixes = _FLAG_KEYS.get(dest, (dest,))
        asked |= {k for k in keys if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes)}
    return asked


def _resolve_resume(
    cfg: TrainConfig, argv: list[str], init_iter: str = "latest"
) -> tuple[TrainConfig, list[str]]:
    """--continue_train continues the saved run (changing only what is safe); a new run must not
    overwrite an old one. Returns the config to train with and the changes applied."""
    from animesis.models.pretrained import read_card
    from animesis.runs import list_checkpoints
    from animesis.training.resume import check_resume_point, load_run_config, merge

    if not cfg.continue_train:
        if list_checkpoints(cfg.run_dir):
            raise UsageError(
                f"{cfg.run_dir} already holds checkpoints: pass --continue_train to resume, or choose another --name"
            )
        return _resolve_init(cfg, init_iter), []
    folder = check_resume_point(cfg)
    saved = load_run_config(cfg.run_dir)
    if saved is None:  # a run from before run.json was read back: its model card must match at least
        card = read_card(folder)
        if card.generator != cfg.generator or card.discriminator != cfg.discriminator:
            raise UsageError(
                f"{cfg.run_dir}: the checkpoint's model differs from these flags:\n"
                f"  checkpoint: {to_dict(card.generator)}\n  flags:      {to_dict(cfg.generator)}"
            )
        return dataclasses.replace(cfg, which_iter=folder.name), []
    # The command that started the run, repeated to resume it, names --init_from as a run folder; the
    # saved config holds the iteration folder that run resolved to.
    merged, changes = merge(saved, _resolve_init(cfg, init_iter), asked_keys(argv, cfg))
    # The resolved iteration, so the loop loads exactly this folder (and any fallback note prints once).
    return dataclasses.replace(merged, which_iter=folder.name), changes


def _resolve_init(cfg: TrainConfig, init_iter: str) -> TrainConfig:
    """--init_from RUN_DIR --init_iter N -> the iteration folder, whose networks must be these flags'."""
    from animesis.models.pretrained import read_card
    from animesis.runs import resolve_checkpoint

    if cfg.init_from is None:
        return cfg
    folder = resolve_checkpoint(Path(cfg.init_from), init_iter)
    card = read_card(folder)
    for part, saved, asked in (
        ("generator", card.generator, cfg.generator),
        ("discriminator", card.discriminator, cfg.discriminator),
    ):
        if saved != asked:
            a, b = to_dict(saved) if saved else {}, to_dict(asked)
            diff = ", ".join(f"{k}: {a.get(k)!r} there, {b[k]!r} here" for k in b if a.get(k) != b[k])
            raise UsageError(f"--init_from {folder}: its {part} differs from these flags ({diff})")
    return dataclasses.replace(cfg, init_from=str(folder))


def _warn_if_squashed(args, info, cfg: TrainConfig) -> None:
    """Pictures of one non-square shape trained at another shape are squashed: say so, and how not to."""
    from animesis.data.check import open_image

    if cfg.continue_train or "aspect_ratio" in explicit_flags(args.argv):
        return
    shapes = set()
    for sample in info.splits["train"][:32]:
        with open_image(sample.image) as img:
            shapes.add(img.size)
    if len(shapes) != 1:
        return
    (w, h), (H, W) = shapes.pop(), cfg.image_size
    if abs(w / h - W / H) > 0.01:
        print(
            f"note: the training pictures are {w}x{h} but train at {W}x{H}: they will be squashed; "
            f"pass --aspect_ratio {w / h:.4g} to keep their shape",
            file=sys.stderr,
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
    from animesis.commands.test import TestArgs, run_test

    _check_mode(args)
    model_flags = {
        "--channels_G": args.channels_G,
        "--channels_D": args.channels_D,
        "--num_res_blocks": args.num_res_blocks,
        "--z_dim": 0 if args.no_3dnoise else args.z_dim,
        "--crop_size": args.crop_size,
    }
    return run_test(
        TestArgs(
            name=args.name,
            dataroot=Path(args.dataroot),
            checkpoints_dir=Path(args.checkpoints_dir),
            ckpt_iter=str(args.ckpt_iter),
            class_dir=Path(args.class_dir) if args.class_dir else None,
            class_num=args.class_num,
            split=args.split,
            character=args.character,
            results_dir=Path(args.results_dir),
            batch_size=args.batch_size,
            num_workers=args.num_workers or 0,
            seed=args.seed,
            device=device_from_gpu_ids(args.gpu_ids),
            use_ema=not args.no_EMA,
            precision=args.precision,
            compile=args.compile,
            model_flags=model_flags,
        )
    )


def cmd_generate(args) -> int:
    from animesis.commands.generate import GenerateArgs, run_generate

    return run_generate(
        GenerateArgs(
            label=Path(args.label),
            character=args.character,
            out=Path(args.out),
            checkpoint=Path(args.checkpoint) if args.checkpoint else None,
            iter=str(args.iter),
            seed=args.seed,
            n=args.n,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            compile=args.compile,
        )
    )


def cmd_paint(args) -> int:
    from animesis.commands.paint import PaintArgs, run_paint

    return run_paint(
        PaintArgs(args.checkpoint, str(args.iter), args.host, args.port, args.device, args.backend)
    )


def cmd_examples(args) -> int:
    from animesis.commands.examples import ExamplesArgs, run_examples

    return run_examples(ExamplesArgs(Path(args.out), args.force))


def cmd_annotate(args) -> int:
    from animesis.commands.annotate import AnnotateArgs, run_annotate

    return run_annotate(
        AnnotateArgs(
            dataroot=Path(args.dataroot),
            images=Path(args.images),
            out=Path(args.out) if args.out else None,
            into=Path(args.into) if args.into else None,
            split=args.split,
            character=args.character,
            force=args.force,
            class_dir=Path(args.class_dir) if args.class_dir else None,
            train_pictures=args.train_pictures,
            resolution=args.resolution,
            epochs=args.epochs,
            retrain=args.retrain,
            device=args.device,
            seed=args.seed,
            workers=args.workers,
            progress=not args.no_progress,
        )
    )


def cmd_add_character(args) -> int:
    from animesis.commands.add_character import AddCharacterArgs, run_add_character

    return run_add_character(
        AddCharacterArgs(
            checkpoint=Path(args.checkpoint),
            images=Path(args.images),
            name=args.name,
            out=Path(args.out),
            iter=str(args.iter),
            labels=Path(args.labels) if args.labels else None,
            dataroot=Path(args.dataroot) if args.dataroot else None,
            steps=args.steps,
            lr=args.lr,
            lambda_vgg=args.lambda_vgg,
            seed=args.seed,
            device=args.device,
            force=args.force,
            progress=not args.no_progress,
        )
    )


def cmd_export(args) -> int:
    from animesis.commands.export import ExportArgs, run_export

    return run_export(ExportArgs(onnx=args.onnx, checkpoint=args.checkpoint, iter=str(args.iter)))


def cmd_dataset(args) -> int:
    if args.dataset_command == "check":
        from animesis.data.layout import main_check

        return main_check(
            Path(args.dataroot),
            Path(args.class_dir) if args.class_dir else None,
            args.class_num,
            args.workers,
        )
    from animesis.synth.dataset import synthesize

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
            reference_cache=not args.no_reference_cache,
            use_ema=not args.no_EMA,
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
    "paint": cmd_paint,
    "examples": cmd_examples,
    "annotate": cmd_annotate,
    "add-character": cmd_add_character,
    "export": cmd_export,
    "dataset": cmd_dataset,
    "eval": cmd_eval,
    "judges": cmd_judges,
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input: printed as one message, not a traceback. Every one of them is a
    UserError; the palette's ValueError subclass is the exception, shared with code that needs no CLI."""
    from animesis.data.palette import PaletteError

    return (UserError, PaletteError)


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
