"""Draw one anime-style bust portrait of a character and its exact 11-class label map.

Every shape is painted, in painter's order, as a *material* id into a supersampled material map;
each material belongs to one class and has one colour. The label map is the class of one fixed
sample per output pixel (exact, no antialiasing) and the image is the box average of the material
colours (antialiased), so a label region is by construction what was drawn there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from animesis.data.palette import DEFAULT_PALETTE

RGB = tuple[int, int, int]

HAIR, EARS, EYES, BROWS, SKIN, ACC, MOUTH, CLOTHES, NOSE, FACE, BG = range(11)
OUTSIDE = 11  # stands for "beyond the picture" in the shading tables
assert DEFAULT_PALETTE.names[HAIR] == "hair" and DEFAULT_PALETTE.names[BG] == "background"

HAIRSTYLES = ("long", "bob", "short", "twin_tails", "ponytail", "side_tail", "buns")
BANGS = ("parted", "straight", "swept")
PATTERNS = ("plain", "stripes", "checks", "sailor", "dots", "buttons")
ACCESSORIES = ("ribbon", "hairclip", "horns", "headband", "glasses", "flower")


@dataclass(frozen=True)
class Character:
    """Identity traits of one character; everything else about a picture is drawn per picture."""

    name: str
    hairstyle: str  # one of HAIRSTYLES
    bangs: str  # one of BANGS
    hair: tuple[RGB, RGB, RGB]  # base, shadow and highlight tones
    eyes: RGB  # iris colour
    skin: RGB
    clothes: RGB
    clothes_accent: RGB  # collar, trim and pattern colour
    pattern: str  # one of PATTERNS
    accessories: tuple[str, ...]  # each one of ACCESSORIES
    accessory_color: RGB
    family: str = ""  # sisters share hairstyle, bangs and accessories


@dataclass(frozen=True)
class Rendering:
    """One drawn picture: the image, its labels, and the supersampled material map they came from."""

    image: np.ndarray  # (H, W, 3) uint8: box average of material_rgb[materials] over s×s blocks
    label: np.ndarray  # (H, W) uint8: material_class[materials[o::s, o::s]] with o = s // 2
    materials: np.ndarray  # (H*s, W*s) uint8 material ids
    material_class: np.ndarray  # (256,) uint8 class of each material id
    material_rgb: np.ndarray  # (256, 3) uint8 colour of each material id
    supersample: int  # s


def supersample_factor(size: int) -> int:
    """Samples per pixel along each axis: 2, or more for small pictures so thin lines survive."""
    return max(2, min(4, 256 // size))


# ----------------------------------------------------------------------------------------------------------
# Geometry. Points are (N, 2) float arrays in head units (the face is about 1 wide), y pointing down.


@lru_cache(maxsize=512)
def _unit_arc(a0: float, a1: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    # math.cos rather than np.cos: numpy's vectorised sine may differ in the last bit between CPUs.
    a = np.linspace(a0, a1, n).tolist()
    return np.array([math.cos(t) for t in a]), np.array([math.sin(t) for t in a])


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> np.ndarray:
    c, s = _unit_arc(a0, a1, n)
    return np.stack([cx + rx * c, cy + ry * s], 1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 28) -> np.ndarray:
    return _arc(cx, cy, rx, ry, 0.0, 2 * math.pi * (n - 1) / n, n)


def _smooth(p: np.ndarray, closed: bool = True, iters: int = 2) -> np.ndarray:
    """Chaikin corner cutting: control points become a smooth curve."""
    p = np.asarray(p, dtype=float)
    for _ in range(iters):
        a, q = (p, np.roll(p, -1, 0)) if closed else (p[:-1], p[1:])
        mid = np.empty((2 * len(a), 2))
        mid[0::2] = 0.75 * a + 0.25 * q
        mid[1::2] = 0.25 * a + 0.75 * q
        p = mid if closed else np.concatenate([p[:1], mid, p[-1:]])
    return p


def _curve(*ctrl: tuple[float, float], iters: int = 3) -> np.ndarray:
    return _smooth(np.asarray(ctrl, dtype=float), closed=False, iters=iters)


def _stroke(center: np.ndarray, widths: np.ndarray | float) -> np.ndarray:
    """Outline polygon of a stroke of varying width along an open centre line."""
    d = np.gradient(center, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-9
    half = np.broadcast_to(np.asarray(widths, dtype=float), (len(center),)).reshape(-1, 1) / 2
    normal = np.stack([-d[:, 1], d[:, 0]], 1) * half
    return np.concatenate([center + normal, (center - normal)[::-1]])


def _each(f: Callable[[float], float], t: np.ndarray) -> np.ndarray:
    """A math function applied point by point: numpy's vectorised versions may round differently per CPU."""
    return np.array([f(v) for v in t.tolist()])


def _taper(n: int, w0: float, w1: float, power: float = 1.0) -> np.ndarray:
    return w0 + (w1 - w0) * _each(lambda v: v**power, np.linspace(0.0, 1.0, n))


def _mirror(p: np.ndarray | list) -> np.ndarray:
    return np.asarray(p, dtype=float) * np.array([-1.0, 1.0])


def _both_sides(right: np.ndarray | list) -> np.ndarray:
    """A symmetric closed outline from its right half, listed top to bottom."""
    right = np.asarray(right, dtype=float)
    return np.concatenate([right, _mirror(right)[::-1]])


# ----------------------------------------------------------------------------------------------------------
# Colours


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x * (1 - t) + y * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _scale(c: RGB, f: tuple[float, float, float]) -> RGB:
    return tuple(round(min(255.0, v * k)) for v, k in zip(c, f, strict=True))  # type: ignore[return-value]


def hsv(h: float, s: float, v: float) -> RGB:
    """HSV in [0, 1] to 8-bit RGB."""
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (round(r * 255), round(g * 255), round(b * 255))


_SHADE = (0.80, 0.74, 0.86)  # cel-shadow tint: darker and a little cooler
_SKIN_SHADE = (0.92, 0.78, 0.79)  # warmer, softer shadow for skin
_INK = (20, 10, 30)  # the dark the outlines lean towards


class _Materials:
    """Per-picture table of materials: class, colour, and the colour of its shaded twin (id + 128)."""

    def __init__(self) -> None:
        self.cls = np.zeros(256, np.uint8)
        self.rgb = np.zeros((256, 3), np.uint8)
        self.shaded = np.zeros(256, bool)
        self.n = 0

    def add(self, cls: int, rgb: RGB, shade: RGB | None = None) -> int:
        """A new material; `shade` is its cel-shadow colour, None for a material never shaded."""
        i = self.n
        if i >= 128:
            raise RuntimeError("more than 128 materials in one picture")
        self.n += 1
        self.cls[i] = self.cls[i + 128] = cls
        self.rgb[i] = rgb
        self.rgb[i + 128] = rgb if shade is None else shade
        self.shaded[i] = shade is not None
        return i


# ----------------------------------------------------------------------------------------------------------
# Painting


class _Canvas:
    """Two supersampled 8-bit layers: the material map, and an overlay that recolours chosen materials."""

    def __init__(self, px: int, unit: float, head: np.ndarray, body: np.ndarray) -> None:
        self.px, self.unit = px, unit  # canvas side, and pixels per head unit
        self.frames = {"head": head, "body": body}  # (2, 3) affine maps to canvas pixels
        self.main = Image.new("L", (px, px), 0)
        self.over = Image.new("L", (px, px), 0)
        self.draw = ImageDraw.Draw(self.main)
        self._over = ImageDraw.Draw(self.over)
        self.overlay_base = np.full(256, -1, np.int16)  # overlay value -> the material it may recolour
        self.overlay_mat = np.zeros(256, np.uint8)  # overlay value -> the material it becomes
        self.n_overlay = 0

    def _map(self, pts: np.ndarray, frame: str) -> np.ndarray:
        """Points of a frame to canvas pixels."""
        # Element-wise, not a matrix product: BLAS kernels (FMA or not) round differently between CPUs.
        (a, b, c), (d, e, f) = self.frames[frame].tolist()
        x, y = pts[..., 0], pts[..., 1]
        return np.stack([a * x + b * y + c, d * x + e * y + f], -1)

    def _xy(self, pts: np.ndarray, frame: str) -> list[float]:
        return self._map(pts, frame).ravel().tolist()

    def width(self, w: float) -> int:
        """A width in head units, in whole canvas pixels (at least one)."""
        return max(1, round(w * self.unit))

    def fill(
        self, pts: np.ndarray, mat: int, frame: str = "head", line: tuple[int, float] | None = None
    ) -> None:
        """Fill a polygon with a material, then trace its border with (line material, width) if given."""
        xy = self._xy(pts, frame)
        self.draw.polygon(xy, fill=mat)
        if line is not None:
            # Centred on the border: the line's outer half covers what lies below, with this shape's class.
            self.draw.line([*xy, xy[0], xy[1]], fill=line[0], width=self.width(line[1]))

    def line(
        self, pts: np.ndarray, mat: int, width: float, frame: str = "head", closed: bool = False
    ) -> None:
        """A line (or closed ring) of a material."""
        xy = self._xy(pts, frame)
        self.draw.line([*xy, xy[0], xy[1]] if closed else xy, fill=mat, width=self.width(width))

    def overlay(self, base: int, new: int) -> int:
        """A new overlay value that turns material `base` into material `new` wherever it is painted."""
        if self.n_overlay >= 255:
            raise RuntimeError("more than 255 overlays in one picture")
        self.n_overlay += 1
        self.overlay_base[self.n_overlay], self.overlay_mat[self.n_overlay] = base, new
        return self.n_overlay

    def paint_overlay(self, pts: np.ndarray, value: int, frame: str = "head") -> None:
        """Paint one polygon (n, 2), or many of the same length (m, n, 2), with an overlay value."""
        for poly in self._map(pts, frame).reshape(-1, pts.shape[-2] * 2).tolist():
            self._over.polygon(poly, fill=value)

    def resolve(self) -> np.ndarray:
        """The material map, recoloured where an overlay lies on its base material."""
        mat = np.array(self.main)
        box = self.over.getbbox()
        if box is not None:
            x0, y0, x1, y1 = box
            over = np.asarray(self.over)[y0:y1, x0:x1]
            sub = mat[y0:y1, x0:x1]
            hit = self.overlay_base[over] == sub
            sub[hit] = self.overlay_mat[over][hit]
        return mat


def _affine(scale: float, angle: float, tx: float, ty: float, mirror: bool) -> np.ndarray:
    """(2, 3) map from frame units to canvas pixels: mirror, rotate, scale, then move."""
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    m = np.array([[c, -s, tx], [s, c, ty]])
    if mirror:
        m[:, 0] = -m[:, 0]
    return m


def _pivot(frame: np.ndarray, angle: float, px: float, py: float) -> np.ndarray:
    """The frame, first rotated by `angle` about its own point (px, py)."""
    c, s = math.cos(angle), math.sin(angle)
    (a, b, tx), (d, e, ty) = frame.tolist()
    # The product frame @ rotation, written out: Python floats round the same everywhere.
    rx, ry = px - c * px + s * py, py - s * px - c * py
    return np.array(
        [
            [a * c + b * s, b * c - a * s, a * rx + b * ry + tx],
            [d * c + e * s, e * c - d * s, d * rx + e * ry + ty],
        ]
    )


# ----------------------------------------------------------------------------------------------------------
# Per-picture variation


@dataclass
class _Pose:
    """Everything about a picture that is not the character."""

    scale: float
    cx: float  # picture centre offset, fraction of the side
    cy: float
    body_angle: float  # radians
    tilt: float  # head tilt about the neck, radians
    mirror: bool
    yaw: float  # -1..1: facial features shift towards this side
    light: float  # direction towards the light in the picture, radians (y down)
    line: float  # outline width, head units
    gaze: tuple[float, float]
    eyes: str  # open, closed, smile, wink
    mouth: str  # smile, open, o, flat, cat, grin
    brows: float  # -1 worried .. 1 determined
    blush: bool
    neckline: str  # round, v, high
    jitter: np.ndarray  # strand jitter, -1..1
    hair_len: float  # -1..1
    shoulders: float  # -1..1
    accessory_shift: np.ndarray  # -1..1


def _sample_pose(rng: np.random.Generator) -> _Pose:
    """Draw a pose; the order of the draws is part of the dataset's definition."""
    return _Pose(
        scale=float(rng.uniform(0.86, 1.14)),
        cx=float(rng.uniform(-0.07, 0.07)),
        cy=float(rng.uniform(-0.05, 0.05)),
        body_angle=float(rng.uniform(-0.09, 0.09)),
        tilt=float(rng.uniform(-0.2, 0.2)),
        mirror=bool(rng.random() < 0.5),
        yaw=float(rng.uniform(-1.0, 1.0)),
        light=float(rng.uniform(-0.85, -0.15) * math.pi),
        line=float(rng.uniform(0.010, 0.022)),
        gaze=(float(rng.uniform(-0.025, 0.025)), float(rng.uniform(-0.012, 0.012))),
        eyes=str(rng.choice(["open", "closed", "smile", "wink"], p=[0.7, 0.08, 0.12, 0.1])),
        mouth=str(rng.choice(["smile", "open", "o", "flat", "cat", "grin"])),
        brows=float(rng.uniform(-1.0, 1.0)),
        blush=bool(rng.random() < 0.5),
        neckline=str(rng.choice(["round", "v", "high"])),
        jitter=rng.uniform(-1.0, 1.0, 64),
        hair_len=float(rng.uniform(-1.0, 1.0)),
        shoulders=float(rng.uniform(-1.0, 1.0)),
        accessory_shift=rng.uniform(-1.0, 1.0, 4),
    )


# ----------------------------------------------------------------------------------------------------------
# Background: drawn straight in canvas pixels, independent of the character


def _background(rng: np.random.Generator, mats: _Materials, cv: _Canvas) -> None:
    # Long by nature: one drawing step after another, in painting order.
    """Flat, gradient, stripes, dots or checks, in colours of its own."""
    hue, sat, val = float(rng.random()), float(rng.uniform(0.08, 0.45)), float(rng.uniform(0.55, 0.97))
    base = hsv(hue, sat, val)
    kind = str(rng.choice(["flat", "linear", "radial", "stripes", "dots", "checks"]))
    angle = float(rng.uniform(0, 2 * math.pi))
    period = float(rng.uniform(0.08, 0.2)) * cv.px
    px = cv.px
    draw = cv.draw
    draw.rectangle([0, 0, px, px], fill=mats.add(BG, base))
    d = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-d[1], d[0]])
    centre = np.array([px / 2, px / 2])
    if kind in ("linear", "radial"):
        other = hsv(
            (hue + rng.uniform(-0.15, 0.15)) % 1.0,
            sat * rng.uniform(0.4, 1.2),
            val * 0.8 + 0.2 * rng.random(),
        )
        steps = 16  # bands this close in colour leave no Canny edge between them
        for k in range(1, steps):
            m = mats.add(BG, _mix(base, other, k / (steps - 1)))
            if kind == "linear":  # ever smaller half-planes across the picture
                c = centre + d * px * (-0.75 + 1.5 * k / steps)
                quad = np.stack(
                    [c + n * 2 * px, c + (n * 2 + d * 3) * px, c + (d * 3 - n * 2) * px, c - n * 2 * px]
                )
                draw.polygon(quad.ravel().tolist(), fill=m)
            else:  # ever smaller discs around an off-centre point
                r = px * (1.0 - k / steps)
                cx, cy = centre + 0.2 * px * d
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=m)
        return
    if kind == "flat":
        return
    m = mats.add(
        BG, hsv((hue + rng.uniform(-0.1, 0.1)) % 1.0, sat * 0.9, min(1.0, val + rng.uniform(-0.2, 0.12)))
    )
    i, j = (g.ravel() for g in np.meshgrid(np.arange(-12, 13), np.arange(-12, 13)))
    if kind == "stripes":
        c = centre + np.outer(np.arange(-12, 13), d) * period
        w = period * 0.3
        quads = np.stack(
            [c - d * w + n * 2 * px, c + d * w + n * 2 * px, c + d * w - n * 2 * px, c - d * w - n * 2 * px],
            1,
        )
        for quad in quads.reshape(len(quads), 8).tolist():
            draw.polygon(quad, fill=m)
    elif kind == "dots":
        r = period * 0.22
        c = centre + (np.outer(i, d) + np.outer(j + 0.5 * (i % 2), n)) * period
        c = c[(np.abs(c - px / 2) < px / 2 + r).all(1)]
        for cx, cy in c.tolist():
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=m)
    else:
        h = period / 2
        odd = (i + j) % 2 == 1
        c = centre + (np.outer(i[odd], d) + np.outer(j[odd], n)) * period
        c = c[(np.abs(c - px / 2) < px / 2 + period).all(1)]
        quads = np.stack([c - (d + n) * h, c + (d - n) * h, c + (d + n) * h, c - (d - n) * h], 1)
        for quad in quads.reshape(len(quads), 8).tolist():
            draw.polygon(quad, fill=m)


# ----------------------------------------------------------------------------------------------------------
# The character, back to front


@dataclass
class _Inks:
    """The character's materials shared by several parts."""

    hair: int
    hair_back: int  # the inside of the hair, seen behind the head: in shadow
    hair_line: int
    face: int
    ears: int
    body: int
    face_line: int
    ears_line: int
    body_line: int
    clothes: int
    clothes_line: int
    accent: int
    acc: int
    acc_line: int


def _make_inks(ch: Character, mats: _Materials) -> _Inks:
    base, shadow, _ = ch.hair
    skin_shadow = _scale(ch.skin, _SKIN_SHADE)
    skin_line = _mix(ch.skin, (90, 30, 30), 0.7)
    return _Inks(
        hair=mats.add(HAIR, base, shadow),
        hair_back=mats.add(HAIR, shadow, _scale(shadow, _SHADE)),
        hair_line=mats.add(HAIR, _mix(shadow, _INK, 0.55)),
        face=mats.add(FACE, ch.skin, skin_shadow),
        ears=mats.add(EARS, ch.skin, skin_shadow),
        body=mats.add(SKIN, ch.skin, skin_shadow),
        face_line=mats.add(FACE, skin_line),
        ears_line=mats.add(EARS, skin_line),
        body_line=mats.add(SKIN, skin_line),
        clothes=mats.add(CLOTHES, ch.clothes, _scale(ch.clothes, _SHADE)),
        clothes_line=mats.add(CLOTHES, _mix(ch.clothes, _INK, 0.75)),
        accent=mats.add(CLOTHES, ch.clothes_accent, _scale(ch.clothes_accent, _SHADE)),
        acc=mats.add(ACC, ch.accessory_color, _scale(ch.accessory_color, _SHADE)),
        acc_line=mats.add(ACC, _mix(ch.accessory_color, _INK, 0.7)),
    )


_BACK_LENGTH = {
    "long": 1.9,
    "bob": 0.58,
    "short": 0.05,
    "twin_tails": 0.2,
    "ponytail": 0.0,
    "side_tail": 0.25,
}


def _back_hair(ch: Character, p: _Pose, ink: _Inks, cv: _Canvas) -> None:
    """Hair behind the head and shoulders: the skull and, for longer styles, a curtain ending in strands."""
    j, style = p.jitter, ch.hairstyle
    length = _BACK_LENGTH.get(style, 0.1) + {"long": 0.3, "bob": 0.07}.get(style, 0.03) * p.hair_len
    top = _arc(0.0, -0.1, 0.62, 0.66, math.pi * 0.95, math.pi * 2.05, 20)
    if length <= 0.15:
        nape = [[0.5, 0.25], [0.3, 0.35], [-0.3, 0.35], [-0.5, 0.25]]
        cv.fill(_smooth(np.concatenate([top, nape])), ink.hair_back, line=(ink.hair_line, p.line))
        return
    flare = {"long": 0.42, "bob": 0.14}.get(style, 0.1)
    n_tips = 9 if style == "long" else 7
    xs = np.linspace(0.62 + flare, -0.62 - flare, n_tips * 2 + 1)
    tips = []
    for k, x in enumerate(xs):
        notch = k % 2 == 1
        drop = length - (0.12 + 0.04 * j[k] if notch else -0.05 * j[k + 40])
        if style == "bob":
            drop -= 0.12 * (abs(x) / (0.62 + flare)) ** 3  # the ends curl inwards at the sides
        tips.append([x * (0.9 if notch else 1.0) + 0.03 * j[k + 20], drop])
    side = [[0.64, 0.1], [0.62 + flare * 0.7, length * 0.5]]
    pts = np.concatenate([top, side, tips, _mirror(side)[::-1]])
    cv.fill(_smooth(pts, iters=1), ink.hair_back, line=(ink.hair_line, p.line))


def _tail(root: tuple[float, float], p: _Pose, side: float, length: float, k: int) -> np.ndarray:
    """A tied tail: swells after the tie, sways, and tapers to a point."""
    j = p.jitter
    rx, ry = root
    c = _curve(
        (rx, ry),
        (rx + side * 0.28, ry + 0.12),
        (rx + side * (0.38 + 0.04 * j[k]), ry + 0.5),
        (rx + side * (0.3 + 0.06 * j[k + 1]), ry + 0.5 + length * 0.5),
        (rx + side * (0.18 + 0.08 * j[k + 2]), ry + 0.5 + length),
    )
    t = np.linspace(0, 1, len(c))
    swell = _each(math.sin, np.clip(t * 1.35, 0, 1) * math.pi * 0.9)
    w = 0.07 + 0.36 * swell * _each(lambda v: v**0.6, 1 - t)
    return _stroke(c, w)


def _tails(ch: Character, p: _Pose, ink: _Inks, cv: _Canvas, behind: bool) -> list[tuple[float, float]]:
    """Twin tails, side tail, ponytail or buns; returns where hair ties go."""
    style, line = ch.hairstyle, (ink.hair_line, p.line)
    tail_len = 0.85 + 0.25 * p.hair_len
    ties: list[tuple[float, float]] = []
    if style == "twin_tails" and not behind:
        for side, k in ((1.0, 0), (-1.0, 3)):
            root = (side * 0.5, -0.48)
            cv.fill(_tail(root, p, side, tail_len, k), ink.hair, line=line)
            ties.append(root)
    elif style == "side_tail" and not behind:
        root = (0.52, -0.35)
        cv.fill(_tail(root, p, 1.0, tail_len + 0.2, 6), ink.hair, line=line)
        ties.append(root)
    elif style == "ponytail" and behind:  # tied at the back: only the tail's sway shows beside the head
        cv.fill(_tail((0.2, -0.62), p, 1.0, tail_len + 0.1, 9), ink.hair, line=line)
    elif style == "buns" and behind:
        for side in (1.0, -1.0):
            cv.fill(_ellipse(side * 0.4, -0.7, 0.19, 0.17, 20), ink.hair, line=line)
            ties.append((side * 0.3, -0.6))
    return ties


def _body(ch: Character, p: _Pose, ink: _Inks, mats: _Materials, cv: _Canvas) -> None:
    """Neck, shoulders, the neckline, and the clothes with the character's pattern."""
    sh = 0.05 * p.shoulders
    body_line, clothes_line = (ink.body_line, p.line), (ink.clothes_line, p.line)
    neck = np.array([[-0.15, 0.25], [0.15, 0.25], [0.16, 0.86], [-0.16, 0.86]])
    cv.fill(neck, ink.body, "body", line=body_line)
    torso = _smooth(
        _both_sides([[0.16, 0.76], [0.55 + sh, 0.9], [0.86 + sh, 1.0], [1.0 + sh, 1.2], [1.08 + sh, 3.2]])
    )
    cv.fill(torso, ink.clothes, "body", line=clothes_line)
    _pattern(ch, ink, mats, cv)
    for side in (1.0, -1.0):  # seams where the sleeves start
        seam = np.array([[0.78 + sh, 1.12], [0.8 + sh, 1.6], [0.84 + sh, 2.4]]) * [side, 1.0]
        cv.line(seam, ink.clothes_line, p.line * 0.8, "body")
    if p.neckline == "round":
        cut = np.concatenate([_arc(0.0, 0.76, 0.22, 0.17, 0.0, math.pi, 16), [[-0.22, 0.7], [0.22, 0.7]]])
        cv.fill(cut, ink.body, "body", line=body_line)
    elif p.neckline == "v":
        cv.fill(np.array([[-0.2, 0.74], [0.2, 0.74], [0.0, 1.12]]), ink.body, "body", line=body_line)
    else:
        collar = np.concatenate([_arc(0.0, 0.78, 0.2, 0.08, 0.0, math.pi, 12), [[-0.18, 0.62], [0.18, 0.62]]])
        cv.fill(collar, ink.accent, "body", line=clothes_line)
    if ch.pattern == "sailor":
        for side in (1.0, -1.0):
            flap = np.array([[0.19, 0.75], [0.58, 0.9], [0.62, 1.05], [0.4, 1.25], [0.0, 1.32], [0.0, 1.12]])
            cv.fill(flap * [side, 1.0], ink.accent, "body", line=clothes_line)
            trim = np.array([[0.5, 0.95], [0.53, 1.04], [0.36, 1.19], [0.06, 1.25]]) * [side, 1.0]
            cv.line(trim, ink.clothes, 0.022, "body")
        scarf = mats.add(CLOTHES, _mix(ch.accessory_color, ch.clothes_accent, 0.3))
        bow = np.array([[0.0, 1.2], [0.14, 1.13], [0.16, 1.3], [0.0, 1.25], [-0.16, 1.3], [-0.14, 1.13]])
        cv.fill(bow, scarf, "body", line=(ink.clothes_line, p.line * 0.8))
    elif ch.pattern == "buttons":
        cv.line(np.array([[0.0, 1.12], [0.0, 3.0]]), ink.clothes_line, p.line * 0.7, "body")
        for k in range(4):
            button = _ellipse(0.0, 1.22 + 0.22 * k, 0.03, 0.03, 10)
            cv.fill(button, ink.accent, "body", line=(ink.clothes_line, p.line * 0.6))


def _pattern(ch: Character, ink: _Inks, mats: _Materials, cv: _Canvas) -> None:
    """Stripes, checks or dots: overlays, so they stay on the clothes under whatever covers them."""
    if ch.pattern not in ("stripes", "checks", "dots"):
        return
    v = cv.overlay(ink.clothes, ink.accent)
    if ch.pattern == "stripes":
        cv.paint_overlay(_boxes(np.full(14, -1.3), 0.9 + 0.16 * np.arange(14), 2.6, 0.07), v, "body")
    elif ch.pattern == "checks":
        both = cv.overlay(ink.clothes, mats.add(CLOTHES, _mix(ch.clothes_accent, _INK, 0.3)))
        xs, ys = np.arange(-1.3, 1.3, 0.22), np.arange(0.75, 3.2, 0.22)
        cv.paint_overlay(_boxes(xs, np.full(len(xs), 0.6), 0.09, 2.6), v, "body")
        cv.paint_overlay(_boxes(np.full(len(ys), -1.3), ys, 2.6, 0.09), v, "body")
        gx, gy = np.meshgrid(xs, ys)
        cv.paint_overlay(_boxes(gx.ravel(), gy.ravel(), 0.09, 0.09), both, "body")
    else:
        i, k = np.meshgrid(np.arange(-6, 7), np.arange(12))
        centres = np.stack([i * 0.2 + 0.1 * (k % 2), 0.95 + 0.2 * k], -1).reshape(-1, 1, 2)
        cv.paint_overlay(centres + _ellipse(0.0, 0.0, 0.035, 0.035, 10), v, "body")


def _boxes(x: np.ndarray, y: np.ndarray, w: float, h: float) -> np.ndarray:
    """Axis-aligned rectangles with top-left corners (x, y): (m, 4, 2)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return np.stack(
        [
            np.stack([x, y], -1),
            np.stack([x + w, y], -1),
            np.stack([x + w, y + h], -1),
            np.stack([x, y + h], -1),
        ],
        1,
    )


def _face(ch: Character, p: _Pose, ink: _Inks, mats: _Materials, cv: _Canvas) -> None:
    """Ears, the face, and a blush on it."""
    for side in (1.0, -1.0):
        ear = np.array([[0.44, -0.02], [0.55, -0.05], [0.61, 0.05], [0.58, 0.19], [0.5, 0.27], [0.44, 0.24]])
        cv.fill(_smooth(ear * [side, 1.0]), ink.ears, line=(ink.ears_line, p.line))
        inner = _curve((0.51 * side, 0.02), (0.555 * side, 0.08), (0.53 * side, 0.18), iters=2)
        cv.line(inner, ink.ears_line, p.line * 0.8)
    jaw = [[0.5, -0.05], [0.49, 0.12], [0.45, 0.27], [0.33, 0.42], [0.15, 0.53], [0.0, 0.565]]
    top = _arc(0.0, -0.05, 0.5, 0.58, math.pi, 2 * math.pi, 16)[1:-1]
    face = _smooth(np.concatenate([top, jaw, _mirror(jaw[:-1])[::-1]]))
    cv.fill(face, ink.face, line=(ink.face_line, p.line))
    if p.blush:
        blush = mats.add(FACE, _mix(ch.skin, (235, 110, 120), 0.35), _mix(ch.skin, (215, 90, 100), 0.45))
        v = cv.overlay(ink.face, blush)
        for side in (1.0, -1.0):
            cv.paint_overlay(_ellipse(side * 0.27 + 0.05 * p.yaw, 0.31, 0.09, 0.04, 16), v)


def _eye(p: _Pose, cv: _Canvas, side: float, state: str, ink: dict[str, int]) -> None:
    """An open eye (white, iris with a gradient, pupil, catch-lights, lash lines) or a closed one."""
    cx, cy = side * 0.215 + 0.06 * p.yaw, 0.15
    narrow = 1.0 - 0.12 * max(0.0, -p.yaw * side)  # the far eye looks narrower when the head turns
    w, h = 0.135 * narrow, 0.11

    def at(pts: np.ndarray) -> np.ndarray:  # eye-local (-1..1, outer corner at +1) to head units
        return np.stack([cx + side * pts[:, 0] * w, cy + pts[:, 1] * h], 1)

    if state != "open":
        bend = 0.45 if state == "smile" else -0.35
        c = at(_curve((-1.0, 0.1), (0.0, 0.1 - bend), (1.05, 0.1 - bend * 0.2)))
        cv.fill(_stroke(c, _taper(len(c), 0.02, 0.045, 0.7)), ink["lash"])
        return
    white = [
        [-0.95, 0.15],
        [-0.75, -0.55],
        [0.1, -0.85],
        [0.95, -0.55],
        [1.05, 0.0],
        [0.7, 0.75],
        [0.0, 0.9],
        [-0.65, 0.7],
    ]
    cv.fill(at(_smooth(np.array(white))), ink["white"])
    lid = cv.overlay(ink["white"], ink["lid"])  # the upper lid's shadow on the white
    cv.paint_overlay(at(np.array([[-1.2, -1.2], [1.3, -1.2], [1.3, -0.3], [-1.2, -0.45]])), lid)
    ix, iy = cx + side * (p.gaze[0] + 0.01), cy + p.gaze[1] + 0.012
    v = {k: cv.overlay(ink["white"], ink[k]) for k in ("iris", "iris_dark", "iris_light", "pupil", "catch")}
    rx, ry = 0.082 * narrow, 0.118
    cv.paint_overlay(_ellipse(ix, iy, rx, ry, 24), v["iris"])
    # A darker top and a lit crescent at the bottom give the iris its gradient.
    cv.paint_overlay(_arc(ix, iy - 0.02, rx, ry * 0.8, math.pi, 2 * math.pi, 14), v["iris_dark"])
    cv.paint_overlay(_arc(ix, iy + 0.06, rx * 0.62, ry * 0.45, 0.0, math.pi, 12), v["iris_light"])
    cv.paint_overlay(_ellipse(ix, iy + 0.005, rx * 0.42, ry * 0.5, 16), v["pupil"])
    lx, ly = math.cos(p.light) * (-1 if p.mirror else 1), math.sin(p.light)  # light direction in head units
    cv.paint_overlay(_ellipse(ix + 0.035 * lx, iy - 0.035 + 0.015 * ly, 0.026, 0.032, 12), v["catch"])
    cv.paint_overlay(_ellipse(ix - 0.03 * lx, iy + 0.05, 0.012, 0.012, 8), v["catch"])
    # Upper lash line: heavier towards the outer corner, ending in a flick.
    lash = at(_curve((-1.05, 0.05), (-0.8, -0.6), (0.1, -0.95), (0.9, -0.65), (1.2, -0.35), (1.35, -0.5)))
    cv.fill(_stroke(lash, _taper(len(lash), 0.018, 0.05, 0.8)), ink["lash"])
    low = at(_curve((0.2, 0.92), (0.75, 0.72), (1.05, 0.3), iters=2))
    cv.fill(_stroke(low, _taper(len(low), 0.006, 0.016)), ink["lash"])


def _features(ch: Character, p: _Pose, mats: _Materials, cv: _Canvas) -> None:
    # Long by nature: one drawing step after another, in painting order.
    """Eyes, nose and mouth."""
    iris = ch.eyes
    ink = {
        "white": mats.add(EYES, (250, 250, 252)),
        "lid": mats.add(EYES, (214, 218, 236)),
        "iris_dark": mats.add(EYES, _mix(iris, (10, 5, 20), 0.45)),
        "iris": mats.add(EYES, iris),
        "iris_light": mats.add(EYES, _mix(iris, (255, 255, 255), 0.45)),
        "pupil": mats.add(EYES, _mix(iris, (5, 0, 10), 0.75)),
        "catch": mats.add(EYES, (255, 255, 255)),
        "lash": mats.add(EYES, _mix(ch.hair[1], (15, 8, 20), 0.8)),
    }
    states = {"open": ("open", "open"), "closed": ("closed", "closed"), "smile": ("smile", "smile")}
    for side, state in zip((1.0, -1.0), states.get(p.eyes, ("open", "smile")), strict=True):
        _eye(p, cv, side, state, ink)
    nx = 0.09 * p.yaw
    cv.fill(
        np.array([[nx, 0.27], [nx + 0.022, 0.335], [nx - 0.012, 0.345]]),
        mats.add(NOSE, _scale(ch.skin, (0.78, 0.62, 0.62))),
    )
    mx, my = 0.09 * p.yaw, 0.43
    line = mats.add(MOUTH, (110, 40, 45))
    inner = mats.add(MOUTH, (165, 60, 70))
    if p.mouth == "smile":
        c = _curve((mx - 0.07, my - 0.01), (mx, my + 0.03), (mx + 0.07, my - 0.01))
        cv.fill(_stroke(c, 0.008 + 0.012 * _each(math.sin, np.linspace(0, math.pi, len(c)))), line)
    elif p.mouth in ("open", "grin"):
        wid, hgt = (0.085, 0.07) if p.mouth == "open" else (0.11, 0.045)
        shape = np.concatenate(
            [
                [[mx - wid, my - 0.01], [mx + wid, my - 0.01]],
                _arc(mx, my - 0.01, wid, hgt, 0.0, math.pi, 14)[1:-1],
            ]
        )
        cv.fill(shape, inner, line=(line, 0.012))
        cv.fill(
            _arc(mx, my + hgt * 0.75, wid * 0.55, hgt * 0.35, math.pi, 2 * math.pi, 10),
            mats.add(MOUTH, (235, 120, 125)),
        )
        if p.mouth == "grin":
            teeth = [
                [mx - wid * 0.8, my - 0.005],
                [mx + wid * 0.8, my - 0.005],
                [mx + wid * 0.7, my + 0.012],
                [mx - wid * 0.7, my + 0.012],
            ]
            cv.fill(np.array(teeth), mats.add(MOUTH, (252, 252, 252)))
    elif p.mouth == "o":
        cv.fill(_ellipse(mx, my + 0.01, 0.03, 0.04, 14), inner, line=(line, 0.012))
    elif p.mouth == "flat":
        cv.fill(_stroke(_curve((mx - 0.05, my), (mx + 0.05, my + 0.004), iters=1), 0.016), line)
    else:  # cat mouth
        c = _curve(
            (mx - 0.08, my - 0.02),
            (mx - 0.04, my + 0.02),
            (mx, my - 0.005),
            (mx + 0.04, my + 0.02),
            (mx + 0.08, my - 0.02),
            iters=2,
        )
        cv.fill(_stroke(c, 0.016), line)


def _brows(ch: Character, p: _Pose, mats: _Materials, cv: _Canvas) -> None:
    """Thin tapered brows, drawn over the bangs as anime often does."""
    brow = mats.add(BROWS, _mix(ch.hair[1], (30, 15, 25), 0.45))
    for side in (1.0, -1.0):
        cx, tilt = side * 0.215 + 0.06 * p.yaw, 0.035 * p.brows
        c = _curve(
            (cx - side * 0.12, -0.02 + tilt), (cx, -0.055), (cx + side * 0.13, -0.025 - tilt * 0.3), iters=2
        )
        cv.fill(_stroke(c, _taper(len(c), 0.03, 0.012)), brow)


_LOCK_LENGTH = {"short": 0.1, "ponytail": 0.3, "buns": 0.3, "bob": 0.45}


def _front_hair(ch: Character, p: _Pose, ink: _Inks, mats: _Materials, cv: _Canvas) -> None:
    """Hair over the head: cap, bangs and side locks, with strand lines and a highlight band."""
    j, bangs = p.jitter, ch.bangs
    lock = _LOCK_LENGTH.get(ch.hairstyle, 0.55) + 0.05 * p.hair_len
    n = 7
    tips = []  # along the bangs' lower edge, right to left: notches between strands, then strand tips
    for k, x in enumerate(np.linspace(0.44, -0.44, 2 * n + 1)):
        if k % 2 == 0:
            depth = -0.07 + 0.01 * j[k] if bangs == "straight" else -0.32 + 0.04 * j[k]
            if bangs == "parted" and abs(x) < 0.1:
                depth = -0.5
            tips.append([x, depth])
            continue
        if bangs == "straight":
            lean, depth = 0.0, -0.07 + 0.015 * j[k]
        elif bangs == "parted":
            lean, depth = 0.06 * math.copysign(1.0, x), -0.08 + 0.05 * j[k] - 0.06 * (abs(x) < 0.15)
        else:
            lean, depth = 0.09, -0.06 + 0.05 * j[k] + 0.05 * (x > 0)
        tips.append([x + lean + 0.02 * j[k + 16], depth])
    cap = _arc(0.0, -0.1, 0.6, 0.63, math.pi, 2 * math.pi, 22)
    right_lock = [
        [0.6, -0.15],
        [0.56, lock * 0.5],
        [0.52 + 0.02 * j[30], lock],
        [0.43, lock * 0.55],
        [0.42, -0.05],
    ]
    pts = np.concatenate([cap, right_lock, tips, _mirror(right_lock)[::-1]])
    cv.fill(pts, ink.hair, line=(ink.hair_line, p.line))
    for k in range(2, 2 * n - 1, 2):  # strand lines from the crown towards the notches
        x, y = tips[k]
        c = _curve((x * 0.55, -0.62), (x * 0.9, y - 0.15), (x, y - 0.02), iters=2)
        cv.fill(_stroke(c, _taper(len(c), 0.002, 0.014)), ink.hair_line)
    # Highlight band (the "angel ring"): zigzag teeth, shifted towards the light.
    v = cv.overlay(ink.hair, mats.add(HAIR, ch.hair[2]))
    lx = math.cos(p.light) * (-1 if p.mirror else 1)
    top = _arc(0.08 * lx, -0.1, 0.47, 0.44, math.pi * 1.12, math.pi * 1.88, 14)
    teeth = top[::-1] + np.where(np.arange(len(top))[::-1] % 2 == 1, 0.15, 0.06)[:, None] * [0.0, 1.0]
    cv.paint_overlay(np.concatenate([top, teeth]), v)


def _accessories(ch: Character, p: _Pose, ink: _Inks, mats: _Materials, cv: _Canvas, ties: list) -> None:
    """Hair ties, then the character's accessories."""
    s, line = p.accessory_shift, (ink.acc_line, p.line)
    for tx, ty in ties:
        cv.fill(_ellipse(tx, ty, 0.06, 0.06, 12), ink.acc, line=line)
    for kind in ch.accessories:
        if kind == "ribbon":
            cx, cy = 0.36 + 0.03 * s[0], -0.62 + 0.03 * s[1]
            for side in (1.0, -1.0):
                loop = np.array([[0, 0], [side * 0.2, -0.12], [side * 0.24, 0.02], [side * 0.19, 0.1]])
                cv.fill(_smooth(loop + [cx, cy], iters=1), ink.acc, line=line)
            cv.fill(_ellipse(cx, cy, 0.045, 0.05, 10), ink.acc, line=line)
        elif kind == "hairclip":
            cx, cy = -0.3 + 0.03 * s[2], -0.3 + 0.02 * s[3]
            for off in (0.0, 0.07):
                bar = [
                    [cx - 0.11, cy + off],
                    [cx + 0.1, cy + off - 0.05],
                    [cx + 0.11, cy + off - 0.025],
                    [cx - 0.1, cy + off + 0.025],
                ]
                cv.fill(np.array(bar), ink.acc, line=(ink.acc_line, p.line * 0.8))
        elif kind == "horns":
            for side in (1.0, -1.0):
                c = _curve(
                    (side * 0.24, -0.6), (side * 0.3, -0.82), (side * 0.24, -1.0 - 0.03 * s[0]), iters=2
                )
                cv.fill(_stroke(c, _taper(len(c), 0.1, 0.01, 0.8)), ink.acc, line=line)
        elif kind == "headband":
            cv.fill(
                _stroke(_arc(0.0, -0.1, 0.6, 0.6, math.pi * 1.04, math.pi * 1.96, 24), 0.07),
                ink.acc,
                line=line,
            )
        elif kind == "flower":
            cx, cy = -0.48 + 0.03 * s[1], -0.48 + 0.03 * s[2]
            for k in range(5):
                a = 2 * math.pi * k / 5 + s[3]
                petal = _ellipse(cx + 0.07 * math.cos(a), cy + 0.07 * math.sin(a), 0.055, 0.055, 12)
                cv.fill(petal, ink.acc, line=(ink.acc_line, p.line * 0.8))
            cv.fill(_ellipse(cx, cy, 0.04, 0.04, 10), mats.add(ACC, (250, 220, 90)))
    if "glasses" in ch.accessories:  # last: the frames lie over eyes, brows and hair
        frame = mats.add(ACC, _mix(ch.accessory_color, (20, 20, 30), 0.4))
        for side in (1.0, -1.0):
            cx = side * 0.215 + 0.06 * p.yaw
            rim = _smooth(
                np.array([[cx - 0.15, 0.05], [cx + 0.15, 0.05], [cx + 0.14, 0.27], [cx - 0.14, 0.27]])
            )
            cv.line(rim, frame, 0.025, closed=True)
        cv.line(np.array([[-0.07 + 0.06 * p.yaw, 0.1], [0.07 + 0.06 * p.yaw, 0.1]]), frame, 0.022)


# ----------------------------------------------------------------------------------------------------------
# Cel shading and the final picture

# A pixel of class c is shaded when the pixel a little *away from* the light has a class in _RIM[c]
# (the far edge of a form), or when the pixel a little *towards* the light has a class in _CAST[c]
# (something in front casts a shadow on it).
_RIM = np.zeros((12, 12), bool)
_CAST = np.zeros((12, 12), bool)
for _c, _others in (
    (HAIR, (EARS, SKIN, CLOTHES, FACE, BG)),
    (FACE, (HAIR, SKIN, CLOTHES, EARS, BG)),
    (EARS, (HAIR, FACE, BG)),
    (SKIN, (CLOTHES, HAIR, BG)),
    (CLOTHES, (HAIR, BG, SKIN)),
    (ACC, (HAIR, FACE, BG, CLOTHES)),
):
    _RIM[_c, list(_others)] = True
for _c, _others in ((FACE, (HAIR, ACC)), (EARS, (HAIR,)), (SKIN, (FACE, HAIR)), (CLOTHES, (HAIR,))):
    _CAST[_c, list(_others)] = True
# Both tables in one lookup: [pixel's class, or 12 when its material is never shaded][away][towards].
_SHADOW = np.zeros((13, 12, 12), bool)
_SHADOW[:12] = _RIM[:, :, None] | _CAST[:, None, :]
_SHADOW_FLAT = _SHADOW.ravel()


def _shift(a: np.ndarray, dx: int, dy: int, fill: int) -> np.ndarray:
    """out[y, x] = a[y + dy, x + dx], and `fill` beyond the edges."""
    h, w = a.shape
    out = np.full_like(a, fill)
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = a[
        max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
    ]
    return out


def _shade(mat: np.ndarray, mats: _Materials, light: float, rim: float, cast: float) -> np.ndarray:
    """Two-tone cel shading: switch shadable materials to their shaded twins where the tables say so."""
    cls = np.take(mats.cls, mat)  # np.take: faster than fancy indexing for a 256-entry table
    lx, ly = math.cos(light), math.sin(light)
    away = _shift(cls, -round(lx * rim), -round(ly * rim), OUTSIDE)
    toward = _shift(cls, round(lx * cast), round(ly * cast), OUTSIDE)
    code = np.take(np.where(mats.shaded, mats.cls, 12).astype(np.uint16) * 144, mat)
    code += away * np.uint8(12)
    code += toward
    shadow = np.take(_SHADOW_FLAT, code)
    return mat | (shadow.view(np.uint8) << 7)


def render(
    ch: Character, rng: np.random.Generator, size: int, variation: np.random.Generator | None = None
) -> Rendering:
    """Draw one `size`×`size` picture of `ch`; everything that varies between pictures comes from `rng`.

    With `variation`, the same picture (same label map) takes its background and light direction from
    that stream instead: what may differ between real pictures of one map and one character.
    """
    s = supersample_factor(size)
    px = size * s
    pose = _sample_pose(rng)
    unit = px / 2.7 * pose.scale
    body = _affine(unit, pose.body_angle, px * (0.5 + pose.cx), px * (0.4 + pose.cy), pose.mirror)
    head = _pivot(body, pose.tilt, 0.0, 0.5)
    mats = _Materials()
    cv = _Canvas(px, unit, head, body)
    if variation is None:
        _background(rng, mats, cv)
    else:
        # The main stream still takes its background's draws (on a scratch canvas), so that every later
        # draw, and hence the character and its label map, stays as it was.
        _background(rng, _Materials(), _Canvas(px, unit, head, body))
        _background(variation, mats, cv)
        pose = dataclasses.replace(pose, light=float(variation.uniform(-0.85, -0.15) * math.pi))
    ink = _make_inks(ch, mats)
    _tails(ch, pose, ink, cv, behind=True)
    _back_hair(ch, pose, ink, cv)
    _body(ch, pose, ink, mats, cv)
    ties = _tails(ch, pose, ink, cv, behind=False)
    _face(ch, pose, ink, mats, cv)
    _features(ch, pose, mats, cv)
    _front_hair(ch, pose, ink, mats, cv)
    _brows(ch, pose, mats, cv)
    _accessories(ch, pose, ink, mats, cv, ties)
    mat = _shade(cv.resolve(), mats, pose.light, rim=0.09 * unit, cast=0.07 * unit)
    o = s // 2
    label = mats.cls[mat[o::s, o::s]]
    pal = Image.frombuffer("P", (px, px), mat.tobytes(), "raw", "P", 0, 1)
    pal.putpalette(mats.rgb.tobytes())
    image = np.asarray(pal.convert("RGB").reduce(s))
    return Rendering(image, label, mat, mats.cls, mats.rgb, s)
