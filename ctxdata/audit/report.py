"""The audit as tables: one builder, shown by the CLI (rich), the dataset card (Markdown) and the viewer (HTML)."""

from __future__ import annotations

from typing import Any

FAMILY_MARK = {"answer-evidence": "answer-evidence†"}
NOTES = [
    "chance is 0.50; a predictor that abstains (equal scores) counts as half right.",
    "* fitted on the whole folder (corpus IDF or 5-fold cross-validation), so not a per-pair score.",
    "† answer-evidence (the task's intended signal), not a shortcut: how findable the decisive evidence is.",
]


NO_EMBED_NOTE = (
    "fast mode ran no semantic predictor: on real coding runs MiniLM's query-to-best-chunk similarity is the "
    "strongest cue (0.86 on traces-dev when the build does not filter on it, where the lexical ones read 0.66); "
    "`ctxdata audit OUT` adds it, and the default build filters on it (`--shortcut-predictors full`, docs/coding.md)."
)


def audit_notes(audit: dict[str, Any]) -> list[str]:
    """The notes under the tables; a fast-mode coding audit also says what it did not measure."""
    fast_coding = audit.get("mode") == "fast" and "coding" in audit.get("domains", {})
    return NOTES + ([NO_EMBED_NOTE] if fast_coding else [])


def _acc(entry: dict[str, Any] | None, with_n: bool = False) -> str:
    if not entry or entry.get("accuracy") is None:
        return "-"
    return f"{entry['accuracy']:.2f}" + (f" ({entry['n']})" if with_n else "")


def _ci(entry: dict[str, Any] | None) -> str:
    return f"{entry['ci'][0]:.2f}-{entry['ci'][1]:.2f}" if entry and entry.get("ci") else "-"


def audit_tables(audit: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """Per domain: (title, columns, rows) of the overall table, then of the by-method table."""
    tables = []
    for domain, section in audit.get("domains", {}).items():
        best = section.get("best_shortcut")
        title = f"shortcut audit, {domain} ({section['n']} pairs, {audit.get('mode', '?')} mode)"
        if best:
            title += f": best shortcut {best['name']} {_acc(best)} [{_ci(best)}]"
            strongest = best.get("strongest_either_way") or {}
            if strongest.get("name") not in (None, best["name"]) and strongest["either_way"] > best["accuracy"]:
                title += f"; reversed, {strongest['name']} gives {strongest['either_way']:.2f}"
        rows = [
            [
                p["name"] + ("" if p["per_pair"] else "*"),
                FAMILY_MARK.get(p["family"], p["family"]),
                str(p["n"]),
                _acc(p),
                _ci(p),
            ]
            for p in section["predictors"]
        ]
        detector = section.get("edited_detector") or {}
        for name in (k for k in detector if k.startswith("edited:") and detector["edit_pairs"]):
            rows.append([name, "edit-detector", str(detector[name]["n"]), _acc(detector[name]), _ci(detector[name])])
        tables.append((title, ["predictor", "family", "n", "accuracy", "95% CI"], rows))
        methods = sorted({m for p in section["predictors"] for m in p["by_method"]})
        by_method = [
            [p["name"], *(_acc(p["by_method"].get(m), with_n=True) for m in methods)] for p in section["predictors"]
        ]
        tables.append((f"shortcut audit, {domain}: accuracy (n) by method", ["predictor", *methods], by_method))
    return tables


def audit_markdown(audit: dict[str, Any] | None) -> str:
    """The audit tables in Markdown (for the dataset card); an explanatory line when there is no audit."""
    if not audit:
        return "_This build was not audited (run `ctxdata audit OUT`)._\n"
    parts = [
        "Accuracy of cheap, meaning-blind predictors at naming the anchor. A shortcut far above 0.50 means a model "
        "can pick the anchor without reading for the answer.\n"
    ]
    for title, columns, rows in audit_tables(audit):
        parts.append(f"**{title}**\n")
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(c.replace("|", "\\|").replace("*", "\\*") for c in row) + " |" for row in rows]
        parts.append("\n".join(lines) + "\n")
    parts.append("\n".join(f"- {note}".replace("- *", "- \\*") for note in audit_notes(audit)) + "\n")
    return "\n".join(parts)


def print_audit(audit: dict[str, Any] | None) -> None:
    """The audit tables on the console (after a build's summary, or for `ctxdata audit`)."""
    from ctxdata.console import console, info, table

    if not audit:
        info("no audit in this report (run `ctxdata audit OUT`)")
        return
    for title, columns, rows in audit_tables(audit):
        shown = table(title, columns, rows)
        shown.columns[0].no_wrap = True
        console.print(shown)
    for note in audit_notes(audit):
        info(note)
