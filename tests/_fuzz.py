"""Seeded byte-level mutations for the parsers of untrusted files (RecordIO/.idx, TFLite).

The property every parser test checks: each mutated input either parses or raises the parser's typed
error naming the file; never a crash, a hang, another exception type or an allocation beyond the file.

Budget and reproducibility come from the environment, so the default ``pytest`` run stays quick and a
long campaign needs no code change:

    PYMFN_FUZZ_EXAMPLES=200000 PYMFN_FUZZ_SEED=7 .venv/bin/python -m pytest -q -p no:cacheprovider \\
        tests/test_fuzz_recordio.py tests/test_weights.py -k fuzz

``PYMFN_FUZZ_EXAMPLES`` is the number of mutated inputs per test (default 300), ``PYMFN_FUZZ_SEED`` the
first seed (default 0). A failure message carries the seed and mutation, so it replays exactly.
"""
from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator, Sequence

DEFAULT_EXAMPLES = 300


def examples(default: int = DEFAULT_EXAMPLES) -> int:
    """How many mutated inputs a fuzz test should try (PYMFN_FUZZ_EXAMPLES, else ``default``)."""
    value = os.environ.get("PYMFN_FUZZ_EXAMPLES", "")
    return int(value) if value.strip() else default


def seed() -> int:
    value = os.environ.get("PYMFN_FUZZ_SEED", "")
    return int(value) if value.strip() else 0


def _truncate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    n = rng.randrange(len(data)) if data else 0
    return f"truncate to {n}", data[:n]


def _flip_bit(data: bytes, rng: random.Random, hot: Sequence[tuple[int, int]]) -> tuple[str, bytes]:
    pos = _position(data, rng, hot)
    bit = rng.randrange(8)
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return f"flip bit {bit} of byte {pos}", bytes(out)


def _set_bytes(data: bytes, rng: random.Random, hot: Sequence[tuple[int, int]]) -> tuple[str, bytes]:
    pos = _position(data, rng, hot)
    width = rng.choice((1, 2, 4, 8))
    value = rng.choice((b"\x00", b"\xff", b"\x7f", b"\x80", bytes([rng.randrange(256)])))
    out = bytearray(data)
    out[pos:pos + width] = value * width
    return f"set {width} bytes at {pos} to {value.hex()}", bytes(out[:len(data)])


def _splice(data: bytes, rng: random.Random, hot: Sequence[tuple[int, int]]) -> tuple[str, bytes]:
    """Insert or delete a few bytes (shifts everything after: misaligned offsets)."""
    pos = _position(data, rng, hot)
    if rng.random() < 0.5:
        n = rng.randrange(1, 9)
        return f"delete {n} bytes at {pos}", data[:pos] + data[pos + n:]
    junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
    return f"insert {junk.hex()} at {pos}", data[:pos] + junk + data[pos:]


def _random_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    n = rng.randrange(0, 64)
    return f"{n} random bytes", bytes(rng.randrange(256) for _ in range(n))


def _position(data: bytes, rng: random.Random, hot: Sequence[tuple[int, int]]) -> int:
    """Mostly inside the ``hot`` ranges (headers, tables), where damage changes how the file parses."""
    if hot and rng.random() < 0.8:
        start, end = rng.choice(list(hot))
        return rng.randrange(start, max(start + 1, min(end, len(data))))
    return rng.randrange(len(data))


def mutations(data: bytes, count: int, *, hot: Sequence[tuple[int, int]] = (),
              first_seed: int | None = None) -> Iterator[tuple[str, bytes]]:
    """``count`` (description, mutated bytes) pairs from ``data``; one seed per example."""
    base = seed() if first_seed is None else first_seed
    kinds: list[Callable[[random.Random], tuple[str, bytes]]] = [
        lambda r: _truncate(data, r),
        lambda r: _flip_bit(data, r, hot),
        lambda r: _flip_bit(data, r, hot),
        lambda r: _set_bytes(data, r, hot),
        lambda r: _set_bytes(data, r, hot),
        lambda r: _splice(data, r, hot),
        lambda r: _random_bytes(data, r),
    ]
    for i in range(count):
        rng = random.Random(base + i)
        what, mutated = rng.choice(kinds)(rng)
        yield f"seed {base + i}: {what}", mutated
