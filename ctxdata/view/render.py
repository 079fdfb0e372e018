"""One self-contained static HTML page to review pairs and take the probe yourself.

Everything is server-side rendered with `html.escape` (trajectories hold `<`, `&` and scripts);
images are inlined as data URLs; the page's Content-Security-Policy allows no network at all and
only the page's own script (by hash), so nothing injected could run or load.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from ctxdata.io import iter_rows, read_report
from ctxdata.pipeline import stage_label
from ctxdata.view.images import difference_heatmap, image_data_url

STEP_HEADER = re.compile(r"^## Step (\d+)\s*$", re.M)
MASK = "[PATCH MASKED]"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def split_steps(text: str | None) -> list[tuple[str, str]]:
    """A rendered trajectory -> [(title, body)] at its `## Step N` lines (a preamble comes first)."""
    text = text or ""
    marks = list(STEP_HEADER.finditer(text))
    steps = []
    head = text[: marks[0].start()] if marks else text
    if head.strip():
        steps.append(("Context", head.strip("\n")))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        steps.append((f"Step {m.group(1)}", text[m.end() : end].strip("\n")))
    return steps


def first_divergent_step(a: list[tuple[str, str]], b: list[tuple[str, str]]) -> int | None:
    """Index of the first step whose text differs (or that only one trajectory has)."""
    for i in range(max(len(a), len(b))):
        if i >= len(a) or i >= len(b) or a[i] != b[i]:
            return i
    return None


def _line_html(line: str, changed: bool) -> str:
    body = esc(line).replace(esc(MASK), f'<mark class="masked">{esc(MASK)}</mark>')
    cls = ["ln"] + (["changed"] if changed else [])
    if line.startswith("$ "):
        cls.append("cmd")
    exit_code = re.fullmatch(r"\(exit (-?\d+)\)", line.strip())
    if exit_code:
        cls.append("exit-ok" if exit_code.group(1) == "0" else "exit-bad")
    return f'<span class="{" ".join(cls)}">{body}</span>'


def trajectory_html(steps: list[tuple[str, str]], other: list[tuple[str, str]], divergent: int | None) -> str:
    parts = []
    for i, (title, body) in enumerate(steps):
        is_div = i == divergent
        other_lines = set(other[i][1].splitlines()) if is_div and i < len(other) else set()
        lines = "".join(_line_html(line, is_div and line not in other_lines) for line in body.splitlines())
        badge = ' <span class="div-badge">first divergent step</span>' if is_div else ""
        parts.append(f'<section class="step{" divergent" if is_div else ""}"><h4>{esc(title)}{badge}</h4><pre>{lines}</pre></section>')
    return "".join(parts) or '<p class="empty">(empty context)</p>'


def diff_html(patch: str) -> str:
    def cls(line: str) -> str:
        if line.startswith(("+++", "---")):
            return "d-file"
        return {"+": "d-add", "-": "d-del", "@": "d-hunk"}.get(line[:1], "d-ctx")

    return "<pre class=\"diff\">" + "".join(f'<span class="{cls(l)}">{esc(l)}</span>' for l in patch.splitlines()) + "</pre>"


def _checks_html(checks: list[dict[str, Any]]) -> str:
    items = []
    for c in checks:
        score = "" if c.get("score") is None else f" {c['score']:.3g}"
        title = esc(c.get("detail", ""))
        items.append(f'<span class="check {"pass" if c.get("passed") else "fail"}" title="{title}">{esc(c["name"])}{esc(score)}</span>')
    return "".join(items) or '<span class="check none">no checks</span>'


def _figure(slot: str, item: tuple[str, tuple[int, int]] | None) -> str:
    if item is None:
        return f'<figure><figcaption>Context {slot}</figcaption><p class="empty">(no image)</p></figure>'
    url, (w, h) = item
    return f'<figure><figcaption>Context {slot} ({w}x{h})</figcaption><img alt="context {slot}" src="{url}"></figure>'


def _contexts_html(row: dict[str, Any]) -> str:
    if row["domain"] == "vision":
        a, b = image_data_url(row["context_a_image"]), image_data_url(row["context_b_image"])
        figs = "".join(_figure(slot, item) for slot, item in (("A", a), ("B", b)))
        heat = ""
        if a and b:
            url, changed = difference_heatmap(row["context_a_image"], row["context_b_image"])
            heat = (
                f'<figure class="heatmap" hidden><figcaption>|A - B| heat map ({changed:.1%} of pixels changed)</figcaption>'
                f'<img alt="difference heat map" src="{url}"></figure>'
            )
        button = '<button type="button" data-action="heatmap">Difference heat map</button>' if heat else ""
        return f'<div class="toolbar">{button}</div><div class="images">{figs}</div>{heat}'
    steps_a, steps_b = split_steps(row["context_a_text"]), split_steps(row["context_b_text"])
    div = first_divergent_step(steps_a, steps_b)
    if div is None:
        note = "no divergent step: the two trajectories are identical"
    else:
        note = f"first divergent step: {esc((steps_a if div < len(steps_a) else steps_b)[div][0])}"
    return (
        f'<p class="divnote">{note}</p><div class="trajs">'
        f'<div class="traj" data-slot="A"><h3>Context A</h3>{trajectory_html(steps_a, steps_b, div)}</div>'
        f'<div class="traj" data-slot="B"><h3>Context B</h3>{trajectory_html(steps_b, steps_a, div)}</div></div>'
    )


def pair_html(row: dict[str, Any], index: int) -> str:
    """One pair: header, query, answer, the probe buttons (label hidden), the two contexts."""
    checks = json.loads(row["checks"] or "[]")
    failed = [c["name"] for c in checks if not c.get("passed")]
    answer = diff_html(row["answer"]) if row["domain"] == "coding" else f'<p class="answer-text">{esc(row["answer"])}</p>'
    confounder = diff_html(row["answer_confounder"]) if row["domain"] == "coding" else f'<p>{esc(row["answer_confounder"])}</p>'
    meta = json.dumps(json.loads(row["meta"] or "{}"), indent=2, sort_keys=True)
    return f"""<article class="pair" id="pair-{index}" data-domain="{esc(row['domain'])}" data-method="{esc(row['method'])}" data-failed="{1 if failed else 0}" data-label="{esc(row['label'])}">
<header><span class="idx">#{index + 1}</span> <code>{esc(row['pair_id'])}</code> <span class="method">{esc(row['method'])}</span>
<span class="domain">{esc(row['domain'])}</span> <span class="sim">similarity {row['similarity']:.3f}</span> <span class="checks">{_checks_html(checks)}</span></header>
<div class="qa"><h3>Query</h3><div class="query">{esc(row['query'])}</div><h3>Answer{' (the masked patch)' if row['domain'] == 'coding' else ''}</h3>{answer}</div>
<div class="probe">Which context supports the answer?
<button type="button" data-action="answer" data-choice="A">A</button> <button type="button" data-action="answer" data-choice="B">B</button>
<button type="button" data-action="reveal" class="reveal">Show label</button> <span class="verdict" aria-live="polite"></span></div>
<div class="solution" hidden><p>Label: <b class="label-value">{esc(row['label'])}</b> supports the answer; the other context supports:</p>{confounder}
<details><summary>meta</summary><pre>{esc(meta)}</pre></details></div>
{_contexts_html(row)}
</article>"""


def select_rows(out: str | Path, *, limit: int | None = None, methods: Iterable[str] | None = None, failed_checks: bool = False) -> list[dict[str, Any]]:
    """Rows of `out` that match the CLI filters, in shard order, at most `limit`."""
    wanted = set(methods or [])
    rows = []
    for row in iter_rows(out):
        if wanted and row["method"] not in wanted:
            continue
        if failed_checks and all(c.get("passed") for c in json.loads(row["checks"] or "[]")):
            continue
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows


def summary_html(report: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def table(title: str, items: Iterable[tuple[Any, Any]]) -> str:
        body = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in items)
        return f"<table><caption>{esc(title)}</caption>{body or '<tr><td>none</td><td></td></tr>'}</table>"

    stages = [(stage_label(s), f"{s['in']} -> {s['out']}") for s in report.get("stages", [])]
    totals = [("inputs", report.get("inputs", 0)), ("inputs rejected", report.get("inputs_rejected", 0)),
              ("candidates rejected", report.get("candidates_rejected", 0)), ("pairs", report.get("pairs", 0)),
              ("labels A/B", f"{report.get('labels', {}).get('A', 0)}/{report.get('labels', {}).get('B', 0)}"),
              ("in this page", len(rows))]
    return "".join([
        table("build", totals), table("stages (in -> out)", stages),
        table("pairs by method", report.get("methods", {}).items()), table("rejected by reason", report.get("rejected", {}).items()),
        audit_html(report.get("audit")),
    ])


def audit_html(audit: dict[str, Any] | None) -> str:
    """The shortcut audit of the whole folder (docs/audit.md): each predictor's accuracy [95% CI] by method."""
    from ctxdata.audit.report import audit_notes, audit_tables

    if not audit:
        return ""
    parts = []
    for title, columns, rows in audit_tables(audit):
        head = "".join(f"<th>{esc(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        parts.append(f'<table class="audit"><caption>{esc(title)}</caption><tr>{head}</tr>{body}</table>')
    parts.append('<ul class="audit-notes">' + "".join(f"<li>{esc(n)}</li>" for n in audit_notes(audit)) + "</ul>")
    return "".join(parts)


def _asset(name: str) -> str:
    return resources.files("ctxdata.view").joinpath(name).read_text(encoding="utf-8")


def render_page(out: str | Path, *, limit: int | None = None, methods: Iterable[str] | None = None, failed_checks: bool = False) -> tuple[str, int]:
    """(the HTML page, number of pairs in it)."""
    report = read_report(out)
    rows = select_rows(out, limit=limit, methods=methods, failed_checks=failed_checks)
    script = _asset("viewer.js")
    if "</script" in script.lower():
        raise AssertionError("viewer.js must not contain a closing script tag")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    method_counts = Counter(r["method"] for r in rows)
    options = "".join(f'<option value="{esc(m)}">{esc(m)} ({n})</option>' for m, n in sorted(method_counts.items()))
    parts = {
        "TITLE": esc(f"ctxdata pairs: {Path(out).name}"),
        "CSP": f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'",
        "STYLE": _asset("viewer.css"),
        "SCRIPT": script,
        "SUMMARY": summary_html(report, rows),
        "METHOD_OPTIONS": options,
        "PAIRS": "\n".join(pair_html(r, i) for i, r in enumerate(rows)) or '<p class="empty">No pairs match these filters.</p>',
        "COMMAND": esc(report.get("command", "")),
    }
    page = re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: parts[m.group(1)], _asset("page.html"))  # one pass: data is never rescanned
    return page, len(rows)


def write_viewer(out: str | Path, html_path: str | Path, **filters: Any) -> int:
    """Write the page to `html_path`; returns how many pairs it shows."""
    from ctxdata.io import atomic_write_text

    page, n = render_page(out, **filters)
    atomic_write_text(Path(html_path), page)
    return n
