"""`ctxdata view`: one self-contained HTML page to review pairs and take the probe yourself."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def view(
    out: Annotated[Path, typer.Argument(help="A finished ctxdata output folder (with report.json).", exists=True, file_okay=False)],
    html: Annotated[Optional[Path], typer.Option("--html", help="Where to write the page (default OUT/viewer.html).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Show at most N pairs (after filtering).")] = 200,
    method: Annotated[Optional[list[str]], typer.Option("--method", help="Only pairs mined by this method (repeatable), e.g. edit:sdxl.")] = None,
    failed_checks: Annotated[bool, typer.Option("--failed-checks", help="Only pairs with at least one failed check.")] = False,
) -> None:
    """Write a static HTML viewer of a pair dataset (offline: images inlined, no network).

    Examples:

        ctxdata view out/vision --limit 50

        ctxdata view out/coding --method condition:function --html review.html

        ctxdata view out/all --failed-checks
    """
    from ctxdata.console import print_table, progress
    from ctxdata.view.render import write_viewer

    target = html or out / "viewer.html"
    with progress(transient=True) as bar:
        bar.add_task("rendering pairs", total=None)
        n = write_viewer(out, target, limit=limit, methods=method, failed_checks=failed_checks)
    print_table(f"viewer written: {target}", ["", "value"], [
        ["pairs shown", n],
        ["filters", ", ".join(filter(None, [f"method in {method}" if method else "", "failed checks" if failed_checks else "", f"limit {limit}" if limit else ""])) or "none"],
        ["size", f"{target.stat().st_size:,} bytes"],
        ["open", target.resolve().as_uri()],
    ])


def register(app: typer.Typer) -> None:
    app.command("view")(view)
