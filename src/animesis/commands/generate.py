"""`animesis generate`: one label map, one character (or a mix of two), n noise samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animesis.errors import UserError
from animesis.inference import Painter


def parse_character(text: str, num_characters: int) -> tuple[torch.Tensor, str]:
    """'3' -> id 3; '0:4:0.25' -> 75% character 0 + 25% character 4 (code interpolation)."""
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return torch.tensor(int(parts[0])), f"char{int(parts[0])}"
        if len(parts) == 3:
            a, b, t = int(parts[0]), int(parts[1]), float(parts[2])
            if not 0.0 <= t <= 1.0:
                raise ValueError
            for c in (a, b):
                if not 0 <= c < num_characters:
                    raise IndexError(c)
            w = torch.zeros(num_characters)
            w[a] += 1 - t
            w[b] += t
            return w, f"char{a}-{b}-{t:g}"
    except IndexError as e:
        raise UserError(
            f"--character: character {e.args[0]} does not exist (0..{num_characters - 1})"
        ) from None
    except ValueError:
        pass
    raise UserError(f"--character {text!r}: expected an id like 3, or 'a:b:t' with 0 <= t <= 1")


def run_generate(args) -> int:
    painter = Painter.load(
        args.checkpoint, args.iter, device=args.device, precision=args.precision, compile=args.compile
    )
    label = painter.read_label(args.label)
    char, tag = parse_character(str(args.character), painter.num_characters)
    if not char.is_floating_point():
        painter.check_character(int(char))
    if args.n < 1:
        raise UserError("--n must be at least 1")
    chars = char.expand(args.n, *char.shape)
    images = painter.paint(np.repeat(label[None], args.n, axis=0), chars, painter.noise(args.n, args.seed))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.label).stem
    for i, img in enumerate(images):
        path = out / f"{stem}_{tag}_seed{args.seed}_{i}.png"
        Image.fromarray(img).save(path)
        print(path)
    return 0
