"""`ctxdata probe`: the contrastive context probe (selection accuracy from logits and/or generation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.cli._options import PairsDirs


def probe(
    pairs: PairsDirs,
    model: Annotated[list[str], typer.Option("--model", help="Model(s) to compare: a local folder, `smollm2-135m` or `tiny-llama`. Repeat for several.")],
    mode: Annotated[str, typer.Option("--mode", help="logits (Delta at the answer position), generate (greedy letter) or both.")] = "logits",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Probe only the first N pairs.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Pairs per forward pass (left padding).")] = 8,
    max_prompt_tokens: Annotated[int, typer.Option("--max-prompt-tokens", min=8, help="Skip (and count) pairs whose prompt is longer.")] = 4096,
    prefill: Annotated[str, typer.Option("--prefill", help='Text after the generation prompt, e.g. "Context", so the next token is the letter.')] = "",
    both_orders: Annotated[bool, typer.Option("--both-orders", help="Also read each pair with A and B swapped and score the order-averaged Delta (a letter preference cancels).")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Per-pair results JSONL; the summary goes to <stem>.summary.json.")] = None,
) -> None:
    """Probe models on pairs: accuracy at choosing the anchor context, with 95% Wilson CIs, by method and domain.

    Delta = log p(correct letter) - log p(wrong letter) at the answer position (max over " A"/"A");
    a pair is right iff Delta > 0. `--mode generate` parses the first A/B of a greedy completion.
    `--both-orders` adds the position-debiased accuracy: right iff (Delta + Delta with A/B swapped) / 2 > 0.

    Examples:

        ctxdata probe --pairs pairs/ --model smollm2-135m --out probe.jsonl

        ctxdata probe --pairs coding/ --pairs vision/ --model base/ --model trained/ --mode both --limit 200
    """
    from ctxdata.console import print_table, progress
    from ctxdata.train.probe import ProbeConfig, comparison_tables, run_probe

    config = ProbeConfig(mode=mode, batch_size=batch_size, limit=limit, max_prompt_tokens=max_prompt_tokens, prefill=prefill,
                         both_orders=both_orders)
    with progress() as bar:
        tasks: dict[str, int] = {}

        def on_batch(spec: str, done: int, total: int) -> None:
            if spec not in tasks:
                tasks[spec] = bar.add_task(f"probing {spec}", total=total)
            bar.update(tasks[spec], completed=done)

        summaries = run_probe(pairs, model, config, out=out, on_batch=on_batch)
    for title, columns, rows in comparison_tables(summaries):
        print_table(title, columns, rows)
    if out is not None:
        print_table("written", ["", "path"], [["per-pair results", out], ["summary", out.with_name(out.stem + ".summary.json")]])


def register(app: typer.Typer) -> None:
    app.command("probe")(probe)
