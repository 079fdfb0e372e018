"""The process pool of the `local` engine (`ctxdata.engine.local`), and how work is split into pieces.

Workers are *spawned*, not forked: a forked child of a process that already started torch or
OpenMP threads can deadlock. Spawning costs about a second of start-up, so the engine keeps small
inputs in process (`min_items`).

Workers die with their parent: on Linux the kernel kills them when it dies (PR_SET_PDEATHSIG),
elsewhere a watchdog thread in each worker exits once its parent is gone; so a SIGKILL of the
command leaves no orphans. Workers ignore SIGINT: Ctrl-C (or SIGTERM) reaches the parent, which
stops them and leaves the finished tasks for a resume.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

WATCHDOG_SECONDS = 1.0  # how often a worker checks that its parent is still there (where no PDEATHSIG exists)


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

    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
    try:
        yield pool
    except BaseException:  # Ctrl-C, SIGTERM or an error: stop now, do not wait for running or queued tasks
        processes = list((getattr(pool, "_processes", None) or {}).values())  # private, but shutdown() drops it
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()  # a task half-done writes nothing final: shards and markers are atomic
        raise
    else:
        pool.shutdown(wait=True)


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: exit when the parent process dies, and leave Ctrl-C to the parent.

    A forked worker inherits the CLI's SIGTERM handler, which raises; a pool's `terminate()` must
    just end the worker, not print its traceback, so SIGTERM gets its default action back.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl (an unusual libc): the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="ctxdata-parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(WATCHDOG_SECONDS)
        if os.getppid() != parent_pid:  # re-parented: the parent is gone
            os._exit(1)


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
