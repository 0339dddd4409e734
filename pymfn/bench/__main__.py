"""``python -m pymfn.bench <command>``: the same as ``pymfn bench <command>`` (see pymfn.cli)."""
from __future__ import annotations

import sys

from pymfn.cli import bench_main as main

if __name__ == "__main__":
    sys.exit(main())
