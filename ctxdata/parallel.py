"""Process-parallel map that keeps input order, so parallel runs write the same bytes as serial ones.

Workers are *spawned*, not forked: a forked child of a process that already started torch or
OpenMP threads can deadlock. Spawning costs about a second of start-up, so small inputs stay in
process (`min_items`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence


def resolve_workers(workers: int) -> int:
    """`workers <= 0` means one per CPU core."""
    return max(1, os.cpu_count() or 1) if workers <= 0 else workers


@contextmanager
def worker_pool(workers: int) -> Iterator[Any]:
    """One pool of spawned processes to share between phases (start-up is paid once), or None for 1."""
    workers = resolve_workers(workers)
    if workers <= 1:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def map_ordered(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = 1, *, pool: Any = None, min_items: int = 2) -> Iterator[Any]:
    """Yield `fn(item)` for each item, in order, on `pool` or on up to `workers` new processes."""
    if len(items) < min_items or (pool is None and min(resolve_workers(workers), len(items)) <= 1):
        for item in items:
            yield fn(item)
        return
    if pool is not None:
        yield from pool.map(fn, items, chunksize=1)
        return
    with worker_pool(min(resolve_workers(workers), len(items))) as own:
        yield from own.map(fn, items, chunksize=1)


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


def flatten(parts: Iterable[Iterable[Any]]) -> list[Any]:
    return [x for part in parts for x in part]
