"""`ctxdata push`: an output folder -> a Parquet dataset with a generated card on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def push(
    out: Annotated[Path, typer.Argument(help="A finished ctxdata output folder (with report.json).", exists=True, file_okay=False)],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Target dataset repo, NAMESPACE/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private (ignored when it exists).")] = False,
    revision: Annotated[str, typer.Option("--revision", help="Branch to commit to (created from main when missing).")] = "main",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write the staging folder and print the planned upload; no network.")] = False,
    max_shard_size: Annotated[str, typer.Option("--max-shard-size", help="Largest Parquet shard (in-memory Arrow size), e.g. 500MB, 2GB.")] = "500MB",
    staging: Annotated[Optional[Path], typer.Option("--staging", help="Where the Hub layout is written (default OUT/_hub); reused by a rerun.")] = None,
    license: Annotated[str, typer.Option("--license", help="License id for the card's YAML header (a Hub license id, e.g. cc-by-4.0).")] = "other",
) -> None:
    """Push a pair dataset to the Hugging Face Hub (Parquet shards per domain + dataset card).

    Examples:

        ctxdata push out/coding --repo-id my-org/contextrl-coding --dry-run

        HF_TOKEN=... ctxdata push out/all --repo-id my-org/contextrl-pairs --private --revision v1

    A failed upload keeps the staging folder; rerunning the same command resumes.
    """
    from ctxdata import hub
    from ctxdata.console import info, print_table, progress

    hub.check_repo_id(repo_id)
    hub.parse_size(max_shard_size)
    token = None if dry_run else hub.resolve_token()  # fail before staging, not after
    folder = staging or hub.default_staging(out)
    n_shards = len(hub.read_report(out).get("shards", [])) or None
    with progress(transient=True) as bar:
        task = bar.add_task("staging Parquet shards", total=n_shards)
        staged = hub.stage_for_hub(out, folder, repo_id=repo_id, max_shard_size=max_shard_size, license=license, on_shard=lambda: bar.advance(task))
    if staged.reused:
        info(f"reusing the staged shards in {folder} (the build has not changed)")
    rows = [[p, f"{n:,}"] for p, n in staged.files]
    rows += [[f"config {c.name}", f"{c.num_examples} pairs"] for c in staged.configs]
    print_table(f"Hub layout in {folder}", ["file", "bytes"], rows)
    plan = hub.planned_operations(staged, repo_id, revision=revision, private=private)
    if dry_run:
        print_table(f"dry run: planned operations on {repo_id} (revision {revision}); nothing was sent", ["operation"], [[op] for op in plan])
        return
    url = hub.upload_staged(staged, repo_id, revision=revision, private=private, token=token)
    print_table(f"pushed {repo_id}", ["", "value"], [["repo", f"https://huggingface.co/datasets/{repo_id}"], ["revision", revision], ["commit", url], ["files", len(staged.files)]])


def register(app: typer.Typer) -> None:
    app.command("push")(push)
