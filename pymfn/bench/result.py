"""What every benchmark result can do: render itself as the report the command line prints, as strict JSON,
as CSV rows, and as a plot.

A result type is a dataclass that subclasses :class:`Result` and implements ``to_dict`` and ``report`` (and
``plot`` when it has something to draw; ``csv_rows`` when one flat row of its scalars is not the right table).
"""
from __future__ import annotations

import csv
import io
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping

from pymfn.files.atomic import json_bytes, write_file


class Result(ABC):
    """Base of the benchmark results (``LatencyResult``, ``ServerResult``, ...)."""

    #: The name a report and an error use for this kind of result ("latency", "server", ...).
    kind: ClassVar[str] = "result"

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (what ``--json`` writes)."""

    @abstractmethod
    def report(self) -> str:
        """The human report the command line prints (no trailing newline)."""

    def plot(self, path: str | os.PathLike) -> Path:
        """Draw the result into ``path`` (PNG/SVG/PDF by suffix; needs matplotlib, the ``plot`` extra)."""
        raise NotImplementedError(f"a {self.kind} result has no plot")

    def null_reasons(self) -> Mapping[str, str]:
        """Why a value in ``to_dict`` may be missing (a key path -> reason), kept beside the JSON nulls."""
        return {}

    def to_json(self, path: str | os.PathLike | None = None, *, indent: int | None = 2) -> str:
        """Strict JSON text (never NaN/Infinity: such values become null with a reason); written atomically
        to ``path`` when given."""
        data = json_bytes(self.to_dict(), self.null_reasons(), indent=indent)
        if path is not None:
            write_file(path, data)
        return data.decode()

    def csv_rows(self) -> list[dict[str, Any]]:
        """Rows for CSV: by default one row of the top-level scalars of ``to_dict``."""
        return [{k: v for k, v in self.to_dict().items() if isinstance(v, (str, int, float, bool)) or v is None}]

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """CSV text of ``csv_rows`` (header from the union of their keys, in first-seen order); written
        atomically to ``path`` when given."""
        rows = self.csv_rows()
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
        if path is not None:
            write_file(path, text.encode())
        return text

    def __str__(self) -> str:
        return self.report()
