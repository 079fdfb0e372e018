"""The contrastive context probe: can a model tell the anchor context from the confounder?

For each pair the model reads the selection prompt (`prompts.selection_messages`: query, answer,
contexts A and B, "Output A or B directly.") and we read its choice two ways:

* logits (the paper's probe): Delta = log p(correct letter) - log p(wrong letter) at the answer
  position (the first assistant token), each letter's log-probability being the max over its
  single-token variants (" A", "A"). The pair is right iff Delta > 0; `p_correct = sigmoid(Delta)`
  is the probability of the correct letter when the model must choose between the two.
* generate: greedy decoding, the first standalone A or B in the completion is the choice
  (no letter = wrong).

With `both_orders` every pair is also read with contexts A and B swapped (the label follows the
anchor), the standard position-debiasing of LLM judges. Delta_swapped is again "anchor letter minus
the other letter", so a pure letter preference enters the two Deltas with opposite signs and
cancels in their mean: the pair is right (`correct_both_orders`) iff (Delta + Delta_swapped) / 2 > 0.
A model that answers "A" whatever it reads scores exactly the share of A labels on the raw
accuracy and about 0.5 here. The summary keeps the raw accuracy (`overall`) beside it
(`both_orders`) and `share_a`, the share of stored-order pairs on which the model picked A.

Accuracy comes with a 95% Wilson score interval (exact enough at small n, never outside [0, 1])
and breakdowns by `method` and `domain`. Batches are left-padded; text models get explicit
position ids, so a pair's Delta does not depend on what it is batched with. Everything runs under
`torch.inference_mode` with greedy decoding: the same inputs give the same numbers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ctxdata.audit.stats import wilson_interval as audit_wilson
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.train.probe_model import ProbeModel, load_probe_model
from ctxdata.train.prompts import wrong_label

MODES = ("logits", "generate", "both")
_LETTER = re.compile(r"(?<![A-Za-z])([AB])(?![A-Za-z])")


@dataclass
class ProbeConfig:
    """How the probe reads a model's choice."""

    mode: str = "logits"  # logits (Delta at the answer position), generate (greedy letter) or both
    batch_size: int = 8  # pairs per forward pass (left padding)
    limit: int | None = None  # probe only the first N pairs (after concatenating the --pairs folders)
    max_new_tokens: int = 8  # generation budget for mode generate/both
    max_prompt_tokens: int = 4096  # longer prompts are skipped (truncating would cut a context), not cut
    system_prompt: bool = False  # prepend prompts.SYSTEM as a system message
    prefill: str = ""  # text put after the generation prompt (e.g. "Context"), so the next token is the letter
    both_orders: bool = False  # also read each pair with A and B swapped; right iff the order-averaged Delta > 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.max_prompt_tokens < 8:
            raise ConfigError("batch_size and max_new_tokens must be >= 1 and max_prompt_tokens >= 8")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1 (or unset for all pairs), got {self.limit}")
        if self.both_orders and not self.logits:
            raise ConfigError("both_orders reads Delta in both A/B orders: it needs mode logits or both")

    @property
    def logits(self) -> bool:
        return self.mode in ("logits", "both")

    @property
    def generate(self) -> bool:
        return self.mode in ("generate", "both")


@dataclass
class PairResult:
    """The probe's reading of one pair for one model."""

    pair_id: str
    method: str
    domain: str
    label: str
    delta: float | None  # log p(correct) - log p(wrong); None in generate-only mode
    p_correct: float | None  # sigmoid(delta): P(correct letter | the model picks A or B)
    generated: str | None  # greedy completion (generate/both), else None
    generated_letter: str | None  # first standalone A/B in `generated`
    correct: bool  # the primary verdict: Delta > 0 (logits/both) or generated_letter == label (generate)
    correct_generate: bool | None  # generated_letter == label (generate/both)
    delta_swapped: float | None = None  # Delta with A and B swapped (both_orders), still anchor minus other letter
    correct_both_orders: bool | None = None  # (delta + delta_swapped) / 2 > 0 (both_orders): letter bias cancels


# -- statistics -----------------------------------------------------------------------------
def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for k successes out of n (95% by default); (0, 1) when n == 0."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return audit_wilson(k, n, z)


def accuracy_stats(flags: Sequence[bool]) -> dict[str, Any]:
    """{n, correct, accuracy, ci_low, ci_high} for a list of right/wrong verdicts."""
    n, k = len(flags), sum(bool(f) for f in flags)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "correct": k, "accuracy": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi}


def summarize(results: Sequence[PairResult], skipped: dict[str, int] | None = None) -> dict[str, Any]:
    """Overall accuracy (logits and/or generation) with CIs, by method and by domain, mean Delta."""
    deltas = [r.delta for r in results if r.delta is not None]
    gen = [r.correct_generate for r in results if r.correct_generate is not None]
    debiased = [r.correct_both_orders for r in results if r.correct_both_orders is not None]
    picked = [(r.delta > 0) == (r.label == "A") for r in results if r.delta is not None]
    summary: dict[str, Any] = {
        "overall": accuracy_stats([r.correct for r in results]),
        "generate": accuracy_stats(gen) if gen else None,
        "both_orders": accuracy_stats(debiased) if debiased else None,
        "share_a": sum(picked) / len(picked) if picked else None,
        "mean_delta": sum(deltas) / len(deltas) if deltas else None,
        "labels": {lab: sum(r.label == lab for r in results) for lab in ("A", "B")},
        "skipped": dict(skipped or {}),
    }
    for key in ("method", "domain"):
        groups: dict[str, list[bool]] = {}
        for r in results:
            groups.setdefault(getattr(r, key), []).append(r.correct)
        summary[f"by_{key}"] = {g: accuracy_stats(v) for g, v in sorted(groups.items())}
    return summary


def parse_letter(text: str) -> str | None:
    """The first standalone A or B in a completion ("B", " A.", "Answer: B"), else None."""
    match = _LETTER.search(text or "")
    return match.group(1) if match else None


# -- pairs ------------------------------------------------------------------------------------
def load_pairs(dirs: Iterable[str | Path], limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of one or more pair folders, in folder then shard order, cut to `limit`."""
    from ctxdata.io import iter_rows

    rows: list[dict[str, Any]] = []
    for folder in dirs:
        for row in iter_rows(folder):
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                return rows
    return rows


# -- the probe --------------------------------------------------------------------------------
def probe_rows(
    model: ProbeModel,
    rows: Sequence[dict[str, Any]],
    config: ProbeConfig,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[PairResult], dict[str, int]]:
    """Probe `rows` with one loaded model; returns (results, skipped-by-reason)."""
    from ctxdata.train.losses import selection_logit_delta

    skipped: dict[str, int] = {}
    usable: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # domain -> [(index, row)]
    for index, row in enumerate(rows):
        reason = model.cannot_read(row, config)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            usable.setdefault(row["domain"], []).append((index, row))
    indexed: list[tuple[int, PairResult]] = []
    for items in usable.values():  # one domain per batch: image and text inputs do not mix
        for start in range(0, len(items), config.batch_size):
            chunk = items[start : start + config.batch_size]
            batch = [row for _, row in chunk]
            readings = _read_batch(model, batch, config, selection_logit_delta)
            for (index, row), delta, text, swapped in zip(chunk, *readings):
                indexed.append((index, _result(row, delta, text, swapped)))
            if on_batch is not None:
                on_batch(len(batch))
    results = [result for _, result in sorted(indexed, key=lambda item: item[0])]
    return results, skipped


def _read_batch(model: ProbeModel, batch: list[dict[str, Any]], config: ProbeConfig,
                delta_fn) -> tuple[list, list, list]:
    """(deltas, completions, swapped-order deltas) for one batch; None entries for what was not asked for."""
    from ctxdata.train.data import swap_contexts

    def deltas_of(rows: list[dict[str, Any]]) -> list[float]:
        logits = model.answer_logits(rows, config)  # [B, V]
        correct = [model.letter_ids[r["label"]] for r in rows]
        wrong = [model.letter_ids[wrong_label(r["label"])] for r in rows]
        return delta_fn(logits, correct, wrong).tolist()

    none: list[Any] = [None] * len(batch)
    deltas = deltas_of(batch) if config.logits else none
    swapped = deltas_of([swap_contexts(r) for r in batch]) if config.both_orders else none
    generated = list(model.generate(batch, config)) if config.generate else none
    return deltas, generated, swapped


def _result(row: dict[str, Any], delta: float | None, text: str | None,
            delta_swapped: float | None = None) -> PairResult:
    letter = parse_letter(text) if text is not None else None
    gen_ok = None if text is None else letter == row["label"]
    return PairResult(
        pair_id=row["pair_id"],
        method=row["method"],
        domain=row["domain"],
        label=row["label"],
        delta=delta,
        p_correct=None if delta is None else 1.0 / (1.0 + math.exp(-delta)),
        generated=text,
        generated_letter=letter,
        correct=(delta > 0) if delta is not None else bool(gen_ok),
        correct_generate=gen_ok,
        delta_swapped=delta_swapped,
        correct_both_orders=None if delta is None or delta_swapped is None else (delta + delta_swapped) / 2 > 0,
    )


def run_probe(
    pairs: Sequence[str | Path],
    models: Sequence[str],
    config: ProbeConfig,
    *,
    out: str | Path | None = None,
    on_batch: Callable[[str, int, int], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Probe every model on the same pairs; write per-pair JSONL (+ summary JSON) to `out`.

    Returns {model spec: summary}. `on_batch(model, done, total)` reports progress.
    """
    models = list(dict.fromkeys(models))  # the same spec twice would be one entry anyway
    if not models:
        raise ConfigError("pass at least one --model")
    rows = load_pairs(pairs, config.limit)
    if not rows:
        raise CtxdataError(f"no pairs found in {', '.join(map(str, pairs))}")
    summaries: dict[str, dict[str, Any]] = {}
    per_model: dict[str, list[PairResult]] = {}
    for spec in models:
        model = load_probe_model(spec)
        done = 0

        def advance(n: int, spec: str = spec) -> None:
            nonlocal done
            done += n
            if on_batch is not None:
                on_batch(spec, done, len(rows))

        results, skipped = probe_rows(model, rows, config, on_batch=advance)
        per_model[spec] = results
        summaries[spec] = {"model": spec, "mode": config.mode, **summarize(results, skipped)}
    if out is not None:
        write_results(Path(out), per_model, summaries, config)
    return summaries


def write_results(out: Path, per_model: dict[str, list[PairResult]], summaries: dict[str, Any], config: ProbeConfig) -> Path:
    """`out` gets one JSON line per (model, pair); `<out stem>.summary.json` the summaries."""
    from ctxdata.io import atomic_write_text, write_json

    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"model": spec, **asdict(r)}, sort_keys=True) for spec, results in per_model.items() for r in results]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    summary_path = out.with_name(out.stem + ".summary.json")
    write_json(summary_path, {"config": asdict(config), "models": summaries})
    return summary_path


def _fmt(stats: dict[str, Any] | None) -> str:
    if not stats or not stats["n"]:
        return "-"
    return f"{stats['accuracy']:.3f} [{stats['ci_low']:.3f}, {stats['ci_high']:.3f}]"


def comparison_tables(summaries: dict[str, dict[str, Any]]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, columns, rows) tables comparing models: overall, then one column per model by method/domain."""
    overall_rows = []
    for spec, s in summaries.items():
        mean = "-" if s["mean_delta"] is None else f"{s['mean_delta']:+.3f}"
        skipped = sum(s["skipped"].values())
        share_a = "-" if s.get("share_a") is None else f"{s['share_a']:.2f}"
        raw = _fmt(s["overall"] if s["mode"] != "generate" else None)
        overall_rows.append([spec, s["overall"]["n"], raw, _fmt(s.get("both_orders")),
                             share_a, _fmt(s["generate"]), mean, skipped])
    columns = ["model", "pairs", "logits acc", "both-orders acc", "share A", "generate acc", "mean Delta", "skipped"]
    tables = [("probe accuracy (95% Wilson CI)", columns, overall_rows)]
    specs = list(summaries)
    for key in ("method", "domain"):
        groups = sorted({g for s in summaries.values() for g in s[f"by_{key}"]})
        rows = [[g, *[_fmt(summaries[m][f"by_{key}"].get(g)) + f" n={summaries[m][f'by_{key}'].get(g, {}).get('n', 0)}" for m in specs]] for g in groups]
        tables.append((f"accuracy by {key}", [key, *specs], rows))
    return tables
