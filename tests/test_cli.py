"""The seed's and OASIS's flags translate into the typed configs."""

from types import SimpleNamespace

import pytest

from animesis.cli import UsageError, asked_keys, build_parser, model_configs, train_config
from animesis.data.palette import DEFAULT_PALETTE, Palette
from animesis.device import device_from_gpu_ids
from animesis.errors import UserError

SEED_TRAIN = [
    "train",
    "--name",
    "quintuplets",
    "--class_dir",
    "datasets/Quintuplets/class.txt",
    "--class_num",
    "9",
    "--dataset_mode",
    "custom",
    "--dataroot",
    "./datasets/Quintuplets",
    "--gpu_ids",
    "0",
    "--num_epochs",
    "400",
    "--batch_size",
    "1",
    "--freq_print",
    "1000",
    "--freq_save_latest",
    "10000",
]


def fake_info(K=9):
    return SimpleNamespace(num_classes=DEFAULT_PALETTE.num_classes, num_characters=K, palette=DEFAULT_PALETTE)


def test_seed_train_command_translates():
    args = build_parser().parse_args(SEED_TRAIN)
    cfg = train_config(args, fake_info())
    assert cfg.name == "quintuplets" and cfg.class_file == "datasets/Quintuplets/class.txt"
    assert cfg.num_epochs == 400 and cfg.batch_size == 1 and cfg.freq_print == 1000
    assert cfg.freq_save_latest == 10000 and cfg.freq_save_ckpt == 20000
    # paper preset: the seed's sizes at 512x512
    assert cfg.image_size == (512, 512)
    assert cfg.generator.base_channels == 64 and cfg.generator.num_blocks == 6
    assert cfg.generator.num_classes == 11 and cfg.generator.num_characters == 9
    # OASIS defaults, under the default recipe (the seed's losses plus the paired terms, no LabelMix,
    # both learning rates at 8e-4)
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (8e-4, 8e-4, 0.0, 0.999)
    assert cfg.ema_decay == 0.9999 and cfg.use_ema and cfg.seed == 42
    assert cfg.loss.lambda_labelmix == 0.0 and cfg.loss.lambda_edge == 0.3
    assert cfg.loss.lambda_vgg == 10.0 and cfg.loss.vgg_layers == 3 and cfg.loss.lambda_l1 == 20.0
    assert cfg.generator.z_dim == 64 and cfg.discriminator.identity_head


def test_oasis_flags_override_preset():
    argv = SEED_TRAIN + [
        "--channels_G",
        "16",
        "--channels_D",
        "8",
        "--num_res_blocks",
        "4",
        "--crop_size",
        "64",
        "--z_dim",
        "3",
    ]
    argv += [
        "--no_labelmix",
        "--no_EMA",
        "--lr_g",
        "2e-4",
        "--EMA_decay",
        "0.999",
        "--no_3dnoise",
        "--no_identity_head",
    ]
    cfg = train_config(build_parser().parse_args(argv), fake_info())
    assert cfg.generator.base_channels == 16 and cfg.discriminator.base_channels == 8
    assert cfg.generator.num_blocks == cfg.discriminator.num_blocks == 4
    assert cfg.image_size == (64, 64)
    assert cfg.generator.z_dim == 0  # --no_3dnoise wins
    assert cfg.loss.lambda_labelmix == 0 and not cfg.use_ema and cfg.lr_g == 2e-4 and cfg.ema_decay == 0.999
    assert not cfg.discriminator.identity_head and cfg.loss.lambda_identity == 0


def test_class_num_must_match_dataset():
    args = build_parser().parse_args(SEED_TRAIN)
    with pytest.raises(UsageError, match="--class_num 9 but the dataset"):
        train_config(args, fake_info(K=5))


def test_bad_crop_size_is_a_clear_error():
    args = build_parser().parse_args(SEED_TRAIN + ["--crop_size", "100"])
    with pytest.raises(UsageError, match="multiple of 32"):
        model_configs(args, 11, 9)


def test_identity_free_baseline_flags(capsys):
    args = build_parser().parse_args(
        SEED_TRAIN + ["--id_dim", "0", "--no_identity_head", "--lambda_edge", "0"]
    )
    cfg = train_config(args, fake_info())
    assert cfg.generator.id_dim == 0 and cfg.generator.z_dim > 0  # 0 is kept, not replaced by the preset
    assert not cfg.discriminator.identity_head and cfg.loss.lambda_edge == 0
    with pytest.raises(UsageError, match="--noise_waves needs noise"):
        model_configs(build_parser().parse_args(SEED_TRAIN + ["--noise_waves", "4", "--no_3dnoise"]), 11, 9)
    waves = train_config(build_parser().parse_args(SEED_TRAIN + ["--noise_waves", "4"]), fake_info())
    assert waves.generator.noise_waves == 4 and "generator.noise_waves" in asked_keys(
        [*SEED_TRAIN, "--noise_waves", "4"], waves
    )
    with pytest.raises(UsageError, match="no code input"):
        model_configs(build_parser().parse_args(SEED_TRAIN + ["--id_dim", "0", "--no_3dnoise"]), 11, 9)
    assert waves.discriminator.texture_channels == 0 and waves.loss.lambda_texture == 0
    tex_flags = [*SEED_TRAIN, "--lambda_texture", "0.5", "--channels_D", "12"]
    tex = train_config(build_parser().parse_args(tex_flags), fake_info())
    assert (tex.loss.lambda_texture, tex.discriminator.texture_channels) == (0.5, 24)
    assert {"loss.lambda_texture", "discriminator.texture_channels"} <= asked_keys(tex_flags, tex)
    with pytest.raises(SystemExit):  # refused by the parser: one line, exit code 2
        build_parser().parse_args(SEED_TRAIN + ["--id_dim", "-2"])
    assert "--id_dim: -2 must be at least 0" in capsys.readouterr().err


def test_ema_ramp_flag():
    cfg = train_config(build_parser().parse_args(SEED_TRAIN + ["--EMA_ramp", "5"]), fake_info())
    assert cfg.ema_ramp == 5.0
    # unset, the recipe's: `paired` averages the last nineteenth of the run, the seed's losses the ninth
    assert train_config(build_parser().parse_args(SEED_TRAIN), fake_info()).ema_ramp == 20.0
    oasis = train_config(build_parser().parse_args([*SEED_TRAIN, "--recipe", "oasis"]), fake_info())
    assert oasis.ema_ramp == 10.0
    # a resume compares the saved ramp only when a flag chose it
    assert "ema_ramp" not in asked_keys([*SEED_TRAIN, "--continue_train"], oasis)
    assert "ema_ramp" in asked_keys([*SEED_TRAIN, "--recipe", "oasis"], oasis)
    assert "ema_ramp" in asked_keys([*SEED_TRAIN, "--EMA_ramp", "5"], oasis)
    with pytest.raises(UsageError, match=r"--EMA_ramp 1\.0: must be more than 1"):
        train_config(build_parser().parse_args(SEED_TRAIN + ["--EMA_ramp", "1"]), fake_info())


def test_lr_decay_flag():
    assert train_config(build_parser().parse_args(SEED_TRAIN), fake_info()).lr_decay == 0.0
    cfg = train_config(build_parser().parse_args(SEED_TRAIN + ["--lr_decay", "0.5"]), fake_info())
    assert cfg.lr_decay == 0.5
    assert "lr_decay" in asked_keys([*SEED_TRAIN, "--lr_decay", "0.5"], cfg)
    with pytest.raises(UsageError, match=r"--lr_decay 1\.5: must be a fraction of the iterations"):
        train_config(build_parser().parse_args(SEED_TRAIN + ["--lr_decay", "1.5"]), fake_info())


@pytest.mark.parametrize("flag,value", [("--beta2", "1.5"), ("--beta1", "-0.1"), ("--beta2", "1.0")])
def test_adam_betas_out_of_range_are_one_line(flag, value):
    with pytest.raises(UsageError, match=rf"{flag} {value}: Adam's averaging factor must be in \[0, 1\)"):
        train_config(build_parser().parse_args(SEED_TRAIN + [flag, value]), fake_info())
    assert (
        train_config(build_parser().parse_args(SEED_TRAIN + ["--beta2", "0.99"]), fake_info()).beta2 == 0.99
    )


def test_paired_region_flag():
    for region in ("all", "character", "near"):
        args = build_parser().parse_args(SEED_TRAIN + ["--paired_region", region])
        assert train_config(args, fake_info()).loss.paired_region == region
    assert train_config(build_parser().parse_args(SEED_TRAIN), fake_info()).loss.paired_region == "all"


@pytest.mark.parametrize("flag", ["l1_class_balanced", "vgg_fp32"])
def test_loss_switches(flag):
    assert not getattr(train_config(build_parser().parse_args(SEED_TRAIN), fake_info()).loss, flag)
    cfg = train_config(build_parser().parse_args([*SEED_TRAIN, f"--{flag}"]), fake_info())
    assert getattr(cfg.loss, flag)
    assert f"loss.{flag}" in asked_keys([*SEED_TRAIN, f"--{flag}"], cfg)


def test_region_colour_flag():
    def weight(*flags: str) -> float:
        return train_config(
            build_parser().parse_args([*SEED_TRAIN, *flags]), fake_info()
        ).loss.lambda_colour_sw

    assert weight() == 20.0  # the default recipe, `paired`
    assert weight("--recipe", "oasis") == 0.0 and weight("--recipe", "fast") == 0.0
    assert (
        weight("--lambda_colour_sw", "0") == 0.0
        and weight("--recipe", "oasis", "--lambda_colour_sw", "5") == 5.0
    )
    argv = [*SEED_TRAIN, "--lambda_colour_sw", "10"]
    assert "loss.lambda_colour_sw" in asked_keys(
        argv, train_config(build_parser().parse_args(argv), fake_info())
    )


def test_noise_region_takes_the_classes_that_carry_no_identity():
    def noise_classes(*flags: str, info=None) -> tuple[int, ...]:
        args = build_parser().parse_args([*SEED_TRAIN, *flags])
        return train_config(args, info or fake_info()).generator.noise_classes

    background = (DEFAULT_PALETTE.names.index("background"),)
    argv = [*SEED_TRAIN, "--noise_region", "background"]
    assert noise_classes("--noise_region", "background") == background
    assert "generator.noise_classes" in asked_keys(
        argv, train_config(build_parser().parse_args(argv), fake_info())
    )
    # the default recipe's; the others', or asked, every pixel; without noise, none to place
    assert noise_classes() == background and noise_classes("--noise_region", "all") == ()
    assert noise_classes("--recipe", "oasis") == () and noise_classes("--recipe", "fast") == ()
    assert noise_classes("--no_3dnoise") == ()
    with pytest.raises(UsageError, match="--noise_region needs noise"):
        train_config(build_parser().parse_args([*argv, "--no_3dnoise"]), fake_info())
    other = Palette(names=("sky", "hair"), colors=((0, 0, 0), (255, 0, 0)))
    info = SimpleNamespace(num_classes=2, num_characters=9, palette=other)
    assert noise_classes(info=info) == ()  # the recipe's, on classes with no background: every pixel
    with pytest.raises(UsageError, match=r"--noise_region background: the dataset's classes \(sky, hair\)"):
        train_config(build_parser().parse_args(argv), info)


def test_vgg_best_of_pair_needs_mode_seeking_and_the_vgg_term():
    argv = [*SEED_TRAIN, "--vgg_best_of_pair"]
    cfg = train_config(build_parser().parse_args(argv), fake_info())  # paired: VGG and mode seeking
    assert cfg.loss.vgg_best_of_pair and "loss.vgg_best_of_pair" in asked_keys(argv, cfg)
    assert not train_config(build_parser().parse_args(SEED_TRAIN), fake_info()).loss.vgg_best_of_pair
    for off in (["--lambda_ms", "0"], ["--recipe", "oasis"], ["--no_3dnoise"]):
        with pytest.raises(UsageError, match="--vgg_best_of_pair needs the VGG term and mode seeking"):
            train_config(build_parser().parse_args([*argv, *off]), fake_info())


def test_mode_seeking_needs_noise():
    cfg = train_config(build_parser().parse_args(SEED_TRAIN + ["--lambda_ms", "1"]), fake_info())
    assert cfg.loss.lambda_ms == 1.0
    # The default recipe's mode seeking (on the background) is off without noise, not an error.
    paired = train_config(build_parser().parse_args(SEED_TRAIN), fake_info())
    assert (paired.loss.lambda_ms, paired.loss.ms_region) == (2.0, "background")
    quiet = train_config(build_parser().parse_args(SEED_TRAIN + ["--no_3dnoise"]), fake_info())
    assert quiet.loss.lambda_ms == 0.0
    off = train_config(build_parser().parse_args(SEED_TRAIN + ["--lambda_ms", "0"]), fake_info())
    assert off.loss.lambda_ms == 0.0
    oasis = train_config(build_parser().parse_args(SEED_TRAIN + ["--recipe", "oasis"]), fake_info())
    assert (oasis.loss.lambda_ms, oasis.loss.ms_region) == (0.0, "all")
    light = train_config(
        build_parser().parse_args(SEED_TRAIN + ["--ms_region", "background_light"]), fake_info()
    )
    assert (light.loss.lambda_ms, light.loss.ms_region) == (2.0, "background_light")
    with pytest.raises(UsageError, match="--lambda_ms needs noise"):
        train_config(
            build_parser().parse_args(SEED_TRAIN + ["--lambda_ms", "1", "--no_3dnoise"]), fake_info()
        )


def test_gpu_ids():
    assert device_from_gpu_ids("-1") == "cpu"
    with pytest.raises(UserError, match="--gpu_ids"):
        device_from_gpu_ids("zero")


def test_recipes_set_the_losses_and_explicit_flags_override():
    oasis = train_config(build_parser().parse_args([*SEED_TRAIN, "--recipe", "oasis"]), fake_info())
    assert oasis.generator.modulation == "spade" and oasis.loss.lambda_vgg == 0.0
    assert oasis.loss.lambda_labelmix == 10.0 and oasis.loss.vgg_layers == 5 and oasis.loss.lambda_l1 == 0.0
    assert (oasis.lr_g, oasis.lr_d) == (1e-4, 4e-4)
    paired = train_config(build_parser().parse_args(SEED_TRAIN), fake_info())  # the default
    assert paired.generator.modulation == "spade" and paired.loss.lambda_labelmix == 0.0
    assert paired.loss.lambda_vgg == 10.0 and paired.loss.vgg_layers == 3 and paired.loss.lambda_l1 == 20.0
    assert (paired.lr_g, paired.lr_d) == (8e-4, 8e-4)
    assert paired.loss.vgg_keep_total  # three taps weigh what five did
    # explicit flags win over the recipe, both ways
    back = [*SEED_TRAIN, "--lambda_labelmix", "5", "--lambda_l1", "0", "--lambda_vgg", "0", "--lr_g", "2e-4"]
    cfg = train_config(build_parser().parse_args([*back, "--lr_d", "3e-4"]), fake_info())
    assert cfg.loss.lambda_labelmix == 5.0 and cfg.loss.lambda_l1 == 0.0 and cfg.loss.lambda_vgg == 0.0
    assert (cfg.lr_g, cfg.lr_d) == (2e-4, 3e-4)
    fast = train_config(build_parser().parse_args([*SEED_TRAIN, "--recipe", "fast"]), fake_info())
    assert fast.generator.modulation == "style" and fast.loss.lambda_vgg == 10.0
    assert fast.loss.vgg_layers == 3 and fast.loss.lambda_labelmix == 0.0
    mixed = [
        *SEED_TRAIN,
        "--recipe",
        "fast",
        "--modulation",
        "spade",
        "--vgg_layers",
        "5",
        "--lambda_vgg",
        "2",
    ]
    cfg = train_config(build_parser().parse_args(mixed), fake_info())
    assert cfg.generator.modulation == "spade" and cfg.loss.vgg_layers == 5 and cfg.loss.lambda_vgg == 2.0
    # The OASIS flags alone still reach every term.
    flags = [*SEED_TRAIN, "--recipe", "oasis", "--add_vgg_loss", "--no_labelmix", "--modulation", "style"]
    flags += ["--vgg_layers", "3"]
    assert train_config(build_parser().parse_args(flags), fake_info()).loss == fast.loss
