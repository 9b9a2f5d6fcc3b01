"""The built-in synthetic dataset: exact labels, identities in the colours, determinism, layout, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from animesis.data.edges import canny_edges
from animesis.data.palette import DEFAULT_PALETTE
from animesis.synth.canny import canny_exact
from animesis.synth.cast import DEFAULT_CAST, SynthError, cast_members, load_cast, looks_of
from animesis.synth.dataset import draw_picture, draw_variations, synthesize
from animesis.synth.draw import BG, BROWS, EARS, EYES, FACE, HAIR, MOUTH, NOSE, SKIN, render
from animesis.synth.png import png_bytes

N_CLASSES = DEFAULT_PALETTE.num_classes


@pytest.fixture(scope="module")
def cast():
    return load_cast()


@pytest.fixture(scope="module")
def nine(cast):
    return cast_members(cast, 9, seed=0)


def _rng(i: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([123, i])))


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------------------
# Drawing


@pytest.mark.parametrize("size", [64, 100, 256])
def test_labels_and_image_come_from_the_drawn_materials(nine, size):
    for i in range(3):
        r = render(nine[i * 3], _rng(i), size)
        s, o = r.supersample, r.supersample // 2
        assert r.image.shape == (size, size, 3) and r.image.dtype == np.uint8
        assert r.label.shape == (size, size) and r.label.dtype == np.uint8
        assert r.materials.shape == (size * s, size * s)
        # Every label pixel is the class of the shape drawn at its sample point: exact, no other values.
        np.testing.assert_array_equal(r.label, r.material_class[r.materials[o::s, o::s]])
        assert r.label.max() < N_CLASSES
        # Every image pixel is the average of the colours drawn over its s×s block (antialiasing).
        rgb = r.material_rgb[r.materials].astype(np.float64)
        mean = rgb.reshape(size, s, size, s, 3).mean(axis=(1, 3))
        assert np.abs(r.image - mean).max() <= 1.0


def test_class_regions_show_the_character(nine):
    """Each class region has the character's colours, and the face parts sit where a face has them."""
    for k, ch in enumerate(nine):
        r = render(ch, _rng(100 + k), 128)
        img, lab = r.image.astype(float), r.label
        interior = {c: ndimage.binary_erosion(lab == c, iterations=2) for c in (HAIR, FACE, EYES)}
        # Hair interior: closer to this character's hair tones than to any other character's.
        hair_px = img[interior[HAIR]]
        assert len(hair_px) > 200

        def hair_error(other, px=hair_px):
            tones = np.array(other.hair, dtype=float)
            return np.median(np.min(np.linalg.norm(px[:, None] - tones[None], axis=2), axis=1))

        assert hair_error(ch) < min(hair_error(o) for o in nine if o.hair[0] != ch.hair[0])
        # Face interior: the skin tone, lit or darkened by a shadow (a blush covers only a little).
        face_px = img[interior[FACE]]
        skin = np.array(ch.skin, dtype=float)
        darker = skin[None] * np.linspace(0.7, 1.0, 16)[:, None]  # (16, 3)
        distance = np.min(np.linalg.norm(face_px[:, None] - darker[None], axis=2), axis=1)
        assert np.mean(distance < 40) > 0.8
        # Eyes: drawn inside the face's extent; at least one pixel shows the iris colour when they are open.
        fy, fx = np.nonzero(lab == FACE)
        for c in (EYES, MOUTH, NOSE):
            ys, xs = np.nonzero(lab == c)
            if len(ys):
                assert fy.min() <= ys.mean() <= fy.max() and fx.min() <= xs.mean() <= fx.max(), c
        # The background touches the picture's border; the face does not.
        assert BG in np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]]
        assert FACE not in np.r_[lab[0], lab[:, 0], lab[:, -1]]


def test_every_class_appears(nine):
    seen = np.zeros(N_CLASSES, int)
    for i in range(18):
        seen += np.bincount(
            draw_picture(nine, 0.3, 0, "train", i, 128, i % 9).label.ravel(), minlength=N_CLASSES
        )
    assert (seen > 0).all(), [DEFAULT_PALETTE.names[c] for c in np.flatnonzero(seen == 0)]
    assert {HAIR, EARS, BROWS, SKIN} <= set(np.flatnonzero(seen))


def test_pictures_vary_but_a_stream_repeats(nine):
    a = draw_picture(nine, 0.3, 7, "train", 5, 96, 5)
    b = draw_picture(nine, 0.3, 7, "train", 5, 96, 5)
    c = draw_picture(nine, 0.3, 7, "train", 6, 96, 5)
    d = draw_picture(nine, 0.3, 8, "train", 5, 96, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert (a.label != c.label).mean() > 0.05 and (a.label != d.label).mean() > 0.05


def test_label_maps_do_not_give_the_character_away(cast, nine):
    """1-nearest-neighbour on label maps names the character no better than 3x chance (the issue's bound)."""

    def maps(split, n):
        ids = np.arange(n) % 9
        return np.stack(
            [draw_picture(nine, cast.restyle, 0, split, i, 64, ids[i]).label.ravel() for i in range(n)]
        ), ids

    train, train_ids = maps("train", 540)
    test, test_ids = maps("test", 180)
    onehot = np.eye(N_CLASSES, dtype=np.float32)
    agree = onehot[test].reshape(len(test), -1) @ onehot[train].reshape(len(train), -1).T
    accuracy = np.mean(train_ids[agree.argmax(1)] == test_ids)
    assert accuracy <= 1 / 3


def test_sisters_share_a_look_in_the_default_cast(cast):
    assert len(cast.characters) >= 9 and 0 < cast.restyle < 1
    first = cast.characters[:9]
    looks = looks_of(first)
    assert len(looks) >= 2
    for look in looks:  # every look is worn by several characters, told apart only by colours
        wearers = [c for c in first if (c.hairstyle, c.bangs, c.accessories) == look]
        assert len(wearers) >= 3
        assert len({c.hair for c in wearers}) == len(wearers)


def test_more_characters_than_the_cast_are_made_up(cast):
    many = cast_members(cast, len(cast.characters) + 5, seed=3)
    assert many[: len(cast.characters)] == cast.characters
    extra = many[len(cast.characters) :]
    assert len({c.name for c in many}) == len(many)
    assert extra[0].family == extra[1].family == extra[2].family != extra[3].family
    assert cast_members(cast, len(many), seed=3) == many  # deterministic


# ---------------------------------------------------------------------------------------------------------
# Edges and PNG files


def test_edges_are_canny_as_training_computes_it(nine):
    for i in range(4):
        img = draw_picture(nine, 0.3, 0, "val", i, 128, i).image
        ours = canny_exact(img)
        assert ours.dtype == np.uint8 and set(np.unique(ours)) == {0, 1}
        ref = (
            canny_edges(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255)[0]
            .numpy()
            .astype(bool)
        )
        mine = ours.astype(bool)
        near = np.ones((3, 3), bool)
        # Float and integer arithmetic may pick the other of two tied pixels: compare within one pixel.
        assert ndimage.binary_dilation(ref, near)[mine].mean() > 0.98
        assert ndimage.binary_dilation(mine, near)[ref].mean() > 0.98


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((1, 1), np.uint8),
        np.zeros((40, 1000), np.uint8),  # runs far longer than one deflate match
        np.tile(np.arange(7, dtype=np.uint8).repeat(np.arange(1, 8)), (5, 3)),  # runs of every short length
        np.random.default_rng(0).integers(0, 256, (33, 17, 3), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 11, (64, 64), dtype=np.uint8).repeat(3, axis=1),
    ],
)
def test_png_files_decode_to_the_pixels(pixels):
    data = png_bytes(pixels)
    back = Image.open(io.BytesIO(data))
    assert back.mode == ("L" if pixels.ndim == 2 else "RGB")
    np.testing.assert_array_equal(np.asarray(back), pixels)
    # The zlib stream is complete and checked (Adler-32) on its own too.
    start = data.index(b"IDAT") + 4
    raw = zlib.decompress(data[start : start + int.from_bytes(data[start - 8 : start - 4], "big")])
    assert len(raw) == pixels.shape[0] * (pixels[0].size + 1)


# ---------------------------------------------------------------------------------------------------------
# Whole datasets


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "Synth"
    summary = synthesize(
        out, characters=9, size=64, train=27, val=9, test=18, seed=5, workers=1, progress=False
    )
    return out, summary


def test_layout_matches_the_seed(small):
    out, summary = small
    assert summary["images"] == {"train": 27, "val": 9, "test": 18} and not summary["skipped"]
    assert summary["missing_classes"] == []  # every class is in the training split, even at 64×64
    names = {}
    for split, n in (("train", 27), ("val", 9), ("test", 18)):
        for kind in ("img", "label", "edge"):
            files = sorted(p.name for p in (out / f"{split}_{kind}").iterdir())
            assert len(files) == n and all(f.startswith(f"{split}_") and f.endswith(".png") for f in files)
            names[split] = files
        for name in names[split]:
            img = Image.open(out / f"{split}_img" / name)
            label = Image.open(out / f"{split}_label" / name)
            edge = Image.open(out / f"{split}_edge" / name)
            assert (img.mode, label.mode, edge.mode) == ("RGB", "L", "L")
            assert img.size == label.size == edge.size == (64, 64)
            assert np.asarray(label).max() < N_CLASSES
            assert set(np.unique(edge)) <= {0, 1} and np.asarray(edge).any()
    lines = (out / "class.txt").read_text().splitlines()
    assert lines[0] == "name character"
    entries = dict(line.split() for line in lines[1:])
    assert sorted(entries) == sorted(n for files in names.values() for n in files)
    assert {int(v) for v in entries.values()} == set(range(9))
    assert {int(entries[n]) for n in names["train"]} == set(range(9))
    cast = json.loads((out / "cast.json").read_text())
    assert [c["id"] for c in cast["characters"]] == list(range(9))
    assert all(c["name"] for c in cast["characters"]) and cast["arguments"]["seed"] == 5
    readme = (out / "README.md").read_text()
    assert all(c["name"] in readme for c in cast["characters"])
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.size == (2 * 4 * 64, 9 * 64)
    assert not (out.parent / "Synth.partial").exists()


def test_dataset_check_passes(small):
    from animesis.data.layout import check_dataset

    out, _ = small
    report = check_dataset(out, need=("train", "val", "test"))
    assert report.ok, report.format()
    assert report.info.num_characters == 9
    assert (
        report.info.character_names[0] == json.loads((out / "cast.json").read_text())["characters"][0]["name"]
    )


def test_same_arguments_give_the_same_bytes_with_any_number_of_workers(small, tmp_path):
    out, _ = small
    again = tmp_path / "again"
    summary = synthesize(
        again, characters=9, size=64, train=27, val=9, test=18, seed=5, workers=2, progress=False
    )
    assert summary["workers"] == 2
    assert _tree_digest(again) == _tree_digest(out)
    other = tmp_path / "other"
    synthesize(other, characters=9, size=64, train=27, val=9, test=18, seed=6, workers=1, progress=False)
    assert (
        _tree_digest(other)["train_img/train_000000.png"] != _tree_digest(out)["train_img/train_000000.png"]
    )


def test_existing_folders_are_never_overwritten(small, tmp_path):
    out, _ = small
    args = dict(characters=9, size=64, train=27, val=9, test=18, seed=5, workers=1, progress=False)
    before = _tree_digest(out)
    assert synthesize(out, **args)["skipped"]  # the same dataset is already there
    with pytest.raises(SynthError, match="other arguments"):
        synthesize(out, **{**args, "seed": 9})
    assert _tree_digest(out) == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(SynthError, match="not empty"):
        synthesize(mine, **args)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_an_interrupted_run_is_cleared_and_redone(tmp_path):
    out = tmp_path / "Synth"
    leftover = tmp_path / "Synth.partial"
    leftover.mkdir()
    (leftover / ".synth-partial").write_text("")
    (leftover / "train_img").mkdir()
    synthesize(out, characters=2, size=64, train=2, val=0, test=0, workers=1, progress=False)
    assert (out / "cast.json").is_file() and not leftover.exists()
    assert not (out / "val_img").exists()  # empty splits get no folders
    foreign = tmp_path / "X.partial"
    foreign.mkdir()
    with pytest.raises(SynthError, match=r"X\.partial"):
        synthesize(tmp_path / "X", characters=2, size=64, train=2, val=0, test=0, workers=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 63}, "--size must be between 64 and 1024"),
        ({"size": 1025}, "--size must be between 64 and 1024"),
        ({"train": 3}, r"--train \(3\) must be at least --characters \(9\)"),
        ({"val": -1}, "--val must be 0 or more"),
        ({"characters": 0}, "--characters must be at least 1"),
    ],
)
def test_impossible_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(SynthError, match=message):
        synthesize(tmp_path / "out", **{"train": 20, "val": 0, "test": 0, "progress": False, **kwargs})
    assert not (tmp_path / "out").exists()


def _character(**change) -> dict:
    base = json.loads(DEFAULT_CAST.read_text())["characters"][0]
    return {**base, **change}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"characters": []}, "expected"),
        (
            {"characters": [_character(hairstyle="mohawk")]},
            r"characters\[0\] \(\"Akari Amamiya\"\): hairstyle 'mohawk'",
        ),
        ({"characters": [_character(eyes="#12345")]}, "eyes: colour must be"),
        ({"characters": [_character(skin=[255, 0, 300])]}, "skin: colour must be"),
        ({"characters": [_character(accessories=["crown"])]}, "accessories must be a list of"),
        ({"characters": [{"name": "Solo"}]}, "missing hairstyle, hair, eyes, skin, clothes"),
        ({"characters": [_character(hat="red")]}, "unknown key"),
        ({"characters": [_character(), _character()]}, "names must be unique"),
        ({"characters": [_character()], "restyle": 2}, "restyle must be a probability"),
    ],
)
def test_bad_characters_files_are_named_and_explained(tmp_path, doc, message):
    path = tmp_path / "chars.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(SynthError, match=message) as err:
        load_cast(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_a_users_cast_is_drawn(tmp_path):
    chars = [
        {
            "name": "Mio",
            "hairstyle": "buns",
            "hair": "#202020",
            "eyes": "#00a0ff",
            "skin": [250, 225, 210],
            "clothes": "#ff8000",
        },
        _character(name="Rin", hairstyle="ponytail", pattern="checks"),
    ]
    path = tmp_path / "chars.json"
    path.write_text(json.dumps({"characters": chars}))
    out = tmp_path / "Mine"
    synthesize(
        out, characters=2, size=64, train=4, val=0, test=2, characters_file=path, workers=1, progress=False
    )
    cast = json.loads((out / "cast.json").read_text())
    assert [c["name"] for c in cast["characters"]] == ["Mio", "Rin"]
    assert cast["characters"][0]["hair_shadow"] != cast["characters"][0]["hair"]  # derived tones
    path.write_text(json.dumps({"characters": [{**chars[0], "name": 3}]}))
    with pytest.raises(SynthError, match="name must be a non-empty one-line string"):
        load_cast(path)


def test_variations_keep_the_label_map_and_change_background_and_light(small, tmp_path):
    out, _ = small
    label, images = draw_variations(out, "test", 3, 4)
    on_disk = np.asarray(Image.open(out / "test_label" / "test_000003.png"))
    assert np.array_equal(label, on_disk)  # the same picture: the character and layout are untouched
    background = label == DEFAULT_PALETTE.index("background")
    for other in images[1:]:
        changed = (other != images[0]).any(axis=2)
        assert changed[background].mean() > 0.2  # another background
    # Light moves the cel shadows on the character, never its classes.
    character = ~background
    assert max((im != images[0]).any(axis=2)[character].mean() for im in images[1:]) > 0.005
    (tmp_path / "cast.json").write_text('{"characters": []}')
    with pytest.raises(SynthError, match="not a dataset drawn by"):
        draw_variations(tmp_path, "test", 0, 2)
