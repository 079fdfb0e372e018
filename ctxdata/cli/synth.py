"""`ctxdata synth ...`: generate synthetic data (trajectories now; short-trace tasks later)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctxdata.cli._options import Out, Overwrite, Seed

synth_app = typer.Typer(help="Generate synthetic data (trajectories, short-trace tasks).", no_args_is_help=True)


@synth_app.command("task")
def task(
    out: Out,
    n: Annotated[int, typer.Option("--n", min=2, help="Pairs in total (train + held-out); each also gives two task QA items.")] = 200,
    seed: Seed = 0,
    heldout: Annotated[float, typer.Option("--heldout", min=0.0, max=0.95, help="Fraction of pairs kept for evaluation (OUT/heldout, task-heldout.jsonl).")] = 0.2,
    kinds: Annotated[str, typer.Option("--kinds", help="Comma-separated decisive-line kinds: test,returncode,version,path.")] = "test,returncode,version,path",
    filler: Annotated[int, typer.Option("--filler", min=0, help="Non-decisive commands per trace (~30 tokens each).")] = 3,
    overwrite: Overwrite = False,
) -> None:
    """Write short tool-trace pairs that differ in one decisive line, plus verifiable task QA over them.

    Layout: OUT/ (train pairs, `load_from_disk`-able), OUT/heldout/ (held-out pairs),
    OUT/task.jsonl and OUT/task-heldout.jsonl (`prompt`, `answer`, `kind`, `pair_id`, `split`).
    The same seed gives byte-identical files.

    Examples:

        ctxdata synth task --n 400 --out synth-task

        ctxdata synth task --n 100 --kinds test,returncode --heldout 0.3 --out rc --seed 3
    """
    from ctxdata.console import print_table, progress
    from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task

    config = SynthTaskConfig(n=n, seed=seed, heldout=heldout, kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), filler=filler)
    with progress() as bar:
        job = bar.add_task("building trace pairs", total=n)
        stats = write_synth_task(config, Path(out), overwrite=overwrite, on_progress=lambda k: bar.advance(job, k))
    rows = []
    for split, s in stats.items():
        rows.append([f"{split} pairs", s["pairs"]])
        rows += [[f"  {m}", k] for m, k in s["methods"].items()]
        rows += [[f"  rejected: {r}", k] for r, k in s["rejected"].items()]
        rows.append([f"{split} task items", s["task_items"]])
    print_table(f"ctxdata synth task -> {out}", ["", "count"], rows)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")
