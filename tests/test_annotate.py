"""The annotation assistant: drafts that follow the pictures, a segmenter cached like the judges, pictures
added to a dataset, and every bad input refused in one line before anything is written."""

import json
import shutil

import numpy as np
import pytest
from datagen import write_tiny_dataset
from PIL import Image

from animesis.annotate import LOW_CONFIDENCE, annotator_folder
from animesis.commands.annotate import AnnotateArgs, run_annotate
from animesis.data.layout import load_dataset
from animesis.data.palette import DEFAULT_PALETTE
from animesis.errors import UserError
from animesis.metrics.judges import confusion_matrix, miou_from_confusion

N = DEFAULT_PALETTE.num_classes
FIRST = "0018.png"  # the first test picture (16 train and 2 val pictures come before it)
FAST = dict(epochs=80, resolution=32, workers=0, progress=False, device="cpu")


def tree(root):
    """Every file under root with its bytes: to prove that nothing was written."""
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny dataset whose segmenter is trained once; its test pictures are the pictures to annotate."""
    base = tmp_path_factory.mktemp("annotate")
    root = write_tiny_dataset(base / "ds", n_train=16, n_val=2, n_test=4)
    pics = base / "pics"
    pics.mkdir()
    for p in sorted((root / "test_img").iterdir()):
        shutil.copy(p, pics / p.name)
    out = base / "out"
    run_annotate(AnnotateArgs(dataroot=root, images=pics, out=out, **FAST))
    return root, pics, out


def read(path):
    return np.asarray(Image.open(path))


def test_drafts_follow_the_pictures(data):
    root, pics, out = data
    truth, drafts = [], []
    for p in sorted(pics.iterdir()):
        label = Image.open(out / "label" / p.name)
        assert label.mode == "L" and label.size == Image.open(p).size  # an index PNG named like the picture
        draft = np.asarray(label)
        assert draft.max() < N
        np.testing.assert_array_equal(read(out / "preview" / p.name), DEFAULT_PALETTE.colorize(draft))
        confidence = read(out / "confidence" / p.name)
        assert confidence.shape == draft.shape and confidence.dtype == np.uint8
        assert confidence.min() >= round(255 / N) - 1  # a winning probability is at least 1/N
        truth.append(read(root / "test_label" / p.name))
        drafts.append(draft)
    score, _ = miou_from_confusion(confusion_matrix(np.stack(drafts), np.stack(truth), N))
    # Guessing the commonest class scores about 0.05; 16 labelled pictures and 80 passes reach ~0.75.
    assert score > 0.5


def test_drafts_json_lists_the_least_sure_first(data):
    _, pics, out = data
    summary = json.loads((out / "drafts.json").read_text())
    listed = summary["drafts"]
    assert sorted(d["picture"] for d in listed) == sorted(str(p) for p in pics.iterdir())
    means = [d["mean_confidence"] for d in listed]
    assert means == sorted(means)
    first = listed[0]
    conf = read(out / "confidence" / (first["picture"].rsplit("/", 1)[-1])) / 255
    assert first["mean_confidence"] == pytest.approx(conf.mean(), abs=0.01)
    assert first["low_confidence_share"] == pytest.approx((conf < LOW_CONFIDENCE).mean(), abs=0.01)
    assert summary["segmenter"]["train_pictures"] == 16


def test_the_segmenter_is_cached_and_retrained_when_the_train_split_changes(data, tmp_path):
    root, pics, _ = data
    first = json.loads((annotator_folder(root) / "config.json").read_text())
    run_annotate(AnnotateArgs(dataroot=root, images=pics, out=tmp_path / "again", **FAST))
    assert json.loads((tmp_path / "again" / "drafts.json").read_text())["segmenter"]["reused"]
    # A copy of the dataset with one more training picture: the cache no longer describes it.
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.copy(copy / "train_img" / "0000.png", copy / "train_img" / "extra.png")
    shutil.copy(copy / "train_label" / "0000.png", copy / "train_label" / "extra.png")
    shutil.copy(copy / "train_edge" / "0000.png", copy / "train_edge" / "extra.png")
    with open(copy / "class.txt", "a") as f:
        f.write("extra.png 0\n")
    run_annotate(AnnotateArgs(dataroot=copy, images=pics, out=tmp_path / "changed", **FAST))
    summary = json.loads((tmp_path / "changed" / "drafts.json").read_text())["segmenter"]
    assert not summary["reused"] and summary["train_pictures"] == 17
    assert json.loads((annotator_folder(copy) / "config.json").read_text())["dataset"] != first["dataset"]


def test_an_unreadable_cached_segmenter_is_trained_again(data, tmp_path, capsys):
    root, pics, _ = data
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (annotator_folder(copy) / "model.safetensors").write_bytes(b"damaged")
    run_annotate(AnnotateArgs(dataroot=copy, images=pics, out=tmp_path / "o", **FAST))
    assert not json.loads((tmp_path / "o" / "drafts.json").read_text())["segmenter"]["reused"]
    assert "the cached segmenter cannot be read; training a new one" in capsys.readouterr().err
    run_annotate(AnnotateArgs(dataroot=copy, images=pics, out=tmp_path / "again", **FAST))  # cached anew
    assert json.loads((tmp_path / "again" / "drafts.json").read_text())["segmenter"]["reused"]


def test_fewer_training_pictures_on_request(data, tmp_path):
    root, pics, _ = data
    copy = tmp_path / "copy"  # the new settings replace the cached segmenter
    shutil.copytree(root, copy)
    run_annotate(AnnotateArgs(dataroot=copy, images=pics, out=tmp_path / "o", train_pictures=6, **FAST))
    summary = json.loads((tmp_path / "o" / "drafts.json").read_text())["segmenter"]
    assert summary["train_pictures"] == 6 and not summary["reused"]
    assert json.loads((annotator_folder(copy) / "config.json").read_text())["settings"]["train_pictures"] == 6


def test_a_picture_of_another_size_is_drafted_at_its_own_size_and_said_so(data, tmp_path, capsys):
    root, pics, _ = data
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.open(pics / FIRST).resize((48, 40), Image.BICUBIC).save(odd / "wide.png")
    run_annotate(AnnotateArgs(dataroot=root, images=odd, out=tmp_path / "o", **FAST))
    assert Image.open(tmp_path / "o" / "label" / "wide.png").size == (48, 40)
    err = capsys.readouterr().err
    assert "wide.png is 48x40" in err and "squashed" in err


def test_an_opaque_rgba_picture_is_accepted(data, tmp_path):
    root, pics, _ = data
    folder = tmp_path / "rgba"
    folder.mkdir()
    Image.open(pics / FIRST).convert("RGBA").save(folder / "a.png")
    run_annotate(AnnotateArgs(dataroot=root, images=folder, out=tmp_path / "o", **FAST))
    assert (tmp_path / "o" / "label" / "a.png").exists()


# --- adding pictures to a dataset ------------------------------------------------------------------


def test_into_adds_pictures_drafts_edges_and_class_lines(data, tmp_path):
    root, pics, _ = data
    into = tmp_path / "into"
    shutil.copytree(root, into)
    new = tmp_path / "new"
    new.mkdir()
    for i, p in enumerate(sorted(pics.iterdir())[:2]):
        Image.open(p).save(new / f"new{i}.jpg", quality=95)  # another format: stored as PNG
    run_annotate(AnnotateArgs(dataroot=root, images=new, into=into, character=3, **FAST))
    info = load_dataset(into)  # still a valid dataset, with a fourth character
    added = {s.name: s for s in info.splits["train"] if s.name.startswith("new")}
    assert set(added) == {"new0", "new1"} and {s.character for s in added.values()} == {3}
    for s in added.values():
        assert s.image.suffix == ".png" and s.edge is not None
        assert Image.open(s.label).size == Image.open(s.image).size
        assert set(np.unique(read(s.edge))) <= {0, 255}
    assert info.num_characters == 4
    text = (into / "class.txt").read_text()
    assert text.startswith((root / "class.txt").read_text())  # the old lines kept, in order
    assert text.endswith("new0.png 3\nnew1.png 3\n")
    assert (into / "drafts" / "train" / "preview" / "new0.png").exists()
    assert not (into / "drafts" / "train" / "label").exists()  # the labels are in train_label


def test_into_replaces_only_with_force(data, tmp_path):
    root, pics, _ = data
    into = tmp_path / "into"
    shutil.copytree(root, into)
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(pics / FIRST, new / "0000.png")  # the name of a training picture of character 0
    before = tree(into)
    with pytest.raises(UserError, match="already in the dataset; pass --force"):
        run_annotate(AnnotateArgs(dataroot=root, images=new, into=into, character=1, **FAST))
    assert tree(into) == before
    run_annotate(AnnotateArgs(dataroot=root, images=new, into=into, character=1, force=True, **FAST))
    lines = (into / "class.txt").read_text().splitlines()
    assert [ln for ln in lines if ln.startswith("0000")] == ["0000.png 1"]
    assert (into / "train_img" / "0000.png").read_bytes() == (pics / FIRST).read_bytes()
    assert load_dataset(into).splits["train"][0].character == 1


# --- bad input: one line naming the file, nothing written ------------------------------------------


def _grey(folder):
    Image.new("L", (32, 32), 128).save(folder / "grey.png")
    return "grey.png", "grayscale picture (mode L)"


def _grey_rgb(folder):
    Image.new("RGB", (32, 32), (90, 90, 90)).save(folder / "grey.png")
    return "grey.png", "grayscale picture (every pixel is grey)"


def _see_through(folder):
    a = np.zeros((32, 32, 4), np.uint8)
    a[..., 0], a[..., 3] = 200, 255
    a[:4, :4, 3] = 0
    Image.fromarray(a).save(folder / "alpha.png")
    return "alpha.png", "RGBA picture with 16 transparent pixels"


def _corrupt(folder):
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "bad.png")
    data = (folder / "bad.png").read_bytes()
    (folder / "bad.png").write_bytes(data[: len(data) // 2])
    return "bad.png", "corrupt or truncated"


def _same_stem(folder):
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "a.png")
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "a.jpg")
    return "a.png", "same name as a.jpg"


def _empty(folder):
    (folder / "notes.txt").write_text("no pictures here")
    return "", "no pictures found"


@pytest.mark.parametrize("make", [_grey, _grey_rgb, _see_through, _corrupt, _same_stem, _empty])
def test_bad_pictures_are_refused_before_anything_is_written(data, tmp_path, make):
    root, _, _ = data
    folder = tmp_path / "bad"
    folder.mkdir()
    name, message = make(folder)
    before = tree(root)
    with pytest.raises(UserError) as e:
        run_annotate(AnnotateArgs(dataroot=root, images=folder, out=tmp_path / "out", **FAST))
    text = str(e.value)
    assert message in text and "\n" not in text
    assert str(folder / name) in text
    assert not (tmp_path / "out").exists() and tree(root) == before


def test_an_earlier_draft_is_not_replaced_without_force(data, tmp_path):
    root, pics, out = data
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    label = copy / "label" / FIRST
    label.write_bytes(b"corrected by hand")
    with pytest.raises(UserError, match=r"0018.png: already exists .*--force"):
        run_annotate(AnnotateArgs(dataroot=root, images=pics, out=copy, **FAST))
    assert label.read_bytes() == b"corrected by hand"
    run_annotate(AnnotateArgs(dataroot=root, images=pics, out=copy, force=True, **FAST))
    assert Image.open(label).mode == "L"


def _other_split(into, new, pics):
    shutil.copy(pics / FIRST, new / FIRST)  # a test picture of `into`
    return dict(force=True), "in the test split"


def _unknown_character(into, new, pics):
    shutil.copy(pics / FIRST, new / "x.png")
    return dict(character=5), "--character 5: the dataset's characters are 0..2, and 3 adds a new one"


def _other_classes(into, new, pics):
    shutil.copy(pics / FIRST, new / "x.png")
    classes = [{"name": f"c{i}", "color": [i, 0, 0]} for i in range(N)]
    (into / "palette.json").write_text(json.dumps({"classes": classes}))
    return {}, "differ from those of"


def _listed_in_class_file(into, new, pics):
    shutil.copy(pics / FIRST, new / "ghost.png")
    with open(into / "class.txt", "a") as f:
        f.write("ghost.png 2\n")
    return {}, "class.txt: already names 'ghost.png'"


@pytest.mark.parametrize("make", [_other_split, _unknown_character, _other_classes, _listed_in_class_file])
def test_into_refuses_what_does_not_fit_the_dataset(data, tmp_path, make):
    root, pics, _ = data
    into, new = tmp_path / "into", tmp_path / "new"
    shutil.copytree(root, into)
    shutil.rmtree(into / "annotator", ignore_errors=True)
    new.mkdir()
    extra, message = make(into, new, pics)
    before = tree(into)
    args = dict(dataroot=root, images=new, into=into, character=1, **FAST) | extra
    with pytest.raises(UserError) as e:
        run_annotate(AnnotateArgs(**args))
    assert message in str(e.value) and "\n" not in str(e.value)
    assert tree(into) == before


def test_flags_that_do_not_go_together(data, tmp_path):
    root, pics, _ = data
    with pytest.raises(UserError, match="--out DIR"):
        run_annotate(AnnotateArgs(dataroot=root, images=pics, **FAST))
    with pytest.raises(UserError, match="with --into"):
        run_annotate(AnnotateArgs(dataroot=root, images=pics, out=tmp_path / "o", character=1, **FAST))
    with pytest.raises(UserError, match="--character K"):
        run_annotate(AnnotateArgs(dataroot=root, images=pics, into=root, **FAST))
    with pytest.raises(UserError, match="asked to learn from 99 labelled pictures, but there are 16"):
        run_annotate(AnnotateArgs(dataroot=root, images=pics, out=tmp_path / "o", train_pictures=99, **FAST))
    assert not (tmp_path / "o").exists()
