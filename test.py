"""The seed's test entry point: `python test.py --name ... --ckpt_iter ...` (see README)."""

import sys
from pathlib import Path

try:
    from animesis.cli import main
except ImportError:  # run from a clone without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))
    from animesis.cli import main

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]]))
