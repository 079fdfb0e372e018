"""Seconds per optimizer step: native vs trl backend, and the overhead of L_CA over plain GRPO.

Same config for every run (completions forced to full length with min_new_tokens, so both
backends generate the same number of tokens); the first step is a warm-up and is not timed. Each
step's wall time is the gap between consecutive per-step callbacks (generation + rewards +
forward/backward + L_CA + optimizer).

    python benchmarks/train_step.py                  # SmolLM2-135M (ctxdata.models alias), 4 timed steps
    python benchmarks/train_step.py --model tiny-llama --steps 6

Targets: native <= 1.0x trl; contextrl / grpo <= 1.2x on each backend.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("CTXDATA_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_inputs(root: Path, n_pairs: int = 16) -> tuple[Path, Path]:
    from conftest import make_pair
    from ctxdata.io import PairOutput
    from ctxdata.engine import run_tasks
    from ctxdata.pipeline import RunContext

    trace = "\n".join(f"$ python -m pytest tests/test_{i}.py -q\n{i} passed, 1 failed in 0.{i}s" for i in range(6))
    pairs = [make_pair(query=f"Fix the crash in module {i} when the URL has a trailing dot.", label="AB"[i % 2],
                       context_a_text=trace + f"\nreturncode {i % 2}", context_b_text=trace + f"\nreturncode {1 - i % 2}") for i in range(n_pairs)]
    out = PairOutput(root / "pairs", {"seed": 0}, command="bench")
    run_tasks(out, [pairs], [])
    out.finalize(1, inputs=len(pairs), global_ctx=RunContext())
    task = root / "task.jsonl"
    task.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"How many circles are there in picture {i}? Answer with a number."}], "answer": str(i % 5)}) + "\n" for i in range(16)))
    return root / "pairs", task


def time_run(backend: str, objective: str, args, pairs: Path, task: Path, root: Path) -> list[float]:
    from ctxdata.train.config import TrainConfig

    stamps: list[tuple[float, float]] = []
    cfg = TrainConfig(model=args.model, output_dir=str(root / f"{backend}-{objective}"), task_data=str(task), pairs=[str(pairs)],
                      objective=objective, backend=backend, max_steps=args.steps + 1, num_generations=args.num_generations,
                      per_device_train_batch_size=args.batch_size, max_completion_length=args.completion_length, learning_rate=1e-6,
                      ca_batch_size=args.ca_batch_size, reward_funcs=["numeric"], seed=0,
                      generation_kwargs={"min_new_tokens": args.completion_length})
    if backend == "trl":
        from ctxdata.train.trl_backend import train_trl as run
    else:
        from ctxdata.train.grpo import train_native as run
    run(cfg, on_step=lambda row: stamps.append((time.perf_counter(), time.process_time())))
    wall = [b[0] - a[0] for a, b in zip(stamps, stamps[1:])]  # step 1 (warm-up) is excluded
    cpu = [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]
    return wall, cpu


def token_counts(args, pairs: Path, task: Path) -> tuple[int, int]:
    """Tokens per step through the GRPO forward/backward and through the L_CA forward/backward."""
    from ctxdata.models import resolve_model
    from ctxdata.train.data import load_selection_examples, load_task_data
    from ctxdata.train.grpo import encode_prompts, selection_inputs
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(args.model))
    rows = load_task_data(task)[: args.batch_size // args.num_generations]
    prompt = encode_prompts(tok, [r["prompt"] for r in rows], None, 4096)["attention_mask"].sum().item()
    grpo = prompt * args.num_generations + args.batch_size * args.completion_length
    ca = selection_inputs(tok, load_selection_examples([pairs])[: args.ca_batch_size])["attention_mask"].sum().item()
    return int(grpo), int(ca)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warm-up step)")
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="completions per step")
    parser.add_argument("--ca-batch-size", type=int, default=8, help="pairs per step for L_CA")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps CPU time honest on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs, task = build_inputs(root)
        wall, cpu = {}, {}
        for backend in ("native", "trl"):
            for objective in ("grpo", "contextrl"):
                w, c = time_run(backend, objective, args, pairs, task, root)
                wall[(backend, objective)], cpu[(backend, objective)] = statistics.median(w), statistics.median(c)
                print(f"{backend:6s} {objective:9s} wall {statistics.median(w):.3f} s/step  cpu {statistics.median(c):.3f} s/step  "
                      f"(wall per step: {', '.join(f'{t:.2f}' for t in w)})", flush=True)
        tokens = token_counts(args, pairs, task)
    print(f"\nmodel {args.model}, G={args.num_generations}, {args.batch_size} completions x {args.completion_length} tokens per step "
          f"(prompt+completion tokens {tokens[0]}), L_CA on {args.ca_batch_size} pairs (selection-prompt tokens {tokens[1]}), "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} (medians over {args.steps} timed steps)")
    for name, res in (("wall", wall), ("cpu", cpu)):
        for objective in ("grpo", "contextrl"):
            ratio = res[("native", objective)] / res[("trl", objective)]
            print(f"[{name}] native / trl ({objective}): {ratio:.2f}x   (target <= 1.00x) {'OK' if ratio <= 1.0 else 'MISSED'}")
        for backend in ("native", "trl"):
            ratio = res[(backend, "contextrl")] / res[(backend, "grpo")]
            print(f"[{name}] L_CA overhead on {backend} (contextrl / grpo): {ratio:.2f}x   (target <= 1.20x) {'OK' if ratio <= 1.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
