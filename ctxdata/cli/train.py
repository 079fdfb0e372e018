"""`ctxdata train`: GRPO + the ContextRL context-awareness loss (and the paper's baselines)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.cli._options import PairsDirs, Seed

EXAMPLES = """

Examples:

    ctxdata train --pairs out/coding --task-data tasks.jsonl --model tiny-llama --steps 20

    ctxdata train --pairs out/coding --task-data tasks.jsonl --model smollm2-135m --objective grpo --backend trl

    ctxdata train --pairs out/coding --model ./my-model --objective da-rl --reward multiple_choice

    ctxdata train ... --output-dir runs/a --resume
"""


def train(
    pairs: PairsDirs = [],
    task_data: Annotated[Optional[Path], typer.Option("--task-data", help="JSONL/Parquet task rows: prompt (string or messages), answer[, images].")] = None,
    model: Annotated[str, typer.Option("--model", help="A local model folder, `tiny-llama` or `smollm2-135m`.")] = "tiny-llama",
    objective: Annotated[str, typer.Option("--objective", help="contextrl | grpo | da-sft | da-rl.")] = "contextrl",
    backend: Annotated[str, typer.Option("--backend", help="native (one-file trainer) | trl (trl.GRPOTrainer subclass).")] = "native",
    lam: Annotated[Optional[float], typer.Option("--lam", help="Weight of L_CA (contextrl; default 0.01, paper 0.001-0.01).")] = None,
    ca_clip: Annotated[float, typer.Option("--ca-clip", help="c in -log sigmoid(clip(Delta, -c, c)).")] = 5.0,
    ca_batch_size: Annotated[int, typer.Option("--ca-batch-size", help="Pairs per optimizer step for L_CA (fresh each step).")] = 8,
    ca_prefill: Annotated[str, typer.Option("--ca-prefill", help="Text after the generation prompt before reading the answer logits, e.g. 'The answer is'.")] = "",
    ca_loss: Annotated[str, typer.Option("--ca-loss", help="L_CA form: paper (-log sigmoid(clip(Delta, -c, c))) | upper-clip (-log sigmoid(min(Delta, c))).")] = "paper",
    ca_both_orders: Annotated[bool, typer.Option("--ca-both-orders", help="Show each L_CA pair in both A/B orders in the same batch (a letter preference cancels).")] = False,
    sft_steps: Annotated[int, typer.Option("--sft-steps", help="da-sft: supervised steps before GRPO.")] = 0,
    num_generations: Annotated[int, typer.Option("--num-generations", help="Completions per prompt (G >= 2).")] = 4,
    per_device_train_batch_size: Annotated[int, typer.Option("--batch-size", help="Completions per micro-batch (TRL's per_device_train_batch_size).")] = 8,
    gradient_accumulation_steps: Annotated[int, typer.Option("--grad-accum", help="Micro-batches per optimizer step.")] = 1,
    max_completion_length: Annotated[int, typer.Option("--max-completion-length", help="New tokens per completion.")] = 64,
    max_prompt_length: Annotated[int, typer.Option("--max-prompt-length", help="Prompt tokens kept (truncated from the left).")] = 1024,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 1.0,
    beta: Annotated[float, typer.Option("--beta", help="k3 KL coefficient to the frozen initial model (0: none).")] = 0.0,
    epsilon: Annotated[float, typer.Option("--epsilon", help="Lower clip range.")] = 0.2,
    epsilon_high: Annotated[float, typer.Option("--epsilon-high", help="Upper clip range (clip-higher).")] = 0.28,
    scale_rewards: Annotated[str, typer.Option("--scale-rewards", help="group | batch | none.")] = "group",
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="AdamW learning rate.")] = 1e-6,
    steps: Annotated[int, typer.Option("--steps", "--max-steps", help="GRPO optimizer steps.")] = 10,
    lr_scheduler_type: Annotated[str, typer.Option("--lr-scheduler", help="linear (decay to 0) | constant | constant_with_warmup (transformers' names).")] = "linear",
    warmup_steps: Annotated[int, typer.Option("--warmup-steps", min=0, help="Linear warmup from lr 0 over the first N steps (linear, constant_with_warmup).")] = 0,
    save_steps: Annotated[int, typer.Option("--save-steps", help="Checkpoint every N steps (0: only the final model).")] = 0,
    skip_zero_variance: Annotated[bool, typer.Option("--skip-zero-variance-groups", help="Drop groups with equal rewards from L_GRPO.")] = False,
    reward: Annotated[list[str], typer.Option("--reward", help="Reward function(s), summed: exact_match, normalized_contains, multiple_choice, numeric.")] = ["normalized_contains"],
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Checkpoints, metrics.jsonl and the final model.")] = Path("runs/contextrl"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in --output-dir.")] = False,
    seed: Seed = 0,
) -> None:
    """Train with GRPO + the ContextRL context-awareness loss, or a baseline objective."""
    from ctxdata.console import info, print_table, progress
    from ctxdata.train.config import TrainConfig

    cfg = TrainConfig(
        model=model, output_dir=str(output_dir), task_data=str(task_data) if task_data else None, pairs=[str(p) for p in pairs],
        objective=objective, backend=backend, reward_funcs=list(reward), num_generations=num_generations,
        per_device_train_batch_size=per_device_train_batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
        max_completion_length=max_completion_length, max_prompt_length=max_prompt_length, temperature=temperature,
        beta=beta, epsilon=epsilon, epsilon_high=epsilon_high, scale_rewards=scale_rewards, learning_rate=learning_rate,
        max_steps=steps, lr_scheduler_type=lr_scheduler_type, warmup_steps=warmup_steps, save_steps=save_steps, seed=seed, skip_zero_variance_groups=skip_zero_variance, lam=lam,
        ca_clip=ca_clip, ca_batch_size=ca_batch_size, ca_prefill=ca_prefill, ca_loss=ca_loss, ca_both_orders=ca_both_orders, sft_steps=sft_steps,
        resume=resume,
    )
    if backend == "trl":
        from ctxdata.train.trl_backend import train_trl as run
    else:
        from ctxdata.train.grpo import train_native as run
    info(f"ctxdata train: objective {objective}, backend {backend}, model {model}, {steps} steps -> {output_dir}")
    with progress() as bar:
        task = bar.add_task(f"{objective} ({backend})", total=steps + (sft_steps if objective == "da-sft" else 0))

        def on_step(row: dict) -> None:
            reward = row.get("reward_mean", row.get("loss_sft", float("nan")))
            bar.update(task, completed=row["step"] + (sft_steps if row["phase"] == "grpo" and objective == "da-sft" else 0),
                       description=f"{row['phase']} step {row['step']} reward {reward:.3f}")

        result = run(cfg, on_step=on_step)
    keys = ["reward_mean", "loss_grpo", "loss_ca", "ca_accuracy", "ca_trapped", "ca_share_a", "grad_norm", "frac_zero_variance", "kl", "clip_fraction", "lr", "step_time"]
    first, last = result["first"] or {}, result["last"] or {}
    rows = [[k, _fmt(first.get(k)), _fmt(last.get(k))] for k in keys]
    print_table(f"ctxdata train ({objective}, {backend}): steps {first.get('step', '-')} -> {last.get('step', '-')}", ["metric", "first step", "last step"], rows)
    info(f"final model: {Path(result['output_dir']) / 'final'}; metrics: {Path(result['output_dir']) / 'metrics.jsonl'}")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if value != value else f"{value:.4g}"
    return str(value)


train.__doc__ = (train.__doc__ or "") + EXAMPLES


def register(app: typer.Typer) -> None:
    app.command("train")(train)
