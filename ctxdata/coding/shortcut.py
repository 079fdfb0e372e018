"""Adversarial filtering (`--max-shortcut P`, 0.85 by default): drop pairs a cheap predictor solves with confidence.

The predictors are the audit's (`ctxdata.audit.predictors.PREDICTORS`): every coding predictor of
the `structural` and `topical` families whose score for a pair depends on that pair alone (so not
a corpus IDF), plus one logistic model over all of them together, which catches cues that are weak
alone but strong combined. `full` (the build default) takes in the MiniLM best-chunk predictor, at
the cost of embedding every candidate's two masked contexts (the semantic cue that survives word
masking: see docs/coding.md); `fast` leaves it out. Under `MIN_CALIBRATION_PAIRS` candidates the
build skips the filter and says so.

A raw score (a length difference, a TF-IDF margin) is no probability, so each is *calibrated* on a
seeded sample of this build's own candidate pairs, masked exactly as the kept pairs are: a
logistic regression P(anchor is A | s) = sigmoid(a * sign(s) + b * s / scale), with no intercept,
fitted on the pairs in both A/B orders, so swapping the contexts flips the probability exactly.
`a` says how often the side a predictor picks is right whatever its margin (a cue that only has a
direction, like "longer"), `b` how much more often as the margin grows (a TF-IDF margin). `P` is
then a real probability: a pair is dropped, as `shortcut`, when any predictor puts more than `P`
on one of its two contexts.

Calibration runs in rounds (`ShortcutRounds`, AFLite-style): each round refits every predictor on the
sample pairs no earlier round was surer than `P` of, until a round drops none; a pair is dropped when
any round is. Filtering out one cue changes what the others say on the rest, and a second round sees it.

The drop looks only at how *sure* a predictor is, never at whether it is right: pairs it would get
wrong with confidence go too. Dropping only the pairs a predictor gets right would leave a set on
which it is below 0.5, a reversed cue as strong as the one removed. With the confident pairs gone
either way, each calibrated predictor's accuracy on the kept pairs is at most about P.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ctxdata.errors import ConfigError
from ctxdata.schema import Pair

SHORTCUT_FAMILIES = ("structural", "topical")
SHORTCUT_PREDICTORS = ("fast", "full")  # fast: no embedding model; full: adds MiniLM (as `--audit full` does)
CALIBRATION_PAIRS = 1000  # most candidate pairs a calibration masks and scores (a seeded sample beyond that)
COMBINED = "combined"  # the name of the joint model over every shortcut predictor
MAX_ROUNDS = 5  # calibration rounds of --max-shortcut at most (on traces-dev the second already drops none)
# Fewer candidates than this and the filter is skipped (said in the report): at 50 pairs a 95% interval
# is +-0.14 wide, so a calibration cannot tell a predictor that is sure at 0.85 from one at 0.70.
MIN_CALIBRATION_PAIRS = 50
SCORE_BATCH = 16  # calibration pairs scored at a time: the same batches whether or not a progress bar follows them
DEFAULT_MAX_SHORTCUT = 0.85  # the build default: on traces-dev it leaves MiniLM at 0.65 and 0.13 pairs per trajectory


def shortcut_predictor_names(predictors: str = "fast") -> list[str]:
    """The audit predictors the filter uses: coding, structural or topical, per pair (MiniLM too when `full`)."""
    from ctxdata.audit.predictors import predictors_for

    if predictors not in SHORTCUT_PREDICTORS:
        raise ConfigError(f"--shortcut-predictors must be one of {', '.join(SHORTCUT_PREDICTORS)}, got {predictors!r}")
    chosen = predictors_for("coding", embed=predictors == "full")
    return [p.name for p in chosen if p.per_pair and p.family in SHORTCUT_FAMILIES]


def pair_row(pair: Pair) -> dict[str, Any]:
    """The columns of a pair the predictors read, as a shard row would give them."""
    return {"domain": pair.domain, "query": pair.query, "answer": pair.answer, "answer_confounder": pair.answer_confounder,
            "context_a_text": pair.context_a_text, "context_b_text": pair.context_b_text, "label": pair.label,
            "method": pair.method, "anchor_id": pair.anchor_id, "confounder_id": pair.confounder_id}


def _scores(rows: list[dict[str, Any]], names: Sequence[str]) -> np.ndarray:
    """A (rows, predictors) matrix of raw scores, > 0 picking context A."""
    from ctxdata.audit.predictors import PREDICTORS

    return np.column_stack([PREDICTORS[n].scores(rows) for n in names]) if rows else np.zeros((0, len(names)))


@dataclass(frozen=True)
class ShortcutCalibration:
    """Per predictor, the scale and weight that turn its raw score into P(anchor is A); plus the joint model."""

    names: tuple[str, ...]
    scales: tuple[float, ...]  # RMS of each raw score on the sample
    weights: tuple[tuple[float, float], ...]  # (a, b) of each predictor alone: a * sign(s) + b * s / scale
    combined: tuple[float, ...]  # joint weights over every predictor's (sign, standardised score), in that order
    n: int  # calibration pairs

    def confidences(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """(rows, predictors + 1): the probability each predictor (then the joint model) puts on the side it picks."""
        return self.confidences_of_scores(_scores(rows, self.names))

    def confidences_of_scores(self, raw: np.ndarray) -> np.ndarray:
        """`confidences` from the raw score matrix (rows, predictors) of `_scores`."""
        x = _features(raw, np.asarray(self.scales))
        rows = len(raw)
        per = np.einsum("rkf,kf->rk", x.reshape(rows, len(self.names), 2), np.asarray(self.weights).reshape(len(self.names), 2))
        logits = np.column_stack([per, x @ np.asarray(self.combined)])
        return 1 / (1 + np.exp(-np.abs(logits)))

    def to_dict(self) -> dict[str, Any]:
        per = {n: {"scale": round(s, 6), "a_sign": round(w[0], 6), "b_margin": round(w[1], 6)}
               for n, s, w in zip(self.names, self.scales, self.weights)}
        return {"n": self.n, "predictors": per, COMBINED: [round(w, 6) for w in self.combined]}


def _features(raw: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(rows, 2 * predictors): per predictor, the sign of its score and the score over its scale."""
    z = raw / scales
    return np.stack([np.sign(z), z], axis=2).reshape(len(raw), 2 * raw.shape[1])


def calibrate(pairs: Sequence[Pair], names: Sequence[str] | None = None) -> ShortcutCalibration:
    """Fit each predictor's calibration (and the joint model) on `pairs`, whose labels are known."""
    names = tuple(names or shortcut_predictor_names())
    return _fit(*_scored(pairs, names), names)


def _scored(
    pairs: Sequence[Pair], names: tuple[str, ...], on_scored: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The raw scores (pairs, predictors) of `pairs`, and where each anchor is: A (+1) or B (-1).

    Scored `SCORE_BATCH` pairs at a time (every filter predictor scores a pair alone), calling
    `on_scored(n)` after each batch: with MiniLM this takes minutes on a CPU.
    """
    rows = [pair_row(p) for p in pairs]
    parts = []
    for i in range(0, len(rows), SCORE_BATCH):
        parts.append(_scores(rows[i : i + SCORE_BATCH], names))
        if on_scored is not None:
            on_scored(len(parts[-1]))
    raw = np.vstack(parts) if parts else np.zeros((0, len(names)))
    return raw, np.array([1.0 if r["label"] == "A" else -1.0 for r in rows])


def _fit(raw: np.ndarray, signs: np.ndarray, names: tuple[str, ...]) -> ShortcutCalibration:
    """The calibration of raw scores (rows, predictors) whose anchors are at A (+1) or B (-1)."""
    # the audit's ridge: the joint model is its learned model's twin
    from ctxdata.audit.learned import L2, fit_logistic

    scales = np.sqrt((raw ** 2).mean(axis=0)) + 1e-9 if len(raw) else np.ones(len(names))
    features = _features(raw, scales)
    # Both A/B orders of every pair: (x, anchor at A) and (-x, anchor at B), so no intercept can be learnt.
    x, y = np.vstack([features, -features]), np.concatenate([signs > 0, signs < 0]).astype(float)
    if not len(raw):
        return ShortcutCalibration(names, tuple(map(float, scales)), ((0.0, 0.0),) * len(names), (0.0,) * 2 * len(names), 0)
    weights = tuple(tuple(map(float, fit_logistic(x[:, 2 * k : 2 * k + 2], y, L2))) for k in range(len(names)))
    combined = tuple(map(float, fit_logistic(x, y, L2)))
    return ShortcutCalibration(names, tuple(map(float, scales)), weights, combined, len(raw))


@dataclass(frozen=True)
class ShortcutRounds:
    """Calibrations fitted in rounds, AFLite-style: each on the sample pairs no earlier round was surer than P of.

    Removing the pairs one cue is sure of changes what the others say on the rest (dropping the pairs
    MiniLM finds easy keeps anchors that talk less about their own issue, so they also have fewer
    masked restatements of it). Each round refits every predictor on what is left, until a round
    drops no sample pair; a pair is then dropped when any round puts more than P on one context.
    """

    rounds: tuple[ShortcutCalibration, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.rounds[0].names

    def confidences(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """(rows, predictors + 1): per predictor (then the joint model), the surest any round is."""
        raw = _scores(rows, self.names)  # once: the rounds differ in weights, not in scores
        return np.max([r.confidences_of_scores(raw) for r in self.rounds], axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": [r.to_dict() for r in self.rounds]}


def calibrate_in_rounds(
    pairs: Sequence[Pair], names: Sequence[str], max_confidence: float, on_scored: Callable[[int], None] | None = None
) -> ShortcutRounds:
    """Calibrate on `pairs`, drop those the calibration is surer than `max_confidence` of, and refit on the rest;
    stop when a round drops none of them (or after `MAX_ROUNDS`). `on_scored(n)`: n more pairs scored."""
    names = tuple(names)
    raw, signs = _scored(pairs, names, on_scored)  # once: each round refits on fewer rows of it
    kept, rounds = np.arange(len(raw)), []
    for _ in range(MAX_ROUNDS):
        rounds.append(_fit(raw[kept], signs[kept], names))
        still = kept[rounds[-1].confidences_of_scores(raw[kept]).max(axis=1) <= max_confidence]
        if len(still) == len(kept) or not len(still):
            break
        kept = still
    return ShortcutRounds(tuple(rounds))


def calibration_sample(candidates: Sequence[Any], seed: int, limit: int = CALIBRATION_PAIRS) -> list[Any]:
    """A seeded sample of at most `limit` candidates, in their original order (all of them when fewer)."""
    if len(candidates) <= limit:
        return list(candidates)
    keyed = sorted(range(len(candidates)), key=lambda i: hashlib.sha1(f"{seed}\x1f{candidates[i].source}".encode()).hexdigest())
    return [candidates[i] for i in sorted(keyed[:limit])]


def parse_max_shortcut(text: str) -> float | None:
    """`--max-shortcut` as typed: a probability, or `off` (None)."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--max-shortcut is a probability in (0.5, 1] or `off`, got {text!r}") from None
    check_max_shortcut(value)
    return value


def check_max_shortcut(value: float | None) -> None:
    if value is not None and not 0.5 < value <= 1.0:
        raise ConfigError(f"--max-shortcut is a probability in (0.5, 1]: the most a cheap predictor may put on one context; got {value}")
