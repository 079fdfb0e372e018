"""`ctxdata quickstart`: the whole system on embedded defaults, on a CPU, in minutes.

1. synthetic sibling trajectories (`synth traces`) -> coding pairs (`build-coding --shortcut-predictors fast`);
2. the built-in demo pool (real scikit-image photos + synthetic scenes) -> vision pairs (`build-vision`);
3. exports of both (verl Parquet for coding, EasyR1 JSONL for vision);
4. short tool-trace pairs + task QA (`synth task`), the data a 135M model can learn from on a CPU;
5. probe the model on the held-out trace pairs, train a few ContextRL steps, probe again. The
   held-out pairs (and their task items) are never trained on: training reads `task/` and
   `task/task.jsonl`, the probe reads `task/heldout/`.

Every step is the same library call the matching command makes; the outputs stay in `out/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ctxdata.errors import ConfigError


@dataclass
class QuickstartConfig:
    """What the quickstart runs."""

    out: str  # folder for every output
    model: str = "smollm2-135m"  # model probed and trained (alias or local folder)
    traces: int = 120  # synthetic trajectories for the coding pairs
    task_pairs: int = 200  # synthetic short-trace pairs (train + held-out)
    heldout: float = 0.4  # fraction of the task pairs held out (never trained on) and probed
    easy: bool = False  # the easy task variant (the decisive line is `answer: <value>`)
    steps: int = 30  # ContextRL optimizer steps
    lam: float = 1.0  # L_CA weight (far above the paper's 0.001-0.01: tens of steps, not thousands)
    learning_rate: float = 5e-5  # AdamW lr after the warmup (1e-5, 20 steps: content margin 0.03, 20x smaller)
    warmup_steps: int = 8  # linear lr warmup, at most steps - 1 (Adam's first full-lr steps flip the letter wholesale)
    ca_both_orders: bool = True  # L_CA pairs in both A/B orders (a letter preference cancels)
    probe_limit: int = 80  # held-out pairs probed before and after training, each in both A/B orders
    prefill: str = "Context"  # reply prefix before the letter is read (SmolLM2 otherwise starts "Output..."), in probe and L_CA alike
    seed: int = 0  # one seed for every step
    train: bool = True  # False: build, export and probe only

    def __post_init__(self) -> None:
        if self.traces < 2 or self.task_pairs < 8:
            raise ConfigError("--traces must be >= 2 and --task-pairs >= 8")
        if self.steps < 1 or self.probe_limit < 1:
            raise ConfigError("--steps and --probe-limit must be >= 1")
        if self.warmup_steps < 0:
            raise ConfigError(f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        if not 0 < self.heldout < 1 or round(self.task_pairs * self.heldout) < 1:
            raise ConfigError("--heldout must be in (0, 1) and leave at least one held-out pair")


def run_quickstart(cfg: QuickstartConfig, step: Callable[[str], None] = lambda name: None) -> dict[str, Any]:
    """Run every stage; returns {stage: summary} with timings (also written to out/quickstart.json)."""
    from ctxdata.coding.build import CodingBuildConfig, build_coding
    from ctxdata.coding.synth import SynthConfig, write_traces
    from ctxdata.export import ExportConfig, export_pairs
    from ctxdata.io import write_json
    from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task
    from ctxdata.vision.build import VisionConfig, build_vision

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        step(name)
        t = time.perf_counter()
        value = fn()
        results[name] = {"seconds": round(time.perf_counter() - t, 1), **(value if isinstance(value, dict) else {})}
        return value

    timed("synth traces", lambda: _summary(write_traces(SynthConfig(n=cfg.traces, seed=cfg.seed, kb=8), out / "traces", workers=1)))
    # overwrite: the traces were just rewritten (new mtimes), so a resume would refuse them as changed inputs
    # The cheap shortcut predictors only: MiniLM (the build default) would add minutes to a demo on synthetic runs,
    # whose topic cue is weak; real runs need it (docs/coding.md#the-default-filter).
    coding = timed("build-coding", lambda: _build_summary(build_coding(CodingBuildConfig(
        traces=[str(out / "traces")], out=str(out / "pairs-coding"), seed=cfg.seed, workers=1, overwrite=True,
        shortcut_predictors="fast"))))
    vision = timed("build-vision", lambda: _build_summary(build_vision(VisionConfig(seed=cfg.seed, out=str(out / "pairs-vision")))))
    if coding["pairs"]:
        timed("export verl", lambda: export_pairs(out / "pairs-coding", out / "export" / "coding-verl.parquet", ExportConfig(target="verl", tokenizer=cfg.model)))
    if vision["pairs"]:
        timed("export easyr1", lambda: export_pairs(out / "pairs-vision", out / "export" / "vision-easyr1.jsonl", ExportConfig(target="easyr1", tokenizer=cfg.model)))
    task_cfg = SynthTaskConfig(n=cfg.task_pairs, seed=cfg.seed, heldout=cfg.heldout, filler=1, easy=cfg.easy)
    timed("synth task", lambda: _task_summary(write_synth_task(task_cfg, out / "task", overwrite=True)))
    timed("probe before", lambda: _probe(cfg.model, out, cfg, "before"))
    if cfg.train:
        final = timed("train contextrl", lambda: _train(cfg, out))
        timed("probe after", lambda: _probe(final["model"], out, cfg, "after"))
    write_json(out / "quickstart.json", results)
    return results


def verdict(before: dict[str, Any], after: dict[str, Any] | None, steps: int, easy: bool) -> str:
    """The quickstart's last line: before/after held-out probe accuracy, n, and whether the intervals separate.

    The verdict reads the both-orders accuracy (each pair read with A/B as stored and swapped, right iff
    the order-averaged Delta > 0): the untrained SmolLM2 answers "A" whatever the contexts say, so its
    raw accuracy is the share of A labels, and a step that moves the letter preference moves the raw
    accuracy without any context reading. The raw accuracy is printed beside it.
    """
    task = "held-out trace pairs" + (" (easy variant)" if easy else "")
    line = f"probe accuracy (both A/B orders) on {task}: before {_interval(before, 'both_orders')}"
    raw = f"raw single-order accuracy {_interval(before, 'raw')}"
    if after is None:
        return line + f" (n={before['n']}; {raw})"
    line += f", after {steps} ContextRL steps {_interval(after, 'both_orders')} (n={after['n']}, never trained on; "
    line += f"{raw} -> {_interval(after, 'raw')})"
    if after["both_orders"]["ci_low"] > before["both_orders"]["ci_high"]:
        return line + ": ContextRL raised it (the after-interval lies above the before-interval)"
    return line + ": no separation (the 95% intervals overlap; not shown to have learned at this budget)"


def _interval(s: dict[str, Any], key: str) -> str:
    return f"{s[key]['accuracy']:.3f} [{s[key]['ci_low']:.3f}, {s[key]['ci_high']:.3f}]"


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}


def _build_summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": report["inputs"], "pairs": report["pairs"], "methods": report["methods"], "rejected": sum(report["rejected"].values())}


def _task_summary(stats: dict[str, Any]) -> dict[str, Any]:
    return {f"{split} pairs": s["pairs"] for split, s in stats.items()} | {f"{split} task items": s["task_items"] for split, s in stats.items()}


def _probe(model: str, out: Path, cfg: QuickstartConfig, name: str) -> dict[str, Any]:
    from ctxdata.train.probe import ProbeConfig, run_probe

    probe_cfg = ProbeConfig(limit=cfg.probe_limit, prefill=cfg.prefill, both_orders=True)
    summary = next(iter(run_probe([out / "task" / "heldout"], [model], probe_cfg, out=out / f"probe-{name}").values()))
    stats = lambda s: {k: round(s[k], 4) for k in ("accuracy", "ci_low", "ci_high")}  # noqa: E731
    return {"model": model, "n": summary["overall"]["n"], "both_orders": stats(summary["both_orders"]),
            "raw": stats(summary["overall"]),
            "share_a": round(summary["share_a"], 4), "mean_delta": round(summary["mean_delta"] or 0.0, 4)}


def _train(cfg: QuickstartConfig, out: Path) -> dict[str, Any]:
    import shutil

    from ctxdata.train.config import TrainConfig
    from ctxdata.train.grpo import train_native

    run = out / "run-contextrl"
    shutil.rmtree(run, ignore_errors=True)
    train_cfg = TrainConfig(
        model=cfg.model, output_dir=str(run), task_data=str(out / "task" / "task.jsonl"), pairs=[str(out / "task")],
        objective="contextrl", num_generations=4, per_device_train_batch_size=8, max_completion_length=8,
        max_prompt_length=512, learning_rate=cfg.learning_rate, lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(cfg.warmup_steps, cfg.steps - 1), max_steps=cfg.steps,
        seed=cfg.seed, ca_batch_size=8, lam=cfg.lam, ca_prefill=cfg.prefill, ca_both_orders=cfg.ca_both_orders,
    )
    result = train_native(train_cfg)
    last = result["last"]
    return {"model": str(Path(result["output_dir"]) / "final"), "steps": cfg.steps,
            "last L_CA": _round(last.get("loss_ca")), "last CA accuracy": _round(last.get("ca_accuracy")), "last reward": _round(last.get("reward_mean")),
            "last share A": _round(last.get("ca_share_a")),
            "trained on": [str(p) for p in train_cfg.pairs] + [str(train_cfg.task_data)]}


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
