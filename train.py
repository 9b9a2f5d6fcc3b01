"""The seed's training entry point: `python train.py --name ... --dataroot ...` (see README)."""

import sys
from pathlib import Path

try:
    from animesis.cli import main
except ImportError:  # run from a clone without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from animesis.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
