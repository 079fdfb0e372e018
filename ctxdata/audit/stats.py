"""Accuracy of a predictor's scores against the labels, with a Wilson 95% interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when n == 0.

    `successes` may be fractional: an abstention counts as half a success (a coin flip's expected value).
    """
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def label_signs(rows: list[dict[str, Any]]) -> np.ndarray:
    """+1 where the anchor is context A, -1 where it is B."""
    return np.array([1.0 if r["label"] == "A" else -1.0 for r in rows])


def accuracy(scores: np.ndarray, signs: np.ndarray) -> dict[str, Any]:
    """How often sign(score) names the anchor. A zero score abstains and counts as half right.

    `either_way` is max(accuracy, 1 - accuracy): how strong the cue is whatever its direction. It is
    biased upwards on noise (by about half the interval's width), so the fixed-direction accuracy
    with its interval is the honest number; `either_way` only flags a strong reverse cue.
    """
    n = len(signs)
    if n == 0:
        return {"n": 0, "correct": 0, "abstain": 0, "accuracy": None, "ci": None, "either_way": None}
    product = np.sign(scores) * signs
    correct, abstain = int((product > 0).sum()), int((product == 0).sum())
    hits = correct + abstain / 2
    lo, hi = wilson_interval(hits, n)
    acc = hits / n
    return {
        "n": n,
        "correct": correct,
        "abstain": abstain,
        "accuracy": round(acc, 4),
        "ci": [round(lo, 4), round(hi, 4)],
        "either_way": round(max(acc, 1 - acc), 4),
    }
