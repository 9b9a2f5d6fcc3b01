"""Reading one data file, and reporting what a dataset check found.

The readers here are shared by `animesis dataset check` and by the training Dataset, so the files
that pass the check are read in exactly the way training reads them. Nothing here writes a file.
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from animesis.data.palette import Palette
from animesis.errors import UserError

if TYPE_CHECKING:
    from animesis.data.samples import DatasetInfo, Sample

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
MAX_PIXELS = 8192 * 8192  # larger files are refused unread: a 20-byte PNG header can ask for gigabytes
# Label modes whose pixel values are class indices as stored (for "P" the raw palette indices, not
# the colours the palette shows), and modes whose pixels are colours mapped through the dataset palette.
INDEX_MODES = frozenset({"L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"})
COLOR_MODES = frozenset({"RGB", "RGBA"})
EDGE_MODES = frozenset({"L", "P", "1", "RGB", "RGBA", "LA"})

Severity = Literal["error", "warning"]


class DatasetError(UserError):
    """A dataset or data file that cannot be used; the message names each bad file and what is wrong."""

    def __init__(self, message: str | CheckReport, *, path: Path | None = None, code: str = "") -> None:
        # One positional argument keeps the error re-raisable from a DataLoader worker.
        self.report = message if isinstance(message, CheckReport) else None
        self.path, self.code = path, code
        self.reason = "" if self.report else str(message)
        if self.report is not None:
            text = self.report.format_errors()
        else:
            text = f"{path}: {message}" if path is not None else str(message)
        super().__init__(text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset: an error stops training, a warning only looks odd."""

    severity: Severity
    path: Path | None  # the file at fault (None for the dataset as a whole)
    message: str
    code: str  # a short stable tag, e.g. "label-values", for tests and grouping

    def format(self, root: Path | None = None) -> str:
        where = _show(self.path, root) if self.path is not None else str(root or "dataset")
        return f"{self.severity:<7} {where}: {self.message}"


@dataclass
class SplitSummary:
    """What one split holds."""

    images: int = 0  # image files found
    samples: int = 0  # of which paired with a label (and edge) and a character id
    edges: str = "-"  # "files", "Canny" (computed from the image during training) or "-" when absent
    per_character: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)  # (W, H) -> number of images


@dataclass
class Summary:
    """Numbers a person wants to see before training: counts, characters, sizes, class frequencies."""

    root: Path
    class_file: Path | None = None
    header: str | None = None  # the first line of class.txt when it was skipped as a header
    palette_source: str = "default (seed's 11 classes)"
    class_names: tuple[str, ...] = ()
    character_names: tuple[str, ...] = ()
    splits: dict[str, SplitSummary] = field(default_factory=dict)
    class_pixels: np.ndarray | None = None  # (N,) pixel counts over the train label maps (deep check only)
    class_maps: np.ndarray | None = None  # (N,) number of train label maps containing each class
    label_maps: int = 0  # train label maps decoded for the two counts above
    deep: bool = True


@dataclass
class CheckReport:
    """Every problem found, the summary, and the usable dataset (None when nothing could be resolved)."""

    problems: list[Problem]
    summary: Summary
    info: DatasetInfo | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def format_errors(self) -> str:
        """Only the errors, one per line: what training prints when it refuses a dataset."""
        root = self.summary.root
        lines = [
            f"{root}: {len(self.errors)} error(s) in the dataset; `animesis dataset check` also shows warnings and a summary"
        ]
        lines += ["  " + p.format(root) for p in self.errors]
        return "\n".join(lines)

    def format_warnings(self, per_kind: int | None = 20) -> str:
        return "\n".join(_problem_lines(self.warnings, self.summary.root, per_kind))

    def format(self, warnings_per_kind: int | None = 20) -> str:
        """The summary, then every error and (up to `warnings_per_kind` of each kind) the warnings."""
        lines = _summary_lines(self.summary)
        n_err, n_warn = len(self.errors), len(self.warnings)
        lines.append("")
        lines.append(f"problems: {n_err} error(s), {n_warn} warning(s)")
        lines += _problem_lines(self.errors, self.summary.root, None)
        lines += _problem_lines(self.warnings, self.summary.root, warnings_per_kind)
        lines.append("dataset OK" if self.ok else "dataset NOT usable: fix the errors above")
        return "\n".join(lines)


# --- reading files -------------------------------------------------------------------------------


def open_image(path: Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image lazily (header only), refusing unreadable files and decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            img = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DatasetError(f"absurdly large image, refused unread ({e})", path=path, code="too-large") from e
    except UnidentifiedImageError as e:
        msg = "unreadable: not an image format PIL knows, or a corrupt header"
        raise DatasetError(msg, path=path, code="unreadable") from e
    except Exception as e:  # any failure to parse an untrusted header means "not an image"
        raise DatasetError(f"unreadable: {_reason(e)}", path=path, code="unreadable") from e
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise DatasetError(
            f"absurdly large image: {w}x{h} = {w * h} pixels is over the limit of {max_pixels} "
            "(a decompression bomb?), refused unread",
            path=path,
            code="too-large",
        )
    if w == 0 or h == 0:
        img.close()
        raise DatasetError(f"empty image ({w}x{h})", path=path, code="unreadable")
    return img


def decode(img: Image.Image, path: Path) -> None:
    """Decode the pixels, turning a corrupt or truncated file into an error naming it."""
    try:
        img.load()
    except Exception as e:  # decoders raise many types (OSError, SyntaxError, struct.error...) on bad bytes
        raise DatasetError(f"corrupt or truncated image ({_reason(e)})", path=path, code="corrupt") from e


def image_pixels(img: Image.Image, path: Path) -> np.ndarray:
    """A decoded image -> (H, W, 3) uint8 RGB; any alpha channel is dropped."""
    try:
        return np.asarray(img.convert("RGB"))
    except Exception as e:  # e.g. a mode PIL cannot convert
        raise DatasetError(
            f"cannot convert mode {img.mode} to RGB ({_reason(e)})", path=path, code="corrupt"
        ) from e


def label_indices(img: Image.Image, path: Path, palette: Palette) -> np.ndarray:
    """A decoded label map -> (H, W) uint8 class indices, checked against the palette."""
    N = palette.num_classes
    if img.mode in COLOR_MODES:
        rgb = np.asarray(img.convert("RGB"))
        index, bad = palette.encode(rgb)
        if bad.any():
            raise DatasetError(_off_palette(rgb[bad], N), path=path, code="label-colors")
        return index
    if img.mode in INDEX_MODES:
        values = np.asarray(img).astype(np.int64)  # "1" gives bools, "I" may hold negatives
    elif img.mode == "LA":
        values = np.asarray(img.getchannel("L")).astype(np.int64)
    else:
        raise DatasetError(
            f"label map in mode {img.mode}: expected single-channel class indices or palette RGB colours",
            path=path,
            code="label-mode",
        )
    outside = (values < 0) | (values >= N)
    if outside.any():
        odd = np.unique(values[outside])
        shown = ", ".join(str(int(v)) for v in odd[:10]) + (", ..." if len(odd) > 10 else "")
        hint = " (mode P: the raw palette indices are read, not the colours)" if img.mode == "P" else ""
        raise DatasetError(
            f"label values {shown} are not classes 0..{N - 1} ({int(outside.sum())} pixels){hint}",
            path=path,
            code="label-values",
        )
    return values.astype(np.uint8)


def edge_values(img: Image.Image, path: Path) -> np.ndarray:
    """A decoded edge map with values in {0, 1} or {0, 255} -> (H, W) uint8 with values 0 and 1."""
    if img.mode not in EDGE_MODES:
        raise DatasetError(
            f"edge map in mode {img.mode}: expected a greyscale image", path=path, code="edge-mode"
        )
    values = np.asarray(img if img.mode in ("L", "P", "1") else img.convert("L"))
    if values.dtype == bool:
        return values.astype(np.uint8)
    top = int(values.max())
    if top <= 1:
        return values
    if top == 255 and ((values == 0) | (values == 255)).all():
        return (values > 0).astype(np.uint8)
    present = np.flatnonzero(np.bincount(values.ravel(), minlength=256))
    odd = [int(v) for v in present if v not in (0, 1, 255)]
    shown = ", ".join(map(str, odd[:10])) + (", ..." if len(odd) > 10 else "")
    raise DatasetError(
        f"edge values must be 0/1 or 0/255, found {shown} (anti-aliased or greyscale edges?)",
        path=path,
        code="edge-values",
    )


def read_image(path: Path, size: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB, resized bicubically (antialiased) to size = (H, W) if given."""
    with open_image(path, max_pixels) as img:
        decode(img, path)
        rgb = image_pixels(img, path)
    return rgb if size is None else resize_image(rgb, size)


def read_label(path: Path, palette: Palette, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A label file (index PNG or palette RGB) -> (H, W) uint8 class indices; errors name the file."""
    with open_image(path, max_pixels) as img:
        decode(img, path)
        return label_indices(img, path, palette)


def read_edge(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An edge file (0/1 or 0/255) -> (H, W) uint8 with values 0 and 1."""
    with open_image(path, max_pixels) as img:
        decode(img, path)
        return edge_values(img, path)


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> size = (H, W), bicubic; PIL widens the filter when shrinking, so it antialiases."""
    if rgb.shape[:2] == tuple(size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def resize_nearest(index: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 map -> (size) by nearest neighbour, so class indices and edge bits stay exact."""
    if index.shape == tuple(size):
        return index
    return np.asarray(Image.fromarray(index).resize((size[1], size[0]), Image.Resampling.NEAREST))


# --- checking one sample -------------------------------------------------------------------------


@dataclass
class SampleResult:
    """What checking one image/label/edge triple found."""

    problems: list[Problem]
    size: tuple[int, int] | None = None  # (W, H) of the image
    class_pixels: np.ndarray | None = None  # (N,) pixel count per class (deep only)
    digest: str | None = None  # hash of the image pixels, to spot the same picture in two splits (deep only)


def check_sample(sample: Sample, palette: Palette, deep: bool, max_pixels: int) -> SampleResult:
    """Open the files of one sample: headers and sizes always; decoding, values and classes when deep."""
    try:
        return _check_sample(sample, palette, deep, max_pixels)
    except Exception as e:  # a file no reader anticipated must still become a message, not a traceback
        return SampleResult(
            [Problem("error", sample.image, f"could not be checked ({_reason(e)})", "unreadable")]
        )


def _check_sample(sample: Sample, palette: Palette, deep: bool, max_pixels: int) -> SampleResult:
    result = SampleResult([])
    files = [("image", sample.image), ("label", sample.label)]
    if sample.edge is not None:
        files.append(("edge", sample.edge))
    opened: dict[str, Image.Image] = {}
    try:
        for role, path in files:
            try:
                opened[role] = open_image(path, max_pixels)
            except DatasetError as e:
                result.problems.append(Problem("error", path, e.reason, e.code))
        if "image" in opened:
            result.size = opened["image"].size
        for role in ("label", "edge"):
            if role in opened and "image" in opened and opened[role].size != opened["image"].size:
                (w, h), (iw, ih) = opened[role].size, opened["image"].size
                path = sample.label if role == "label" else sample.edge
                msg = f"{role} map is {w}x{h} but its image {sample.image.name} is {iw}x{ih}"
                result.problems.append(Problem("error", path, msg, "size-mismatch"))
        for role, img in opened.items():
            _check_orientation(img, sample.image if role == "image" else sample.label, result)
        if "label" in opened and opened["label"].format == "JPEG":
            result.problems.append(
                Problem(
                    "warning",
                    sample.label,
                    "JPEG label map: lossy compression changes class values near edges; use PNG",
                    "label-jpeg",
                )
            )
        if deep:
            _decode_sample(sample, opened, palette, result)
    finally:
        for img in opened.values():
            img.close()
    return result


def _decode_sample(
    sample: Sample, opened: dict[str, Image.Image], palette: Palette, result: SampleResult
) -> None:
    paths = {"image": sample.image, "label": sample.label, "edge": sample.edge}
    for role, img in opened.items():
        path = paths[role]
        try:
            decode(img, path)
            if role == "image":
                _check_alpha(img, path, result)
                rgb = image_pixels(img, path)
                # Two independent 32-bit checksums: 4x faster than a cryptographic hash, and a
                # false match between thousands of pictures is still a 1e-11 event.
                result.digest = f"{zlib.crc32(rgb):08x}{zlib.adler32(rgb):08x}"
            elif role == "label":
                index = label_indices(img, path, palette)
                counts = np.bincount(index.ravel(), minlength=palette.num_classes).astype(np.int64)
                result.class_pixels = counts
                _check_label_content(img, path, palette, counts, result)
            else:
                edge_values(img, path)
        except DatasetError as e:
            result.problems.append(Problem("error", path, e.reason, e.code))


_EXIF_ORIENTATION = 0x0112


def _check_orientation(img: Image.Image, path: Path, result: SampleResult) -> None:
    """Cameras store a rotation in EXIF; the pixels are used as stored, so say so (maps must match them)."""
    try:
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # an unreadable EXIF block is no reason to refuse the picture
        return
    if orientation not in (0, 1):
        result.problems.append(
            Problem(
                "warning",
                path,
                f"EXIF orientation {orientation} (a rotated or mirrored photo) is ignored: the pixels are used "
                "as stored, which may show it turned; save it upright to keep viewers and training in step",
                "exif-orientation",
            )
        )


def _check_alpha(img: Image.Image, path: Path, result: SampleResult) -> None:
    if "A" in img.mode or "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if alpha.min() < 255:
            result.problems.append(
                Problem(
                    "warning",
                    path,
                    f"{int((alpha < 255).sum())} transparent pixels: the alpha channel is dropped, "
                    "so they show whatever colour they hide",
                    "image-alpha",
                )
            )


def _check_label_content(
    img: Image.Image, path: Path, palette: Palette, counts: np.ndarray, result: SampleResult
) -> None:
    used = np.flatnonzero(counts)
    if len(used) == 1:
        result.problems.append(
            Problem(
                "warning",
                path,
                f"every pixel is class {used[0]} ({palette.names[used[0]]})",
                "label-one-class",
            )
        )
    # A P-mode map whose own colours are palette colours at other indices was probably painted with
    # the colours in mind; we read its indices, so say so.
    if img.mode == "P" and (raw := img.getpalette()) is not None:
        colors = [tuple(raw[3 * i : 3 * i + 3]) for i in used if 3 * i + 3 <= len(raw)]
        if len(colors) == len(used) and all(c in palette.colors for c in colors):
            moved = [
                f"{i}->{palette.colors.index(c)}"
                for i, c in zip(used, colors, strict=True)
                if palette.colors[i] != c
            ]
            if moved:
                result.problems.append(
                    Problem(
                        "warning",
                        path,
                        "mode P label whose palette colours follow another class order (index->class by colour: "
                        f"{', '.join(moved[:5])}); its raw indices are used, not its colours",
                        "label-p-order",
                    )
                )


def _off_palette(bad: np.ndarray, num_classes: int) -> str:
    """Describe off-palette colours: how many pixels, the most common colours, and a hint."""
    colors, counts = np.unique(bad.reshape(-1, 3), axis=0, return_counts=True)
    top = colors[np.argsort(-counts)[:5]]
    shown = ", ".join(f"({r},{g},{b})" for r, g, b in top.tolist())
    msg = f"{len(bad)} pixels have colours not in the palette, e.g. {shown}"
    if (
        (colors[:, 0] == colors[:, 1]).all()
        and (colors[:, 1] == colors[:, 2]).all()
        and colors.max() < num_classes
    ):
        msg += " (class indices saved as RGB? save the map single-channel)"
    elif len(colors) > 3 * num_classes:
        msg += " (anti-aliased or JPEG-compressed? label maps need exact colours)"
    return msg


# --- formatting ----------------------------------------------------------------------------------


def _reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


def _show(path: Path, root: Path | None) -> str:
    """A path relative to the dataset root when it lies inside it, with forward slashes."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(path)


def _problem_lines(problems: list[Problem], root: Path, per_kind: int | None) -> list[str]:
    lines, seen = [], Counter()
    for p in problems:
        seen[p.code] += 1
        if per_kind is None or seen[p.code] <= per_kind:
            lines.append("  " + p.format(root))
    if per_kind is not None:
        for code, n in seen.items():
            if n > per_kind:
                lines.append(f"  ... and {n - per_kind} more '{code}' warnings")
    return lines


def _summary_lines(s: Summary) -> list[str]:
    lines = [f"dataset {s.root}"]
    if s.class_file is not None:
        header = f" (header skipped: {s.header!r})" if s.header is not None else ""
        lines.append(f"  class file: {s.class_file}{header}")
    lines.append(f"  classes: N = {len(s.class_names)} from the {s.palette_source} palette")
    lines.append(f"  characters: K = {len(s.character_names)}")
    lines.append("")
    lines.append(f"  {'split':<6} {'images':>7} {'usable':>7}  {'edges':<6} image sizes (WxH)")
    for name, sp in s.splits.items():
        lines.append(f"  {name:<6} {sp.images:>7} {sp.samples:>7}  {sp.edges:<6} {_sizes(sp.sizes)}")
    if s.character_names:
        names = list(s.splits)
        lines.append("")
        lines.append(f"  {'id':>4} {'character':<20}" + "".join(f" {n:>6}" for n in names))
        for k, cname in enumerate(s.character_names):
            counts = "".join(f" {s.splits[n].per_character.get(k, 0):>6}" for n in names)
            lines.append(f"  {k:>4} {cname[:20]:<20}{counts}")
    if s.class_pixels is not None and s.class_pixels.sum() > 0 and s.class_maps is not None:
        total, n_maps = s.class_pixels.sum(), max(s.label_maps, 1)
        lines.append("")
        lines.append(f"  {'class':<16} {'pixels (train)':>14} {'in maps':>8}")
        for i, cname in enumerate(s.class_names):
            lines.append(
                f"  {i:>2} {cname[:13]:<13} {100 * s.class_pixels[i] / total:>13.2f}% "
                f"{100 * s.class_maps[i] / n_maps:>7.1f}%"
            )
    elif not s.deep:
        lines.append("  (quick check: files were not decoded, so no class frequencies)")
    return lines


def _sizes(sizes: Counter) -> str:
    if not sizes:
        return "-"
    if len(sizes) == 1:
        (w, h), _ = next(iter(sizes.items()))
        return f"{w}x{h}"
    small = min(sizes, key=lambda s: (s[0] * s[1], s))
    big = max(sizes, key=lambda s: (s[0] * s[1], s))
    return f"{len(sizes)} sizes, {small[0]}x{small[1]} to {big[0]}x{big[1]}"
