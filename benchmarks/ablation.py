"""Ablation: base vs grpo vs contextrl vs da-sft vs da-rl on SmolLM2-135M with synthetic short tool traces.

Every objective starts from the same model and trains for the same number of GRPO steps on the
same data (`ctxdata synth task`: train pairs + task QA). grpo and contextrl run with several seeds
(`--seeds`), so run-to-run spread is visible; da-sft and da-rl run with the first seed. Every run
is measured on the HELD-OUT split, which no objective trains on:

* probe accuracy: the contrastive context probe (`ctxdata.train.probe`, read after the same
  `--prefill` that L_CA uses) on `--eval-limit` held-out pairs, each read in both A/B orders: the
  both-orders accuracy (right iff the order-averaged Delta > 0; a letter preference cancels) is
  the compared number, the raw one-order accuracy (Delta > 0) and the share of "A" answers are
  kept beside it; 95% Wilson CIs;
* task reward: greedy answers to held-out task QA items, scored by the training reward
  (`normalized_contains`) and by exact match of the first line (`synth_task.score_answer`), each
  with a 95% Wilson CI.

contextrl uses the paper's loss (`ca_loss="paper"`) and, by default, shows each L_CA pair in both
A/B orders (`--ca-both-orders`, see docs/training.md for why). The paper's shape is contextrl
probe accuracy >= grpo + 15 points with task reward within 2 points; the script prints the
measured differences, whatever they show. Results are written after every run (a rerun with the
same --out and config skips finished runs), so a long run can be read while it goes.

    python benchmarks/ablation.py --quick                                  # a smoke run, minutes
    nohup nice -n 10 python benchmarks/ablation.py --out /work/ablation-out/ablation.json &   # the full table
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OBJECTIVES = ("grpo", "contextrl", "da-sft", "da-rl")
SEEDED = ("grpo", "contextrl")  # the objectives run once per seed


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="start model (alias or local folder)")
    ap.add_argument("--steps", type=int, default=30, help="GRPO optimizer steps per run (same budget for all)")
    ap.add_argument("--n", type=int, default=500, help="synthetic pairs (train + held-out)")
    ap.add_argument("--heldout", type=float, default=0.4, help="held-out fraction")
    ap.add_argument("--filler", type=int, default=1, help="non-decisive commands per trace (shorter = faster)")
    ap.add_argument("--easy", action="store_true", help="the easy variant: the decisive line is `answer: <value>`")
    ap.add_argument("--lam", type=float, default=0.5, help="contextrl L_CA weight (paper 0.001-0.01 over far more steps)")
    ap.add_argument("--lr", type=float, default=5e-5, help="learning rate (all objectives), reached after --warmup-steps")
    ap.add_argument("--warmup-steps", type=int, default=8, help="linear warmup (Adam's first full-lr steps flip the letter wholesale)")
    ap.add_argument("--ca-loss", default="paper", help="L_CA form: paper | upper-clip")
    ap.add_argument("--ca-both-orders", action=argparse.BooleanOptionalAction, default=True, help="L_CA pairs in both A/B orders")
    ap.add_argument("--ca-batch-size", type=int, default=8, help="L_CA pairs per step")
    ap.add_argument("--prefill", default="Context", help="reply prefix before the letter, in L_CA and in the probe")
    ap.add_argument("--completion-length", type=int, default=16, help="max_completion_length (training and task evaluation; at 8 the base model earns no reward)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the GRPO rollouts")
    ap.add_argument("--sft-steps", type=int, default=8, help="da-sft supervised steps before GRPO")
    ap.add_argument("--eval-limit", type=int, default=200, help="held-out pairs / task items evaluated")
    ap.add_argument("--seeds", default="0,1,2", help="seeds for grpo and contextrl (da-sft, da-rl use the first)")
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--work", default="/tmp/ctxdata-ablation", help="scratch folder for data and runs")
    ap.add_argument("--out", default="benchmarks/results/ablation.json")
    ap.add_argument("--quick", action="store_true", help="--steps 4 --n 60 --eval-limit 16 --seeds 0")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.n, args.eval_limit, args.seeds = 4, 60, 16, "0"
    return args


def build_data(args) -> Path:
    from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task

    data = Path(args.work) / "data"
    write_synth_task(SynthTaskConfig(n=args.n, seed=0, heldout=args.heldout, filler=args.filler, easy=args.easy), data, overwrite=True)
    return data


def run_plan(args) -> list[tuple[str, int]]:
    """(objective, seed) in an order that makes partial results useful: one of each first, then more seeds."""
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    objectives = [o for o in args.objectives.split(",") if o]
    plan = [(o, seeds[0]) for o in objectives]
    plan += [(o, s) for s in seeds[1:] for o in objectives if o in SEEDED]
    return plan


def train(objective: str, seed: int, data: Path, args) -> tuple[str, list[dict]]:
    from ctxdata.train.config import TrainConfig
    from ctxdata.train.grpo import train_native

    out = Path(args.work) / "runs" / f"{objective}-seed{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(
        model=args.model, output_dir=str(out), task_data=str(data / "task.jsonl"), pairs=[str(data)], objective=objective,
        num_generations=4, per_device_train_batch_size=8, max_completion_length=args.completion_length, max_prompt_length=512,
        temperature=args.temperature, learning_rate=args.lr, max_steps=args.steps, seed=seed, ca_batch_size=args.ca_batch_size,
        lam=args.lam if objective == "contextrl" else None, ca_prefill=args.prefill, ca_loss=args.ca_loss,
        ca_both_orders=args.ca_both_orders, sft_steps=args.sft_steps if objective == "da-sft" else 0, sft_batch_size=4,
        lr_scheduler_type="constant_with_warmup", warmup_steps=args.warmup_steps,
    )
    keys = ("loss", "reward_mean", "loss_ca", "ca_accuracy", "ca_trapped", "ca_share_a", "grad_norm", "loss_sft", "step_time")
    result = train_native(cfg, on_step=lambda row: print(f"  [{objective} seed {seed}] {row['phase']} step {row['step']}: "
                                                        + ", ".join(f"{k}={row[k]:.3f}" for k in keys if isinstance(row.get(k), float) and row[k] == row[k]), flush=True))
    return str(Path(result["output_dir"]) / "final"), result["history"]


def task_reward(model, items, max_new_tokens: int, batch_size: int = 8) -> dict:
    """Greedy answers to task QA items, scored by `normalized_contains` and exactly (`score_answer`); Wilson CIs."""
    import torch

    from ctxdata.train.probe import accuracy_stats
    from ctxdata.train.rewards import normalized_contains
    from ctxdata.train.synth_task import score_answer

    tok = model.tokenizer
    exact, contains = [], []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        texts = [tok.apply_chat_template([{"role": "user", "content": it["prompt"]}], add_generation_prompt=True, tokenize=False) for it in batch]
        enc = tok(texts, padding=True, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            out = model.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        completions = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        exact += [score_answer(text, it["answer"]) == 1.0 for it, text in zip(batch, completions)]
        contains += [r == 1.0 for r in normalized_contains(None, completions, answer=[it["answer"] for it in batch])]
    return {"contains": accuracy_stats(contains), "exact": accuracy_stats(exact)}


def evaluate(spec: str, data: Path, args) -> dict:
    from ctxdata.train.probe import ProbeConfig, load_pairs, load_probe_model, probe_rows, summarize
    from ctxdata.train.synth_task import read_task

    model = load_probe_model(spec)
    rows = load_pairs([data / "heldout"], args.eval_limit)
    results, skipped = probe_rows(model, rows, ProbeConfig(batch_size=8, prefill=args.prefill, both_orders=True))
    items = read_task(data / "task-heldout.jsonl")[: args.eval_limit]
    return {"probe": summarize(results, skipped), "task": task_reward(model, items, args.completion_length)}


def fmt(stats: dict) -> str:
    return f"{stats['accuracy']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def comparison(report: dict) -> dict:
    """Mean over seeds of contextrl - grpo, in points: both-orders and raw probe accuracy, task reward (contains)."""
    def mean(objective: str, metric) -> float | None:
        vals = [metric(r) for name, r in report["rows"].items() if name.startswith(objective + " seed")]
        return sum(vals) / len(vals) if vals else None

    out = {}
    metrics = (("probe", lambda r: r["probe"]["both_orders"]["accuracy"]), ("probe_raw", lambda r: r["probe"]["overall"]["accuracy"]),
               ("task", lambda r: r["task"]["contains"]["accuracy"]))
    for name, metric in metrics:
        c, g = mean("contextrl", metric), mean("grpo", metric)
        out[f"{name}_contextrl_minus_grpo_points"] = None if c is None or g is None else 100 * (c - g)
    return out


def main(argv=None) -> dict:
    import torch

    from ctxdata.console import print_table

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = build_data(args)
    out = Path(args.out)
    config = {k: v for k, v in vars(args).items() if k not in ("out", "quick")}
    report = {"config": config, "rows": {}}
    if out.exists() and json.loads(out.read_text()).get("config") == config:
        report = json.loads(out.read_text())  # same config: continue where the last invocation stopped

    def save() -> None:
        report["comparison"] = comparison(report)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")

    if "base" not in report["rows"]:
        print("evaluating the untrained model", flush=True)
        report["rows"]["base"] = {**evaluate(args.model, data, args), "train_seconds": 0.0}
        save()
    for objective, seed in run_plan(args):
        name = f"{objective} seed {seed}"
        if name in report["rows"]:
            continue
        print(f"training {name}", flush=True)
        t = time.perf_counter()
        final, history = train(objective, seed, data, args)
        seconds = time.perf_counter() - t
        grpo_rows = [h for h in history if h["phase"] == "grpo"]
        report["rows"][name] = {**evaluate(final, data, args), "train_seconds": seconds,
                                "train_last": {k: v for k, v in grpo_rows[-1].items() if isinstance(v, (int, float))}}
        shutil.rmtree(Path(final).parent, ignore_errors=True)  # ~0.5 GB per run; the numbers are in the report
        save()
    report["wall_seconds"] = time.perf_counter() - t0
    save()
    rows = [[name, r["probe"]["overall"]["n"], fmt(r["probe"]["both_orders"]), fmt(r["probe"]["overall"]), f"{r['probe']['share_a']:.2f}",
             fmt(r["task"]["contains"]), fmt(r["task"]["exact"]), f"{r['train_seconds']:.0f}"] for name, r in report["rows"].items()]
    print_table(f"ablation on {args.model}: {args.steps} GRPO steps each, held-out split (95% Wilson CIs)",
                ["run", "n", "probe (both orders)", "probe (raw)", "share A", "task reward (contains)", "task exact", "train s"], rows)
    print(json.dumps(report["comparison"]), flush=True)
    return report


if __name__ == "__main__":
    main()
