"""ONNX export: the exported graph paints what the torch generator paints, at any batch and image size."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from animesis.commands.export import ExportArgs, load_painter, run_export
from animesis.config import GeneratorConfig
from animesis.data.palette import Palette
from animesis.device import cpu_count
from animesis.errors import UserError
from animesis.export import CARD_KEY, WEIGHTS_KEY, OnnxPainter, export_onnx, is_current
from animesis.files import sha256
from animesis.inference import Painter
from animesis.models.generator import Generator
from animesis.models.pretrained import ModelCard, save_pretrained

N, K, SIZE = 5, 3, 32  # 3 blocks: sizes are multiples of 4
PALETTE = Palette(
    tuple(f"class{i}" for i in range(N)), tuple((40 * i, 255 - 40 * i, 7 * i) for i in range(N))
)
SHAPES = [(1, 32, 32), (3, 24, 40), (3, 32, 32), (1, 24, 40)]  # batch 1 and 3, square and not


def randomized(G: Generator, gen: torch.Generator) -> Generator:
    """Weights and BatchNorm statistics far from the near-zero initialisation, so that the painted image
    spans [-1, 1] and a 1e-4 tolerance is a real check."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias"):
                std = 0.1
            elif p.dim() == 4:  # convolutions: He-like, so activations keep their scale through the blocks
                std = 1.4 / p[0].numel() ** 0.5
            else:  # character codes and (character, class) styles, N(0, 1) as initialised
                std = 1.0
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        for name, b in G.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) * 1.5 + 0.5)
    return G


def calibrate_output(G: Generator, z_dim: int, gen: torch.Generator) -> None:
    """Scale the last convolution so the pre-tanh image has a standard deviation near 1."""
    label, weights, z = inputs(2, SIZE, SIZE, z_dim, gen)
    seen = []
    hook = G.to_rgb.register_forward_hook(lambda m, i, o: seen.append(o.std()))
    with torch.no_grad():
        G(label, weights, z)
        hook.remove()
        G.to_rgb.weight /= seen[0]
        G.to_rgb.bias /= seen[0]


def inputs(B: int, H: int, W: int, z_dim: int, gen: torch.Generator):
    """Random label maps, mixing weights (one row a pure character, the rest mixtures) and noise."""
    label = torch.nn.functional.one_hot(torch.randint(0, N, (B, H, W), generator=gen), N)
    weights = torch.rand(B, K, generator=gen)
    weights[0] = torch.eye(K)[B % K]
    weights /= weights.sum(1, keepdim=True)
    z = torch.randn(B, z_dim, generator=gen) if z_dim else None
    return label.permute(0, 3, 1, 2).float(), weights, z


def weight_maps(weights: torch.Tensor, H: int, W: int, gen: torch.Generator) -> torch.Tensor:
    """(B, K) rows -> (B, K, H, W) maps: each picture's row on its left half, a random character per
    pixel (region mixing) on its right half."""
    B = len(weights)
    maps = weights[:, :, None, None].expand(B, K, H, W).clone()
    ids = torch.randint(0, K, (B, H, W - W // 2), generator=gen)
    maps[..., W // 2 :] = torch.nn.functional.one_hot(ids, K).permute(0, 3, 1, 2).float()
    return maps


def make_model(
    folder: Path, modulation: str, z_dim: int, noise_waves: int = 0, noise_classes: tuple[int, ...] = ()
) -> Path:
    # No spectral norm: Painter folds it before export anyway, and it would undo the randomised weights.
    cfg = GeneratorConfig(
        N, K, base_channels=8, num_blocks=3, z_dim=z_dim, id_dim=6, spade_hidden=16, spectral_norm=False,
        modulation=modulation, noise_waves=noise_waves, noise_classes=noise_classes,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    G = randomized(Generator(cfg).eval(), gen)
    calibrate_output(G, z_dim, gen)
    save_pretrained(folder, G, ModelCard(cfg, None, PALETTE, ("ann", "bo", "cy"), (SIZE, SIZE)))
    return folder


@pytest.fixture(
    scope="module",
    params=[
        ("spade", 8, 0, (), "command"),
        ("style", 0, 0, (), "function"),
        ("spade", 8, 4, (), "function"),
        ("spade", 8, 0, (0,), "function"),
    ],
    ids=["spade-z8-command", "style-z0-function", "spade-z8-waves4-function", "spade-z8-noise-on-class0"],
)
def exported(request, tmp_path_factory):
    """(Painter, exported .onnx path, what was printed, entry point); one export through each entry point."""
    modulation, z_dim, waves, noise_classes, via = request.param
    tmp = tmp_path_factory.mktemp(modulation)
    folder = make_model(tmp / "model", modulation, z_dim, waves, noise_classes)
    out_dir = tmp / "out"
    out_dir.mkdir()
    out = out_dir / "g.onnx"
    out.write_bytes(b"an older file that the export replaces")
    printed = io.StringIO()
    painter = Painter.load(folder, device="cpu")
    if via == "command":
        with contextlib.redirect_stdout(printed):
            assert run_export(ExportArgs(onnx=str(out), checkpoint=str(folder), iter="latest")) == 0
    else:
        assert export_onnx(painter, out) == out
    return painter, out, printed.getvalue(), via


def test_onnx_matches_torch_at_any_batch_and_size(exported):
    painter, path, *_ = exported
    onnx_painter = OnnxPainter.load(path, threads=1)
    z_dim = painter.card.generator.z_dim
    gen = torch.Generator().manual_seed(2)
    for B, H, W in SHAPES:
        label, weights, z = inputs(B, H, W, z_dim, gen)
        noise = {"z": z.numpy()} if z_dim else {}
        for character in (weights[:, :, None, None].expand(B, K, H, W), weight_maps(weights, H, W, gen)):
            with torch.no_grad():
                want = painter.G(label, character, z).numpy()
            feeds = {"label": label.numpy(), "character": character.contiguous().numpy()} | noise
            (got,) = onnx_painter.session.run(["image"], feeds)
            assert got.shape == (B, 3, H, W)
            assert want.std() > 0.2 and np.abs(want).max() > 0.5  # a real picture, not a near-constant one
            np.testing.assert_array_less(np.abs(got - want).max(), 1e-4)
        with torch.no_grad():  # a uniform map paints what the picture's row paints
            row = painter.G(label, weights, z).numpy()
        np.testing.assert_array_less(np.abs(row - onnx_painter.session.run(["image"], feeds)[0]).max(), 2.0)
        uniform = {"label": label.numpy(), "character": weights[:, :, None, None].expand(B, K, H, W).numpy()}
        np.testing.assert_array_less(
            np.abs(row - onnx_painter.session.run(["image"], uniform | noise)[0]).max(), 1e-4
        )


def test_onnx_painter_paints_like_painter(exported):
    painter, path, *_ = exported
    onnx_painter = OnnxPainter.load(path, threads=1)
    gen = torch.Generator().manual_seed(3)
    labels = torch.randint(0, N, (3, 24, 40), generator=gen).numpy().astype(np.uint8)
    z = painter.noise(3, seed=5)
    ids = [2, 0, 1]
    mixed = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
    owners = torch.randint(0, K, (3, 24, 40), generator=gen)  # region mixing: a character per pixel
    for characters in (ids, mixed, owners, weight_maps(mixed, 24, 40, gen)):
        got, want = onnx_painter.paint(labels, characters, z), painter.paint(labels, characters, z)
        assert got.dtype == np.uint8 and got.shape == (3, 24, 40, 3)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # rounding at a .5 boundary at most
    one_hot_rows = onnx_painter.paint(labels, np.eye(K, dtype=np.float32)[ids], z)
    np.testing.assert_array_equal(one_hot_rows, onnx_painter.paint(labels, ids, z))


def test_exported_file_is_self_describing_and_replaced_atomically(exported):
    painter, path, printed, via = exported
    onnx_painter = OnnxPainter.load(path)
    assert onnx_painter.card.to_json() == painter.card.to_json()
    assert onnx_painter.threads == cpu_count() >= 1
    assert onnx_painter.session.get_session_options().intra_op_num_threads == cpu_count()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    probe = path.parent.parent / "probe"
    probe.write_bytes(b"")
    assert path.stat().st_mode & 0o777 == probe.stat().st_mode & 0o777  # the usual permissions, not 0600
    names = [i.name for i in onnx.load(path).graph.input]
    assert names == (["label", "character", "z"] if painter.card.generator.z_dim else ["label", "character"])
    assert printed == (f"{path}\n" if via == "command" else "")
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert meta[WEIGHTS_KEY] == sha256(painter.weights) and is_current(path, painter.weights)


def test_a_graph_is_current_only_for_the_weights_it_came_from(exported, tmp_path):
    painter, path, *_ = exported
    other = tmp_path / "other.safetensors"
    other.write_bytes(painter.weights.read_bytes() + b" ")  # one byte more: other weights
    assert not is_current(path, other)
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    assert not is_current(junk, painter.weights)


def test_paint_rejects_bad_input(exported):
    painter, path, *_ = exported
    onnx_painter = OnnxPainter.load(path, threads=1)
    z = painter.noise(1, seed=0)
    labels = np.zeros((1, 32, 32), np.uint8)
    with pytest.raises(UserError, match="character 3 does not exist"):
        onnx_painter.paint(labels, [3], z)
    with pytest.raises(UserError, match="multiples of 4"):
        onnx_painter.paint(np.zeros((1, 30, 32), np.uint8), [0], z)
    with pytest.raises(UserError, match="label value 5"):
        onnx_painter.paint(labels + 5, [0], z)
    with pytest.raises(UserError, match=re.escape("(1, 32, 32) id maps or (1, 3, 32, 32) weight maps, got")):
        onnx_painter.paint(labels, np.zeros((1, 16, 16), np.int64), z)
    with pytest.raises(UserError, match="character 3 does not exist"):
        onnx_painter.paint(labels, np.full((1, 32, 32), 3), z)
    if painter.card.generator.z_dim:
        with pytest.raises(UserError, match="takes noise"):
            onnx_painter.paint(labels, [0], None)


def test_bad_output_paths_are_user_errors(tmp_path):
    # The path is checked before the model is read, so no model is needed here.
    with pytest.raises(UserError, match=re.escape(f"{tmp_path}: is a folder")):
        export_onnx(tmp_path / "no-model", tmp_path)
    missing = tmp_path / "missing" / "g.onnx"
    with pytest.raises(UserError, match=re.escape(f"{missing}: the folder {missing.parent} does not exist")):
        export_onnx(tmp_path / "no-model", missing)
    with pytest.raises(UserError, match="is a folder"):
        run_export(ExportArgs(onnx=str(tmp_path), checkpoint=str(tmp_path), iter="latest"))
    assert list(tmp_path.iterdir()) == []


def test_bad_onnx_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such ONNX file"):
        OnnxPainter.load(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(UserError, match=re.escape(f"{junk}: not a usable ONNX model")):
        OnnxPainter.load(junk)
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in "xy")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    bare = tmp_path / "bare.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), bare)
    with pytest.raises(UserError, match=re.escape(f"{bare}: no animesis model card")):
        OnnxPainter.load(bare)
    model = onnx.load(bare)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, "{"
    onnx.save_model(model, bare)
    with pytest.raises(UserError, match="unreadable model card"):
        OnnxPainter.load(bare)


def test_without_checkpoint_the_default_model_is_exported(monkeypatch):
    shipped = object()
    monkeypatch.setattr(Painter, "load_default", classmethod(lambda cls, **kw: shipped))
    assert load_painter(ExportArgs(onnx="g.onnx", checkpoint=None, iter="latest")) is shipped
