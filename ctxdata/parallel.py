"""Helpers for splitting work into deterministic pieces (the engines in `ctxdata.engine` run them)."""

from __future__ import annotations

import os
from typing import Any, Sequence


def resolve_workers(workers: int) -> int:
    """`workers <= 0` means one per CPU core."""
    return max(1, os.cpu_count() or 1) if workers <= 0 else workers


def chunked(items: Sequence[Any], n_chunks: int) -> list[Sequence[Any]]:
    """Split `items` into at most `n_chunks` contiguous, nearly equal slices."""
    n_chunks = max(1, min(n_chunks, len(items)))
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for i in range(n_chunks):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out
