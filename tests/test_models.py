"""Generator and discriminator: shapes, identity conditioning, gradients, save/load."""

import pytest
import torch
import torch.nn.functional as F

from animesis.config import DiscriminatorConfig, GeneratorConfig, check_image_size
from animesis.models.discriminator import Discriminator
from animesis.models.generator import Generator, channel_plan, wave_field
from animesis.models.pretrained import ModelLoadError, load_weights, save_weights

N, K, S = 5, 3, 32


def tiny_g(**kw) -> Generator:
    torch.manual_seed(0)
    cfg = dict(
        num_classes=N, num_characters=K, base_channels=8, num_blocks=3, z_dim=4, id_dim=6, spade_hidden=8
    )
    return Generator(GeneratorConfig(**{**cfg, **kw}))


def tiny_d(**kw) -> Discriminator:
    torch.manual_seed(0)
    cfg = dict(num_classes=N, num_characters=K, base_channels=8, num_blocks=3)
    return Discriminator(DiscriminatorConfig(**{**cfg, **kw}))


def onehot(B=2, size=S, seed=0):
    label = torch.randint(0, N, (B, size, size), generator=torch.Generator().manual_seed(seed))
    return F.one_hot(label, N).permute(0, 3, 1, 2).float()


def test_channel_plan_matches_oasis():
    assert channel_plan(64, 6) == [1024, 1024, 1024, 512, 256, 128, 64]


def test_paper_sizes():
    # Shapes only, on the meta device: no 70M-parameter allocation just to count. Spectral norm adds no
    # parameters (its vectors are buffers) and cannot initialise there, so it is off.
    with torch.device("meta"):
        g = Generator(GeneratorConfig(num_classes=13, num_characters=1, spectral_norm=False))
        d = Discriminator(
            DiscriminatorConfig(num_classes=12, num_characters=1, identity_head=False, spectral_norm=False)
        )
    assert 68e6 < sum(p.numel() for p in g.parameters()) < 71e6
    # OASIS's discriminator with 13 output channels has 22.25 M parameters; ours adds the 1-channel edge head
    assert abs(sum(p.numel() for p in d.parameters()) - 22.25e6) < 0.01e6


def test_mixed_character_batch_shapes():
    G, D = tiny_g().eval(), tiny_d()
    y = onehot(B=3)
    x = G(y, torch.tensor([0, 2, 1]), torch.randn(3, 4))
    assert x.shape == (3, 3, S, S) and x.abs().max() <= 1
    out = D(x)
    assert out.seg.shape == (3, N + 1, S, S)
    assert out.edge.shape == (3, 1, S, S)
    assert out.identity.shape == (3, K, S, S)
    assert out.flat().shape == (3, N + 2 + K, S, S)
    assert tiny_d(identity_head=False)(x).identity is None


def test_character_changes_output_and_batch_items_are_independent():
    G = tiny_g().eval()
    with torch.no_grad():
        G.character_embedding.weight.mul_(10)  # make the code matter at initialisation
        y, z = onehot(B=2), torch.randn(2, 4)
        a = G(y, torch.tensor([0, 1]), z)
        b = G(y, torch.tensor([2, 1]), z)
    assert not torch.allclose(a[0], b[0], atol=1e-5)  # item 0's character changed
    assert torch.allclose(a[1], b[1], atol=1e-6)  # item 1 untouched: no cross-talk in eval mode


def test_per_pixel_identity_map_and_interpolation():
    G = tiny_g().eval()
    y, z = onehot(B=2), torch.randn(2, 4)
    with torch.no_grad():
        by_id = G(y, torch.tensor([1, 2]), z)
        by_map = G(y, torch.tensor([1, 2])[:, None, None].expand(2, S, S), z)
        by_weights = G(y, F.one_hot(torch.tensor([1, 2]), K).float(), z)
        by_weight_map = G(
            y, F.one_hot(torch.tensor([1, 2]), K).float()[:, :, None, None].expand(2, K, S, S), z
        )
        half = G(y, torch.tensor([[0.5, 0.5, 0.0]] * 2), z)
    assert torch.allclose(by_id, by_map, atol=1e-6)
    assert torch.allclose(by_id, by_weights, atol=1e-6)
    assert torch.allclose(by_id, by_weight_map, atol=1e-6)
    code = G.character_code(torch.tensor([[0.5, 0.5, 0.0]]))
    emb = G.character_embedding.weight
    assert torch.allclose(code[0, :, 0, 0], (emb[0] + emb[1]) / 2)
    assert half.shape == by_id.shape


def test_two_characters_in_one_image():
    G = tiny_g().eval()
    with torch.no_grad():
        G.character_embedding.weight.mul_(100)  # make the code matter at initialisation
    size = 128
    y, z = onehot(B=1, size=size), torch.randn(1, 4)
    left_right = torch.zeros(1, size, size, dtype=torch.long)
    left_right[..., size // 2 :] = 2
    with torch.no_grad():
        mixed = G(y, left_right, z)
        all0 = G(y, torch.tensor([0]), z)
        all2 = G(y, torch.tensor([2]), z)

    # far from the seam each half follows its own character (up to float summation order)
    gap = (all0 - all2).abs().mean()
    assert gap > 1e-3
    assert (mixed - all0)[..., :16].abs().mean() < 1e-3 * gap
    assert (mixed - all2)[..., -16:].abs().mean() < 1e-3 * gap


def test_character_embedding_is_trained_and_saved():
    G = tiny_g()
    assert "character_embedding.weight" in G.state_dict()
    x = G(onehot(), torch.tensor([0, 1]), torch.randn(2, 4))
    x.mean().backward()
    grad = G.character_embedding.weight.grad
    assert grad is not None and grad[:2].abs().sum() > 0 and grad[2].abs().sum() == 0


def test_no_noise_generator_is_deterministic():
    G = tiny_g(z_dim=0).eval()
    y = onehot()
    assert torch.equal(G(y, torch.tensor([0, 1])), G(y, torch.tensor([0, 1])))
    with pytest.raises(ValueError, match="takes noise"):
        tiny_g()(y, torch.tensor([0, 1]))


def test_noise_waves_are_sinusoids_the_noise_moves(tmp_path):
    """--noise_waves: each wave is sin(2 pi (f . p + phase)) with f and phase from z, fixed in the
    picture's own coordinates at every resolution; the generator paints with them and saves them."""
    f = torch.tensor([[1 / 8, 0.0, 0.25]])  # one wave: 1 cycle per image along x, a quarter-cycle phase
    field = wave_field(f, (4, 8))[0, 0]
    x = (torch.arange(8) + 0.5) / 8 - 0.5
    torch.testing.assert_close(field, torch.sin(2 * torch.pi * (x + 0.25)).expand(4, 8))
    coarse, fine = wave_field(f, (4, 4))[0, 0, 0], wave_field(f, (8, 8))[0, 0, 0]
    assert torch.allclose(coarse, (fine[0::2] + fine[1::2]) / 2, atol=0.1)  # same wave, twice the pixels
    G = tiny_g(noise_waves=3).eval()
    y, z = onehot(B=2), torch.randn(2, 4)
    waves = (z[:, :, None] * G.waves.weight.T).sum(1)
    assert waves.shape == (2, 9) and 0.3 < waves.std() < 3  # unit-scale frequencies and phases at init
    assert not torch.equal(wave_field(waves, (8, 8))[0], wave_field(waves, (8, 8))[1])
    a = G(y, torch.tensor([0, 1]), z)
    assert torch.equal(a, G(y, torch.tensor([0, 1]), z)) and not torch.equal(
        a, G(y, torch.tensor([0, 1]), -z)
    )
    G.waves.weight.data.zero_()  # the waves change the picture: without them it is another one
    assert not torch.allclose(a, G(y, torch.tensor([0, 1]), z))
    save_weights(G, tmp_path / "g.safetensors")
    load_weights(tiny_g(noise_waves=3), tmp_path / "g.safetensors")
    with pytest.raises(ValueError, match="noise_waves needs z_dim"):
        tiny_g(noise_waves=3, z_dim=0)


def test_noise_on_the_background_alone():
    """noise_classes: the noise enters on those classes' pixels only; a map without them paints the
    same whatever the noise, one with them changes with it, and none given is OASIS's every pixel."""
    char = torch.tensor([0, 1])
    G = tiny_g(noise_classes=(0,)).eval()
    no_background = F.one_hot(torch.randint(1, N, (2, S, S), generator=torch.Generator().manual_seed(0)), N)
    no_background = no_background.permute(0, 3, 1, 2).float()
    z = torch.randn(2, 4)
    assert torch.equal(G(no_background, char, z), G(no_background, char, -z))
    y = onehot()
    assert not torch.allclose(G(y, char, z), G(y, char, -z))
    everywhere = tiny_g().eval()  # the same weights: only where the noise enters differs
    assert not torch.allclose(everywhere(no_background, char, z), everywhere(no_background, char, -z))
    all_noise = onehot()
    all_noise[:, 0], all_noise[:, 1:] = 1.0, 0.0  # every pixel background: the same as noise everywhere
    torch.testing.assert_close(G(all_noise, char, z), everywhere(all_noise, char, z))
    waves = tiny_g(noise_classes=(0,), noise_waves=2).eval()
    assert not torch.allclose(waves(y, char, z), waves(y, char, -z))


def test_identity_free_generator_ignores_the_character(tmp_path):
    """id_dim 0 is the OASIS baseline: noise only, the requested character changes nothing."""
    G = tiny_g(id_dim=0).eval()
    y, z = onehot(B=2), torch.randn(2, 4)
    assert torch.equal(G(y, torch.tensor([0, 1]), z), G(y, torch.tensor([2, 2]), z))
    save_weights(G, tmp_path / "g.safetensors")
    load_weights(tiny_g(id_dim=0), tmp_path / "g.safetensors")


def test_sizes_that_are_multiples_work():
    G, D = tiny_g().eval(), tiny_d()
    y = onehot(B=1, size=64)
    x = G(y, torch.tensor([0]), torch.randn(1, 4))
    assert x.shape == (1, 3, 64, 64) and D(x).seg.shape[-1] == 64
    rect = F.one_hot(torch.zeros(1, 32, 48, dtype=torch.long), N).permute(0, 3, 1, 2).float()
    assert G(rect, torch.tensor([0]), torch.randn(1, 4)).shape == (1, 3, 32, 48)
    check_image_size((32, 48), 3)
    with pytest.raises(ValueError, match="multiple of 4"):
        check_image_size((36, 38), 3)
    # 36 is a multiple of G's 4 but not of D's 8: D pads and crops
    odd = F.one_hot(torch.zeros(1, 36, 44, dtype=torch.long), N).permute(0, 3, 1, 2).float()
    x = G(odd, torch.tensor([0]), torch.randn(1, 4))
    out = D(x)
    assert x.shape[-2:] == out.seg.shape[-2:] == out.edge.shape[-2:] == out.identity.shape[-2:] == (36, 44)


def test_gradients_reach_every_generator_and_discriminator_weight():
    G, D = tiny_g(), tiny_d()
    out = D(G(onehot(), torch.tensor([0, 1]), torch.randn(2, 4)))
    out.flat().square().mean().backward()
    for name, p in list(G.named_parameters()) + list(D.named_parameters()):
        if "character_embedding" in name:
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_save_load_round_trip_is_bit_exact(tmp_path):
    G = tiny_g()
    G(onehot(), torch.tensor([0, 1]), torch.randn(2, 4))  # update BN stats and spectral-norm vectors
    save_weights(G, tmp_path / "g.safetensors")
    G2 = tiny_g()
    load_weights(G2, tmp_path / "g.safetensors")
    for (k, a), (_, b) in zip(G.state_dict().items(), G2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    G.eval(), G2.eval()
    y, z = onehot(), torch.randn(2, 4)
    assert torch.equal(G(y, torch.tensor([0, 1]), z), G2(y, torch.tensor([0, 1]), z))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_weights(tiny_g(base_channels=4), tmp_path / "g.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ModelLoadError, match=r"bad\.safetensors"):
        load_weights(G2, tmp_path / "bad.safetensors")
