"""`animesis dataset synth`: the built-in dataset of procedurally drawn characters, in the seed's layout.

    OUT/{train,val,test}_{img,label,edge}/NAME.png, class.txt, cast.json, README.md, contact_sheet.png

Every picture is drawn from its own random stream, seeded by (seed, split, index), so the files do
not depend on the number of workers; the PNGs are written by a small fixed encoder, so the same
arguments give byte-identical files on any machine. The cast is data (a characters file); sisters
share a look (hairstyle, bangs, accessories), so a label map does not tell who is in the picture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animesis.data.palette import DEFAULT_PALETTE
from animesis.device import cpu_workers
from animesis.synth.canny import canny_exact
from animesis.synth.cast import (
    DRAWING_VERSION,
    GENERATOR,
    MAX_SIZE,
    MIN_SIZE,
    PARTIAL_MARK,
    SPLITS,
    STREAMS,
    SynthError,
    cast_members,
    hex_color,
    load_cast,
    looks_of,
    parse_character,
)
from animesis.synth.draw import (
    Character,
    Rendering,
    render,
)
from animesis.synth.png import png_bytes

# ----------------------------------------------------------------------------------------------------------
# One picture


def picture_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random stream of one picture: independent of every other one and of the worker drawing it."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAMS[stream], index])))


def draw_picture(
    chars: tuple[Character, ...],
    restyle: float,
    seed: int,
    stream: str,
    index: int,
    size: int,
    char_id: int,
    variation: int | None = None,
) -> Rendering:
    """Picture `index` of a stream: character `char_id`, sometimes in another family's look.

    `variation` v >= 0 draws the same picture with the background and light of stream v: the real
    pictures a model may paint from the same label map and character.
    """
    rng = picture_rng(seed, stream, index)
    vary = None
    if variation is not None:
        vary = np.random.Generator(
            np.random.PCG64(
                np.random.SeedSequence([seed, STREAMS["variation"], STREAMS[stream], index, variation])
            )
        )
    ch = chars[char_id]
    own = (ch.hairstyle, ch.bangs, ch.accessories)
    others = [look for look in looks_of(chars) if look != own]
    if rng.random() < restyle and others:
        hairstyle, bangs, accessories = others[int(rng.integers(len(others)))]
        ch = dataclasses.replace(ch, hairstyle=hairstyle, bangs=bangs, accessories=accessories)
    return render(ch, rng, size, vary)


def draw_variations(dataroot: Path, split: str, index: int, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Picture `index` of a built-in dataset's split drawn n times with other backgrounds and light.

    Returns (label map, n images). The dataset's cast.json gives the seed, size and cast it was drawn
    with; these are real pictures of one label map and one character, whose spread is the ceiling of
    the variety a model's noise can honestly bring.
    """
    path = Path(dataroot) / "cast.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("generator") != GENERATOR or doc.get("drawing_version") != DRAWING_VERSION:
        raise SynthError(f"{path}: not a dataset drawn by this version of `{GENERATOR}`")
    seed, size = int(doc["arguments"]["seed"]), int(doc["arguments"]["size"])
    chars = tuple(
        parse_character({k: v for k, v in c.items() if k != "id"}, i, path)
        for i, c in enumerate(doc["characters"])
    )
    k = len(chars)
    restyle = float(doc.get("restyle", 0.0))
    pictures = [
        draw_picture(chars, restyle, seed, split, index, size, index % k, variation=v) for v in range(n)
    ]
    return pictures[0].label, [p.image for p in pictures]


@dataclass(frozen=True)
class _Job:
    """What every worker needs to draw any picture."""

    root: Path
    chars: tuple[Character, ...]
    restyle: float
    seed: int
    size: int
    digits: int  # zero-padded width of the picture numbers


def file_name(split: str, index: int, digits: int = 6) -> str:
    """`train_000123.png`: unique across splits, and in the same order as the pictures."""
    return f"{split}_{index:0{digits}d}.png"


def _draw_chunk(job: _Job, split: str, start: int, stop: int) -> list[tuple[str, int, int, str, np.ndarray]]:
    """Draw and write pictures [start, stop) of a split: (split, index, id, sha256, class pixels) each."""
    out = []
    k = len(job.chars)
    for i in range(start, stop):
        char_id = i % k  # round robin: every character equally often in every split
        r = draw_picture(job.chars, job.restyle, job.seed, split, i, job.size, char_id)
        name = file_name(split, i, job.digits)
        digest = hashlib.sha256()
        for kind, pixels in (("img", r.image), ("label", r.label), ("edge", canny_exact(r.image))):
            data = png_bytes(pixels)
            (job.root / f"{split}_{kind}" / name).write_bytes(data)
            digest.update(data)
        out.append((split, i, char_id, digest.hexdigest(), np.bincount(r.label.ravel(), minlength=11)))
    return out


def synthesize(
    out: Path,
    *,
    characters: int = 9,
    size: int = 256,
    train: int = 4000,
    val: int = 200,
    test: int = 400,
    seed: int = 0,
    characters_file: Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Draw the dataset into `out` (which must be absent or empty); returns counts, seconds and images/s."""
    out = Path(out)
    counts = {"train": train, "val": val, "test": test}
    _check_arguments(characters, size, counts, seed, workers)
    cast = load_cast(characters_file)
    chars = cast_members(cast, characters, seed)
    arguments = {
        "characters": characters,
        "size": size,
        **counts,
        "seed": seed,
        "characters_file": None if characters_file is None else Path(characters_file).name,
    }
    fingerprint = _fingerprint(arguments, cast.restyle, chars)
    done = _previous_run(out, fingerprint)
    if done is not None:
        return done
    t0 = time.perf_counter()
    partial = _fresh_partial(out)
    total = sum(counts.values())
    job = _Job(partial, chars, cast.restyle, seed, size, digits=max(6, len(str(max(counts.values()) - 1))))
    # By default one process per core, but no more than the work is worth (starting one costs ~0.5 s).
    n_workers = workers or cpu_workers(max(1, total // 32))
    records = _draw_all(job, counts, n_workers, progress)
    sheet = contact_sheet(chars, cast.restyle, seed, tile=min(size, 128))
    (partial / "contact_sheet.png").write_bytes(png_bytes(sheet))
    seconds = time.perf_counter() - t0  # everything but the README and cast.json, which take no time
    pixels = {s: sum((r[4] for r in records if r[0] == s), np.zeros(11, np.int64)) for s in SPLITS}
    _finish(partial, out, _cast_doc(fingerprint, records, pixels), cast.restyle)
    return {
        "out": str(out),
        "characters": characters,
        "size": size,
        "images": counts,
        "seconds": round(seconds, 2),
        "images_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "workers": n_workers,
        "missing_classes": [DEFAULT_PALETTE.names[c] for c in range(11) if pixels["train"][c] == 0],
        "skipped": False,
    }


def _fingerprint(arguments: dict, restyle: float, chars: tuple[Character, ...]) -> dict:
    """What decides the pictures: the same fingerprint draws the same files."""
    return {
        "drawing_version": DRAWING_VERSION,
        "arguments": arguments,
        "restyle": restyle,
        "characters": [_character_json(i, c) for i, c in enumerate(chars)],
    }


def _cast_doc(fingerprint: dict, records: list, pixels: dict[str, np.ndarray]) -> dict:
    """cast.json: the fingerprint, a hash of every file drawn, and the pixels of each class per split."""
    return {
        "generator": GENERATOR,
        **fingerprint,
        "content_sha256": hashlib.sha256("".join(r[3] for r in records).encode()).hexdigest(),
        "class_pixels": {
            s: dict(zip(DEFAULT_PALETTE.names, map(int, pixels[s]), strict=True)) for s in SPLITS
        },
    }


def _draw_all(job: _Job, counts: dict[str, int], n_workers: int, progress: bool) -> list:
    """Make the split folders, draw every picture into them and write class.txt; the records in file order."""
    for split, n in counts.items():
        if n:
            for kind in ("img", "label", "edge"):
                (job.root / f"{split}_{kind}").mkdir()
    records = _run(job, counts, n_workers, progress)
    records.sort(key=lambda r: (SPLITS.index(r[0]), r[1]))
    lines = ["name character"] + [f"{file_name(s, i, job.digits)} {c}" for s, i, c, _, _ in records]
    (job.root / "class.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return records


def _finish(partial: Path, out: Path, doc: dict, restyle: float) -> None:
    """Write the README and cast.json, then move the finished dataset into place."""
    (partial / "README.md").write_text(dataset_readme(doc, restyle), encoding="utf-8")
    # cast.json last, then one rename: a folder with a cast.json is a finished dataset.
    (partial / "cast.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (partial / PARTIAL_MARK).unlink()
    if out.exists():
        out.rmdir()  # empty, checked before drawing
    partial.rename(out)


def _check_arguments(
    characters: int, size: int, counts: dict[str, int], seed: int, workers: int | None
) -> None:
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise SynthError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    for split, n in counts.items():
        if n < 0:
            raise SynthError(f"--{split} must be 0 or more pictures, got {n}")
    if characters < 1:
        raise SynthError(f"--characters must be at least 1, got {characters}")
    if counts["train"] < characters:
        raise SynthError(
            f"--train ({counts['train']}) must be at least --characters ({characters}), "
            "so that every character is in the training split"
        )
    if seed < 0:
        raise SynthError(f"--seed must be 0 or more, got {seed}")
    if workers is not None and workers < 1:
        raise SynthError(f"--workers must be at least 1, got {workers}")


def _character_json(i: int, c: Character) -> dict:
    return {
        "id": i,
        "name": c.name,
        "family": c.family,
        "hairstyle": c.hairstyle,
        "bangs": c.bangs,
        "hair": hex_color(c.hair[0]),
        "hair_shadow": hex_color(c.hair[1]),
        "hair_highlight": hex_color(c.hair[2]),
        "eyes": hex_color(c.eyes),
        "skin": hex_color(c.skin),
        "clothes": hex_color(c.clothes),
        "clothes_accent": hex_color(c.clothes_accent),
        "pattern": c.pattern,
        "accessories": list(c.accessories),
        "accessory_color": hex_color(c.accessory_color),
    }


def _previous_run(out: Path, fingerprint: dict) -> dict | None:
    """A summary when `out` already holds this very dataset; an error when it holds anything else."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder")
    if not any(out.iterdir()):
        return None
    try:
        doc = json.loads((out / "cast.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("generator") == GENERATOR:
        if all(doc.get(k) == v for k, v in fingerprint.items()):
            args = fingerprint["arguments"]
            return {
                "out": str(out),
                "characters": args["characters"],
                "size": args["size"],
                "images": {s: args[s] for s in SPLITS},
                "skipped": True,
                "reason": "this dataset is already there (same arguments and cast)",
            }
        raise SynthError(
            f"{out}: holds a synthetic dataset drawn with other arguments; remove it or choose another --out"
        )
    raise SynthError(f"{out}: folder is not empty; the dataset is only written into a new or empty folder")


def _fresh_partial(out: Path) -> Path:
    """An empty `OUT.partial` folder beside `out`, clearing only a leftover of an interrupted run."""
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        if not (partial / PARTIAL_MARK).is_file():
            raise SynthError(
                f"{partial}: exists and is not an unfinished synthetic dataset; "
                "remove it or choose another --out"
            )
        shutil.rmtree(partial)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    (partial / PARTIAL_MARK).write_text(
        "unfinished: animesis dataset synth was interrupted\n", encoding="utf-8"
    )
    return partial


def _run(job: _Job, counts: dict[str, int], n_workers: int, progress: bool) -> list:
    """Draw every picture, on n_workers processes (in this one when 1), with a progress bar."""
    chunk = 16
    tasks = [(s, a, min(a + chunk, n)) for s, n in counts.items() for a in range(0, n, chunk)]
    records: list = []
    with tqdm(total=sum(counts.values()), unit="img", desc="drawing", disable=not progress) as bar:
        if n_workers > 1:
            try:
                with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
                    futures = [pool.submit(_draw_chunk, job, *t) for t in tasks]
                    for f in as_completed(futures):
                        done = f.result()
                        records += done
                        bar.update(len(done))
                return records
            except (OSError, BrokenProcessPool):
                if records:  # workers ran, then died (killed, out of memory): do not quietly start over
                    raise
                bar.reset()  # no worker processes allowed here: draw in this one
        for t in tasks:
            done = _draw_chunk(job, *t)
            records += done
            bar.update(len(done))
    return records


# ----------------------------------------------------------------------------------------------------------
# Contact sheet and README


def contact_sheet(
    chars: tuple[Character, ...], restyle: float, seed: int, samples: int = 4, tile: int = 128
) -> np.ndarray:
    """Rows of characters, each picture beside its colourised label map: (K*tile, 2*samples*tile, 3) uint8."""
    size = max(MIN_SIZE, tile)
    rows = []
    for c in range(len(chars)):
        row = []
        for k in range(samples):
            r = draw_picture(chars, restyle, seed, "sheet", c * samples + k, size, c)
            row += [r.image, DEFAULT_PALETTE.colorize(r.label)]
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


_README_NOTES = """
## How the pictures vary

Sisters (one family) share a hairstyle, bangs and accessories, and every character is drawn from
the same distribution of poses, so a label map alone does not say who is in a picture: the identity
is in the colours (hair, eyes, skin, clothes and their pattern). On {restyle:.0%} of the pictures a
character wears another family's look, as sisters swapping places do.

Per picture: position, scale, rotation and head tilt, a slight head turn, mirror image, expression
(eyes open, closed, smiling or winking; six mouth shapes; brows; blush), strand jitter and hair
length, light direction for the two-tone cel shading and the hair highlight, outline width,
neckline, and a background (flat, gradient, stripes, dots or checks) that has nothing to do with
the character.

Pictures are drawn at 2-4× resolution and box-averaged (antialiased); each label pixel is the class
of the shape drawn at one fixed point inside it, so labels are exact. Edge maps are the Canny edges
of the picture, with the thresholds training uses when a dataset has none; values 0 and 1.

## Layout

    {{train,val,test}}_img/NAME.png     RGB picture
    {{train,val,test}}_label/NAME.png   class index per pixel (0..10), single channel
    {{train,val,test}}_edge/NAME.png    Canny edges, 0/1, single channel
    class.txt                         header line, then `NAME character-id` for every picture
    cast.json                         the characters (by id) and the arguments

## Share of pixels per class (train)

| class | pixels |
|---|---|
"""


def dataset_readme(doc: dict, restyle: float) -> str:
    """README.md of a drawn dataset: the command, the cast, the layout and what varies."""
    a = doc["arguments"]
    cmd = f"animesis dataset synth --out OUT --characters {a['characters']} --size {a['size']}"
    cmd += f" --train {a['train']} --val {a['val']} --test {a['test']} --seed {a['seed']}"
    if a["characters_file"]:
        cmd += f" --characters-file {a['characters_file']}"
    lines = [
        "# Synthetic anime characters",
        "",
        f"Drawn by `{GENERATOR}` (drawing version {doc['drawing_version']}):",
        "",
        f"    {cmd}",
        "",
        f"{a['train']} train, {a['val']} val and {a['test']} test pictures of {a['characters']} characters,",
        f"{a['size']}×{a['size']} pixels. The same command draws byte-identical files on any machine",
        f"(content sha256 `{doc['content_sha256'][:16]}…`).",
        "",
        "![contact sheet](contact_sheet.png)",
        "",
        "## Cast",
        "",
        "| id | name | family | hair (base, shadow, highlight) | hairstyle, bangs | eyes | skin | clothes "
        "| accessories |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in doc["characters"]:
        hair = f"{c['hair']}, {c['hair_shadow']}, {c['hair_highlight']}"
        style = f"{c['hairstyle'].replace('_', ' ')}, {c['bangs']}"
        clothes = f"{c['clothes']} {c['pattern']} (accent {c['clothes_accent']})"
        acc = f"{', '.join(c['accessories']) or 'none'} ({c['accessory_color']})"
        lines.append(
            f"| {c['id']} | {c['name']} | {c['family']} | {hair} | {style} | {c['eyes']} | {c['skin']} "
            f"| {clothes} | {acc} |"
        )
    share = doc["class_pixels"]["train"]
    total = max(1, sum(share.values()))
    text = "\n".join(lines) + "\n" + _README_NOTES.format(restyle=restyle)
    return text + "".join(f"| {k} | {v / total:.2%} |\n" for k, v in share.items())
