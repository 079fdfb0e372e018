"""All printing goes through here: rich progress bars for long work, a summary table at the end."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ctxdata.pipeline import stage_label

# Progress and tables go to stderr so stdout stays clean for piping (e.g. `inspect --json`).
console = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def progress_enabled() -> bool:
    return os.environ.get("CTXDATA_PROGRESS", "1") != "0"


@contextmanager
def progress(transient: bool = False) -> Iterator[Progress]:
    """A rich Progress with count, rate and ETA columns (disabled by CTXDATA_PROGRESS=0)."""
    bar = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not progress_enabled(),
    )
    with bar:
        yield bar


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


def error(message: str) -> None:
    console.print(f"[bold red]error:[/bold red] {message}", soft_wrap=True)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[str(c) for c in row])
    return t


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    console.print(table(title, columns, rows))


def print_report(report: dict[str, Any], title: str | None = None) -> None:
    """The summary table every build command ends with: stages, methods, reject reasons."""
    title = title or f"{report.get('command', 'ctxdata')}: {report['pairs']} pairs"
    rows: list[list[Any]] = [["inputs", report["inputs"]]]
    rows.append(["  inputs rejected (unreadable)", report.get("inputs_rejected", 0)])
    if report.get("records_rejected"):
        rows.append(["  records rejected (unusable)", report["records_rejected"]])
    for stage in report["stages"]:
        rows.append([f"stage {stage_label(stage)}", f"{stage['in']} -> {stage['out']}"])
    for key, n in report.get("counters", {}).items():
        rows.append([f"  {key}", n])
    for method, n in report.get("methods", {}).items():
        rows.append([f"pairs {method}", n])
    if report.get("labels"):
        rows.append(["labels A/B", f"{report['labels'].get('A', 0)}/{report['labels'].get('B', 0)}"])
    for reason, n in report.get("rejected", {}).items():
        rows.append([f"rejected: {reason}", n])
    rows.append(["[bold]pairs written", f"[bold]{report['pairs']}"])
    print_table(title, ["", "count"], rows)

