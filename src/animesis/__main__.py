import sys

from animesis.cli import main

sys.exit(main())
