"""Ablation: grpo vs contextrl vs da-sft vs da-rl on SmolLM2-135M with synthetic short tool traces.

Every objective starts from the same model, trains with the same seed and the same GRPO step
budget on the same data (`ctxdata synth task`: train pairs + task QA), and is then measured on the
HELD-OUT split:

* probe accuracy: the contrastive context probe (`ctxdata.train.probe`, Delta > 0 at the answer
  position) on the held-out pairs, with a 95% Wilson CI;
* task reward: greedy answers to the held-out task QA, scored two ways, each with a 95% Wilson CI:
  exact match of the first line after normalisation (`synth_task.score_answer`), and the training
  reward itself (`normalized_contains`: the answer occurs in the completion).

The untrained model is measured in the same run as the reference row. The paper's claim is that
contextrl raises probe accuracy above grpo and da-rl without lowering task reward; this script
reports what it measures, whatever it shows.

    python benchmarks/ablation.py --quick                 # ~10-15 min on 2 free cores
    python benchmarks/ablation.py --steps 30 --n 240      # a longer run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OBJECTIVES = ("grpo", "contextrl", "da-sft", "da-rl")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="start model (alias or local folder)")
    ap.add_argument("--steps", type=int, default=12, help="GRPO optimizer steps per objective (same budget for all)")
    ap.add_argument("--n", type=int, default=120, help="synthetic pairs (train + held-out)")
    ap.add_argument("--heldout", type=float, default=0.25, help="held-out fraction")
    ap.add_argument("--filler", type=int, default=1, help="non-decisive commands per trace (shorter = faster)")
    ap.add_argument("--lam", type=float, default=0.1, help="contextrl L_CA weight (paper 0.001-0.01 over far more steps)")
    ap.add_argument("--lr", type=float, default=1e-5, help="learning rate (all objectives)")
    ap.add_argument("--completion-length", type=int, default=8, help="max_completion_length (training and task evaluation)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the GRPO rollouts")
    ap.add_argument("--sft-steps", type=int, default=4, help="da-sft supervised steps before GRPO")
    ap.add_argument("--eval-limit", type=int, default=30, help="held-out pairs / task items evaluated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--work", default="/tmp/ctxdata-ablation", help="scratch folder for data and runs")
    ap.add_argument("--out", default="benchmarks/results/ablation.json")
    ap.add_argument("--quick", action="store_true", help="--steps 6 --n 80 --eval-limit 20")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.n, args.eval_limit = 6, 80, 20
    return args


def build_data(args) -> Path:
    from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task

    data = Path(args.work) / "data"
    write_synth_task(SynthTaskConfig(n=args.n, seed=args.seed, heldout=args.heldout, filler=args.filler), data, overwrite=True)
    return data


def train(objective: str, data: Path, args) -> str:
    from ctxdata.train.config import TrainConfig
    from ctxdata.train.grpo import train_native

    out = Path(args.work) / "runs" / objective
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(
        model=args.model, output_dir=str(out), task_data=str(data / "task.jsonl"), pairs=[str(data)], objective=objective,
        num_generations=4, per_device_train_batch_size=8, max_completion_length=args.completion_length, max_prompt_length=512,
        temperature=args.temperature, learning_rate=args.lr, max_steps=args.steps, seed=args.seed, ca_batch_size=4,
        lam=args.lam if objective == "contextrl" else None, sft_steps=args.sft_steps if objective == "da-sft" else 0,
        sft_batch_size=4, lr_scheduler_type="constant",
    )
    result = train_native(cfg, on_step=lambda row: print(f"  [{objective}] {row['phase']} step {row['step']}: "
                                                          + ", ".join(f"{k}={row[k]:.3f}" for k in ("loss", "reward_mean", "loss_ca", "loss_sft") if isinstance(row.get(k), float)), flush=True))
    return str(Path(result["output_dir"]) / "final")


def task_reward(model, items, max_new_tokens: int, batch_size: int = 8) -> dict:
    """Greedy answers to task QA items, scored exact (`score_answer`) and by `normalized_contains`; Wilson CIs."""
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
    return {**accuracy_stats(exact), "contains": accuracy_stats(contains)}


def evaluate(spec: str, data: Path, args) -> dict:
    from ctxdata.train.probe import ProbeConfig, load_probe_model, probe_rows, summarize
    from ctxdata.train.probe import load_pairs
    from ctxdata.train.synth_task import read_task

    model = load_probe_model(spec)
    rows = load_pairs([data / "heldout"], args.eval_limit)
    results, skipped = probe_rows(model, rows, ProbeConfig(batch_size=8))
    items = read_task(data / "task-heldout.jsonl")[: args.eval_limit]
    return {"probe": summarize(results, skipped), "task": task_reward(model, items, args.completion_length)}


def fmt(stats: dict) -> str:
    return f"{stats['accuracy']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}] (n={stats['n']})"


def main(argv=None) -> dict:
    import torch

    from ctxdata.console import print_table

    args = parse_args(argv)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    data = build_data(args)
    report = {"config": vars(args), "rows": {}}
    print("evaluating the untrained model", flush=True)
    report["rows"]["base (untrained)"] = {**evaluate(args.model, data, args), "train_seconds": 0.0}
    for objective in [o for o in args.objectives.split(",") if o]:
        print(f"training {objective}", flush=True)
        t = time.perf_counter()
        final = train(objective, data, args)
        seconds = time.perf_counter() - t
        report["rows"][objective] = {**evaluate(final, data, args), "train_seconds": seconds}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")  # partial results survive
    report["wall_seconds"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    rows = [[name, fmt(r["probe"]["overall"]), f"{r['probe']['mean_delta']:+.3f}", fmt(r["task"]), fmt(r["task"]["contains"]), f"{r['train_seconds']:.0f}"]
            for name, r in report["rows"].items()]
    print_table(f"ablation on {args.model}: {args.steps} GRPO steps each, held-out split (95% Wilson CIs)",
                ["objective", "probe accuracy", "mean Delta", "task reward (exact)", "task reward (contains)", "train s"], rows)
    return report


if __name__ == "__main__":
    main()
