"""`ctxdata export`: a pair folder as the selection task for verl / EasyR1 / SkyRL / TRL / the paper's trainers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.cli._options import TokenizerOpt
from ctxdata.export import TARGETS
from ctxdata.tokens import DEFAULT_TOKENIZER

_FORMATS = "\n\n".join(f"- {name}: --out {t.out_help}; format: {t.docs}" for name, t in TARGETS.items())


def export(
    pairs: Annotated[
        Path, typer.Argument(help="A pair folder written by ctxdata (build-coding, build-vision, synth task).")
    ],
    to: Annotated[str, typer.Option("--to", help=f"Target trainer: {' | '.join(TARGETS)}.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="; ".join(f"{n}: {t.out_help}" for n, t in TARGETS.items()) + ".")
    ],
    max_prompt_length: Annotated[
        Optional[int],
        typer.Option(
            "--max-prompt-length",
            min=64,
            help="Fit every prompt under N tokens (both contexts trimmed alike) or reject it;"
            " default: keep all whole and report the length to set.",
        ),
    ] = None,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    image_tokens: Annotated[
        Optional[int],
        typer.Option(
            "--image-tokens",
            min=0,
            help="Tokens one image costs in your VLM (at your resize settings); added per image to vision prompts.",
        ),
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split name written into extra_info (verl, skyrl).")] = "train",
    data_source: Annotated[
        str, typer.Option("--data-source", help="verl/skyrl `data_source`.")
    ] = "ctxdata/contrastive-context",
    system_prompt: Annotated[
        bool, typer.Option("--system-prompt", help="Prepend ctxdata's system message (verl, skyrl, trl).")
    ] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Export only the first N pairs.")] = None,
) -> None:
    """Export pairs as the selection task (ground truth = the anchor's letter), with the trainer's scorer beside them.

    Prompt lengths are counted with --tokenizer under the chat template the trainer applies; the
    summary gives the max and p95 and the exact settings to train with (also in OUT-STEM.export.json next to the data).

    Examples:

        ctxdata export pairs/ --to verl --out data/train.parquet --max-prompt-length 2048

        ctxdata export vision-pairs/ --to easyr1 --out easyr1/train.jsonl

        ctxdata export pairs/ --to contextrl-paper --out paper-rows/
    """
    from ctxdata.console import console, print_table
    from ctxdata.export import ExportConfig, export_pairs

    config = ExportConfig(
        target=to,
        split=split,
        data_source=data_source,
        system_prompt=system_prompt,
        limit=limit,
        tokenizer=tokenizer,
        max_prompt_length=max_prompt_length,
        image_tokens=image_tokens,
    )
    report = export_pairs(pairs, out, config)
    lengths = report["prompt_tokens"]
    rows = [
        ["pairs read", report["inputs"]],
        ["rows written", report["exported"]],
        ["rows trimmed to fit", report["trimmed_rows"]],
    ]
    rows += [[f"rejected: {reason}", n] for reason, n in report["rejected"].items()]
    rows += [
        [f"prompt tokens ({report['tokenizer']})", f"max {lengths['max']}, p95 {lengths['p95']}"],
        ["max_prompt_length to set", report["max_prompt_length"]],
    ]
    rows += [[what, path] for what, path in report["files"].items()] + [["report", report["report_file"]]]
    print_table(f"ctxdata export --to {to}", ["", "value"], rows)
    if "image_tokens_note" in report:
        console.print(report["image_tokens_note"])
    console.print("train with:\n  " + "\n  ".join(report["settings"]))


export.__doc__ = (export.__doc__ or "") + "\n    Formats:\n\n" + _FORMATS


def register(app: typer.Typer) -> None:
    app.command("export")(export)
