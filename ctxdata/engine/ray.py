"""The `ray` engine: stateless phases as Ray tasks, phases that load models as Ray Data actor pools.

- **Phases without a model** (reading and signing file slices, mining a repository's group,
  a coding pair task, a vision pair task without models) are Ray tasks: the phase's callable is
  put in the object store once, and at most two items per CPU are in flight, so the driver merges
  and writes results while the next ones run. These items are few and coarse (a slice of hundreds
  of files, a shard of candidates), which is not what Ray Data's streaming executor is for: on the
  2-CPU machine here it cost 20-55% more wall time than the same items as tasks
  (`docs/scaling.md`, "Why stateless phases are Ray tasks").
- **Phases that load a model** (embedding, editing, the VQA verifier) are a Ray Data
  `map_batches` over an `ActorPoolStrategy` pool: each actor holds the phase's callable (its
  stages, their lazily built backends), so a model is loaded once per actor and then serves many
  batches, with `num_gpus` per actor: the Ray Data batch-inference pattern. One row is one plan
  item, pickled.

Results travel back to the driver, which merges them in plan order and writes the output. Nothing
a worker does depends on which worker it is, so the bytes are the local engine's.

Fault tolerance: a task whose worker process dies is retried (`max_retries`, Ray's default of 3);
an actor whose process dies is restarted and its batch retried (Ray Data's `max_restarts=-1`,
`max_task_retries=-1`). An exception in the callable is not retried (it is a bug or a
misconfiguration): it stops the build, and a `CtxdataError` raised on a worker is raised as itself
on the driver, so the CLI prints it as one clean line. The driver uses one result per item, so a
retried item cannot be counted twice.

`ray` is imported when the engine starts, never when ctxdata is imported.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ctxdata._deps import require
from ctxdata.errors import CtxdataError
from ctxdata.parallel import resolve_workers

TASK_RETRIES = 3  # Ray's default: a task whose worker process dies runs again, at most this often


class ApplyToRows:
    """The actor: unpickle each row's item, call the phase's callable, pickle the result.

    A CtxdataError comes back as the row's result, to be raised on the driver: Ray Data would wrap
    it in a UserCodeException that no longer says what it is, and the CLI could not print it as one
    clean line.
    """

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"index": batch["index"], "result": [pickle.dumps(self._call(item), protocol=5) for item in batch["item"]]}

    def _call(self, item: bytes) -> tuple[bool, Any]:
        try:
            return True, self.fn(pickle.loads(item))
        except CtxdataError as exc:
            return False, exc


def apply(fn: Callable[[Any], Any], item: Any) -> Any:
    """The body of a stateless phase's Ray task."""
    return fn(item)


class RayEngine:
    name = "ray"

    def __init__(
        self, workers: int = 0, *, address: str | None = None, num_gpus: float = 0.0, concurrency: int = 0
    ) -> None:
        self.workers, self.address = workers, address
        self.num_gpus, self.concurrency = num_gpus, concurrency
        self._started_here = False
        self._ray: Any = None

    def start(self) -> Any:
        """Join `address`, or start a local cluster with `workers` CPUs; reuse a cluster this process joined."""
        if self._ray is not None:
            return self._ray
        ray = require("ray", "ray")
        require("ray.data", "ray")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:  # workers at the driver's priority: Ray's default (nice 15) starves them on a busy machine
                ray.init(num_cpus=resolve_workers(self.workers), _system_config={"worker_niceness": 0}, **kwargs)
            self._started_here = True
        import ray.data

        data_ctx = ray.data.DataContext.get_current()
        data_ctx.enable_progress_bars = False  # progress is the driver's rich bar, fed as results arrive
        data_ctx.print_on_execution_start = False
        # Each map is one operator after an in-memory input, so there is nothing to reserve CPUs for; Ray
        # Data's default reserves half of them per operator, which left one of 2 CPUs idle part of the time:
        # 16 half-second items on 2 CPUs took 6.2 s with it and 4.5 s without (4.0 s ideal).
        data_ctx.op_resource_reservation_enabled = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        self._ray = ray
        return ray

    @property
    def parallelism(self) -> int:
        """Parallel tasks per phase: `workers`, or every CPU of the cluster."""
        if self.workers > 0:
            return self.workers
        return max(1, int(self.start().cluster_resources().get("CPU", 1)))

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, models: bool = False, min_items: int = 1
    ) -> Iterator[tuple[int, Any]]:
        """Yield `(index, fn(item))` as each item finishes on the cluster.

        `models` marks a phase whose callable loads a model: its actors reserve `num_gpus` each and
        there are `concurrency` of them (one model per actor).
        """
        if not items:
            return
        if models:
            yield from self._map_on_actors(fn, items)
        else:
            yield from self._map_as_tasks(fn, items)

    def _map_as_tasks(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self.start()
        task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(apply)
        fn_ref = ray.put(fn)  # shipped once, not once per item
        window = 2 * self.parallelism  # enough queued that no CPU waits while the driver writes a result
        queue = iter(enumerate(items))
        pending: dict[Any, int] = {}
        try:
            while True:
                for index, item in queue:
                    pending[task.remote(fn_ref, item)] = index
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                (done,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(done)
                try:
                    result = ray.get(done)
                except ray.exceptions.RayTaskError as exc:  # an error in the callable: its own, without Ray's wrapping
                    if isinstance(exc.cause, CtxdataError):
                        raise exc.cause from None
                    raise
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as exc:
                    raise CtxdataError(
                        f"item {index} of this phase: its Ray worker died {TASK_RETRIES + 1} times "
                        f"({type(exc).__name__}); see the Ray logs on its node"
                    ) from None
                yield index, result
        finally:  # an error or a stopped consumer: do not leave queued work running
            for ref in pending:
                ray.cancel(ref)

    def _map_on_actors(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        ray = self.start()
        rows = [{"index": i, "item": pickle.dumps(item, protocol=5)} for i, item in enumerate(items)]
        actors = self.concurrency or self.parallelism
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ApplyToRows,
            fn_constructor_kwargs={"fn": fn},
            num_gpus=self.num_gpus,
            num_cpus=1,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(actors, len(rows)))),
        )
        for row in dataset.iter_rows():
            ok, result = pickle.loads(row["result"])
            if not ok:
                raise result
            yield int(row["index"]), result

    def group_map(
        self, fn: Callable[[list[Any]], Any], items: Sequence[Any], *, key: Callable[[Any], str]
    ) -> Iterator[tuple[str, Any]]:
        """Yield `(k, fn(items with key k, in input order))` per key; each group is one item of a `map`.

        The items are already on the driver (a build gathers its signatures there to drop duplicate
        instances in input order), so grouping them there is a dict; a Ray Data `groupby` would
        first ship them out to shuffle them. It also hung here: Ray Data's hash-shuffle aggregators
        and a 2-actor `map_groups` pool did not finish in 5 minutes on a 2-CPU cluster.
        """
        groups: dict[str, list[Any]] = {}
        for item in items:
            groups.setdefault(key(item), []).append(item)
        keys = sorted(groups)
        for index, result in self.map(fn, [groups[k] for k in keys]):
            yield keys[index], result

    def close(self) -> None:
        if self._started_here and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started_here = None, False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
