"""EMA of the generator and BatchNorm statistics re-estimated for the averaged weights."""

import pytest
import torch
from torch import nn

from animesis.training.ema import ema_decay_at, refresh_batchnorm, update_ema


def test_ema_decay_ramps_up_to_the_configured_value():
    assert ema_decay_at(0, 0.9999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.9999) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.9999) == 0.9999
    assert [ema_decay_at(s, 0.999) for s in (10, 100, 1000)] == sorted(
        ema_decay_at(s, 0.999) for s in (10, 100, 1000)
    )


def test_ema_ramp_sets_how_far_back_the_average_reaches():
    # The average spans about step / (ramp - 1) iterations: 1 / (1 - decay) at step 1000.
    assert 1 / (1 - ema_decay_at(1000, 0.9999)) == pytest.approx(1010 / 9)
    assert 1 / (1 - ema_decay_at(1000, 0.9999, ramp=5.0)) == pytest.approx(1005 / 4)
    assert ema_decay_at(10**6, 0.9999, ramp=5.0) == 0.9999


def test_update_ema_averages_parameters_and_copies_buffers():
    torch.manual_seed(0)
    model, ema = (
        nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)),
        nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)),
    )
    model[1].running_mean.fill_(5.0)
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, 0.9)
    for e, b, m in zip(ema.parameters(), before, model.parameters(), strict=True):
        assert torch.allclose(e, 0.9 * b + 0.1 * m)
    assert torch.equal(ema[1].running_mean, model[1].running_mean)


def test_refresh_batchnorm_estimates_statistics_of_the_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3, affine=False))
    batches = [(torch.randn(4, 2, 5, 5) * 3 + 1,) for _ in range(3)]
    n = refresh_batchnorm(model, batches)
    assert n == 3 and not model.training
    with torch.no_grad():
        feats = torch.cat([model[0](x) for (x,) in batches])
    # the plain average of per-batch means
    means = torch.stack([model[0](x).mean(dim=(0, 2, 3)) for (x,) in batches]).mean(0).detach()
    assert torch.allclose(model[1].running_mean, means, atol=1e-5)
    assert model[1].momentum == 0.1  # restored
    # With equal batches the average of batch means is the mean of all features: eval mode centres them.
    assert model[1](feats).mean(dim=(0, 2, 3)).abs().max() < 1e-4
