"""Checks for coding pairs: the contexts differ, nothing leaks the answer, no cheap shortcut.

Each is a `PairCheck` run by the generic `ctxdata.verify.checks.VerifyPairs` stage; the check and the
reason a pair drops under (its `name`) live here, beside the coding stages.
"""

from __future__ import annotations

from ctxdata.coding.mask import id_tokens, leaked_lines, word_starts
from ctxdata.coding.shortcut import COMBINED, ShortcutCalibration, ShortcutRounds, check_max_shortcut, pair_row
from ctxdata.errors import ConfigError
from ctxdata.schema import Check, Pair


class ContextsDiffer:
    """The two rendered trajectories are not the same text."""

    name = "contexts_differ"

    def __call__(self, pair: Pair) -> Check:
        same = pair.context_a_text == pair.context_b_text
        return Check(self.name, not same, pair.similarity, "identical contexts" if same else "")


class NoPatchLeak:
    """No significant added line of either patch survives verbatim in either context."""

    name = "no_patch_leak"

    def __call__(self, pair: Pair) -> Check:
        patches = [pair.answer, pair.answer_confounder]
        leaks = leaked_lines(pair.context_a_text or "", patches) + leaked_lines(pair.context_b_text or "", patches)
        return Check(self.name, not leaks, float(len(leaks)), f"leaked: {leaks[0][:120]!r}" if leaks else "")


class LengthRatio:
    """len(A)/len(B) stays inside [1/max_ratio, max_ratio], so length is not a shortcut."""

    name = "length_ratio"

    def __init__(self, max_ratio: float = 2.0) -> None:
        if max_ratio < 1.0:
            raise ConfigError(f"max length ratio must be >= 1.0, got {max_ratio}")
        self.max_ratio = max_ratio

    def __call__(self, pair: Pair) -> Check:
        a, b = len(pair.context_a_text or ""), len(pair.context_b_text or "")
        ratio = max(a, b) / max(1, min(a, b))
        ok = ratio <= self.max_ratio
        return Check(self.name, ok, round(ratio, 4), "" if ok else f"ratio {ratio:.2f} > {self.max_ratio}")


class NoIdShortcut:
    """Neither context names an instance id, and repo names appear in both contexts or neither."""

    name = "no_id_shortcut"

    def __call__(self, pair: Pair) -> Check:
        a, b = pair.context_a_text or "", pair.context_b_text or ""
        for ident in (pair.anchor_id, pair.confounder_id):
            for token in id_tokens(ident):
                if word_starts(a, token) or word_starts(b, token):
                    return Check(self.name, False, 1.0, f"instance id {token!r} appears in a context")
        repos = {pair.meta.get("repo", ""), pair.meta.get("confounder_repo", "")} - {""}
        for repo in repos:
            if (repo in a) != (repo in b):
                return Check(self.name, False, 1.0, f"repo name {repo!r} appears in only one context")
        return Check(self.name, True, 0.0)


class AnswersDiffer:
    """The anchor's and the confounder's patches are different answers."""

    name = "answers_differ"

    def __call__(self, pair: Pair) -> Check:
        def norm(patch: str) -> str:
            return "\n".join(l.rstrip() for l in patch.strip().splitlines() if not l.startswith("index "))

        same = norm(pair.answer) == norm(pair.answer_confounder)
        return Check(self.name, not same, 0.0 if same else 1.0, "identical patches" if same else "")


class NoShortcut:
    """No structural or topical per-pair predictor puts more than `max_confidence` on one context (see `coding.shortcut`)."""

    name = "shortcut"

    def __init__(
        self,
        calibration: ShortcutCalibration | ShortcutRounds,
        max_confidence: float,
        known_scores: dict[bytes, float] | None = None,
    ) -> None:
        check_max_shortcut(max_confidence)
        self.calibration = calibration
        self.max_confidence = max_confidence
        self.known_scores = known_scores  # MiniLM scores the calibration computed; given to this process once

    def __call__(self, pair: Pair) -> Check:
        if self.known_scores:
            from ctxdata.audit.predictors import remember_best_chunks

            remember_best_chunks(self.known_scores)
            self.known_scores = None
        confidences = self.calibration.confidences([pair_row(pair)])[0]
        k = int(confidences.argmax())
        ok = bool(confidences[k] <= self.max_confidence)
        who = (*self.calibration.names, COMBINED)[k]
        detail = "" if ok else f"{who} puts {confidences[k]:.3f} on one context (> {self.max_confidence})"
        return Check(self.name, ok, round(float(confidences[k]), 4), detail)


def coding_checks(max_length_ratio: float = 2.0, shortcut: NoShortcut | None = None) -> list:
    """The checks of a coding pair; the shortcut filter, when on, runs last (a pair failing another check drops under that one)."""
    checks = [ContextsDiffer(), NoPatchLeak(), LengthRatio(max_length_ratio), NoIdShortcut(), AnswersDiffer()]
    return checks + ([shortcut] if shortcut is not None else [])
