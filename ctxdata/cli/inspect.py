"""`ctxdata inspect`: print a build's report and a few sample pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def inspect_command(
    out: Annotated[Path, typer.Argument(help="An output folder written by build-coding / build-vision / synth task.")],
    samples: Annotated[int, typer.Option("--samples", "-n", help="How many sample pairs to show.")] = 3,
    method: Annotated[Optional[str], typer.Option("--method", help="Only show pairs of this method.")] = None,
    chars: Annotated[int, typer.Option("--chars", help="Characters shown of each long field.")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
) -> None:
    """Print the report of an output folder and a few sample pairs.

    Examples:

        ctxdata inspect pairs/coding

        ctxdata inspect pairs/coding --samples 1 --method condition:function
    """
    import json

    from rich.panel import Panel

    from ctxdata.console import console, print_report, stdout
    from ctxdata.io import iter_rows, read_report

    report = read_report(out)
    if as_json:
        stdout.print_json(json.dumps(report))
        return
    print_report(report)
    shown = 0
    for row in iter_rows(out):
        if shown >= samples:
            break
        if method and row["method"] != method:
            continue
        shown += 1
        body = [f"[bold]query[/bold]: {_clip(row['query'], chars)}", f"[bold]answer[/bold]: {_clip(row['answer'], chars)}"]
        for slot in ("a", "b"):
            text, image = row[f"context_{slot}_text"], row[f"context_{slot}_image"]
            shown_ctx = _clip(text, chars) if text is not None else f"<image, {len(image['bytes'])} bytes>" if image else "<none>"
            body.append(f"[bold]context {slot.upper()}[/bold]:\n{shown_ctx}")
        checks = ", ".join(f"{c['name']}={'ok' if c['passed'] else 'FAIL'}" for c in json.loads(row["checks"]))
        body.append(f"[bold]label[/bold] {row['label']}   [bold]similarity[/bold] {row['similarity']:.3f}   [bold]checks[/bold] {checks}")
        console.print(Panel("\n".join(body), title=f"{row['pair_id']}  {row['method']}  {row['anchor_id']} vs {row['confounder_id']}", expand=False), markup=True)
    if shown == 0:
        console.print("no pairs to show" + (f" with method {method}" if method else ""))


def _clip(text: str, chars: int) -> str:
    from rich.markup import escape

    text = text if len(text) <= chars else text[:chars] + f" [... {len(text) - chars} more chars]"
    return escape(text)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
