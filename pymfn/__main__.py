"""``python -m pymfn <command>``: the same as the ``pymfn`` console script (see pymfn.cli)."""
from __future__ import annotations

import sys

from pymfn.cli import main

if __name__ == "__main__":
    sys.exit(main())
