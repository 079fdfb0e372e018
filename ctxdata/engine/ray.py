"""The `ray` engine: every map is a Ray Data `map_batches`, one plan item per batch.

A phase that loads models runs on a pool of actors, each holding the phase's callable (its
stages, their lazily built backends), so a model is loaded once per actor and then serves many
batches: the Ray Data batch-inference pattern. Other phases run as stateless tasks, whose worker
processes Ray keeps warm between phases. One row is one item of the plan (a file slice, a
repository's signatures, a candidate task, a batch of images); it travels pickled, and its result
travels back pickled to the driver, which merges results in plan order and writes the output.
Nothing a worker does depends on which worker it is, so the bytes are the local engine's.

Fault tolerance is Ray Data's default: a task whose worker process dies is retried
(`max_retries=-1`), an actor whose process dies is restarted and its batch retried
(`max_restarts=-1`, `max_task_retries=-1`); an exception in the callable is
not retried (it is a bug or a misconfiguration, and it stops the build). The driver uses one
result per item, so a retried item cannot be counted twice.

`ray` is imported when the engine starts, never when ctxdata is imported.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable, Iterator, Sequence

from ctxdata._deps import require
from ctxdata.parallel import resolve_workers


class ApplyToRows:
    """The actor: unpickle each row's item, call the phase's callable, pickle the result."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results = [pickle.dumps(self.fn(pickle.loads(item)), protocol=5) for item in batch["item"]]
        return {"index": batch["index"], "result": results}


def apply_to_rows(batch: dict[str, Any], fn: Callable[[Any], Any]) -> dict[str, Any]:
    """The task of a phase without a model: Ray reuses its worker processes between phases."""
    return ApplyToRows(fn)(batch)


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
        ray = self.start()
        actors = self.concurrency if models and self.concurrency else self.parallelism
        rows = [{"index": i, "item": pickle.dumps(item, protocol=5)} for i, item in enumerate(items)]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        size = max(1, min(actors, len(rows)))
        if models:  # one model per actor, loaded once, serving many batches
            phase = {
                "fn": ApplyToRows,
                "fn_constructor_kwargs": {"fn": fn},
                "num_gpus": self.num_gpus,
                "compute": ray.data.ActorPoolStrategy(size=size),
            }
        else:  # stateless tasks: no actor start-up per phase
            phase = {"fn": apply_to_rows, "fn_kwargs": {"fn": fn}, "compute": ray.data.TaskPoolStrategy(size=size)}
        dataset = dataset.map_batches(**phase, batch_size=1, num_cpus=1)
        for row in dataset.iter_rows():
            yield int(row["index"]), pickle.loads(row["result"])

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

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
