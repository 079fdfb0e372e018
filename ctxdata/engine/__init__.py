"""Executors: run a build's deterministic task list on this machine (`local`) or on a Ray cluster (`ray`).

A build first makes a plan that does not depend on the executor: the file slices of a read
phase, the candidate tasks of a pair phase (one shard each). An engine only decides *where* each
item runs. Results come back to the driver, which merges them in plan order and writes every
shard, marker and report itself (`ctxdata.io.PairOutput`), so the bytes cannot depend on the
engine, on the number of workers or on which worker finished first.

    engine.map(fn, items)  -> (index, fn(item)) as each finishes (fn is shipped once per worker)

`fn` is a picklable callable. On Ray, a phase with models holds it in each actor of a pool, so a
model it builds lazily is built once per actor (the Ray Data batch-inference pattern), not once
per item; a phase without models sends it once to Ray tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ctxdata.errors import ConfigError
from ctxdata.pipeline import RunContext, Stage, run_stages


@dataclass
class EngineOptions:
    """Where the work runs; none of these fields changes the output bytes."""

    engine: str = "local"  # local | ray
    workers: int = 1  # local: processes; ray: parallel tasks, and the CPUs of a local cluster (0 = every core)
    ray_address: str | None = None  # ray: join this cluster (e.g. auto, or ray://host:10001); else start a local one
    num_gpus: float = 0.0  # ray: GPUs reserved per model actor (embedding, editing, VQA)
    concurrency: int = 0  # ray: model actors per stage (0 = as many as `workers`)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown --engine {self.engine!r}; valid engines: {', '.join(ENGINES)}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0 (0 = one per core), got {self.workers}")
        if self.num_gpus < 0 or self.concurrency < 0:
            raise ConfigError("--num-gpus and --concurrency must be >= 0")
        if self.engine == "local" and (self.ray_address or self.num_gpus or self.concurrency):
            raise ConfigError(
                "--ray-address, --num-gpus and --concurrency are for --engine ray; add --engine ray or drop them"
            )


def _local(options: EngineOptions):
    from ctxdata.engine.local import LocalEngine

    return LocalEngine(options.workers)


def _ray(options: EngineOptions):
    from ctxdata.engine.ray import RayEngine  # the module imports ray only when the engine starts

    return RayEngine(
        options.workers, address=options.ray_address, num_gpus=options.num_gpus, concurrency=options.concurrency
    )


# name -> factory(EngineOptions); --engine's help lists these keys.
ENGINES: dict[str, Callable[[EngineOptions], Any]] = {"local": _local, "ray": _ray}


def make_engine(options: EngineOptions | None = None):
    """The engine for `options` (a context manager: leaving it stops its workers)."""
    options = options or EngineOptions()
    return ENGINES[options.engine](options)


def engine_options(config: Any) -> EngineOptions:
    """The engine fields of a build config (CodingBuildConfig, VisionConfig)."""
    return EngineOptions(**{f: getattr(config, f) for f in EngineOptions.__dataclass_fields__ if hasattr(config, f)})


# -- the task phase shared by every build -------------------------------------------------------
def pair_to_row(pair: Any) -> dict[str, Any]:
    return pair.to_row()


class RunStages:
    """One task: its items through the stages -> (rows, context). Runs on a worker; writes nothing."""

    def __init__(self, stages: list[Stage], to_row: Callable[[Any], dict[str, Any]] = pair_to_row) -> None:
        self.stages, self.to_row = stages, to_row

    def __call__(self, items: Sequence[Any]) -> tuple[list[dict[str, Any]], RunContext]:
        ctx = RunContext()
        rows = [self.to_row(pair) for pair in run_stages(self.stages, items, ctx)]
        return rows, ctx


def run_tasks(
    output: Any,
    tasks: Sequence[Sequence[Any]],
    stages: list[Stage],
    *,
    engine: Any = None,
    to_row: Callable[[Any], dict[str, Any]] = pair_to_row,
    on_task: Callable[[int, int], None] | None = None,
    models: bool = False,
    min_items: int = 2,
) -> int:
    """Run `stages` over each task's items and write one shard per task; skip finished tasks.

        Tasks run on `engine` (default: in this process); the driver writes each task's shard,
        rejects and marker as its result arrives, so a killed driver loses at most the tasks in
        flight and a rerun resumes from the markers. A finished task whose shard no longer matches
        its recorded sha256 runs again. `models` marks stages that load models (GPU actors on Ray);
    the local engine runs fewer than `min_items` tasks in process (a worker pool costs start-up).
        `on_task(task_index, n_items)` is called after each task. Returns how many tasks a previous
        run had already finished.
    """
    from ctxdata.engine.local import LocalEngine

    engine = engine or LocalEngine(1)
    todo = [i for i in range(len(tasks)) if output.task_result(i, verify=True) is None]
    for index in sorted(set(range(len(tasks))) - set(todo)):
        if on_task is not None:
            on_task(index, len(tasks[index]))
    for n, (rows, ctx) in engine.map(
        RunStages(stages, to_row), [tasks[i] for i in todo], models=models, min_items=min_items
    ):
        output.write_task(todo[n], rows, ctx)
        if on_task is not None:
            on_task(todo[n], len(tasks[todo[n]]))
    return len(tasks) - len(todo)
