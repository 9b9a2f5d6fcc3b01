"""Typed, frozen configs for every component, with a JSON round trip and size presets."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class CannyConfig:
    """Canny on the grey image in [0, 1]: Gaussian blur, Sobel magnitude, non-maximum suppression,
    double threshold on the gradient magnitude, then hysteresis (weak edges kept where they touch
    strong ones). Thresholds are gradient magnitudes of the [0, 1] image."""

    low: float = 0.1  # weak-edge threshold
    high: float = 0.2  # strong-edge threshold
    sigma: float = 1.0  # Gaussian blur before the gradient, in pixels
    kernel_size: int = 5  # blur kernel size (odd)
    hysteresis: bool = True  # False keeps strong edges only (faster, no iteration)


@dataclass(frozen=True)
class GeneratorConfig:
    """OASIS-style SPADE generator conditioned on label map, character identity and noise."""

    num_classes: int  # semantic classes N (one-hot channels of the label map)
    num_characters: int  # characters K (rows of the identity embedding)
    base_channels: int = 64  # width of the last block; earlier blocks use up to 16x this
    num_blocks: int = 6  # SPADE residual blocks; the output is 2**(num_blocks-1) x the start size
    z_dim: int = 64  # per-image noise vector (0: deterministic, the seed's behaviour)
    id_dim: int = 64  # size of the learned character code
    spade_hidden: int = 128  # hidden width of each SPADE modulation network
    spade_kernel: int = 3
    norm: Literal["batch", "instance"] = "batch"  # parameter-free normalisation inside SPADE
    spectral_norm: bool = True
    # "spade": OASIS's convolutional modulation from the label map plus a character code; "style": a
    # learned style per (character, class) turned into scale and shift by 1x1 convolutions (cheaper,
    # and colours are tied to the character class by class).
    modulation: Literal["spade", "style"] = "spade"
    # A training-time encoder of the real picture into the noise (SPADE's VAE, BicycleGAN's cVAE): the
    # paired losses then compare with a painting of that picture's own background and light, instead of
    # pulling every noise to one answer. Painting still draws z from N(0, I).
    z_encoder: bool = False
    # Sinusoids whose frequencies and phases the noise sets, given to every block beside the code. z
    # alone is the same at every pixel, so a background pattern (stripes, dots, checks at any angle)
    # could not follow it; these let one. 0: none (needs z_dim > 0 otherwise).
    noise_waves: int = 0
    # Classes whose pixels take the noise, by index (empty: every pixel, OASIS's). The background's
    # alone: what the noise changes (background, its tone) is kept off the character's pixels, which
    # the noise then reaches only through the convolutions around them.
    noise_classes: tuple[int, ...] = ()


@dataclass(frozen=True)
class DiscriminatorConfig:
    """OASIS U-Net discriminator with N+1 segmentation, edge and (optional) identity heads."""

    num_classes: int
    num_characters: int
    base_channels: int = 64  # decoder output width; the encoder goes up to 8x this
    num_blocks: int = 6  # down (and up) blocks; inputs must be multiples of 2**num_blocks
    identity_head: bool = True  # per-pixel K-way character logits
    spectral_norm: bool = True
    # Width of a small patch critic beside the U-Net that judges background texture alone, real
    # pictures' backgrounds against painted ones, unpaired (0: none, the seed's discriminator).
    texture_channels: int = 0


@dataclass(frozen=True)
class LossConfig:
    """Weights of the adversarial objective (OASIS N+1 loss plus the seed's edge term)."""

    lambda_labelmix: float = 10.0  # 0 disables LabelMix
    lambda_edge: float = 0.3  # the seed's edge-head weight
    lambda_identity: float = 0.1  # per-pixel character loss (identity head); 1.0 cost FID and mIoU
    lambda_vgg: float = 0.0  # VGG16 perceptual loss (0 = off; OASIS uses 10 with --add_vgg_loss)
    vgg_layers: int = 5  # VGG16 taps used, shallowest first (fewer: cheaper, less semantic)
    # Fewer taps keep the five taps' total weight (losses.tap_weights); new runs set it. False, the value
    # of runs saved before it existed, takes OASIS's first weights as they are, so those resume exactly.
    vgg_keep_total: bool = False
    vgg_fp32: bool = False  # the perceptual term in fp32 when the rest trains in bf16 autocast
    lambda_fm: float = 0.0  # feature matching on the discriminator's decoder features (pix2pixHD)
    lambda_l1: float = 0.0  # L1 to the real picture on the character's pixels: its colours, cheaply
    # Each character class weighs the same in the L1 term, whatever its area: an eye or a ribbon is a
    # few dozen pixels at 64x64, so a per-pixel mean leaves their colours to chance.
    l1_class_balanced: bool = False
    # Each character region's colours matched to the real picture's as a set (losses.region_colour_loss),
    # every class weighing the same: an iris the size of a few pixels at 64x64 keeps its colour even where
    # its place in the eye is not fixed by the map.
    lambda_colour_sw: float = 0.0
    lambda_kl: float = 0.05  # KL of the z encoder's posterior to N(0, I) (SPADE's weight); needs z_encoder
    # Where the paired terms (perceptual, feature matching) pull the painting towards the real picture:
    # "all" pixels, only the "character" (classes not in identity_ignore), leaving the background to
    # the adversarial loss and the noise, or "near" the character (the background within H/16 too).
    paired_region: Literal["all", "character", "near"] = "all"
    lambda_ms: float = 0.0  # mode seeking (MSGAN): half the batch painted again with other noise
    # The perceptual term counts, for each picture mode seeking paints twice, the nearer of the two
    # paintings (losses.best_of_pair): the noise may choose among plausible backgrounds. Needs lambda_ms.
    vgg_best_of_pair: bool = False
    # pixels whose difference mode seeking rewards; "background_light": the background's, and the
    # character's luminance (light and shading may vary with the noise, its colours may not)
    ms_region: Literal["all", "background", "background_light"] = "all"
    # The texture critic's adversarial term on background patches: a pattern is judged as a plausible
    # pattern, not against the paired picture's (needs discriminator.texture_channels > 0).
    lambda_texture: float = 0.0
    class_balancing: bool = True
    identity_ignore: tuple[str, ...] = ("background",)  # classes that carry no identity


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; saved as run.json in the run folder."""

    name: str
    dataroot: str
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    loss: LossConfig = field(default_factory=LossConfig)
    class_file: str | None = None  # default: DATAROOT/class.txt
    checkpoints_dir: str = "checkpoints"
    image_size: tuple[int, int] = (256, 256)  # (H, W) the model is trained at
    batch_size: int = 1  # global batch (split across processes under DDP)
    num_epochs: int = 200
    max_steps: int | None = None  # overrides num_epochs when set
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    # The last fraction of the iterations over which both learning rates fall linearly towards 0
    # (pix2pixHD's and SPADE's schedule decays over the second half: 0.5); 0 keeps them constant.
    lr_decay: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.999
    ema_decay: float = 0.9999  # per iteration, reached after a ramp (training.ema.ema_decay_at)
    ema_ramp: float = 10.0  # the ramp's constant: the average spans about step / (ema_ramp - 1) iterations
    use_ema: bool = True
    seed: int = 42
    flip: bool = True  # random horizontal flips
    num_workers: int = 0
    cache_images: bool = False  # keep decoded, resized images in memory
    canny: CannyConfig = field(default_factory=CannyConfig)  # for splits without *_edge maps
    freq_print: int = 1000  # iterations between status lines, logs and image grids
    freq_save_latest: int = 10000
    freq_save_ckpt: int = 20000  # kept checkpoints, named by iteration
    freq_fid: int = 5000  # validation FID (0 = never)
    fid_samples: int = 500  # val images used for validation FID
    bn_refresh_batches: int = 50  # batches that re-estimate G_ema's BatchNorm statistics
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # "auto": bf16 where it pays (CUDA; a CPU whose bf16 instructions measure faster: device.bf16_pays)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True  # NHWC activations: faster convolutions on GPUs and CPUs alike
    compile: bool = False
    continue_train: bool = False
    which_iter: str = "latest"  # where --continue_train resumes from
    # A checkpoint folder whose G, G_ema and D weights a new run starts from (fine-tuning, or a
    # resolution schedule: the networks are fully convolutional, so 64x64 weights start a 128x128 run).
    init_from: str | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name


# --- presets ---------------------------------------------------------------------------------------

# Training recipes: the losses and modulation a run starts from; explicit flags override them.
# "paired" (the default) gave the best pictures per CPU minute in benchmarks/recipes.py
# (benchmarks/RESULTS.md): the seed's losses plus VGG16's three shallow taps and an L1 term on the
# character's pixels, without LabelMix, both networks learning at twice OASIS's D rate (short runs
# gain most from the learning rate), and MSGAN's mode-seeking term on the background, so that the
# noise varies the background while the paired terms hold the character (weight 2, with the noise
# entering on the background's pixels alone: at weight 2 with noise everywhere the character changed with
# it); its moving average of G spans the last nineteenth of the run (EMA ramp 20), not the ninth. "oasis" is the seed's (SPADE, LabelMix, no paired term,
# lr_g 1e-4, lr_d 4e-4); "fast" a learned style per character and class, VGG16's three shallow taps,
# no LabelMix.
RECIPES: dict[str, dict[str, Any]] = {
    "paired": dict(modulation="spade", vgg=True, vgg_layers=3, labelmix=False, l1=20.0, colour_sw=20.0,
                   lr_g=8e-4, lr_d=8e-4, ms=2.0, ms_region="background", ema_ramp=20.0, noise_region="background"),
    "oasis": dict(modulation="spade", vgg=False, vgg_layers=5, labelmix=True, l1=0.0, colour_sw=0.0,
                  lr_g=1e-4, lr_d=4e-4, ms=0.0, ms_region="all", ema_ramp=10.0, noise_region="all"),
    "fast": dict(modulation="style", vgg=True, vgg_layers=3, labelmix=False, l1=0.0, colour_sw=0.0,
                 lr_g=1e-4, lr_d=4e-4, ms=0.0, ms_region="all", ema_ramp=10.0, noise_region="all"),
}  # fmt: skip
DEFAULT_RECIPE = "paired"

PRESETS: dict[str, dict[str, Any]] = {
    # The seed / OASIS sizes: 64 base channels, 6 blocks, 512x512 for the seed's datasets.
    "paper": dict(base_g=64, base_d=64, blocks=6, z_dim=64, id_dim=64, spade_hidden=128, size=512),
    # A quarter of the paper's width at 256x256: the built-in dataset's default.
    "base": dict(base_g=32, base_d=32, blocks=6, z_dim=64, id_dim=64, spade_hidden=128, size=256),
    # Small enough to train on a CPU in minutes (64x64).
    "small": dict(base_g=16, base_d=16, blocks=4, z_dim=16, id_dim=16, spade_hidden=32, size=64),
    # For tests.
    "tiny": dict(base_g=8, base_d=8, blocks=3, z_dim=8, id_dim=8, spade_hidden=16, size=32),
}


def preset_configs(
    preset: str, num_classes: int, num_characters: int, **overrides: Any
) -> tuple[GeneratorConfig, DiscriminatorConfig]:
    """A preset's generator and discriminator configs; `overrides` (GeneratorConfig fields, plus
    `base_d`, `identity_head`) replace the preset's values. The one place presets become configs."""
    p = dict(PRESETS[preset])
    for key in ("base_g", "base_d", "blocks", "z_dim", "id_dim"):
        if overrides.get(key) is not None:
            p[key] = overrides.pop(key)
    identity_head = overrides.pop("identity_head", True)
    spectral_norm = overrides.get("spectral_norm", True)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    g = GeneratorConfig(
        num_classes=num_classes,
        num_characters=num_characters,
        **{
            "base_channels": p["base_g"],
            "num_blocks": p["blocks"],
            "z_dim": p["z_dim"],
            "id_dim": p["id_dim"],
            "spade_hidden": p["spade_hidden"],
            **overrides,
        },
    )
    d = DiscriminatorConfig(
        num_classes=num_classes,
        num_characters=num_characters,
        base_channels=p["base_d"],
        num_blocks=p["blocks"],
        identity_head=identity_head,
        spectral_norm=spectral_norm,
    )
    return g, d


def check_image_size(size: tuple[int, int], g_blocks: int) -> None:
    """Raise ValueError unless the generator can paint this size (the discriminator takes any)."""
    need = 2 ** (g_blocks - 1)
    if any(s % need or s <= 0 for s in size):
        raise ValueError(
            f"image size {size[0]}x{size[1]} must be a positive multiple of {need} ({g_blocks} generator blocks)"
        )


# --- JSON round trip -----------------------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Plain dict -> dataclass, recursing into nested dataclasses; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {k: _coerce(hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return from_dict(tp, value)
    origin = typing.get_origin(tp)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None) and value is not None:
                return _coerce(arg, value)
    return value


def save_json(cfg: Any, path: Path) -> None:
    path.write_text(json.dumps(to_dict(cfg), indent=2) + "\n", encoding="utf-8")
