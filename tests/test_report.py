"""The checkpoint report end to end on a tiny dataset and generator: every metric a number or a reason."""

import json
import math

import pytest
import torch
from datagen import CLOTHES, EYES, HAIR, character_colors, tiny_judge_settings, write_tiny_dataset
from safetensors.torch import save_file

from animesis.config import GeneratorConfig
from animesis.data.layout import load_dataset
from animesis.data.palette import DEFAULT_PALETTE
from animesis.files import write_text
from animesis.metrics.assets import INCEPTION, LPIPS_ALEX, MetricUnavailable, locate_weights
from animesis.metrics.judges import train_judges
from animesis.metrics.report import evaluate_checkpoint, format_report, main_eval_checkpoint, main_judges
from animesis.models.generator import Generator
from animesis.models.pretrained import G_EMA_WEIGHTS, G_WEIGHTS, ModelCard, save_pretrained
from animesis.runs import STATE_JSON, models_dir

K = 3
SIZE = 32
EVAL = dict(device="cpu", batch_size=3, n_diversity_maps=2, samples_per_map=3, workers=0, progress=False)


def has(weights) -> bool:
    try:
        locate_weights(weights)
    except MetricUnavailable:
        return False
    return True


def hexa(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def write_cast(root) -> None:
    """cast.json in the synthetic dataset's format, with the tiny dataset's character colours."""
    characters = [
        {"id": k, "name": f"c{k}", "hair": hexa(c[HAIR]), "eyes": hexa(c[EYES]), "clothes": hexa(c[CLOTHES])}
        for k, c in ((k, character_colors(k, K)) for k in range(K))
    ]
    (root / "cast.json").write_text(json.dumps({"characters": characters}), encoding="utf-8")


def write_run(run_dir, step: int, z_dim: int = 4) -> None:
    """A run folder as training leaves it: models/<step>/ with an (untrained) generator and a latest pointer."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(11, K, base_channels=8, num_blocks=3, z_dim=z_dim, id_dim=4, spade_hidden=16)
    card = ModelCard(cfg, None, DEFAULT_PALETTE, tuple(f"c{k}" for k in range(K)), (SIZE, SIZE), step=step)
    folder = models_dir(run_dir) / str(step)
    save_pretrained(folder, Generator(cfg).eval(), card)
    (folder / STATE_JSON).write_text("{}\n")
    write_text(models_dir(run_dir) / "latest.txt", f"{step}\n")


def assert_number_or_reason(metrics: dict) -> None:
    for key, value in metrics.items():
        if isinstance(value, dict):
            assert set(value) == {"unavailable"} and value["unavailable"], key
        else:
            assert isinstance(value, float) and math.isfinite(value), key


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny synthetic-like dataset with cast colours and judges, and the report of an untrained model."""
    tmp = tmp_path_factory.mktemp("report")
    root = write_tiny_dataset(tmp / "data", n_train=24, n_val=0, n_test=6, num_characters=K)
    write_cast(root)
    info = load_dataset(root)
    train_judges(info, root / "judges", **tiny_judge_settings(K, SIZE))
    write_run(tmp / "run", step=7)
    return info, evaluate_checkpoint(tmp / "run", "latest", info, seed=1, **EVAL)


def test_report_has_every_metric_with_its_n(evaluated):
    _, result = evaluated
    m = result["metrics"]
    assert_number_or_reason(m)
    assert result["n_images"] == 6 and result["resolution"] == [SIZE, SIZE] and result["step"] == 7
    assert "TF-Inception 2015-12-05" in result["preprocessing"]["fid_kid"]
    json.loads(json.dumps(result))  # JSON as written by --json
    expected = {
        "fid",
        "kid_x100",
        "kid_x100_std",
        "lpips_paired",
        "lpips_paired_std",
        "lpips_diversity",
        "lpips_diversity_std",
        "lpips_diversity_real",
        "lpips_diversity_real_std",
        "fid_real",
        "identity_accuracy_real",
        "identity_accuracy",
        "identity_accuracy_every_character",
        "miou_real",
        "miou",
        "colour_error_real",
        "colour_error",
        "colour_error_every_character",
    }
    assert set(m) == expected
    if has(INCEPTION):
        assert m["fid"] > 0 and isinstance(m["kid_x100"], float)
    if has(LPIPS_ALEX):
        assert 0 < m["lpips_paired"] < 2 and m["lpips_diversity"] >= 0


@pytest.mark.skipif(not has(INCEPTION), reason="needs the Inception weights (scripts/setup.sh fetches them)")
def test_real_vs_real_fid_is_at_the_fids_own_n(evaluated):
    """No val split here (6 test maps): the floor takes 6 train pictures, not fewer, so it is read at the
    generated FID's N."""
    _, result = evaluated
    assert result["details"]["real_references"]["fid_real"] == {"n": 6, "pictures": "train against test"}
    assert result["metrics"]["fid_real"] >= 0


def test_judges_and_colours_separate_real_from_an_untrained_generator(evaluated):
    _, result = evaluated
    m, d = result["metrics"], result["details"]
    assert m["identity_accuracy_real"] >= 0.8  # chance is 1/3
    assert m["miou_real"] >= 0.5 and m["miou"] < m["miou_real"]
    assert m["colour_error_real"] < 10 < m["colour_error"]  # real pictures carry the cast's colours
    assert d["identity"]["n_every_character"] == 6 * K
    assert sum(map(sum, d["identity"]["every_character_confusion"])) == 6 * K
    assert set(d["miou"]["per_class_miou_real"]) == set(DEFAULT_PALETTE.names)


def test_eval_no_ema_paints_with_the_raw_generator(evaluated, tmp_path, capsys):
    info, ema = evaluated
    write_run(tmp_path / "run", step=7)
    folder = tmp_path / "run" / "models" / "7"
    torch.manual_seed(1)  # raw weights other than the EMA's, as after training
    raw = Generator(GeneratorConfig(11, K, base_channels=8, num_blocks=3, z_dim=4, id_dim=4, spade_hidden=16))
    save_file({k: v.contiguous() for k, v in raw.state_dict().items()}, str(folder / G_WEIGHTS))
    out = tmp_path / "raw.json"
    code = main_eval_checkpoint(
        "run",
        tmp_path,
        "latest",
        info.root,
        None,
        "cpu",
        out,
        1,
        16,
        "test",
        use_ema=False,
        n_diversity_maps=2,
        samples_per_map=3,
    )
    result = json.loads(out.read_text())
    assert code == 0 and result["weights"] == G_WEIGHTS and ema["weights"] == G_EMA_WEIGHTS
    assert f"step 7, {G_WEIGHTS}" in capsys.readouterr().out
    if has(LPIPS_ALEX):  # other weights, other paintings
        assert result["metrics"]["lpips_paired"] != ema["metrics"]["lpips_paired"]


def test_report_is_deterministic_for_a_seed(evaluated, tmp_path):
    info, first = evaluated
    write_run(tmp_path / "run", step=7)
    again = evaluate_checkpoint(tmp_path / "run", 7, info, seed=1, **{**EVAL, "batch_size": 4})
    for key in (
        "lpips_paired",
        "identity_accuracy",
        "identity_accuracy_every_character",
        "miou",
        "colour_error",
    ):
        assert again["metrics"][key] == pytest.approx(first["metrics"][key], abs=1e-5), key


def test_markdown_table_lists_every_row(evaluated):
    _, result = evaluated
    table = format_report(result)
    assert "| metric | generated | real test images | N | notes |" in table
    for row in (
        "FID",
        "KID ×100",
        "LPIPS to ground truth",
        "diversity LPIPS",
        "identity accuracy, own character",
        "identity accuracy, every character",
        "mIoU",
        "colour error ΔE",
    ):
        assert f"| {row}" in table
    assert "6 × 3" in table  # maps x characters of the every-character row


def test_missing_judges_cast_and_noise_are_reported_not_replaced(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "data", n_train=6, n_val=0, n_test=3, num_characters=K)
    write_run(tmp_path / "checkpoints" / "plain", step=3, z_dim=0)
    out = tmp_path / "out" / "eval.json"
    code = main_eval_checkpoint(
        "plain", tmp_path / "checkpoints", "best", root, None, "cpu", out, 0, 2, "test"
    )
    printed = capsys.readouterr()
    assert "no 'best' checkpoint" in printed.err  # falls back to latest, and says so
    result = json.loads(out.read_text())
    m = result["metrics"]
    assert_number_or_reason(m)
    for key in (
        "identity_accuracy",
        "identity_accuracy_real",
        "identity_accuracy_every_character",
        "miou",
        "miou_real",
    ):
        assert f"animesis judges --dataroot {root}" in m[key]["unavailable"]
    for key in ("colour_error", "colour_error_real"):
        assert "cast.json not found" in m[key]["unavailable"]
    assert "z_dim=0" in m["lpips_diversity"]["unavailable"]
    assert code == 1  # judges missing: the report is incomplete
    assert "unavailable" in printed.out and result["step"] == 3


def test_judges_command_trains_once_then_reuses(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path / "data", n_train=6, n_val=0, n_test=3, num_characters=K)
    assert main_judges(root, None, "cpu", 1, 0, False) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["character"]["epochs"] == 1 and (root / "judges" / "segment" / "model.safetensors").exists()
    assert main_judges(root, None, "cpu", 1, 0, False) == 0
    assert "already trained" in capsys.readouterr().out


@pytest.mark.skipif(not has(INCEPTION), reason="needs the Inception weights (scripts/setup.sh fetches them)")
def test_real_picture_scores_are_kept_until_a_picture_changes(evaluated, tmp_path):
    import shutil

    import numpy as np
    from PIL import Image

    info, first = evaluated  # scored afresh, and kept in DATAROOT/references
    assert first["details"]["real_references"]["from_cache"] == []
    root = shutil.copytree(info.root, tmp_path / "data")
    write_run(tmp_path / "run", step=7)
    again = evaluate_checkpoint(tmp_path / "run", 7, load_dataset(root), seed=1, **EVAL)
    assert sorted(again["details"]["real_references"]["from_cache"]) == [
        "inception_test_32x32_n6",
        "inception_train_32x32_n6",  # the real-vs-real floor's other pictures
    ]
    for key in ("fid", "kid_x100", "lpips_paired", "identity_accuracy_real"):
        assert again["metrics"][key] == pytest.approx(first["metrics"][key], rel=1e-6), key

    # An edited picture is scored again, not read from the cache.
    picture = info.splits["test"][0].image
    picture = root / picture.relative_to(info.root)
    Image.fromarray(np.asarray(Image.open(picture).convert("RGB"))[:, ::-1].copy()).save(picture)
    edited = evaluate_checkpoint(tmp_path / "run", 7, load_dataset(root), seed=1, **EVAL)
    assert edited["details"]["real_references"]["from_cache"] == ["inception_train_32x32_n6"]  # unchanged
    assert edited["metrics"]["fid"] != pytest.approx(first["metrics"]["fid"], rel=1e-6)
