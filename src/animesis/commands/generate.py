"""`animesis generate`: one label map, one character (or a mix of two), n noise samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from animesis import files
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


@dataclass(frozen=True)
class GenerateArgs:
    label: Path
    character: str  # an id, or 'a:b:t'
    out: Path
    checkpoint: Path | None = None  # None: the model that ships with the package
    iter: str = "latest"
    seed: int = 0
    n: int = 4
    batch_size: int = 16  # pictures painted at once: memory stays flat however large n is
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False


def run_generate(args: GenerateArgs) -> int:
    out = files.ensure_writable_dir(args.out, "output folder")  # before any work
    painter = Painter.open(
        args.checkpoint, args.iter, device=args.device, precision=args.precision, compile=args.compile
    )
    label = painter.read_label(args.label)
    char, tag = parse_character(str(args.character), painter.num_characters)
    if not char.is_floating_point():
        painter.check_character(int(char))
    stem = Path(args.label).stem
    z_all = painter.noise(args.n, args.seed)  # drawn at once, so a picture does not depend on the batch size
    done = 0
    with tqdm(total=args.n, unit="img", disable=args.n <= args.batch_size, desc="painting") as bar:
        while done < args.n:
            b = min(args.batch_size, args.n - done)
            z = z_all[done : done + b] if z_all is not None else None
            images = painter.paint(np.repeat(label[None], b, axis=0), char.expand(b, *char.shape), z)
            for i, img in enumerate(images, start=done):
                path = out / f"{stem}_{tag}_seed{args.seed}_{i}.png"
                files.write_atomic(path, lambda tmp, img=img: Image.fromarray(img).save(tmp, format="PNG"))
                print(path)
            done += b
            bar.update(b)
    return 0
