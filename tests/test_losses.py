"""Each loss against values computed by hand on tiny tensors."""

import itertools
import math

import pytest
import torch

from animesis import losses


def test_class_balance_weights_inverse_frequency():
    label = torch.tensor([[[0, 0], [0, 1]]])  # 3 pixels of class 0, 1 of class 1, class 2 absent
    w = losses.class_balance_weights(label, num_classes=3)
    # w_c = B*H*W / (K_present * count_c) = 4 / (2 * count_c)
    assert torch.allclose(w, torch.tensor([[[2 / 3, 2 / 3], [2 / 3, 2.0]]]))
    assert w.mean().item() == pytest.approx(1.0)


def test_n1_real_loss_targets_class_plus_one():
    seg = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)  # channels: fake, class 0, class 1
    label = torch.tensor([[[1]]])  # class 1 -> channel 2
    lse = math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5))
    assert losses.n1_real_loss(seg, label, None).item() == pytest.approx(lse - 0.5, rel=1e-6)
    w = torch.tensor([[[3.0]]])
    assert losses.n1_real_loss(seg, label, w).item() == pytest.approx(3 * (lse - 0.5), rel=1e-6)


def test_n1_fake_loss_targets_channel_zero():
    seg = torch.tensor([[0.0, 1.0], [2.0, -1.0]]).view(1, 2, 1, 2)  # 2 channels, 2 pixels
    p1 = math.log(1 + math.exp(2.0)) - 0.0  # pixel (fake=0, class=2)
    p2 = math.log(math.exp(1.0) + math.exp(-1.0)) - 1.0
    assert losses.n1_fake_loss(seg).item() == pytest.approx((p1 + p2) / 2, rel=1e-6)


def test_edge_loss_is_binary_cross_entropy():
    logit = torch.tensor([[[[0.0, 2.0]]]])  # (1, 1, 1, 2)
    target = torch.tensor([[[1, 0]]], dtype=torch.uint8)
    sig = 1 / (1 + math.exp(-2.0))
    expected = (-math.log(0.5) - math.log(1 - sig)) / 2
    assert losses.edge_loss(logit, target).item() == pytest.approx(expected, rel=1e-6)


def test_identity_loss_averages_over_mask_only():
    logits = torch.zeros(1, 2, 1, 2)
    logits[0, :, 0, 0] = torch.tensor([0.0, 3.0])  # pixel 0; pixel 1 stays (0, 0)
    char = torch.tensor([1])
    mask = torch.tensor([[[True, False]]])
    # only pixel 0 counts: CE with logits (0, 3) towards class 1
    expected = math.log(1 + math.exp(3.0)) - 3.0
    assert losses.identity_loss(logits, char, mask).item() == pytest.approx(expected, rel=1e-6)
    # per-pixel character map: pixel 0 wants class 0
    char_map = torch.tensor([[[0, 1]]])
    expected0 = math.log(1 + math.exp(3.0)) - 0.0
    assert losses.identity_loss(logits, char_map, mask).item() == pytest.approx(expected0, rel=1e-6)
    assert losses.identity_loss(logits, char, torch.zeros(1, 1, 2, dtype=torch.bool)).item() == 0.0


def test_mode_seeking_loss_value():
    a, b = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)  # images differ by 0.5 everywhere
    za, zb = torch.zeros(1, 4), torch.full((1, 4), 2.0)  # noises differ by 2
    assert losses.mode_seeking_loss(a, b, za, zb, eps=0.0).item() == pytest.approx(4.0)  # 1 / (0.5 / 2)
    assert losses.mode_seeking_loss(a, a, za, zb).item() == pytest.approx(1e5)  # collapse costs most


def test_mode_seeking_light_outside_counts_the_characters_luminance_only():
    """ms_region background_light: on the character a change of hue at equal luminance is no variety;
    a change of brightness is, by its luminance; the background counts in full."""
    za, zb = torch.zeros(1, 4), torch.ones(1, 4)  # noises differ by 1
    background = torch.tensor([[[True, False]]])  # (1, 1, 2): pixel 0 background, pixel 1 character
    a = torch.zeros(1, 3, 1, 2)
    hue = a.clone()
    hue[0, :, 0, 1] = torch.tensor([0.587, -0.299, 0.0])  # another hue, the same luma
    bright = a.clone()
    bright[0, :, 0, 1] = 0.4  # brighter: luma +0.4
    bg = a.clone()
    bg[0, :, 0, 0] = torch.tensor([0.6, 0.0, 0.0])  # the background redder: mean |diff| 0.2

    def ms(b: torch.Tensor) -> float:
        return losses.mode_seeking_loss(a, b, za, zb, background, eps=0.0, light_outside=True).item()

    assert losses.mode_seeking_loss(a, hue, za, zb, background, eps=1e-5, light_outside=True).item() > 1e4
    assert ms(bright) == pytest.approx(1 / (0.4 / 2))  # the mean over both pixels
    assert ms(bg) == pytest.approx(1 / (0.2 / 2))
    # without light_outside the character's pixels do not count at all
    assert losses.mode_seeking_loss(a, bright, za, zb, background, eps=1e-5).item() > 1e4


def test_labelmix_mask_is_constant_per_class():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 5, (3, 16, 16), generator=g)
    for seed in range(5):
        mask = losses.labelmix_mask(label, 5, torch.Generator().manual_seed(seed))
        assert mask.shape == (3, 1, 16, 16)
        for c in range(5):
            values = mask[:, 0][label == c].unique()
            assert values.numel() == 1 and values.item() in (0.0, 1.0)


def test_labelmix_loss_value():
    mask = torch.tensor([[[[1.0, 0.0]]]])
    d_real = torch.tensor([[[[1.0, 2.0]]]])
    d_fake = torch.tensor([[[[5.0, 7.0]]]])
    d_mixed = torch.tensor([[[[0.0, 0.0]]]])
    # target = (1, 7); squared errors 1 and 49
    assert losses.labelmix_loss(d_mixed, d_real, d_fake, mask).item() == pytest.approx(25.0)
    assert losses.labelmix_loss(torch.tensor([[[[1.0, 7.0]]]]), d_real, d_fake, mask).item() == 0.0


def test_masked_l1_averages_over_mask_only():
    fake, real = torch.zeros(1, 3, 1, 2), torch.zeros(1, 3, 1, 2)
    real[0, :, 0, 0] = 0.5  # pixel 0 differs by 0.5 in every channel
    real[0, :, 0, 1] = 2.0  # pixel 1 differs by 2, but lies outside the mask
    mask = torch.tensor([[[True, False]]])
    assert losses.masked_l1(fake, real, mask).item() == pytest.approx(0.5)
    assert losses.masked_l1(fake, real, torch.ones(1, 1, 2, dtype=torch.bool)).item() == pytest.approx(1.25)


def test_region_colour_loss_compares_each_regions_colours_as_a_set():
    """Pixels moved about inside their region cost nothing; moved across regions, or recoloured, they
    do; a left-out class (weight 0) costs nothing whatever its colours."""
    torch.manual_seed(0)
    label = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, 2], [2, 2, 1, 0], [0, 0, 2, 1]]])  # 6, 6 and 4 pixels
    real = torch.rand(1, 3, 4, 4) * 2 - 1
    weights = torch.ones(1, 4, 4)
    shuffled = real.clone()
    for c in range(3):
        where = (label[0] == c).flatten().nonzero().flatten()
        shuffled[0].flatten(1)[:, where] = real[0].flatten(1)[:, where[torch.randperm(len(where))]]
    assert losses.region_colour_loss(shuffled, real, label, weights).item() == pytest.approx(0.0, abs=1e-6)
    # a pixel of class 1 swapped with one of class 2: the same colours overall, not per region
    crossed = real.clone()
    crossed[0, :, 0, 2], crossed[0, :, 1, 3] = real[0, :, 1, 3], real[0, :, 0, 2]
    assert losses.region_colour_loss(crossed, real, label, weights).item() > 0.01
    # every pixel 0.1 lighter in every channel: 0.1 along each channel, 0.1 * sqrt(3) along luminance,
    # 0 along the two opponent axes
    expected = (3 * 0.1 + 0.1 * math.sqrt(3)) / 6
    assert losses.region_colour_loss(real + 0.1, real, label, weights).item() == pytest.approx(expected)
    only_class_0 = (label != 0).float()  # class 0 left out
    recoloured = real.clone()
    recoloured[:, :, label[0] == 0] = 1.0
    assert losses.region_colour_loss(recoloured, real, label, only_class_0).item() == pytest.approx(0.0)
    fake = (real + 0.2).requires_grad_()
    losses.region_colour_loss(fake, real, label, only_class_0).backward()
    assert fake.grad[:, :, label[0] == 0].abs().sum() == 0 and fake.grad.abs().sum() > 0


def test_truncated_vgg_keeps_the_terms_total_weight():
    """Fewer taps keep OASIS's ratios between them and the full network's total weight."""
    full = sum(losses.VGG_TAP_WEIGHTS)
    assert losses.tap_weights(5) == pytest.approx(losses.VGG_TAP_WEIGHTS)
    for n in (1, 3, 4):
        w = losses.tap_weights(n)
        assert len(w) == n and sum(w) == pytest.approx(full)
        assert [b / a for a, b in itertools.pairwise(w)] == pytest.approx([2.0] * (n - 1))


def test_perceptual_distances_are_the_loss_per_picture():
    torch.manual_seed(0)
    fake = [torch.randn(3, 4, 8, 8), torch.randn(3, 6, 4, 4)]
    real = [torch.randn(3, 4, 8, 8), torch.randn(3, 6, 4, 4)]
    d = losses.perceptual_distances(fake, real)
    assert d.shape == (3,)
    assert d.mean().item() == pytest.approx(losses.perceptual_loss(fake, real).item(), rel=1e-6)
    alone = losses.perceptual_loss([f[1:2] for f in fake], [r[1:2] for r in real])
    assert d[1].item() == pytest.approx(alone.item(), rel=1e-6)


def test_best_of_pair_counts_the_nearer_painting_of_each_pair():
    # 3 pictures, the first 2 painted again (the last 2 entries): pictures 0 and 1 count by their nearer
    d = torch.tensor([4.0, 1.0, 5.0, 2.0, 3.0], requires_grad=True)
    loss = losses.best_of_pair(d, 2)
    assert loss.item() == pytest.approx((2.0 + 1.0 + 5.0) / 3)
    loss.backward()
    # only the nearer painting of a pair is pulled towards the real picture
    assert d.grad.tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3, 0.0])


def test_kl_to_standard_normal_value():
    zero = torch.zeros(2, 3)
    assert losses.kl_to_standard_normal(zero, zero).item() == 0.0  # the prior itself
    # mu = 1, var = 1 in each of 3 dims: 0.5 * 1 per dim, summed over dims, averaged over the batch
    assert losses.kl_to_standard_normal(torch.ones(2, 3), zero).item() == pytest.approx(1.5)
    # var = e, mu = 0: 0.5 * (e - 1 - 1) per dim
    logvar = torch.ones(1, 2)
    assert losses.kl_to_standard_normal(torch.zeros(1, 2), logvar).item() == pytest.approx(math.e - 2)
