"""--csv for every bench command: the result's ``to_csv`` through the output fallback that never loses a result."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pymfn.files.outputs import save_output


def save_csv(path: str | None, result: Any, prog: str) -> Path | None:
    """Write --csv (falling back to another path rather than losing the result); where it went, or None."""
    if path and (where := save_output(path, result.to_csv, "--csv", prog)):
        print(f"CSV written to {where}")
        return where
    return None
