"""A generator as a self-describing ONNX file, and a painter that runs it with onnxruntime.

The exported graph takes exactly three inputs: `label` (B, N, H, W) float one-hot, `character`
(B, K, H, W) float weights over characters per pixel (one-hot everywhere paints one character, one-hot
per region mixes characters by region, mixed weights interpolate) and `z` (B, z_dim) noise (absent when
z_dim is 0). Batch, height and width are dynamic; height and width must be multiples of the generator's
downsampling factor. The model card rides in the file's metadata, so the file alone is enough to
paint: `OnnxPainter.load(path)`; so does the SHA-256 of the weights file it was exported from, so that
a graph beside its weights can be checked against them (`is_current`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
from torch import nn

from animesis import files
from animesis.device import cpu_count
from animesis.errors import UserError
from animesis.inference import Painter, fold_spectral_norm
from animesis.models.pretrained import ModelCard

# 18 is the oldest opset the torch.export-based exporter writes; runtimes from onnxruntime 1.14 on run it.
DEFAULT_OPSET = 18
CARD_KEY = "animesis.model_card"  # metadata_props key holding ModelCard.to_json()
WEIGHTS_KEY = "animesis.weights_sha256"  # of the safetensors file the graph was exported from
BESIDE_WEIGHTS = "generator.onnx"  # the name a model folder's graph takes (`paint` looks for it)
INPUT_NAMES = ("label", "character", "z")
OUTPUT_NAME = "image"
_ORT_LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoSuchFile,
    ort_state.NotImplemented,
)


def downsampling(card: ModelCard) -> int:
    """The generator starts at (H / s, W / s) and doubles per block: H and W must be multiples of s."""
    return 2 ** (card.generator.num_blocks - 1)


class GeneratorForExport(nn.Module):
    """The generator with exactly the exported inputs; character weight maps take its float, per-pixel
    (mixing) path, which paints a uniform map exactly as the per-picture path paints its row."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(
        self, label: torch.Tensor, character: torch.Tensor, z: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.generator(label, character, z)


# --- export ----------------------------------------------------------------------------------------


def export_onnx(
    painter_or_model_folder: Painter | str | Path, out: Path, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Write the generator as one ONNX file (weights inside, model card in metadata_props); returns out.

    A folder is loaded as `Painter.load(folder, "latest", device="cpu")` (a model or a run folder).
    The file appears complete or not at all: it is written beside `out` and renamed over it.
    """
    out = Path(out)
    check_output_path(out)
    painter = painter_or_model_folder
    if not isinstance(painter, Painter):
        painter = Painter.load(painter, "latest", device="cpu")
    proto = _export_proto(painter, opset)
    meta = {CARD_KEY: json.dumps(painter.card.to_json())}
    if painter.weights is not None:
        meta[WEIGHTS_KEY] = files.sha256(painter.weights)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        files.write_atomic(out, lambda tmp: onnx.save_model(proto, tmp))
    except files.SaveError as e:
        raise UserError(str(e)) from None
    return out


def is_current(path: Path, weights: Path) -> bool:
    """Whether the graph at `path` was exported from exactly this weights file (by its SHA-256)."""
    try:
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except (OSError, ValueError, DecodeError):  # unreadable: not current
        return False
    return meta.get(WEIGHTS_KEY) == files.sha256(weights)


def check_output_path(out: Path) -> None:
    """Refuse, before any work, a path that is a folder or lies in a missing folder."""
    if out.is_dir():
        raise UserError(f"{out}: is a folder; give a file name such as {out / 'model.onnx'}")
    if not out.parent.is_dir():
        raise UserError(f"{out}: the folder {out.parent} does not exist")


def _export_proto(painter: Painter, opset: int) -> onnx.ModelProto:
    """Trace a CPU float32 copy of the generator (the painter's own stays as it is) -> onnx.ModelProto."""
    G = copy.deepcopy(painter.G).to("cpu", torch.float32, memory_format=torch.contiguous_format)
    model = GeneratorForExport(fold_spectral_norm(G)).eval()
    args, shapes = _example_inputs(painter.card)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,  # torch.export proves the shape logic for every size; the TorchScript tracer guesses
            dynamic_shapes=shapes,
            input_names=list(INPUT_NAMES[: len(args)]),
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    return program.model_proto


def _example_inputs(card: ModelCard) -> tuple[tuple[torch.Tensor, ...], tuple[dict[int, Any], ...]]:
    """Inputs of batch 2 and a 2x2 start grid (sizes of 1 would be baked in as constants) and their dims."""
    g, s = card.generator, downsampling(card)
    batch = torch.export.Dim("batch")
    h, w = torch.export.Dim("height_cells"), torch.export.Dim("width_cells")
    gen = torch.Generator().manual_seed(0)
    label = torch.nn.functional.one_hot(torch.randint(0, g.num_classes, (2, 2 * s, 2 * s), generator=gen))
    character = torch.full((2, g.num_characters, 2 * s, 2 * s), 1.0 / g.num_characters)
    args = [label.permute(0, 3, 1, 2).float(), character]
    shapes: list[dict[int, Any]] = [{0: batch, 2: s * h, 3: s * w}, {0: batch, 2: s * h, 3: s * w}]
    if g.z_dim:
        args.append(torch.randn(2, g.z_dim, generator=gen))
        shapes.append({0: batch})
    return tuple(args), tuple(shapes)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs ops of packages this model never uses (torchvision) and internal deprecations."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Several inputs share the batch dimension: the exporter notes that it names it once.
            warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
            yield
    finally:
        registration.setLevel(level)


# --- painting with onnxruntime ------------------------------------------------------------------------


def read_onnx_card(session: ort.InferenceSession, path: Path) -> ModelCard:
    """The model card an exported file carries in its metadata."""
    text = session.get_modelmeta().custom_metadata_map.get(CARD_KEY)
    if text is None:
        raise UserError(
            f"{path}: no animesis model card in the ONNX metadata (write it with `animesis export`)"
        )
    try:
        return ModelCard.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable model card in the ONNX metadata ({e})") from None


class OnnxPainter:
    """Painter's `paint` contract, run by onnxruntime on the CPU from an exported file."""

    def __init__(self, path: str | Path, card: ModelCard | None = None, *, threads: int | None = None):
        """card None: the one stored in the file. threads: onnxruntime's intra-op threads (default: cores)."""
        self.path = Path(path)
        self.threads = threads or cpu_count()
        self.session = _open_session(self.path, self.threads)
        self.card = card if card is not None else read_onnx_card(self.session, self.path)
        want = list(INPUT_NAMES[: 3 if self.card.generator.z_dim else 2])
        inputs = self.session.get_inputs()
        have = [i.name for i in inputs]
        if have != want:
            raise UserError(
                f"{self.path}: graph inputs {have}, expected {want} (written by `animesis export`?)"
            )
        if len(inputs[1].shape) != 4:
            raise UserError(
                f"{self.path}: takes one character row per picture, not a per-pixel map: export it again"
            )

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None) -> OnnxPainter:
        return cls(path, threads=threads)

    @property
    def num_characters(self) -> int:
        return self.card.generator.num_characters

    @property
    def num_classes(self) -> int:
        return self.card.generator.num_classes

    def paint(
        self,
        labels: np.ndarray | torch.Tensor,
        characters: Sequence[int] | np.ndarray | torch.Tensor,
        z: np.ndarray | torch.Tensor | None,
    ) -> np.ndarray:
        """labels (B, H, W) class ids; characters (B,) ids, (B, K) weights, (B, H, W) id maps or
        (B, K, H, W) weight maps; z (B, z_dim) or None -> (B, H, W, 3) uint8 images."""
        label = self._onehot(_numpy(labels))
        feeds = {"label": label, "character": self._weights(_numpy(characters), label.shape)}
        if self.card.generator.z_dim:
            feeds["z"] = self._noise(z, len(label))
        (image,) = self.session.run([OUTPUT_NAME], feeds)
        return np.rint((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)

    def _onehot(self, labels: np.ndarray) -> np.ndarray:
        """(B, H, W) ids -> (B, N, H, W) float32 one-hot."""
        s = downsampling(self.card)
        if labels.ndim != 3 or labels.shape[1] % s or labels.shape[2] % s or not labels.shape[1]:
            raise UserError(
                f"labels must be (B, H, W) with H and W positive multiples of {s}, got {labels.shape}"
            )
        if np.issubdtype(labels.dtype, np.floating) or labels.min(initial=0) < 0:
            raise UserError("labels must be non-negative integer class ids")
        if int(labels.max(initial=0)) >= self.num_classes:
            raise UserError(f"label value {int(labels.max())} but the model knows {self.num_classes} classes")
        eye = np.eye(self.num_classes, dtype=np.float32)
        return np.ascontiguousarray(eye[labels].transpose(0, 3, 1, 2))

    def _weights(self, characters: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """(B,) ids, (B, K) weights, (B, H, W) id maps or (B, K, H, W) weight maps -> (B, K, H, W) float32."""
        B, _, H, W = shape
        K = self.num_characters
        if not np.issubdtype(characters.dtype, np.floating) and characters.ndim in (1, 3):
            bad = characters[(characters < 0) | (characters >= K)]
            if bad.size:
                names = ", ".join(f"{i}={n}" for i, n in enumerate(self.card.character_names))
                raise UserError(f"character {int(bad[0])} does not exist: this model knows {K} ({names})")
            characters = np.eye(K, dtype=np.float32)[characters]  # (B, K) or (B, H, W, K)
            if characters.ndim == 4:
                characters = characters.transpose(0, 3, 1, 2)
        if characters.shape == (B, K):
            characters = characters[:, :, None, None]
        if characters.shape not in ((B, K, 1, 1), (B, K, H, W)) or not np.issubdtype(
            characters.dtype, np.number
        ):
            raise UserError(
                f"characters must be ({B},) ids, ({B}, {K}) weights, ({B}, {H}, {W}) id maps or "
                f"({B}, {K}, {H}, {W}) weight maps, got {characters.shape}"
            )
        return np.ascontiguousarray(np.broadcast_to(characters, (B, K, H, W)), dtype=np.float32)

    def _noise(self, z: np.ndarray | torch.Tensor | None, batch: int) -> np.ndarray:
        z_dim = self.card.generator.z_dim
        if z is None:
            raise UserError(f"this model takes noise: pass z of shape ({batch}, {z_dim})")
        z = _numpy(z)
        if z.shape != (batch, z_dim):
            raise UserError(f"z must be ({batch}, {z_dim}), got {z.shape}")
        return np.ascontiguousarray(z, dtype=np.float32)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _open_session(path: Path, threads: int) -> ort.InferenceSession:
    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except _ORT_LOAD_ERRORS as e:
        raise UserError(f"{path}: not a usable ONNX model ({str(e).splitlines()[0]})") from None
