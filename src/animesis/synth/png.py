"""A small fixed PNG encoder (stored fixed-Huffman deflate): the same pixels give the same bytes everywhere."""

from __future__ import annotations

import struct
import zlib

import numpy as np


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
