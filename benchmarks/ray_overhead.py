"""What running a stateless phase's items costs on Ray: a local process pool, Ray tasks, Ray Data.

The same pure-Python work item (building and summing a dict of 1.5M entries, ~2 s on one core
here) runs `--items` times with 2 in parallel, three ways:

- `local pool`: the local engine's spawned process pool (`ctxdata.parallel.worker_pool`);
- `ray tasks`: `ray.remote` tasks on a 2-CPU local cluster (what `--engine ray` runs for phases
  without a model);
- `ray data`: `ray.data.from_items(...).map_batches(..., batch_size=1)` on a task pool of 2, with
  and without Ray Data's per-operator resource reservation (what the engine ran before).

It prints the wall time of each and the CPU time the work itself took inside the workers. This
is why `ctxdata/engine/ray.py` runs stateless phases as Ray tasks (docs/scaling.md).

    python benchmarks/ray_overhead.py --items 8
"""

from __future__ import annotations

import argparse
import logging
import time


def work(_: int) -> float:
    """~2 s of interpreter-bound work; returns the CPU seconds it took in its process."""
    start = time.process_time()
    table = {str(i): [i, str(i) * 3] for i in range(1_500_000)}
    sum(len(v[1]) for v in table.values())
    return time.process_time() - start


def timed(label: str, run) -> None:
    start = time.perf_counter()
    cpu = sum(run())
    print(f"| {label} | {time.perf_counter() - start:.2f} | {cpu:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=8)
    args = parser.parse_args()
    items = list(range(args.items))
    print(f"{args.items} items of ~2 s each, 2 at a time (ideal wall: {args.items / 2:.0f} x one item)\n")
    print("| how | wall s | CPU s of the work |\n|---|---|---|")

    from ctxdata.parallel import worker_pool

    with worker_pool(2) as pool:
        list(pool.map(work, [0, 0]))  # start both processes first: start-up is not the question
        timed("local pool (2 processes)", lambda: list(pool.map(work, items)))

    import ray
    import ray.data

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             _system_config={"worker_niceness": 0})
    task = ray.remote(num_cpus=1)(work)
    ray.get([task.remote(0) for _ in range(2)])
    timed("ray tasks (2 CPUs)", lambda: ray.get([task.remote(i) for i in items]))

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)

    def on_ray_data() -> list[float]:
        dataset = ray.data.from_items([{"i": i} for i in items], override_num_blocks=len(items)).map_batches(
            lambda batch: {"cpu": [work(int(i)) for i in batch["i"]]},
            batch_size=1, num_cpus=1, compute=ray.data.TaskPoolStrategy(size=2),
        )
        return [row["cpu"] for row in dataset.iter_rows()]

    for reserve in (True, False):
        context.op_resource_reservation_enabled = reserve
        on_ray_data()  # its workers started, as in the other rows
        timed(f"ray data map_batches, resource reservation {'on (default)' if reserve else 'off'}", on_ray_data)
    ray.shutdown()


if __name__ == "__main__":
    main()
