"""The `ray` engine: every map is a Ray Data `map_batches` over a pool of actors.

Each actor holds the phase's callable (its stages, their lazily built backends), so a model is
loaded once per actor and then serves many batches: the Ray Data batch-inference pattern. One
row is one item of the plan (a file slice, a candidate task, a batch of images); it travels
pickled, and its result travels back pickled to the driver, which merges results in plan order
and writes the output. Nothing a worker does depends on which worker it is, so the bytes are the
local engine's.

Fault tolerance is Ray's: an actor whose process dies is restarted and its batch retried (up to
`TASK_RETRIES` times); a result is used once, so a retried item cannot be counted twice.

`ray` is imported when the engine starts, never when ctxdata is imported.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable, Iterator, Sequence

from ctxdata._deps import require
from ctxdata.parallel import resolve_workers

TASK_RETRIES = 3  # retries of one item after its worker process died (a crash, not an exception)


class ApplyToRows:
    """The actor: unpickle each row's item, call the phase's callable, pickle the result."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        results = [pickle.dumps(self.fn(pickle.loads(item)), protocol=5) for item in batch["item"]]
        return {"index": batch["index"], "result": results}


class ApplyToGroup:
    """The actor of a `groupby`: one group's items, back in input order, through the callable."""

    def __init__(self, fn: Callable[[list[Any]], Any]) -> None:
        self.fn = fn

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        order = sorted(range(len(batch["seq"])), key=lambda i: int(batch["seq"][i]))  # a shuffle does not keep row order
        items = [pickle.loads(batch["item"][i]) for i in order]
        return {"key": [batch["key"][0]], "result": [pickle.dumps(self.fn(items), protocol=5)]}


class RayEngine:
    name = "ray"

    def __init__(self, workers: int = 0, *, address: str | None = None, num_gpus: float = 0.0, concurrency: int = 0) -> None:
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
            else:
                ray.init(num_cpus=resolve_workers(self.workers), **kwargs)
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

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, models: bool = False, min_items: int = 1) -> Iterator[tuple[int, Any]]:
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
        dataset = dataset.map_batches(
            ApplyToRows,
            fn_constructor_kwargs={"fn": fn},
            batch_size=1,  # one plan item per call: the item is the unit of retry and of progress
            concurrency=max(1, min(actors, len(rows))),
            num_cpus=1,
            num_gpus=self.num_gpus if models else 0,
            max_restarts=-1,
            max_task_retries=TASK_RETRIES,
        )
        for row in dataset.iter_rows():
            yield int(row["index"]), pickle.loads(row["result"])

    def group_map(self, fn: Callable[[list[Any]], Any], items: Sequence[Any], *, key: Callable[[Any], str]) -> Iterator[tuple[str, Any]]:
        """Yield `(k, fn(items with key k, in input order))` per key: a Ray Data `groupby(k).map_groups`."""
        if not items:
            return
        ray = self.start()
        rows = [{"key": key(item), "seq": n, "item": pickle.dumps(item, protocol=5)} for n, item in enumerate(items)]
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), self.parallelism * 2)))
        dataset = dataset.groupby("key").map_groups(
            ApplyToGroup, fn_constructor_kwargs={"fn": fn}, concurrency=self.parallelism, num_cpus=1,
            max_restarts=-1, max_task_retries=TASK_RETRIES,
        )
        for row in dataset.iter_rows():
            yield str(row["key"]), pickle.loads(row["result"])

    def close(self) -> None:
        if self._started_here and self._ray is not None:
            self._ray.shutdown()
        self._ray, self._started_here = None, False

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
