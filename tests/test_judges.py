"""Judges: trained on a tiny dataset they beat chance widely, round-trip through disk, say when missing;
mIoU against a hand-computed confusion; colour error zero on the cast's colours and growing with a shift."""

import json
import shutil

import numpy as np
import pytest
import torch
from datagen import (
    BACKGROUND,
    CLOTHES,
    EYES,
    FACE,
    HAIR,
    SKIN,
    character_colors,
    tiny_judge_settings,
    write_tiny_dataset,
)
from safetensors.torch import load_file
from torch import nn

from animesis.data.dataset import SegmentationDataset
from animesis.data.layout import load_dataset
from animesis.data.palette import DEFAULT_PALETTE
from animesis.metrics.assets import MetricUnavailable
from animesis.metrics.colour import cast_colours, colour_error, load_cast_colours, region_colour_errors
from animesis.metrics.judges import (
    CharacterJudge,
    CharacterJudgeConfig,
    JudgesUnavailable,
    JudgeTraining,
    SegmentJudge,
    SegmentJudgeConfig,
    confusion_matrix,
    identity_accuracy,
    load_judge,
    load_judges,
    miou,
    miou_from_confusion,
    predict_characters,
    save_judge,
    train_judges,
)

K = 3
SIZE = 32
TRAIN = tiny_judge_settings(K, SIZE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny dataset with its judges trained once for the module: (root, summary)."""
    root = write_tiny_dataset(
        tmp_path_factory.mktemp("judges") / "tiny", n_train=24, n_val=0, n_test=12, num_characters=K
    )
    summary = train_judges(load_dataset(root), root / "judges", **TRAIN)
    return root, summary


def real_split(root, split="test"):
    """(images (N, H, W, 3) uint8, labels (N, H, W), characters (N,)) of a split at its own size."""
    info = load_dataset(root)
    ds = SegmentationDataset(info.splits[split], info.palette, (SIZE, SIZE))
    items = [ds[i] for i in range(len(ds))]
    images = torch.stack([it["image"] for it in items]).permute(0, 2, 3, 1).numpy()
    return images, torch.stack([it["label"] for it in items]), torch.stack([it["character"] for it in items])


def test_judges_beat_chance_by_a_wide_margin(trained):
    root, summary = trained
    assert summary["character"]["held_out_split"] == "test"
    assert summary["character"]["chance"] == pytest.approx(1 / K)
    assert summary["character"]["held_out_accuracy"] >= 0.9  # chance is 0.33
    assert summary["segment"]["held_out_miou"] >= 0.6  # guessing the commonest class gives about 0.05
    # The metric functions on the saved judges, at the images' own size, agree.
    judges = load_judges(root)
    images, labels, chars = real_split(root)
    assert identity_accuracy(judges.character, images, chars) >= 0.9
    value, per_class = miou(judges.segment, images, labels, DEFAULT_PALETTE.num_classes)
    assert value >= 0.6
    assert per_class[BACKGROUND] > 0.8 and per_class[HAIR] > 0.6


def test_saved_judges_reload_with_their_training_record(trained):
    root, summary = trained
    judges = load_judges(root)
    assert judges.character_meta["training"]["held_out_accuracy"] == summary["character"]["held_out_accuracy"]
    assert judges.segment_meta["class_names"] == list(DEFAULT_PALETTE.names)
    assert judges.character_meta["dataset"]["train_images"] == 24
    assert not judges.character.training and not any(p.requires_grad for p in judges.segment.parameters())
    config = json.loads((root / "judges" / "character" / "config.json").read_text())
    assert config["format"] == "animesis-judge" and config["config"]["num_characters"] == K
    assert judges.stale_warning(load_dataset(root)) is None


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 40) * 2 - 1  # not the judge size: both resize inside
    for judge, kind in (
        (CharacterJudge(CharacterJudgeConfig(4, resolution=32, width=8)), "character"),
        (SegmentJudge(SegmentJudgeConfig(5, resolution=32, width=8)), "segment"),
    ):
        judge.eval()
        save_judge(tmp_path / kind, judge, {"note": "x"})
        loaded, meta = load_judge(tmp_path / kind, kind, tmp_path)
        assert meta["note"] == "x" and meta["kind"] == kind
        torch.testing.assert_close(loaded(x), judge(x), rtol=0, atol=0)
        assert set(load_file(tmp_path / kind / "model.safetensors")) == set(judge.state_dict())


def test_training_is_deterministic_for_a_seed(tmp_path):
    root = write_tiny_dataset(tmp_path / "d", n_train=6, n_val=0, n_test=3, num_characters=2)
    info = load_dataset(root)
    kw = {
        **TRAIN,
        "epochs": 2,
        "character": CharacterJudgeConfig(2, resolution=16, width=4),
        "segment": SegmentJudgeConfig(DEFAULT_PALETTE.num_classes, resolution=16, width=4),
        "character_training": JudgeTraining(views=0, batch_size=3, lr=3e-3),
    }
    for out in ("a", "b"):
        train_judges(info, tmp_path / out, **kw)
    for kind in ("character", "segment"):
        a, b = (load_file(tmp_path / out / kind / "model.safetensors") for out in ("a", "b"))
        for key in a:
            assert torch.equal(a[key], b[key]), (kind, key)


def test_missing_judges_say_unavailable_and_how_to_make_them(tmp_path):
    root = write_tiny_dataset(tmp_path / "d", n_train=3, n_val=0, n_test=0)
    with pytest.raises(JudgesUnavailable) as e:
        load_judges(root)
    assert isinstance(e.value, MetricUnavailable)
    message = str(e.value)
    assert "character judge is missing" in message and "config.json" in message
    assert f"animesis judges --dataroot {root}" in message


def test_changed_train_split_makes_judges_stale(trained, tmp_path):
    root = shutil.copytree(trained[0], tmp_path / "copy")
    class_txt = root / "class.txt"
    lines = class_txt.read_text().splitlines()
    name, char = lines[1].split()
    lines[1] = f"{name} {(int(char) + 1) % K}"  # relabel one training image
    class_txt.write_text("\n".join(lines) + "\n")
    warning = load_judges(root).stale_warning(load_dataset(root))
    assert warning is not None and "--force" in warning


def test_miou_against_a_hand_computed_confusion():
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 2]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 3, 2]])
    conf = confusion_matrix(pred, target, 4)
    expected = torch.zeros(4, 4, dtype=torch.long)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (0, 0), (0, 0), (1, 3), (2, 2)]:
        expected[t, p] += 1
    assert torch.equal(conf, expected)
    value, per_class = miou_from_confusion(conf)
    # class 0: TP 3, in truth 4, predicted 3 -> 3/4; class 1: TP 2, truth 3, predicted 3 -> 2/4;
    # class 2: 1/1; class 3 never in the ground truth -> NaN and left out of the mean.
    np.testing.assert_allclose(per_class[:3], [0.75, 0.5, 1.0])
    assert np.isnan(per_class[3])
    assert value == pytest.approx((0.75 + 0.5 + 1.0) / 3)


class FixedLogits(nn.Module):
    """A stand-in segment judge whose logits are a given label map's one-hot (plus a bias)."""

    def __init__(self, labels: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer(
            "logits", nn.functional.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()
        )

    def forward(self, x):
        return self.logits[: len(x)]


def test_miou_function_uses_the_judges_prediction_at_the_label_size():
    labels = torch.zeros(2, 8, 8, dtype=torch.uint8)
    labels[:, 2:6, 2:6] = 1
    images = np.zeros((2, 8, 8, 3), np.uint8)
    assert miou(FixedLogits(labels, 3), images, labels, 3)[0] == pytest.approx(1.0)
    shifted = torch.roll(labels, 1, dims=2)  # prediction one pixel off: IoU of class 1 is 12/20
    _, per_class = miou(FixedLogits(shifted, 3), images, labels, 3)
    assert per_class[1] == pytest.approx(12 / 20) and np.isnan(per_class[2])


def test_identity_accuracy_takes_arrays_and_tensors(trained):
    root, _ = trained
    judge = load_judges(root).character
    images, _, chars = real_split(root)
    as_tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert torch.equal(predict_characters(judge, images), predict_characters(judge, as_tensor))
    wrong = (chars + 1) % K
    assert identity_accuracy(judge, images, wrong) <= 0.1
    with pytest.raises(ValueError, match="one requested id per image"):
        identity_accuracy(judge, images, chars[:-1])


# --- colour error ---------------------------------------------------------------------------------


def tiny_cast() -> dict:
    """A cast.json in the synthetic dataset's format for the tiny dataset's characters."""

    def hexa(rgb):
        return "#{:02x}{:02x}{:02x}".format(*rgb)

    characters = []
    for k in range(K):
        c = character_colors(k, K)
        characters.append(
            {
                "id": k,
                "name": f"c{k}",
                "hairstyle": "bob",
                "hair": hexa(c[HAIR]),
                "hair_shadow": "#000000",
                "eyes": hexa(c[EYES]),
                "skin": hexa((250, 220, 200)),
                "clothes": hexa(c[CLOTHES]),
                "pattern": "plain",
                "accessories": [],
                "accessory_color": hexa((1, 2, 3)),
            }
        )
    return {"generator": "animesis dataset synth", "characters": characters}


def flat_picture(label: np.ndarray, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    image = np.full((*label.shape, 3), 128, np.uint8)
    for cls, rgb in colours.items():
        image[label == cls] = rgb
    return image


def test_cast_colours_follow_the_synthetic_cast_format():
    colours = cast_colours(tiny_cast(), DEFAULT_PALETTE)
    c0 = character_colors(0, K)
    assert colours[0][HAIR] == c0[HAIR] and colours[0][EYES] == c0[EYES]
    # Skin colours every skin-coloured class; shadow tones and style names are no region's colour.
    assert colours[0][SKIN] == colours[0][FACE] == (250, 220, 200)
    assert set(colours[0]) == {HAIR, EYES, SKIN, FACE, CLOTHES, DEFAULT_PALETTE.index("accessories")}


def test_colour_error_is_zero_on_the_cast_colours_and_grows_with_a_shift():
    colours = cast_colours(tiny_cast(), DEFAULT_PALETTE)
    rng = np.random.default_rng(0)
    from datagen import draw_label

    labels = np.stack([draw_label((64, 64), rng, k) for k in range(K)])
    requested = np.arange(K)
    exact = np.stack([flat_picture(labels[k], colours[k]) for k in range(K)])
    assert colour_error(exact, labels, requested, colours) == pytest.approx(0.0, abs=1e-3)
    errors = []
    for shift in (5, 15, 40):
        shifted = np.clip(exact.astype(int) + shift, 0, 255).astype(np.uint8)
        errors.append(colour_error(shifted, labels, requested, colours))
    assert 0 < errors[0] < errors[1] < errors[2]
    # Painting each map as another character is far off.
    assert colour_error(exact, labels, (requested + 1) % K, colours) > errors[1]
    # One entry per scored region, each tagged with its class.
    per_region, classes = region_colour_errors(exact, labels, requested, colours)
    assert len(per_region) == len(classes) and HAIR in classes and BACKGROUND not in classes


def test_colour_error_is_unavailable_without_a_cast(trained, tmp_path):
    with pytest.raises(MetricUnavailable, match=r"cast\.json not found"):
        load_cast_colours(trained[0], DEFAULT_PALETTE, K)
    (tmp_path / "cast.json").write_text(json.dumps(tiny_cast()))
    assert set(load_cast_colours(tmp_path, DEFAULT_PALETTE, K)) == set(range(K))
