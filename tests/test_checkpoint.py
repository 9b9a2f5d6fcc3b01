"""Checkpoints: bit-exact round trip, atomic writes, pointers and clean-up."""

import errno

import pytest
import torch
import torch.nn.functional as F

from animesis import runs
from animesis.config import DiscriminatorConfig, GeneratorConfig
from animesis.data.palette import DEFAULT_PALETTE
from animesis.files import SaveError
from animesis.inference import find_model_folder
from animesis.models.discriminator import Discriminator
from animesis.models.generator import Generator
from animesis.models.pretrained import ModelCard, ModelLoadError, from_pretrained
from animesis.training import checkpoint as ckpt

N, K = 11, 3
GC = GeneratorConfig(
    num_classes=N, num_characters=K, base_channels=4, num_blocks=2, z_dim=2, id_dim=2, spade_hidden=4
)
DC = DiscriminatorConfig(num_classes=N, num_characters=K, base_channels=4, num_blocks=2)
CARD = ModelCard(GC, DC, DEFAULT_PALETTE, ("a", "b", "c"), (16, 16))


def make(seed=0):
    torch.manual_seed(seed)
    G, D = Generator(GC), Discriminator(DC)
    G_ema = Generator(GC)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.0, 0.999))
    return dict(G=G, G_ema=G_ema, D=D, opt_G=opt_G, opt_D=opt_D)


def one_step(m):
    y = F.one_hot(torch.randint(0, N, (2, 16, 16)), N).permute(0, 3, 1, 2).float()
    loss = m["D"](m["G"](y, torch.tensor([0, 2]), torch.randn(2, 2))).flat().mean()
    loss.backward()
    m["opt_G"].step()
    m["opt_D"].step()


def save(run, step, m, **kw):
    rng = {"noise": torch.Generator().manual_seed(step).get_state()}
    return ckpt.save_checkpoint(run, step, CARD, state={"best_fid": None}, rng=rng, **m, **kw)


def test_round_trip_is_bit_exact(tmp_path):
    m = make()
    one_step(m)
    folder = save(tmp_path, 7, m)
    m2 = make(seed=1)
    state, rng = ckpt.load_training_state(folder, **m2)
    assert state["step"] == 7
    assert torch.equal(rng["noise"], torch.Generator().manual_seed(7).get_state())
    for key in ("G", "G_ema", "D"):
        for (k, a), (_, b) in zip(m[key].state_dict().items(), m2[key].state_dict().items(), strict=True):
            assert torch.equal(a, b), (key, k)
    for key in ("opt_G", "opt_D"):
        s1, s2 = m[key].state_dict(), m2[key].state_dict()
        assert s1["param_groups"] == s2["param_groups"]
        for i in s1["state"]:
            for k in s1["state"][i]:
                assert torch.equal(s1["state"][i][k], s2["state"][i][k]), (key, i, k)
    G, card = from_pretrained(find_model_folder(tmp_path, "latest"))
    assert card.character_names == ("a", "b", "c") and card.generator == GC
    for (k, a), (_, b) in zip(m["G_ema"].state_dict().items(), G.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_kill_during_save_leaves_previous_checkpoint(tmp_path, monkeypatch):
    m = make()
    save(tmp_path, 5, m)
    one_step(m)

    def broken(module, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_weights", broken)
    with pytest.raises(SaveError, match=r"no space left on the device.*previous one is intact"):
        save(tmp_path, 10, m)
    monkeypatch.undo()
    assert runs.read_pointer(tmp_path, "latest") == 5
    assert runs.list_checkpoints(tmp_path) == [5]
    ckpt.load_training_state(runs.resolve_checkpoint(tmp_path, "latest"), **make())
    assert not list((tmp_path / "models").glob(".tmp-*"))  # the failed save cleaned up after itself
    save(tmp_path, 10, m)
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == ["10", "latest.txt"]


def test_pointers_keep_and_cleanup(tmp_path):
    m = make()
    save(tmp_path, 100, m, keep=True)
    save(tmp_path, 150, m, pointers=("latest", "best"))
    save(tmp_path, 200, m)
    save(tmp_path, 250, m)
    assert runs.list_checkpoints(tmp_path) == [100, 150, 250]  # 200 was neither kept nor pointed at
    assert runs.read_pointer(tmp_path, "best") == 150
    assert runs.resolve_checkpoint(tmp_path, "100").name == "100"
    with pytest.raises(ModelLoadError, match="saved: 100, 150, 250"):
        runs.resolve_checkpoint(tmp_path, "140000")
    with pytest.raises(ModelLoadError, match="latest"):
        runs.resolve_checkpoint(tmp_path / "other", "latest")
    with pytest.raises(ModelLoadError, match="must be 'latest'"):
        runs.resolve_checkpoint(tmp_path, "newest")


def test_a_save_killed_before_its_pointer_moved_resumes_from_its_folder(tmp_path, capsys):
    m = make()
    save(tmp_path, 5, m, keep=True)
    save(tmp_path, 10, m)
    runs.write_pointer(
        tmp_path, "latest", 5
    )  # as a kill between the folder's rename and the pointer leaves it
    assert runs.resolve_checkpoint(tmp_path, "latest").name == "10"
    assert "latest.txt says 5: using the newest checkpoint, 10" in capsys.readouterr().err
