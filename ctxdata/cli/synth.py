"""`ctxdata synth ...`: generate synthetic data (agent trajectories, short-trace tasks)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctxdata.cli._options import Out, Overwrite, Seed
from ctxdata.coding.synth import MIN_STEPS, SynthConfig

synth_app = typer.Typer(help="Generate synthetic data (trajectories, short-trace tasks).", no_args_is_help=True)


@synth_app.command("traces")
def traces(
    out: Out,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of tasks (task instances).")] = SynthConfig.n,
    seed: Seed = 0,
    repos: Annotated[
        int, typer.Option("--repos", min=1, help="Repositories in the synthetic world.")
    ] = SynthConfig.repos,
    files_per_repo: Annotated[
        int, typer.Option("--files-per-repo", min=1, help="Python modules per repository.")
    ] = SynthConfig.files_per_repo,
    functions_per_file: Annotated[
        int, typer.Option("--functions-per-file", min=1, help="Functions/methods per module.")
    ] = SynthConfig.functions_per_file,
    siblings: Annotated[
        int,
        typer.Option(
            "--siblings", min=1, help="Tasks per sibling group (same repo, commit, file, function; different bug)."
        ),
    ] = SynthConfig.siblings,
    runs_per_task: Annotated[
        int,
        typer.Option(
            "--runs-per-task",
            min=1,
            help="Agent runs per task (K > 1 writes OUT/run-1 ... OUT/run-K); "
            "runs of one task differ in their steps and often in their patch.",
        ),
    ] = SynthConfig.runs_per_task,
    steps: Annotated[
        int,
        typer.Option(
            "--steps",
            min=MIN_STEPS,
            help="Median agent steps of a run; each run draws its own count (real runs: ~0.6x-1.8x the median).",
        ),
    ] = SynthConfig.steps,
    kb: Annotated[
        float,
        typer.Option(
            "--kb",
            min=1,
            help="Mean size of one trajectory file in KB; longer runs are larger (floor ~0.7 KB a step).",
        ),
    ] = SynthConfig.kb,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Writer processes (output does not depend on it).")
    ] = 2,
) -> None:
    """Write synthetic mini-swe-agent runs + SWE-bench report.json outcomes for sibling tasks.

    Layout: `OUT/trajs/ID/ID.traj.json` and `OUT/logs/ID/report.json` (readable by
    `ctxdata build-coding`); with --runs-per-task K > 1, one such folder per run, `OUT/run-1` ...
    `OUT/run-K`. The same seed gives byte-identical files.

    Examples:

        ctxdata synth traces --n 1000 --out synth-1k

        ctxdata synth traces --n 300 --runs-per-task 4 --out runs-300x4

        ctxdata synth traces --n 50000 --siblings 4 --kb 20 --out synth-50k --seed 7
    """
    from ctxdata.coding.synth import write_traces
    from ctxdata.console import print_table, progress, warn

    cfg = SynthConfig(
        n=n,
        seed=seed,
        repos=repos,
        files_per_repo=files_per_repo,
        functions_per_file=functions_per_file,
        siblings=siblings,
        runs_per_task=runs_per_task,
        steps=steps,
        kb=kb,
    )
    total_runs = n * runs_per_task
    with progress() as bar:
        task = bar.add_task("writing trajectories", total=total_runs)
        stats = write_traces(cfg, Path(out), workers=workers, on_progress=lambda k: bar.advance(task, k))
    total = stats["traj_bytes"] + stats["report_bytes"]
    mean_kb = stats["traj_bytes"] / total_runs / 1024
    if mean_kb > 1.25 * kb:
        warn(
            f"trajectories average {mean_kb:.1f} KB > --kb {kb}: {steps} steps need about that much; "
            "lower --steps for smaller files"
        )
    rows = [
        ["files", stats["files"]],
        ["tasks", stats["tasks"]],
        ["trajectories (runs)", stats["trajectories"]],
        ["repos", stats["repos"]],
        ["sibling groups", stats["sibling_groups"]],
        ["trajectory bytes", f"{stats['traj_bytes']:,} ({mean_kb:.1f} KB each)"],
        ["report bytes", f"{stats['report_bytes']:,}"],
        ["[bold]total bytes", f"[bold]{total:,}"],
    ]
    print_table(f"ctxdata synth traces -> {out}", ["", "count"], rows)


@synth_app.command("task")
def task(
    out: Out,
    n: Annotated[
        int, typer.Option("--n", min=2, help="Pairs in total (train + held-out); each also gives two task QA items.")
    ] = 200,
    seed: Seed = 0,
    heldout: Annotated[
        float,
        typer.Option(
            "--heldout",
            min=0.0,
            max=0.95,
            help="Fraction of pairs kept for evaluation (OUT/heldout, task-heldout.jsonl).",
        ),
    ] = 0.2,
    kinds: Annotated[
        str, typer.Option("--kinds", help="Comma-separated decisive-line kinds: test,returncode,version,path.")
    ] = "test,returncode,version,path",
    filler: Annotated[
        int, typer.Option("--filler", min=0, help="Non-decisive commands per trace (~30 tokens each).")
    ] = 3,
    easy: Annotated[
        bool, typer.Option("--easy", help="Learnability control: the decisive line is `answer: <value>`.")
    ] = False,
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

    config = SynthTaskConfig(
        n=n, seed=seed, heldout=heldout, kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()), filler=filler,
        easy=easy,
    )
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
