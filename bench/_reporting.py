"""What every benchmark under bench/ prints and stores beside its timing: a titled block of figures (also kept in
pytest-benchmark's ``extra_info``) and the load average it ran at."""
from __future__ import annotations

import os
from typing import Any


def record(benchmark: Any, capsys: Any, title: str, info: dict[str, Any]) -> None:
    benchmark.extra_info.update(info)
    with capsys.disabled():
        print(f"\n[bench] {title}")
        for k, v in info.items():
            print(f"    {k}: {v:.4g}" if isinstance(v, float) else f"    {k}: {v}")


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"
