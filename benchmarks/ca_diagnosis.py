"""Why does L_CA learn slowly? Measurements on SmolLM2-135M and the synthetic short-trace pairs.

Three parts, each printing its numbers (and writing them to --out):

* base: the untrained model on the held-out pairs, per reply prefill: probe accuracy, the share of
  pairs on which it answers "A", the probability mass on the scored letter variants, and how often
  its choice follows the CONTENT (the same context chosen when A and B are swapped) or the LETTER
  (the same letter chosen in both orders);
* grad: at the untrained model, the gradient norms of L_GRPO and of L_CA on the same step, and
  their ratio (what lam has to bridge before grad-norm clipping of the sum);
* train: L_CA-only runs (no GRPO, so nothing else moves the letter logits) for a grid of
  (lr, both orders, L_CA form, easy task): per step the batch's CA accuracy, the share of pairs
  the paper's clamp traps (Delta < -c, zero gradient), the share answered "A"; held-out probe
  accuracy before and after.

    python benchmarks/ca_diagnosis.py --parts base,grad,train --steps 30
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


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--parts", default="base,grad,train")
    ap.add_argument("--n", type=int, default=200, help="synthetic pairs (train + held-out)")
    ap.add_argument("--heldout", type=float, default=0.4)
    ap.add_argument("--filler", type=int, default=1)
    ap.add_argument("--eval", type=int, default=40, help="held-out pairs probed")
    ap.add_argument("--steps", type=int, default=30, help="L_CA-only optimizer steps per grid point")
    ap.add_argument("--batch", type=int, default=8, help="pairs per L_CA step")
    ap.add_argument("--prefill", default="Context")
    ap.add_argument("--completion-length", type=int, default=8, help="GRPO completion tokens in the grad part (the quickstart's 8)")
    ap.add_argument("--grid", default="1e-5:one:paper:hard,1e-5:both:paper:hard,5e-5:both:paper:hard,5e-5:one:paper:hard",
                    help="comma-separated lr:one|both:paper|upper-clip:hard|easy")
    ap.add_argument("--work", default="/tmp/ctxdata-ca-diagnosis")
    ap.add_argument("--out", default="benchmarks/results/ca_diagnosis.json")
    return ap.parse_args(argv)


def build_data(args, easy: bool) -> Path:
    from ctxdata.train.synth_task import SynthTaskConfig, write_synth_task

    data = Path(args.work) / ("easy" if easy else "hard")
    if not (data / "task-heldout.jsonl").exists():
        write_synth_task(SynthTaskConfig(n=args.n, seed=0, heldout=args.heldout, filler=args.filler, easy=easy), data, overwrite=True)
    return data


def read_choices(pm, rows, prefill: str) -> dict:
    """Probe `rows` and their A/B-swapped twins: accuracy, "A" share, letter mass, content- vs letter-following."""
    import torch

    from ctxdata.train.data import swap_contexts
    from ctxdata.train.losses import selection_logit_delta
    from ctxdata.train.probe import ProbeConfig, accuracy_stats
    from ctxdata.train.prompts import wrong_label

    cfg = ProbeConfig(batch_size=8, prefill=prefill)
    ids = [i for v in pm.letter_ids.values() for i in v]
    picks: dict[str, list[str]] = {"stored": [], "swapped": []}
    correct: dict[str, list[bool]] = {"stored": [], "swapped": []}
    mass, top = [], None
    for order, batch_rows in (("stored", rows), ("swapped", [swap_contexts(r) for r in rows])):
        for start in range(0, len(batch_rows), 8):
            chunk = batch_rows[start:start + 8]
            logits = pm.answer_logits(chunk, cfg)  # (B, V)
            delta = selection_logit_delta(logits, [pm.letter_ids[r["label"]] for r in chunk],
                                          [pm.letter_ids[wrong_label(r["label"])] for r in chunk])
            correct[order] += (delta > 0).tolist()
            picks[order] += [r["label"] if d > 0 else wrong_label(r["label"]) for r, d in zip(chunk, delta.tolist())]
            probs = torch.softmax(logits, -1)
            if order == "stored":
                mass += probs[:, ids].sum(-1).tolist()
                if top is None:
                    top = probs[0].topk(5)
    n = len(rows)
    return {"accuracy": accuracy_stats(correct["stored"]), "accuracy_swapped": accuracy_stats(correct["swapped"]),
            "share_A": picks["stored"].count("A") / n,
            "same_context_both_orders": sum(a == b for a, b in zip(correct["stored"], correct["swapped"])) / n,
            "same_letter_both_orders": sum(a == b for a, b in zip(picks["stored"], picks["swapped"])) / n,
            "letter_mass_mean": sum(mass) / n,
            "top5_next_tokens": [[pm.tokenizer.decode([int(i)]), round(float(p), 4)] for p, i in zip(top.values, top.indices)]}


def part_base(args, report: dict) -> None:
    from ctxdata.train.probe import load_pairs, load_probe_model

    pm = load_probe_model(args.model)
    for easy, prefill in ((False, ""), (False, "Context"), (False, "The answer is"), (True, "Context")):
        rows = load_pairs([build_data(args, easy) / "heldout"], args.eval)
        key = f"{'easy' if easy else 'hard'} prefill={prefill!r}"
        b = report["base"][key] = read_choices(pm, rows, prefill)
        print(f"base {key}: acc {b['accuracy']['accuracy']:.3f} (swapped {b['accuracy_swapped']['accuracy']:.3f}), "
              f"share A {b['share_A']:.2f}, same letter in both orders {b['same_letter_both_orders']:.2f}, "
              f"letter mass {b['letter_mass_mean']:.3f}, top5 {b['top5_next_tokens']}", flush=True)


def _grad_norm(model) -> float:
    import torch

    return float(torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters() if p.grad is not None)))


def part_grad(args, report: dict) -> None:
    """||grad L_GRPO|| and ||grad L_CA|| at the untrained model on the same 3 steps' batches."""
    import random

    from ctxdata.train.config import TrainConfig
    from ctxdata.train.grpo import context_awareness_step, generate_batch, grpo_loss_backward
    from ctxdata.train.setup import prepare, step_seed

    data = build_data(args, False)
    cfg = TrainConfig(model=args.model, output_dir=str(Path(args.work) / "grad"), task_data=str(data / "task.jsonl"), pairs=[str(data)],
                      objective="contextrl", num_generations=4, per_device_train_batch_size=8, max_completion_length=args.completion_length,
                      max_prompt_length=512, ca_batch_size=args.batch, ca_prefill=args.prefill, ca_both_orders=True)
    setup = prepare(cfg)
    rows = []
    for step in range(3):
        rng = random.Random(step_seed(0, step, "prompts"))
        batch = generate_batch(setup, setup.draw_prompts(rng), step)
        setup.model.zero_grad(set_to_none=True)
        grpo_loss_backward(setup, batch["tensors"])
        g_grpo = _grad_norm(setup.model)
        setup.model.zero_grad(set_to_none=True)
        loss_ca, delta = context_awareness_step(setup.model, setup.processing_class, setup.pair_sampler.batch(step), setup.letter_ids, cfg)
        loss_ca.backward()
        g_ca = _grad_norm(setup.model)
        setup.model.zero_grad(set_to_none=True)
        ratio = g_ca / g_grpo if g_grpo > 0 else None  # None: GRPO gave no gradient at all (every group zero-variance)
        rows.append({"step": step, "grad_norm_grpo": g_grpo, "grad_norm_ca": g_ca, "ratio_ca_over_grpo": ratio,
                     "frac_zero_variance": batch["stats"]["frac_zero_variance"], "reward_mean": batch["stats"]["reward_mean"],
                     "loss_ca": float(loss_ca.detach())})
        print(f"grad step {step}: ||g_GRPO|| {g_grpo:.3f}  ||g_CA|| {g_ca:.3f}  ratio {'-' if ratio is None else f'{ratio:.2f}'}  "
              f"zero-variance groups {batch['stats']['frac_zero_variance']:.2f}", flush=True)
    report["grad"] = rows


def part_train(args, report: dict) -> None:
    """L_CA-only AdamW runs over the grid; held-out probe accuracy before/after."""
    import torch

    from ctxdata.train.config import TrainConfig
    from ctxdata.train.data import PairSampler, load_selection_examples
    from ctxdata.train.grpo import context_awareness_step
    from ctxdata.train.losses import letter_token_ids
    from ctxdata.train.probe import ProbeModel, load_pairs
    from ctxdata.train.setup import load_policy

    for point in [p for p in args.grid.split(",") if p]:
        lr, order, form, variant = point.split(":")
        data = build_data(args, variant == "easy")
        cfg = TrainConfig(model=args.model, output_dir=str(Path(args.work) / "lca"), task_data=str(data / "task.jsonl"),
                          pairs=[str(data)], ca_batch_size=args.batch, ca_prefill=args.prefill, ca_loss=form,
                          ca_both_orders=order == "both", max_prompt_length=512)
        torch.manual_seed(0)
        model, proc, tok = load_policy(args.model)
        sampler = PairSampler(load_selection_examples([data]), args.batch, seed=0, both_orders=order == "both")
        letters = letter_token_ids(tok)
        optim = torch.optim.AdamW(model.parameters(), lr=float(lr), weight_decay=0.0)
        held = load_pairs([data / "heldout"], args.eval)

        def held_out() -> dict:
            pm = ProbeModel(model, tok, name="lca")
            out = read_choices(pm, held, args.prefill)
            model.train()
            return {k: out[k] for k in ("accuracy", "share_A", "same_context_both_orders", "letter_mass_mean")}

        t0 = time.perf_counter()
        before = held_out()
        steps = []
        for step in range(args.steps):
            batch = sampler.batch(step)
            loss, delta = context_awareness_step(model, proc, batch, letters, cfg)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
            optim.step()
            picked_a = [(d > 0) == (ex.correct == "A") for d, ex in zip(delta.tolist(), batch)]
            steps.append({"step": step + 1, "loss_ca": float(loss.detach()), "ca_accuracy": float((delta > 0).float().mean()),
                          "trapped": float((delta < -cfg.ca_clip).float().mean()), "saturated": float((delta > cfg.ca_clip).float().mean()),
                          "share_A": sum(picked_a) / len(batch), "grad_norm": gnorm, "mean_abs_delta": float(delta.abs().mean())})
            s = steps[-1]
            print(f"  [{point}] step {step + 1}: L_CA {s['loss_ca']:.3f} acc {s['ca_accuracy']:.2f} trapped {s['trapped']:.2f} "
                  f"A-share {s['share_A']:.2f} |Delta| {s['mean_abs_delta']:.2f} grad {gnorm:.2f}", flush=True)
        after = held_out()
        report["train"][point] = {"before": before, "after": after, "steps": steps, "seconds": time.perf_counter() - t0}
        print(f"train {point}: held-out acc {before['accuracy']['accuracy']:.3f} -> {after['accuracy']['accuracy']:.3f} "
              f"[{after['accuracy']['ci_low']:.3f}, {after['accuracy']['ci_high']:.3f}] (n={after['accuracy']['n']}), "
              f"share A {after['share_A']:.2f}, trapped share over the run {sum(s['trapped'] for s in steps) / len(steps):.3f}", flush=True)
        _write(args, report)


def _write(args, report) -> None:
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def main(argv=None) -> dict:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(1)
    report = {"config": vars(args), "base": {}, "grad": [], "train": {}}
    parts = {"base": part_base, "grad": part_grad, "train": part_train}
    for name in [p for p in args.parts.split(",") if p]:
        t = time.perf_counter()
        parts[name](args, report)
        print(f"part {name}: {time.perf_counter() - t:.0f} s", flush=True)
        _write(args, report)
    return report


if __name__ == "__main__":
    main()
