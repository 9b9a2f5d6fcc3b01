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
import os
import shutil
import struct
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from animesis.data.palette import DEFAULT_PALETTE
from animesis.data.synthetic_draw import (
    ACCESSORIES,
    BANGS,
    HAIRSTYLES,
    PATTERNS,
    RGB,
    Character,
    Rendering,
    hsv,
    render,
)
from animesis.errors import UserError

GENERATOR = "animesis dataset synth"
DRAWING_VERSION = 1  # bump whenever the same arguments would draw different pictures
SPLITS = ("train", "val", "test")
_STREAM = {
    "train": 0,
    "val": 1,
    "test": 2,
    "sheet": 3,
    "cast": 4,
    "family": 5,
    "variation": 6,
}  # separate random streams
MIN_SIZE, MAX_SIZE = 64, 1024
DEFAULT_CAST = Path(__file__).with_name("cast_default.json")
_PARTIAL_MARK = ".synth-partial"


class SynthError(UserError):
    """Bad arguments or characters file, or an output folder that must not be touched."""


# ----------------------------------------------------------------------------------------------------------
# The cast


@dataclass(frozen=True)
class Cast:
    """Characters in id order, and how often a picture shows a character in another family's look."""

    characters: tuple[Character, ...]
    restyle: float  # probability per picture; the look comes from another family of the cast


_REQUIRED = ("name", "hairstyle", "hair", "eyes", "skin", "clothes")
_OPTIONAL = ("family", "bangs", "hair_shadow", "hair_highlight", "clothes_accent", "pattern", "accessories")
_OPTIONAL += ("accessory_color",)


def load_cast(path: Path | None = None) -> Cast:
    """Read a characters file (without a path, the shipped default cast); errors name file and field."""
    path = DEFAULT_CAST if path is None else Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SynthError(f"{path}: cannot read the characters file ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynthError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("characters"), list) or not doc["characters"]:
        raise SynthError(f'{path}: expected {{"characters": [{{"name": ..., "hairstyle": ..., ...}}, ...]}}')
    unknown = set(doc) - {"format", "restyle", "characters", "comment"}
    if unknown:
        raise SynthError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}")
    if doc.get("format", 1) != 1:
        raise SynthError(f"{path}: characters file format {doc['format']!r} is not supported (expected 1)")
    restyle = doc.get("restyle", 0.0)
    if isinstance(restyle, bool) or not isinstance(restyle, int | float) or not 0 <= restyle <= 1:
        raise SynthError(f"{path}: restyle must be a probability between 0 and 1, got {restyle!r}")
    chars = tuple(_parse_character(c, i, path) for i, c in enumerate(doc["characters"]))
    names = [c.name for c in chars]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SynthError(f"{path}: character names must be unique; repeated: {', '.join(dupes)}")
    return Cast(chars, float(restyle))


def _parse_character(d: object, i: int, path: Path) -> Character:
    where = f"{path}: characters[{i}]"
    if not isinstance(d, dict):
        raise SynthError(f"{where}: expected an object with {', '.join(_REQUIRED)}")
    if isinstance(d.get("name"), str):
        where += f' ("{d["name"]}")'
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise SynthError(f"{where}: missing {', '.join(missing)}")
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise SynthError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    name = d["name"]
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "\n\r\t"):
        raise SynthError(f"{where}: name must be a non-empty one-line string")

    def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
        v = d.get(key, default)
        if v not in allowed:
            raise SynthError(f"{where}: {key} {v!r} is not one of {', '.join(allowed)}")
        return v

    def color(key: str, default: RGB | None = None) -> RGB:
        if key not in d and default is not None:
            return default
        return _parse_color(d[key], f"{where}: {key}")

    accessories = d.get("accessories", [])
    if not isinstance(accessories, list) or any(a not in ACCESSORIES for a in accessories):
        raise SynthError(
            f"{where}: accessories must be a list of {', '.join(ACCESSORIES)}; got {accessories!r}"
        )
    family = d.get("family", name)
    if not isinstance(family, str):
        raise SynthError(f"{where}: family must be a string")
    hair = color("hair")
    clothes = color("clothes")
    accent = color("clothes_accent", _mix_rgb(clothes, (255, 255, 255), 0.7))
    return Character(
        name=name.strip(),
        family=family,
        hairstyle=choice("hairstyle", HAIRSTYLES, ""),
        bangs=choice("bangs", BANGS, "parted"),
        hair=(
            hair,
            color("hair_shadow", _shadow(hair)),
            color("hair_highlight", _mix_rgb(hair, (255, 255, 255), 0.55)),
        ),
        eyes=color("eyes"),
        skin=color("skin"),
        clothes=clothes,
        clothes_accent=accent,
        pattern=choice("pattern", PATTERNS, "plain"),
        accessories=tuple(dict.fromkeys(accessories)),
        accessory_color=color("accessory_color", accent),
    )


def _parse_color(v: object, where: str) -> RGB:
    if isinstance(v, str) and len(v) == 7 and v[0] == "#":
        try:
            return (int(v[1:3], 16), int(v[3:5], 16), int(v[5:7], 16))
        except ValueError:
            pass
    elif isinstance(v, list) and len(v) == 3 and all(type(x) is int and 0 <= x <= 255 for x in v):
        return (v[0], v[1], v[2])
    raise SynthError(f'{where}: colour must be "#rrggbb" or [r, g, b] with 0..255, got {v!r}')


def _mix_rgb(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _shadow(c: RGB) -> RGB:
    return (round(c[0] * 0.72), round(c[1] * 0.66), round(c[2] * 0.8))


def _hex(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


# Looks of the families made up when more characters are asked for than the cast holds.
_EXTRA_LOOKS = (
    ("short", "straight", ("flower",)),
    ("ponytail", "swept", ("ribbon",)),
    ("buns", "parted", ("hairclip",)),
    ("long", "parted", ("headband", "glasses")),
    ("bob", "straight", ("horns",)),
    ("twin_tails", "swept", ("flower", "glasses")),
)
_SYLLABLES = ("a", "ka", "ki", "mi", "na", "no", "ri", "sa", "shi", "ta", "to", "yu", "ha", "ru", "me", "ko")


def cast_members(cast: Cast, n: int, seed: int) -> tuple[Character, ...]:
    """The first n characters; beyond the file's cast, families of three made up from the seed."""
    if n < 1:
        raise SynthError(f"--characters must be at least 1, got {n}")
    chars = list(cast.characters[:n])
    for k in range(len(chars), n):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _STREAM["cast"], k])))
        fam_no = (k - len(cast.characters)) // 3
        look = _EXTRA_LOOKS[fam_no % len(_EXTRA_LOOKS)]
        fam_rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, _STREAM["family"], fam_no]))
        )
        family = _made_up_name(fam_rng, 3).capitalize()
        hair = hsv(float(rng.random()), float(rng.uniform(0.25, 0.8)), float(rng.uniform(0.35, 0.95)))
        clothes = hsv(float(rng.random()), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.95)))
        skin_tones = ((253, 228, 211), (248, 220, 203), (241, 210, 189), (222, 180, 150), (190, 140, 110))
        taken = {c.name for c in chars}
        name = f"{_made_up_name(rng, 2).capitalize()} {family}"
        while name in taken:  # rare; drawing again keeps the cast deterministic
            name = f"{_made_up_name(rng, 2).capitalize()} {family}"
        chars.append(
            Character(
                name=name,
                family=family,
                hairstyle=look[0],
                bangs=look[1],
                hair=(hair, _shadow(hair), _mix_rgb(hair, (255, 255, 255), 0.55)),
                eyes=hsv(float(rng.random()), float(rng.uniform(0.55, 0.9)), float(rng.uniform(0.55, 0.9))),
                skin=skin_tones[int(rng.integers(len(skin_tones)))],
                clothes=clothes,
                clothes_accent=_mix_rgb(clothes, (255, 255, 255), float(rng.uniform(0.5, 0.9))),
                pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
                accessories=look[2],
                accessory_color=hsv(
                    float(rng.random()), float(rng.uniform(0.5, 0.9)), float(rng.uniform(0.6, 0.95))
                ),
            )
        )
    return tuple(chars)


def _made_up_name(rng: np.random.Generator, syllables: int) -> str:
    return "".join(_SYLLABLES[int(i)] for i in rng.integers(len(_SYLLABLES), size=syllables))


def looks_of(chars: tuple[Character, ...]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The distinct looks (hairstyle, bangs, accessories) of a cast, in order of first appearance."""
    return tuple(dict.fromkeys((c.hairstyle, c.bangs, c.accessories) for c in chars))


# ----------------------------------------------------------------------------------------------------------
# One picture


def picture_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    """The random stream of one picture: independent of every other one and of the worker drawing it."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, _STREAM[stream], index])))


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
                np.random.SeedSequence([seed, _STREAM["variation"], _STREAM[stream], index, variation])
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
        _parse_character({k: v for k, v in c.items() if k != "id"}, i, path)
        for i, c in enumerate(doc["characters"])
    )
    k = len(chars)
    restyle = float(doc.get("restyle", 0.0))
    pictures = [
        draw_picture(chars, restyle, seed, split, index, size, index % k, variation=v) for v in range(n)
    ]
    return pictures[0].label, [p.image for p in pictures]


# Canny as `animesis.data.edges.canny_edges` computes it (grey 0.299/0.587/0.114, 5-tap Gaussian
# sigma 1, unnormalised Sobel, non-maximum suppression in 45-degree steps, thresholds 0.1 and 0.2,
# hysteresis), but in integers: float convolutions round differently on different CPUs, and a
# rounding flip at a threshold or a tie would change an edge file from one machine to the next.
_BLUR = (56, 250, 412, 250, 56)  # the sigma-1 Gaussian in 1/1024
_GREY_ONE = 255000  # grey value of white: 0.299/0.587/0.114 in thousandths times 255


def canny_exact(rgb: np.ndarray, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """(H, W, 3) uint8 image -> (H, W) uint8 Canny edge map of 0 and 1, computed exactly in integers."""
    img = rgb.astype(np.int32)
    grey = img[..., 0] * 299 + img[..., 1] * 587 + img[..., 2] * 114
    h, w = grey.shape
    # scipy's "mirror" border is torch's "reflect"; integer sums in doubles stay exact below 2**53.
    blur = ndimage.correlate1d(grey, _BLUR, axis=1, mode="mirror", output=np.int32)
    blur += 512
    blur >>= 10
    blur = ndimage.correlate1d(blur, _BLUR, axis=0, mode="mirror", output=np.int32)
    blur += 512
    blur >>= 10
    # Sobel with the border pixels repeated, as kornia's spatial_gradient pads.
    q = np.pad(blur, 1, mode="edge")
    sx = q[:, 2:] - q[:, :-2]
    gx = sx[:-2] + 2 * sx[1:-1] + sx[2:]
    sy = q[2:] - q[:-2]
    gy = sy[:, :-2] + 2 * sy[:, 1:-1] + sy[:, 2:]
    gx64, gy64 = gx.astype(np.int64), gy.astype(np.int64)
    mag = gx64 * gx64 + gy64 * gy64  # squared magnitude, compared with squared thresholds
    padded = np.zeros((h + 2, w + 2), np.int64)
    padded[1:-1, 1:-1] = mag
    flat, stride = padded.ravel(), w + 2
    ys, xs = np.nonzero(mag > int(low * _GREY_ONE) ** 2)  # only candidates can become edges
    idx = (ys + 1) * stride + xs + 1
    ax, ay = np.abs(gx64[ys, xs]), np.abs(gy64[ys, xs])
    horiz = ay * 100000 < 41421 * ax  # within 22.5 degrees of the x axis (tan 22.5 = 0.41421)
    vert = ay * 100000 > 241421 * ax  # within 22.5 degrees of the y axis
    down_right = (gx64[ys, xs] > 0) == (gy64[ys, xs] > 0)
    # Along the gradient, a pixel must beat the left (upper) neighbour and may tie the right (lower)
    # one, as in OpenCV and kornia; along a diagonal it must beat both.
    before = np.where(horiz, -1, np.where(vert, -stride, np.where(down_right, -stride - 1, -stride + 1)))
    m = flat[idx]
    after = flat[idx - before]
    keep = (m > flat[idx + before]) & ((m > after) | ((m == after) & (horiz | vert)))
    strong = keep & (m > int(high * _GREY_ONE) ** 2)
    weak = np.zeros((h, w), bool)
    weak[ys[keep], xs[keep]] = True
    # Hysteresis: keep the 8-connected groups of weak edges that hold a strong one.
    groups, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    held = np.zeros(n + 1, bool)
    held[groups[ys[strong], xs[strong]]] = True
    held[0] = False
    return held[groups].astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# PNG files that are the same bytes everywhere. zlib and zlib-ng (in Pillow's wheels) promise the same
# pixels, not the same bytes, across versions and CPUs; so the deflate stream is built here: PNG "Up"
# filter, one fixed-Huffman block of literals, and runs of a repeated byte as matches at distance 1.


def _reverse_bits(v: int, n: int) -> int:
    return int(f"{v:0{n}b}"[::-1], 2)


def _fixed_huffman() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bits (LSB first, as written) and bit counts of the 288 literal/length symbols and of each run."""
    code, bits = np.zeros(288, np.int64), np.zeros(288, np.int64)
    for s in range(288):
        c, n = (
            (0x30 + s, 8)
            if s < 144
            else (0x190 + s - 144, 9)
            if s < 256
            else (s - 256, 7)
            if s < 280
            else (0xC0 + s - 280, 8)
        )
        code[s], bits[s] = _reverse_bits(c, n), n
    base = (
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
        11,
        13,
        15,
        17,
        19,
        23,
        27,
        31,
        35,
        43,
        51,
        59,
        67,
        83,
        99,
        115,
        131,
        163,
        195,
        227,
        258,
    )
    extra = (0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0)
    m_code, m_bits = np.zeros(259, np.int64), np.zeros(259, np.int64)
    for length in range(3, 259):
        i = 28 if length == 258 else max(k for k in range(28) if base[k] <= length)
        s = 257 + i
        # length symbol, its extra bits, then distance code 0 (distance 1): five zero bits
        m_code[length] = int(code[s]) | ((length - base[i]) << int(bits[s]))
        m_bits[length] = int(bits[s]) + extra[i] + 5
    return code, bits, m_code, m_bits


_LIT_CODE, _LIT_BITS, _RUN_CODE, _RUN_BITS = _fixed_huffman()


def _deflate(data: np.ndarray) -> bytes:
    """A raw deflate stream of a uint8 array."""
    n = len(data)
    start = np.flatnonzero(np.r_[True, data[1:] != data[:-1]])  # runs of one byte value
    rest = np.diff(np.r_[start, n]) - 1  # bytes after the run's first, written as matches
    full, rem = rest // 258, rest % 258
    short = rem < 3  # too short for a match: literals
    tokens = 1 + full + np.where(short, rem, 1)
    run = np.repeat(np.arange(len(start)), tokens)
    pos = np.arange(len(run)) - (np.cumsum(tokens) - tokens)[run]  # token number within its run
    length = np.where((pos >= 1) & (pos <= full[run]), 258, 0)
    length = np.where((pos == full[run] + 1) & ~short[run], rem[run], length)
    literal = data[start][run]
    value = np.where(length > 0, _RUN_CODE[length], _LIT_CODE[literal])
    nbits = np.where(length > 0, _RUN_BITS[length], _LIT_BITS[literal])
    value = np.r_[0b011, value, _LIT_CODE[256]]  # header (last block, fixed Huffman) ... end of block
    nbits = np.r_[3, nbits, _LIT_BITS[256]]
    at = np.cumsum(nbits) - nbits
    size = (int(at[-1] + nbits[-1]) + 7) // 8
    byte, shifted = at >> 3, value << (at & 7)  # a token spans at most 4 bytes (18 bits + 7)
    out = np.zeros(size + 4, np.int64)
    for k in range(4):  # tokens never share bits, so summing their bytes is OR-ing them
        out += np.bincount(byte + k, weights=(shifted >> (8 * k)) & 255, minlength=size + 4).astype(np.int64)
    return out[:size].astype(np.uint8).tobytes()


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W) grey or (H, W, 3) RGB uint8 pixels -> a PNG file's bytes, the same on every machine."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    raw = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(h, w * channels)
    rows = np.empty((h, w * channels + 1), np.uint8)
    rows[:, 0] = 2  # "Up" filter on every row
    rows[0, 1:] = raw[0]
    np.subtract(raw[1:], raw[:-1], out=rows[1:, 1:])
    stream = rows.ravel()
    idat = b"\x78\x01" + _deflate(stream) + struct.pack(">I", zlib.adler32(stream))
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ----------------------------------------------------------------------------------------------------------
# Writing a dataset


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


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
        "train": train,
        "val": val,
        "test": test,
        "seed": seed,
        "characters_file": None if characters_file is None else Path(characters_file).name,
    }
    cast_json = [_character_json(i, c) for i, c in enumerate(chars)]
    fingerprint = {
        "drawing_version": DRAWING_VERSION,
        "arguments": arguments,
        "restyle": cast.restyle,
        "characters": cast_json,
    }
    done = _previous_run(out, fingerprint)
    if done is not None:
        return done
    t0 = time.perf_counter()
    partial = _fresh_partial(out)
    total = sum(counts.values())
    digits = max(6, len(str(max(counts.values()) - 1)))
    job = _Job(partial, chars, cast.restyle, seed, size, digits)
    for split, n in counts.items():
        if n:
            for kind in ("img", "label", "edge"):
                (partial / f"{split}_{kind}").mkdir()
    # By default one process per core, but no more than the work is worth (starting one costs ~0.5 s).
    n_workers = workers or min(_usable_cpus(), max(1, total // 32))
    records = _run(job, counts, n_workers, progress)
    records.sort(key=lambda r: (SPLITS.index(r[0]), r[1]))
    lines = ["name character"] + [f"{file_name(s, i, digits)} {c}" for s, i, c, _, _ in records]
    (partial / "class.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pixels = {s: sum((r[4] for r in records if r[0] == s), np.zeros(11, np.int64)) for s in SPLITS}
    missing = [DEFAULT_PALETTE.names[c] for c in range(11) if pixels["train"][c] == 0]
    sheet = contact_sheet(chars, cast.restyle, seed, tile=min(size, 128))
    (partial / "contact_sheet.png").write_bytes(png_bytes(sheet))
    content = hashlib.sha256("".join(r[3] for r in records).encode()).hexdigest()
    seconds = time.perf_counter() - t0  # everything but the README and cast.json, which take no time
    summary = {
        "out": str(out),
        "characters": characters,
        "size": size,
        "images": counts,
        "seconds": round(seconds, 2),
        "images_per_s": round(total / seconds, 1) if seconds > 0 else None,
        "workers": n_workers,
        "missing_classes": missing,
        "skipped": False,
    }
    doc = {
        "generator": GENERATOR,
        **fingerprint,
        "content_sha256": content,
        "class_pixels": {
            s: dict(zip(DEFAULT_PALETTE.names, map(int, pixels[s]), strict=True)) for s in SPLITS
        },
    }
    (partial / "README.md").write_text(dataset_readme(doc, cast.restyle), encoding="utf-8")
    # cast.json last, then one rename: a folder with a cast.json is a finished dataset.
    (partial / "cast.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    (partial / _PARTIAL_MARK).unlink()
    if out.exists():
        out.rmdir()  # empty, checked before drawing
    partial.rename(out)
    return summary


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
        "hair": _hex(c.hair[0]),
        "hair_shadow": _hex(c.hair[1]),
        "hair_highlight": _hex(c.hair[2]),
        "eyes": _hex(c.eyes),
        "skin": _hex(c.skin),
        "clothes": _hex(c.clothes),
        "clothes_accent": _hex(c.clothes_accent),
        "pattern": c.pattern,
        "accessories": list(c.accessories),
        "accessory_color": _hex(c.accessory_color),
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
        if not (partial / _PARTIAL_MARK).is_file():
            raise SynthError(
                f"{partial}: exists and is not an unfinished synthetic dataset; "
                "remove it or choose another --out"
            )
        shutil.rmtree(partial)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial.mkdir()
    (partial / _PARTIAL_MARK).write_text(
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
