"""The cast of the built-in dataset: characters as data, read from a characters file, and made-up extras."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animesis.errors import UserError
from animesis.synth.draw import (
    ACCESSORIES,
    BANGS,
    HAIRSTYLES,
    PATTERNS,
    RGB,
    Character,
    hsv,
)

GENERATOR = "animesis dataset synth"
DRAWING_VERSION = 1  # bump whenever the same arguments would draw different pictures
SPLITS = ("train", "val", "test")
STREAMS = {
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
PARTIAL_MARK = ".synth-partial"


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
    chars = tuple(parse_character(c, i, path) for i, c in enumerate(doc["characters"]))
    names = [c.name for c in chars]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SynthError(f"{path}: character names must be unique; repeated: {', '.join(dupes)}")
    return Cast(chars, float(restyle))


def parse_character(d: object, i: int, path: Path) -> Character:
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


def hex_color(c: RGB) -> str:
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
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, STREAMS["cast"], k])))
        fam_no = (k - len(cast.characters)) // 3
        look = _EXTRA_LOOKS[fam_no % len(_EXTRA_LOOKS)]
        fam_rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, STREAMS["family"], fam_no]))
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
