"""The seed's dataset layout: find image/label/edge triples, read class.txt, and validate it all.

    DATAROOT/
      {train,val,test}_img/     images, any format PIL reads (val is optional: used for model selection)
      {train,val,test}_label/   label maps: single-channel class indices, or RGB colours of the palette
      {train,val,test}_edge/    optional edge maps, 0/1 or 0/255; without the folder, Canny runs in training
      class.txt                 optional header line, then `<file name> <character id>` per line
      palette.json              optional {"classes": [{"name": "hair", "color": [64, 0, 128]}, ...]}
      cast.json                 optional {"characters": [{"id": 0, "name": "Ichika"}, ...]}

Files are paired by stem (`train_img/a.jpg` with `train_label/a.png`), never by listing order. A name
in class.txt may carry a directory prefix with / or \\ and an extension; without an extension it
matches by stem. Checking only reads files.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animesis.data.check import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    CheckReport,
    DatasetError,
    Problem,
    SampleResult,
    SplitSummary,
    Summary,
    check_sample,
)
from animesis.data.palette import DEFAULT_PALETTE, Palette, PaletteError
from animesis.data.samples import DatasetInfo, Sample
from animesis.device import cpu_count

__all__ = [
    "SPLITS",
    "CheckReport",
    "DatasetError",
    "DatasetInfo",
    "Problem",
    "Sample",
    "check_dataset",
    "load_dataset",
    "main_check",
]

SPLITS = ("train", "val", "test")
_IGNORED = frozenset({"thumbs.db", "desktop.ini"})  # files operating systems drop into folders
_INT = re.compile(r"[+-]?[0-9]+")
_INLINE_BELOW = 256  # fewer samples than this are checked in-process: starting workers costs more
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Entry:
    """One `<name> <id>` line of class.txt."""

    key: str  # the name's last path component
    character: int
    line: int

    @property
    def has_suffix(self) -> bool:
        return Path(self.key).suffix.lower() in IMAGE_SUFFIXES

    @property
    def stem(self) -> str:
        return Path(self.key).stem if self.has_suffix else self.key


class _Problems(list):
    """The problems found so far."""

    def error(self, path: Path | None, message: str, code: str) -> None:
        self.append(Problem("error", path, message, code))

    def warn(self, path: Path | None, message: str, code: str) -> None:
        self.append(Problem("warning", path, message, code))


def check_dataset(
    root: Path,
    class_file: Path | None = None,
    num_characters: int | None = None,
    *,
    deep: bool = True,
    workers: int | None = None,
    progress: bool = False,
    max_pixels: int = MAX_PIXELS,
    need: Sequence[str] = ("train",),
) -> CheckReport:
    """Validate a dataset read-only; deep=False skips decoding (headers, sizes and pairing only).

    num_characters is K (the seed's --class_num): ids must be below it. Without it, K is the highest
    id in class.txt or cast.json plus one. `need` names the splits that must hold samples.
    """
    root = Path(root)
    if unknown := set(need) - set(SPLITS):
        raise ValueError(f"need names unknown splits {sorted(unknown)}; splits are {SPLITS}")
    problems = _Problems()
    summary = Summary(root=root, deep=deep)
    if not root.is_dir():
        problems.error(root, "no such dataset folder", "no-root")
        return CheckReport(list(problems), summary)

    palette = _read_palette(root, problems, summary)
    folders = {split: _split_folders(root, split, problems) for split in SPLITS}
    images = [p for f in folders.values() if f and f[0] for p in f[0].values()]
    class_path = Path(class_file) if class_file is not None else root / "class.txt"
    summary.class_file = class_path
    entries, summary.header = _read_class_file(class_path, images, problems)
    cast = _read_cast(root / "cast.json", problems)
    K = _num_characters(entries, cast, num_characters, class_path, root, problems)
    names = tuple(cast.get(k, str(k)) for k in range(K))
    summary.character_names = names
    summary.class_names = palette.names if palette else ()

    lookup = _ClassLookup(entries, class_path, problems)
    splits: dict[str, tuple[Sample, ...]] = {}
    for split in SPLITS:
        splits[split] = _pair(split, folders[split], lookup, K, problems)
        summary.splits[split] = SplitSummary(
            images=len((folders[split] and folders[split][0]) or {}),
            samples=len(splits[split]),
            edges="-" if folders[split] is None else ("files" if folders[split][2] is not None else "Canny"),
            per_character=Counter(s.character for s in splits[split]),
        )
    lookup.report_unused()
    _check_split_names(folders, problems)
    for split in need:
        if not summary.splits[split].images:
            problems.error(root / f"{split}_img", f"the {split} split is empty or missing", "split-empty")
    _check_characters(summary, names, problems)

    if palette is not None:
        _check_files(splits, palette, summary, problems, deep, workers, progress, max_pixels)
    info = None
    if palette is not None and K >= 1:
        info = DatasetInfo(root, palette, K, names, splits)
    return CheckReport(list(problems), summary, info)


def load_dataset(
    root: Path,
    class_file: Path | None = None,
    num_characters: int | None = None,
    *,
    deep: bool = True,
    workers: int | None = None,
    progress: bool = False,
    need: Sequence[str] = ("train",),
) -> DatasetInfo:
    """check_dataset, then the dataset, or DatasetError listing every error; warnings are logged."""
    report = check_dataset(
        root, class_file, num_characters, deep=deep, workers=workers, progress=progress, need=need
    )
    if not report.ok or report.info is None:
        raise DatasetError(report)
    if report.warnings:
        log.warning("%s: %d dataset warning(s)\n%s", root, len(report.warnings), report.format_warnings(5))
    return report.info


def main_check(
    root: Path, class_file: Path | None = None, num_characters: int | None = None, workers: int | None = None
) -> int:
    """`animesis dataset check`: print the report; 0 when the dataset is usable, 1 otherwise."""
    report = check_dataset(root, class_file, num_characters, workers=workers, progress=sys.stderr.isatty())
    print(report.format())
    return 0 if report.ok else 1


# --- palette, class.txt and cast.json ------------------------------------------------------------


def _read_palette(root: Path, problems: _Problems, summary: Summary) -> Palette | None:
    path = root / "palette.json"
    if not path.exists():
        return DEFAULT_PALETTE
    try:
        palette = Palette.load(path)
    except PaletteError as e:
        problems.error(path, str(e.__cause__ or e), "palette")
        return None
    summary.palette_source = "palette.json"
    return palette


def _read_class_file(
    path: Path, images: list[Path], problems: _Problems
) -> tuple[list[_Entry] | None, str | None]:
    """Entries of class.txt (None when it cannot be read) and its header (None when line 1 is an entry)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: Windows editors prepend a byte-order mark
    except FileNotFoundError:
        problems.error(path, "class file not found: every image needs a character id", "class-missing")
        return None, None
    except UnicodeDecodeError as e:
        problems.error(path, f"not UTF-8 text (byte {e.start}): save it as UTF-8", "class-encoding")
        return None, None
    except OSError as e:
        problems.error(path, f"cannot read the class file ({e.strerror or e})", "class-missing")
        return None, None

    names = {_nfc(p.name) for p in images} | {_nfc(p.stem) for p in images}
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        problems.error(
            path,
            "the class file is empty: it needs one `<file name> <character id>` line per image",
            "class-empty",
        )
        return None, None
    entries: list[_Entry] = []
    header = None
    for i, (n, line) in enumerate(lines):
        parts = line.rsplit(None, 1)
        if i == 0:
            # The seed always skips line 1; we keep it only when it is clearly an entry for an image.
            entry = _entry(parts, n)
            if entry is None or not ({entry.key, entry.stem} & names):
                header = line
                continue
        if len(parts) < 2:
            problems.error(
                path, f"line {n}: expected `<file name> <character id>`, got {line!r}", "class-line"
            )
        elif not _INT.fullmatch(parts[1]):
            problems.error(
                path, f"line {n}: character id {parts[1]!r} of {parts[0]!r} is not a number", "class-id-nan"
            )
        elif int(parts[1]) < 0:
            problems.error(
                path, f"line {n}: character id {parts[1]} of {parts[0]!r} is negative", "class-id-negative"
            )
        else:
            entries.append(_entry(parts, n))  # type: ignore[arg-type]
    return entries, header


def _entry(parts: list[str], line: int) -> _Entry | None:
    """An entry from a split line, or None when it is not `<name> <id >= 0>`."""
    if len(parts) < 2 or not _INT.fullmatch(parts[1]) or int(parts[1]) < 0:
        return None
    name = unicodedata.normalize("NFC", parts[0].strip().strip("\"'"))  # macOS writes names as NFD
    key = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]  # either slash, on any OS
    return _Entry(key=key, character=int(parts[1]), line=line) if key else None


def _nfc(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def _read_cast(path: Path, problems: _Problems) -> dict[int, str]:
    """Character names by id from cast.json; {} without the file."""
    if not path.exists():
        return {}
    expected = 'expected {"characters": [{"id": 0, "name": "..."}, ...]}'
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.error(path, f"not readable JSON ({e})", "cast")
        return {}
    items = data.get("characters") if isinstance(data, dict) else None
    if not isinstance(items, list):
        problems.error(path, expected, "cast")
        return {}
    names: dict[int, str] = {}
    for item in items:
        cid = item.get("id") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        if type(cid) is not int or cid < 0 or not isinstance(name, str):
            problems.error(path, f"bad entry {item!r}: {expected}", "cast")
        elif cid in names:
            problems.error(path, f"character id {cid} is named twice", "cast")
        else:
            names[cid] = name
    return names


def _num_characters(
    entries: list[_Entry] | None,
    cast: dict[int, str],
    given: int | None,
    class_path: Path,
    root: Path,
    problems: _Problems,
) -> int:
    """K: the given number, checked against every id; otherwise the highest id plus one."""
    if given is None:
        K = max([e.character + 1 for e in entries or []] + [c + 1 for c in cast], default=0)
        if entries == [] and not cast:
            problems.error(class_path, "no `<file name> <character id>` lines", "class-empty")
        return K
    if given < 1:
        problems.error(root, f"--class_num {given}: there must be at least one character", "class-num")
        return 0
    for e in entries or []:
        if e.character >= given:
            problems.error(
                class_path,
                f"line {e.line}: character id {e.character} of {e.key!r} is not below "
                f"--class_num {given} (ids are 0..{given - 1})",
                "class-id-range",
            )
    for c in cast:
        if c >= given:
            problems.error(root / "cast.json", f"names character {c} but --class_num is {given}", "cast")
    return given


class _ClassLookup:
    """Character ids by image file: exact names first, then case- and extension-insensitive stems."""

    def __init__(self, entries: list[_Entry] | None, path: Path, problems: _Problems) -> None:
        self.path, self.problems, self.entries = path, problems, entries or []
        self.quiet = entries is None  # the class file could not be read: that one error says it all
        self.exact: dict[str, list[_Entry]] = {}
        self.loose: dict[str, list[_Entry]] = {}
        for e in self.entries:
            self.exact.setdefault(e.key, []).append(e)
            self.loose.setdefault(e.stem.casefold(), []).append(e)
        self.used: set[int] = set()
        self.reported: set[tuple[int, ...]] = set()

    def character(self, image: Path) -> int | None:
        """The image's id, or None after reporting why it has none."""
        name, stem = _nfc(image.name), _nfc(image.stem)  # a name stored as NFD on disk matches its NFC entry
        found = [e for e in self.exact.get(name, []) if e.has_suffix]
        found += [e for e in self.exact.get(stem, []) if not e.has_suffix]
        if not found and (found := self.loose.get(stem.casefold(), [])):
            written = ", ".join(sorted({repr(e.key) for e in found}))
            self.problems.warn(
                image, f"matched class file entry {written} loosely (case or extension differ)", "class-loose"
            )
        if not found:
            if self.quiet:
                return None
            self.problems.error(
                image, f"not in the class file {self.path.name}: it has no character id", "class-no-entry"
            )
            return None
        self.used.update(e.line for e in found)
        ids = {e.character for e in found}
        if len(ids) > 1:
            lines = tuple(sorted(e.line for e in found))
            if lines not in self.reported:
                self.reported.add(lines)
                said = ", ".join(
                    f"line {e.line} says {e.character}" for e in sorted(found, key=lambda e: e.line)
                )
                self.problems.error(
                    self.path, f"{image.name!r} has two character ids: {said}", "class-conflict"
                )
            return None
        return ids.pop()

    def report_unused(self) -> None:
        for e in self.entries:
            if e.line not in self.used:
                self.problems.warn(
                    self.path, f"line {e.line}: {e.key!r} matches no image in any split", "class-unused"
                )


# --- folders and pairing -------------------------------------------------------------------------

# images, labels and edges by stem; None for a folder that does not exist
_Folders = tuple[dict[str, Path] | None, dict[str, Path] | None, dict[str, Path] | None]


def _split_folders(root: Path, split: str, problems: _Problems) -> _Folders | None:
    """The split's files by stem, or None when the split is absent."""
    img, lab, edge = (root / f"{split}_{kind}" for kind in ("img", "label", "edge"))
    if not img.is_dir() and not lab.is_dir():
        if edge.is_dir():
            problems.warn(edge, f"edge maps without {img.name}/ and {lab.name}/: ignored", "folder-orphan")
        return None
    for have, missing in ((img, lab), (lab, img)):
        if have.is_dir() and not missing.is_dir():
            problems.error(
                missing, f"folder missing: {have.name}/ exists, so {missing.name}/ must too", "folder-missing"
            )
    return _list_folder(img, problems), _list_folder(lab, problems), _list_folder(edge, problems)


def _list_folder(folder: Path, problems: _Problems) -> dict[str, Path] | None:
    """Image files of a folder by stem; None when it does not exist."""
    if not folder.is_dir():
        return None
    try:
        paths = sorted(folder.iterdir())
    except OSError as e:
        problems.error(folder, f"cannot list the folder ({e.strerror or e})", "folder-unreadable")
        return {}
    by_stem: dict[str, Path] = {}
    for p in paths:
        if p.name.startswith(".") or p.name.lower() in _IGNORED:
            continue
        if p.is_dir():
            problems.warn(p, "sub-folder ignored: files are read from the split folder only", "stray-file")
        elif p.suffix.lower() not in IMAGE_SUFFIXES:
            problems.warn(p, f"not an image file ({p.suffix or 'no extension'}): ignored", "stray-file")
        elif _nfc(p.stem) in by_stem:
            problems.error(
                p,
                f"same name as {by_stem[_nfc(p.stem)].name}: files pair by name, so this is ambiguous",
                "duplicate-stem",
            )
        else:
            by_stem[_nfc(p.stem)] = p  # NFC: an NFD name on disk pairs with its NFC twin
    return by_stem


def _pair(
    split: str, folders: _Folders | None, lookup: _ClassLookup, K: int, problems: _Problems
) -> tuple[Sample, ...]:
    """Samples of one split, paired by stem; every image without its partners is reported."""
    if folders is None:
        return ()
    images, labels, edges = folders
    if images is None or labels is None:  # reported as a missing folder
        return ()
    samples = []
    for stem, image in images.items():
        label = labels.get(stem)
        edge = edges.get(stem) if edges is not None else None
        if label is None:
            problems.error(image, f"no label map {split}_label/{stem}.* for this image", "no-label")
        if edges is not None and edge is None:
            problems.error(
                image,
                f"no edge map {split}_edge/{stem}.* ({split}_edge/ exists, so every image "
                "needs one; remove the folder to compute edges with Canny)",
                "no-edge",
            )
        character = lookup.character(image)
        if (
            label is None
            or (edges is not None and edge is None)
            or character is None
            or character >= max(K, 1)
        ):
            continue
        samples.append(Sample(stem, image, label, edge, character))
    for kind, files in (("label", labels), ("edge", edges or {})):
        for stem, path in files.items():
            if stem not in images:
                problems.warn(path, f"{kind} map without an image {split}_img/{stem}.*: ignored", "no-image")
    return tuple(samples)


def _check_split_names(folders: dict[str, _Folders | None], problems: _Problems) -> None:
    """One class.txt covers all splits, so a name in two splits gets one character id for both."""
    seen: dict[str, Path] = {}
    for f in folders.values():
        for stem, path in ((f and f[0]) or {}).items():
            if stem in seen:
                problems.warn(
                    path,
                    f"same name as {seen[stem].parent.name}/{seen[stem].name}: one class.txt "
                    "line gives both the same character",
                    "name-in-two-splits",
                )
            else:
                seen[stem] = path


def _check_characters(summary: Summary, names: tuple[str, ...], problems: _Problems) -> None:
    train = summary.splits["train"]
    missing = [k for k in range(len(names)) if not train.per_character.get(k)]
    if train.samples and missing:
        shown = ", ".join(f"{k} ({names[k]})" if names[k] != str(k) else str(k) for k in missing[:20])
        problems.warn(
            None,
            f"no training image for character(s) {shown}: the model cannot learn them",
            "character-unseen",
        )


# --- decoding every file -------------------------------------------------------------------------


def _check_files(
    splits: dict[str, tuple[Sample, ...]],
    palette: Palette,
    summary: Summary,
    problems: _Problems,
    deep: bool,
    workers: int | None,
    progress: bool,
    max_pixels: int,
) -> None:
    """Open (and when deep, decode) every sample; gather sizes, class pixels and problems."""
    jobs = [(split, s) for split in SPLITS for s in splits[split]]
    check = partial(check_sample, palette=palette, deep=deep, max_pixels=max_pixels)
    results = _map(check, [s for _, s in jobs], workers if deep else 1, progress)
    N = palette.num_classes
    pixels, maps = np.zeros(N, np.int64), np.zeros(N, np.int64)
    first_seen: dict[str, tuple[str, Path]] = {}
    for (split, sample), r in zip(jobs, results, strict=True):
        problems.extend(r.problems)
        if r.size is not None:
            summary.splits[split].sizes[r.size] += 1
        if split == "train" and r.class_pixels is not None:
            pixels += r.class_pixels
            maps += r.class_pixels > 0
            summary.label_maps += 1
        if r.digest is not None:
            other = first_seen.setdefault(r.digest, (split, sample.image))
            if other[0] != split:
                problems.warn(
                    sample.image,
                    f"same picture as {other[1].parent.name}/{other[1].name}: a picture in "
                    "two splits makes the held-out scores look better than they are",
                    "split-overlap",
                )
    if deep:
        summary.class_pixels, summary.class_maps = pixels, maps


def _map(fn, items: list, workers: int | None, progress: bool) -> Iterable[SampleResult]:
    """fn over items in order, in worker processes when there are enough items to pay for them."""
    if workers is None:
        workers = cpu_count()
    bar = partial(tqdm, total=len(items), desc="checking dataset", unit="sample", disable=not progress)
    if workers <= 1 or len(items) < _INLINE_BELOW:
        return [fn(x) for x in bar(items)]
    chunk = max(1, min(64, len(items) // (workers * 8)))
    try:
        # spawn: safe whatever threads or CUDA state the caller (a training run) already has.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            return list(bar(pool.map(fn, items, chunksize=chunk)))
    except (OSError, BrokenProcessPool):  # no processes allowed here: check in-process instead
        return [fn(x) for x in bar(items)]
