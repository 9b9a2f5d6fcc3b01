"""`animesis examples --out DIR`: the example label maps that ship with the package, to paint from."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from animesis import files
from animesis.app.examples import EXAMPLES_DIR
from animesis.errors import UserError


@dataclass(frozen=True)
class ExamplesArgs:
    out: Path
    force: bool = False  # replace maps of the same names already in `out`


def run_examples(args: ExamplesArgs) -> int:
    out = files.ensure_writable_dir(args.out, "output folder")
    maps = sorted(EXAMPLES_DIR.glob("*.png"))
    clash = [p.name for p in maps if (out / p.name).exists()]
    if clash and not args.force:
        raise UserError(f"{out}: already holds {', '.join(clash)}; pass --force to replace them")
    for path in maps:
        files.write_atomic(out / path.name, lambda tmp, path=path: shutil.copyfile(path, tmp))
        print(out / path.name)
    return 0
