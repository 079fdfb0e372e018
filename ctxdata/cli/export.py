"""`ctxdata export`: a pair folder as the selection task in verl / EasyR1 / SkyRL / TRL format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def export(
    pairs: Annotated[Path, typer.Argument(help="A pair folder written by ctxdata (build-coding, build-vision, synth task).")],
    to: Annotated[str, typer.Option("--to", help="Target trainer: verl | easyr1 | skyrl | trl.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="verl: a .parquet file; easyr1/skyrl: a .jsonl file; trl: a folder.")],
    split: Annotated[str, typer.Option("--split", help="Split name written into extra_info (verl, skyrl).")] = "train",
    data_source: Annotated[str, typer.Option("--data-source", help="verl/skyrl `data_source` (routes the reward function).")] = "ctxdata/contrastive-context",
    system_prompt: Annotated[bool, typer.Option("--system-prompt", help="Prepend ctxdata's system message.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Export only the first N pairs.")] = None,
) -> None:
    """Export pairs as the selection task (ground truth = the anchor's letter) for an RL trainer.

    Formats follow each consumer's documented schema:

    - verl: https://verl.readthedocs.io/en/latest/preparation/prepare_data.html (Parquet; images as {bytes, path} + `<image>` placeholders)

    - EasyR1: https://github.com/hiyouga/EasyR1/blob/main/verl/utils/dataset.py (RLHFDataset; JSONL problem/answer/images; set data.image_dir to the output folder)

    - SkyRL: https://skyrl.readthedocs.io/en/latest/datasets/dataset-preparation.html (JSONL prompt/correct_answer/reward_spec; text only)

    - TRL: https://huggingface.co/docs/trl/main/en/dataset_formats (save_to_disk folder: conversational prompt, answer, images)

    Examples:

        ctxdata export pairs/ --to verl --out data/train.parquet

        ctxdata export vision-pairs/ --to easyr1 --out easyr1/train.jsonl

        ctxdata export pairs/ --to trl --out trl-pairs/
    """
    from ctxdata.console import print_table
    from ctxdata.export import ExportConfig, export_pairs

    config = ExportConfig(target=to, split=split, data_source=data_source, system_prompt=system_prompt, limit=limit)
    stats = export_pairs(pairs, out, config)
    rows = [["pairs read", stats["inputs"]], ["rows exported", stats["exported"]]]
    rows += [[f"skipped: {reason}", n] for reason, n in stats["skipped"].items()]
    rows += [["written", stats["out"]], ["format", stats["docs"]]]
    print_table(f"ctxdata export --to {to}", ["", "value"], rows)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
