"""Configs: JSON round trip and presets."""

import json

import pytest

from animesis.config import (
    PRESETS,
    CannyConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LossConfig,
    TrainConfig,
    check_image_size,
    from_dict,
    to_dict,
)


def test_train_config_json_round_trip():
    cfg = TrainConfig(
        name="x",
        dataroot="d",
        generator=GeneratorConfig(num_classes=11, num_characters=9, z_dim=0),
        discriminator=DiscriminatorConfig(num_classes=11, num_characters=9, identity_head=False),
        loss=LossConfig(lambda_labelmix=0.0, identity_ignore=("background", "face")),
        image_size=(64, 128),
        canny=CannyConfig(low=0.05, high=0.3),
        max_steps=10,
    )
    data = json.loads(json.dumps(to_dict(cfg)))
    back = from_dict(TrainConfig, data)
    assert back == cfg
    assert back.image_size == (64, 128) and isinstance(back.loss.identity_ignore, tuple)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unknown keys"):
        from_dict(GeneratorConfig, {"num_classes": 1, "num_characters": 1, "channels": 3})


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_have_valid_sizes(name):
    p = PRESETS[name]
    check_image_size((p["size"], p["size"]), p["blocks"])


def test_runs_saved_before_a_loss_option_existed_keep_their_behaviour():
    """A run.json without the newer loss keys loads with the values those runs trained with."""
    old = from_dict(LossConfig, {"lambda_vgg": 10.0, "vgg_layers": 3})
    assert old.vgg_keep_total is False and old.lambda_l1 == 0.0 and old.lambda_labelmix == 10.0
