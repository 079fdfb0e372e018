"""Run every predictor on the pairs of an output folder and store the result in `report.json["audit"]`.

Audit modes (`--audit` of the builds): `fast` (the default at the end of a build: structural,
lexical, image statistics and the cross-validated models; no MiniLM), `full` (also MiniLM; the
default of `ctxdata audit`), `off`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ctxdata.audit import AUDIT_MODES
from ctxdata.audit.predictors import EDITED_DETECTORS, edited_target, predictors_for
from ctxdata.audit.stats import accuracy, label_signs
from ctxdata.errors import ConfigError, CtxdataError

AUDIT_VERSION = 1
# A larger folder is audited on a seeded sample: at 2000 pairs the 95% interval is +-0.022 wide at
# chance, and the audit's time and memory stop growing with the folder.
MAX_PAIRS = 2000
SAMPLE_SEED = 0
# Columns the audit reads: everything but the JSON-heavy checks.
COLUMNS = [
    "domain",
    "query",
    "answer",
    "answer_confounder",
    "context_a_text",
    "context_b_text",
    "context_a_image",
    "context_b_image",
    "label",
    "method",
    "anchor_id",
    "confounder_id",
    "meta",
]


def check_audit_mode(mode: str) -> str:
    if mode not in AUDIT_MODES:
        raise ConfigError(f"--audit must be one of {', '.join(AUDIT_MODES)}, got {mode!r}")
    return mode


def _summary(scores: np.ndarray, signs: np.ndarray, methods: list[str]) -> dict[str, Any]:
    by_method: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(methods):
        by_method[m].append(i)
    return {
        **accuracy(scores, signs),
        "by_method": {m: accuracy(scores[idx], signs[idx]) for m, idx in sorted(by_method.items())},
    }


def audit_rows(
    rows: list[dict[str, Any]], *, embed: bool, on_predictor: Callable[[str, int], None] | None = None
) -> dict[str, Any]:
    """Every predictor's accuracy at naming the anchor, with a Wilson 95% interval and n, by domain and method.

    Returns the JSON stored in `report.json["audit"]`. `on_predictor(name, total)` is called
    before each predictor runs (for progress bars; MiniLM takes minutes).
    """
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_domain[r["domain"]].append(r)
    domains = {}
    for domain, drows in sorted(by_domain.items()):
        signs, methods = label_signs(drows), [r["method"] for r in drows]
        results = []
        chosen = predictors_for(domain, embed=embed)
        for p in chosen:
            if on_predictor:
                on_predictor(f"{domain}: {p.name}", len(chosen))
            entry = {"name": p.name, "family": p.family, "doc": p.doc, "per_pair": p.per_pair, "shortcut": p.shortcut}
            results.append({**entry, **_summary(p.scores(drows), signs, methods)})
        section: dict[str, Any] = {"n": len(drows), "predictors": results, "best_shortcut": best_shortcut(results)}
        if domain == "vision":
            section["edited_detector"] = edited_detector(drows)
        domains[domain] = section
    return {
        "version": AUDIT_VERSION,
        "mode": "full" if embed else "fast",
        "n": len(rows),
        "domains": domains,
    }


def best_shortcut(results: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shortcut predictor (any family but answer-evidence) with the highest accuracy in its stated direction.

    `strongest_either_way` names the one furthest from chance in either direction (a rule far below
    0.5 is a cue read backwards); it is biased upwards on noise, so it is a flag, not the headline.
    """
    scored = [r for r in results if r["shortcut"] and r["accuracy"] is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: (r["accuracy"], r["name"]))
    strongest = max(scored, key=lambda r: (r["either_way"], r["name"]))
    return {
        **{k: best[k] for k in ("name", "family", "n", "accuracy", "ci")},
        "strongest_either_way": {k: strongest[k] for k in ("name", "accuracy", "either_way")},
    }


def edited_detector(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How well each meaning-blind detector finds the edited image of an edit pair (chance: 0.5)."""
    target = edited_target(rows)
    edits = target != 0
    out = {"edit_pairs": int(edits.sum())}
    for name, fn in EDITED_DETECTORS.items():
        out[name] = accuracy(np.asarray(fn(rows))[edits], target[edits])
    anchors_edited = sum(1 for r, t in zip(rows, target) if t != 0 and (t > 0) == (r["label"] == "A"))
    out["anchor_is_edited"] = round(anchors_edited / max(int(edits.sum()), 1), 4) if edits.any() else None
    return out


def read_output_rows(out: str | Path, max_pairs: int | None = None) -> list[dict[str, Any]]:
    """The rows of an output folder; with `max_pairs`, a seeded uniform sample of that many (in folder order)."""
    from ctxdata.io import iter_rows, read_report

    out = Path(out)
    if not (out / "report.json").is_file() or not (out / "state.json").is_file():
        raise CtxdataError(
            f"{out} is not a ctxdata output folder (no report.json/state.json); "
            "give a folder written by build-coding or build-vision"
        )
    total = int(read_report(out).get("pairs", 0))
    if not max_pairs or total <= max_pairs:
        return list(iter_rows(out, columns=COLUMNS))
    keep = set(np.random.default_rng(SAMPLE_SEED).choice(total, size=max_pairs, replace=False).tolist())
    return [row for i, row in enumerate(iter_rows(out, columns=COLUMNS)) if i in keep]


def audit_output(
    out: str | Path,
    *,
    embed: bool,
    max_pairs: int | None = MAX_PAIRS,
    on_predictor: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Audit the pairs of an output folder; the result is returned and stored in its report.json under "audit".

    A folder with more than `max_pairs` pairs is audited on a seeded uniform sample of that many
    (None or 0: every pair); `pairs_in_folder` and `n` in the result say which.
    """
    from ctxdata.io import read_report, write_json

    rows = read_output_rows(out, max_pairs)
    report = read_report(out)
    audit = audit_rows(rows, embed=embed, on_predictor=on_predictor)
    report["audit"] = {
        **audit,
        "pairs_in_folder": int(report.get("pairs", len(rows))),
        "sampled": len(rows) < report.get("pairs", 0),
    }
    write_json(Path(out) / "report.json", report)
    return report["audit"]


def audit_after_build(out: str | Path, report: dict[str, Any], mode: str) -> dict[str, Any]:
    """The end-of-build hook: audit the folder just written (unless `mode` is off) and add it to `report`."""
    if check_audit_mode(mode) != "off":
        report["audit"] = audit_output(out, embed=mode == "full")
    return report
