"""Untrusted bytes from the page -> index maps: size caps before decoding, one clear message per fault.

Everything here works on bytes in memory; nothing names or opens a path on disk.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from animesis.data.palette import Palette
from animesis.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Modes whose values are class indices as stored (for "P" the raw palette indices, as the dataset
# reader takes them), and modes whose pixels are colours looked up in the palette.
INDEX_MODES = frozenset({"L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"})
COLOR_MODES = frozenset({"RGB", "RGBA"})


class UploadError(UserError):
    """An upload or request field that cannot be used; the message names it and what is wrong."""


@dataclass(frozen=True)
class Limits:
    """Caps on what one request may make the server read and decode."""

    max_upload_bytes: int = 8 * 2**20  # one file (after base64 decoding)
    max_pixels: int = 4096 * 4096  # width x height of an uploaded image, checked before decoding

    @property
    def max_body_bytes(self) -> int:
        """A JSON request carries at most two base64 maps (label and owner) plus small fields."""
        return 2 * (self.max_upload_bytes * 4 // 3 + 4) + 64 * 1024


async def read_capped(stream: AsyncIterator[bytes], declared: str | None, limit: int, what: str) -> bytes:
    """Read a request body, refusing it as soon as it is over `limit` (declared or actual size)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadError(f"{what}: {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, total = [], 0
    async for chunk in stream:
        total += len(chunk)
        if total > limit:
            raise UploadError(f"{what}: over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def b64decode(text: object, what: str, limit: int) -> bytes:
    """Strict base64 (a data: URL prefix is allowed) -> bytes, at most `limit` of them."""
    if not isinstance(text, str):
        raise UploadError(f"{what}: expected a base64 string")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > limit * 4 // 3 + 4:
        raise UploadError(f"{what}: over the limit of {limit} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UploadError(f"{what}: not valid base64") from None


def raw_map(data: bytes, size: tuple[int, int], limit: int, what: str, kind: str) -> np.ndarray:
    """H*W bytes -> (H, W) uint8, each value below `limit` (the number of classes or characters)."""
    H, W = size
    if len(data) != H * W:
        raise UploadError(f"{what}: {len(data)} bytes, expected {H}x{W} = {H * W} (one byte per pixel)")
    values = np.frombuffer(data, dtype=np.uint8).reshape(H, W).copy()  # writable, for torch
    check_values(values, limit, what, kind)
    return values


def check_values(values: np.ndarray, limit: int, what: str, kind: str, hint: str = "") -> None:
    outside = (values < 0) | (values >= limit)
    if outside.any():
        odd = np.unique(values[outside])
        shown = ", ".join(str(int(v)) for v in odd[:10]) + (", ..." if len(odd) > 10 else "")
        raise UploadError(
            f"{what}: values {shown} are not {kind} 0..{limit - 1} ({int(outside.sum())} pixels){hint}"
        )


def open_png(data: bytes, what: str, limits: Limits) -> Image.Image:
    """PNG bytes -> a decoded image, refusing big files and decompression bombs before decoding."""
    if len(data) > limits.max_upload_bytes:
        raise UploadError(f"{what}: {len(data)} bytes is over the limit of {limits.max_upload_bytes} bytes")
    if not data.startswith(PNG_SIGNATURE):
        raise UploadError(f"{what}: not a PNG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap follows
            img = Image.open(io.BytesIO(data), formats=["PNG"])
    except Image.DecompressionBombError:
        raise UploadError(f"{what}: too many pixels (a decompression bomb?), refused unread") from None
    except Exception:  # any failure to parse an untrusted header means "not a usable PNG"
        raise UploadError(f"{what}: not a readable PNG image (corrupt header)") from None
    w, h = img.size
    if w * h > limits.max_pixels:
        raise UploadError(
            f"{what}: {w}x{h} = {w * h} pixels is over the limit of {limits.max_pixels} "
            "(a decompression bomb?), refused unread"
        )
    if w == 0 or h == 0:
        raise UploadError(f"{what}: empty image ({w}x{h})")
    try:
        img.load()
    except Exception:  # decoders raise many types on bad bytes
        raise UploadError(f"{what}: corrupt or truncated PNG") from None
    return img


def label_from_image(img: Image.Image, palette: Palette, num_classes: int, what: str) -> np.ndarray:
    """A decoded label map (class indices or palette colours) -> (h, w) uint8 class indices."""
    if img.mode in COLOR_MODES:
        rgb = np.asarray(img.convert("RGB"))
        index, bad = palette.encode(rgb)
        if bad.any():
            raise UploadError(
                f"{what}: {_off_palette(rgb[bad])} not in the palette ({int(bad.sum())} pixels)"
            )
        check_values(index, num_classes, what, "classes")
        return index
    hint = " (a palette-mode PNG: its raw indices are read, not its colours)" if img.mode == "P" else ""
    return index_map(img, num_classes, what, "classes", hint)


def index_map(img: Image.Image, limit: int, what: str, kind: str, hint: str = "") -> np.ndarray:
    """A single-channel image -> (h, w) uint8 values as stored, each in 0..limit-1."""
    if img.mode in INDEX_MODES:
        values = np.asarray(img).astype(np.int64)  # "1" gives bools, "I" may hold negatives
    elif img.mode == "LA":
        values = np.asarray(img.getchannel("L")).astype(np.int64)
    else:
        raise UploadError(f"{what}: PNG mode {img.mode}: expected one channel of indices or palette colours")
    check_values(values, limit, what, kind, hint)
    return values.astype(np.uint8)


def _off_palette(colors: np.ndarray) -> str:
    odd = np.unique(colors.reshape(-1, 3), axis=0)
    shown = ", ".join(str(tuple(int(v) for v in c)) for c in odd[:5]) + (", ..." if len(odd) > 5 else "")
    return f"colour{'s' if len(odd) > 1 else ''} {shown} {'are' if len(odd) > 1 else 'is'}"


def encode_png(array: np.ndarray) -> bytes:
    """(H, W) uint8 -> a greyscale index PNG; (H, W, 3) uint8 -> an RGB PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def display_name(name: str | None, default: str) -> str:
    """An uploaded file's name, only for messages: its last part, printable, short."""
    if not name:
        return default
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable())[:80]
    return base or default
