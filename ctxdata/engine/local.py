"""The `local` engine: this process, or a pool of spawned worker processes on this machine.

The pool (`ctxdata.parallel.worker_pool`: spawned workers that die with their parent) costs about
a second of start-up, so it starts on the first map that is worth it (`min_items`) and then serves
every later phase of the build. Leaving the engine on an error or Ctrl-C stops its workers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from ctxdata.parallel import resolve_workers, worker_pool


class LocalEngine:
    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = resolve_workers(workers)
        self._pool: Any = None
        self._stack = ExitStack()

    @property
    def parallelism(self) -> int:
        return self.workers

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, models: bool = False, min_items: int = 2
    ) -> Iterator[tuple[int, Any]]:
        """Yield `(index, fn(item))` for every item, in process or on the pool as each finishes.

        Stages that load models (`models`) stay in this process: a model per worker process would
        multiply its memory, and the local embedders already use every core with threads.
        """
        if models or self.workers <= 1 or len(items) < max(2, min_items):
            for index, item in enumerate(items):
                yield index, fn(item)
            return
        from concurrent.futures import as_completed

        futures = {self._ensure_pool().submit(fn, item): index for index, item in enumerate(items)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:  # an error or a stopped consumer: do not leave queued work running
            for future in futures:
                future.cancel()

    def group_map(
        self, fn: Callable[[list[Any]], Any], items: Sequence[Any], *, key: Callable[[Any], str]
    ) -> Iterator[tuple[str, Any]]:
        """Yield `(k, fn(items with key k, in input order))` for every key, in this process."""
        groups: dict[str, list[Any]] = {}
        for item in items:
            groups.setdefault(key(item), []).append(item)
        for k in sorted(groups):
            yield k, fn(groups[k])

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            self._pool = self._stack.enter_context(worker_pool(self.workers))
        return self._pool

    def close(self) -> None:
        self.__exit__(None, None, None)

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the pool: after the running tasks on success, at once on an error (`worker_pool` sees it)."""
        self._pool = None
        self._stack.__exit__(*exc)
