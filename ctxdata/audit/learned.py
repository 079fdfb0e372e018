"""A small cross-validated model: L2 logistic regression in numpy on symmetric pair features.

A pair's features are differences f(context A) - f(context B). The model has no intercept and is
trained on every pair in both orders ((x, A) and (-x, B)), so it cannot learn "A is more often the
anchor": with the contexts swapped, its score flips sign exactly. Out-of-fold scores come from
k-fold cross-validation over groups of pairs that share a context id, so a trajectory or a source
image never sits on both sides of a split.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

FOLDS = 5
# Ridge strength on standardised features: 10 was within 0.005 of the best of 0.1, 1, 10, 30, 100 on the
# three folders measured in docs/audit.md.
L2 = 10.0
SEED = 0


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, steps: int = 50) -> np.ndarray:
    """Weights of a no-intercept logistic regression (Newton's method; y in {0, 1})."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def context_groups(rows: list[dict[str, Any]]) -> np.ndarray:
    """A group number per row: rows that share an anchor or confounder id (edits: its source image) are one group."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    keys = []
    for r in rows:
        a, b = (str(r.get(k, "")).split("#", 1)[0] for k in ("anchor_id", "confounder_id"))
        parent[find(a)] = find(b)
        keys.append(a)
    roots = [find(k) for k in keys]
    index = {root: i for i, root in enumerate(dict.fromkeys(roots))}
    return np.array([index[root] for root in roots])


def fold_of(groups: np.ndarray, folds: int = FOLDS, seed: int = SEED) -> np.ndarray:
    """A fold number per row: whole groups, shuffled with a fixed seed, dealt round-robin."""
    unique = np.unique(groups)
    order = np.random.default_rng(seed).permutation(unique)
    fold = {g: i % folds for i, g in enumerate(order)}
    return np.array([fold[g] for g in groups])


def out_of_fold_scores(
    x: np.ndarray, target: np.ndarray, folds: np.ndarray, train_mask: np.ndarray | None = None
) -> np.ndarray:
    """Held-out decision values x @ w for every row, w fitted on the other folds.

    `target` is +1/-1 (+1: the positive side is context A); rows outside `train_mask` are scored
    but never trained on. Rows in a fold with no training data get 0 (abstain).
    """
    n = len(x)
    scores = np.zeros(n)
    if n == 0 or x.shape[1] == 0:
        return scores
    train_mask = np.ones(n, bool) if train_mask is None else train_mask
    for k in np.unique(folds):
        train = (folds != k) & train_mask
        if train.sum() < 2:
            continue
        xt = x[train]
        scale = np.sqrt((xt**2).mean(axis=0)) + 1e-9  # symmetric data: no centring, so no intercept sneaks in
        xs = np.vstack([xt / scale, -xt / scale])
        ys = np.concatenate([(target[train] > 0).astype(float), (target[train] < 0).astype(float)])
        w = fit_logistic(xs, ys, L2)
        scores[folds == k] = (x[folds == k] / scale) @ w
    return scores


def cross_validated(
    features: Callable[[list[dict[str, Any]]], np.ndarray],
    target: Callable[[list[dict[str, Any]]], np.ndarray] | None = None,
    trainable: Callable[[list[dict[str, Any]]], np.ndarray] | None = None,
):
    """A score function: out-of-fold logistic scores of `features(rows)` (default target: the label)."""
    from ctxdata.audit.stats import label_signs

    def scores(rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        x = features(rows)
        y = target(rows) if target else label_signs(rows)
        mask = trainable(rows) if trainable else None
        return out_of_fold_scores(x, y, fold_of(context_groups(rows)), mask)

    return scores
