"""Checks for vision candidates, and the one stage that runs them.

A check is a small class: `name` is what it records in a pair's `checks`, `__call__(cand, state)`
returns its `Check`s (none when it does not apply to the candidate), and `reason(failed)` is the
reject reason a failure drops under: the check's name unless the class says otherwise, here.

    check                     drops under                       rule
    images_not_blank          image_blank                       both images present and not single-coloured
    edit_changed              edit_changed                      edits: pixels changed inside the region
    edit_locality             edit_locality                     edits: few pixels changed outside the region
    not_duplicate             duplicate                         the two images differ in pixels
    similarity_band           similarity_below_band / _above_   embedder cosine in [lo, hi], or a pixel near-copy
    vqa_anchor/_confounder    vqa_anchor_wrong / _confounder_   optional VQA judge answers both images right
    difficulty                too_easy / too_hard               optional pass@k band of a target model

Duplicates are decided by pixels, not by cosine: two copies of a photo that differ only in a small
decisive region sit at cosine 0.999-1.0 under an embedder that does not see the region (the MMVP
"blind" pairs, the most valuable kind), so the band's upper bound defaults to 1.0, and only pixels
say when two images are the same. Likewise a near-copy (same size, at most `near_copy` of its
pixels changed) passes `similarity_band` below `lo`: a local change is still a confusable pair.

VQA backends come from `ctxdata.verify.judge.make_vqa` (`openai:<base-url>` | `hf:<path>`); any
object with `.answer(image, question) -> str` works too (tests pass fakes).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable, Iterator

import numpy as np

from ctxdata.errors import ConfigError
from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Check
from ctxdata.vision.images import changed_pixels, is_blank, region_mask
from ctxdata.vision.templates import normalize_answer

PIXEL_TOL = 24  # a pixel "changed" when a channel moved by more than this (PNG/JPEG noise stays below)
# A near-copy's untouched pixels match within this many levels: two low-contrast photos (moon, brick)
# are within PIXEL_TOL of each other almost everywhere without being copies of one another.
NEAR_COPY_TOL = 8


class CandidateCheck:
    """Base: `__call__(cand, state) -> list[Check]`; a failed Check drops the candidate under `reason(failed)`."""

    name: ClassVar[str] = "check"

    def __call__(self, cand, state) -> list[Check]:  # pragma: no cover - abstract
        raise NotImplementedError

    def reason(self, failed: Check) -> str:
        return failed.name


class VerifyCandidates(Stage):
    """Run `checks` in order on each candidate; the first failure drops it under that check's reason.

    Unlike coding's VerifyPairs, which runs every check, the order matters here: the cheap pixel
    checks run first, so the VQA judge and the pass@k filter (many model calls) only see
    candidates that already passed them.
    """

    name = "verify"

    def __init__(self, state, checks: list[CandidateCheck]) -> None:
        self.state, self.checks = state, checks

    def run(self, records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
        for cand in records:
            failed = None
            for check in self.checks:
                results = check(cand, self.state)
                cand.checks.extend(results)
                failed = next((c for c in results if not c.passed), None)
                if failed is not None:
                    reject(ctx, cand, check.reason(failed), failed.detail, stage=self.name)
                    break
            if failed is None:
                yield cand


def reject(ctx: RunContext, cand, reason: str, detail: str, *, stage: str) -> None:
    """Count a drop twice: in the stage stats and under `<strategy>:rejected:<reason>` (per-strategy table)."""
    ctx.counters[f"{cand.strategy}:rejected:{reason}"] += 1
    ctx.reject(cand.source, reason, detail, stage=stage)


def changed_fraction(a, b, region: Any = None, *, tol: int = PIXEL_TOL) -> float | None:
    """Fraction of the pixels of `region` (None: all) changed by more than `tol` between two same-size images;
    None if the sizes differ."""
    if a.size != b.size:
        return None
    changed = changed_pixels(a, b, tol=tol)
    inside = region_mask(a.size, region)
    return float(changed[inside].mean()) if inside.any() else 0.0


class ImagesNotBlank(CandidateCheck):
    """Both images present and not blank (a failed render, an all-black diffusion output)."""

    name = "images_not_blank"

    def __call__(self, cand, state) -> list[Check]:
        for role, img in (("anchor", cand.anchor_image), ("confounder", cand.confounder_image)):
            if img is None:
                return [Check(self.name, False, 0.0, f"{role} image missing")]
            if is_blank(img):
                return [Check(self.name, False, 0.0, f"{role} image is blank (std < 2)")]
        a, b = cand.anchor_image.size, cand.confounder_image.size
        return [Check(self.name, True, 1.0, f"{a[0]}x{a[1]} / {b[0]}x{b[1]}")]

    def reason(self, failed: Check) -> str:
        return "image_blank"


class NotDuplicate(CandidateCheck):
    """The two images differ in pixels; otherwise nothing visible grounds two different answers.

    The whole image is compared: a record's region marks the anchor's evidence, and the difference
    between two neighbours may lie elsewhere (one more circle for a count question). An edit whose
    region did not change fails `edit_changed` before it reaches this check.
    """

    name = "not_duplicate"

    def __call__(self, cand, state) -> list[Check]:
        a, b = cand.anchor_image, cand.confounder_image
        if a.size != b.size:
            return [Check(self.name, True, None, f"sizes differ: {a.size[0]}x{a.size[1]} / {b.size[0]}x{b.size[1]}")]
        frac = 0.0 if a.tobytes() == b.tobytes() else changed_fraction(a, b)
        ok = frac > 0.0
        detail = f"{frac:.2%} of the pixels differ" if ok else "the images are identical (within the pixel tolerance)"
        return [Check(self.name, ok, frac, detail)]

    def reason(self, failed: Check) -> str:
        return "duplicate"


class EditIsLocal(CandidateCheck):
    """Edits only: `edit_changed` (something changed in the region), `edit_locality` (little changed outside)."""

    name = "edit"

    def __init__(self, max_outside: float = 0.02, min_inside: float = 0.01) -> None:
        self.max_outside, self.min_inside = max_outside, min_inside

    def __call__(self, cand, state) -> list[Check]:
        if cand.strategy != "edit":
            return []
        original, edited = cand.original_and_edited()
        in_frac, out_frac = edit_change_stats(original, edited, cand.region)
        return [
            Check("edit_changed", in_frac >= self.min_inside, in_frac,
                  f"{in_frac:.1%} of the region changed (min {self.min_inside:.1%})"),
            Check("edit_locality", out_frac <= self.max_outside, out_frac,
                  f"{out_frac:.2%} of pixels outside the region changed (max {self.max_outside:.1%})"),
        ]


def edit_change_stats(original, edited, region, *, pad: int = 6, tol: int = PIXEL_TOL) -> tuple[float, float]:
    """(fraction of region pixels changed, fraction of pixels outside the padded region changed)."""
    changed = changed_pixels(original, edited, tol=tol)
    inside = region_mask(original.size, region, pad=pad)
    in_frac = float(changed[inside].mean()) if inside.any() else 0.0
    out_frac = float(changed[~inside].mean()) if (~inside).any() else 0.0
    return in_frac, out_frac


class SimilarityBand(CandidateCheck):
    """The embedder cosine lies in [lo, hi]; below lo, a pixel near-copy passes too.

    Below lo the embedder may just have missed a local change, so the pixels are asked."""

    name = "similarity_band"

    def __init__(self, band: tuple[float, float], near_copy: float = 0.0) -> None:
        self.band, self.near_copy = band, near_copy

    def __call__(self, cand, state) -> list[Check]:
        lo, hi = self.band
        cos = min(cand.cosine, 1.0)  # float32 rounding puts identical vectors at 1.0000001
        if lo <= cos <= hi:
            return [Check(self.name, True, cos, f"cosine {cos:.4f} in [{lo}, {hi}]")]
        if cos < lo and self.near_copy > 0:
            frac = changed_fraction(cand.anchor_image, cand.confounder_image, tol=NEAR_COPY_TOL)
            if frac is not None and frac <= self.near_copy:
                detail = f"cosine {cos:.4f} below {lo}, but a near-copy: {frac:.1%} of pixels differ"
                return [Check(self.name, True, cos, detail)]
        return [Check(self.name, False, cos, f"cosine {cos:.4f} {'below' if cos < lo else 'above'} band [{lo}, {hi}]")]

    def reason(self, failed: Check) -> str:
        return "similarity_below_band" if failed.score < self.band[0] else "similarity_above_band"


def answers_match(predicted: str, expected: str) -> bool:
    """Normalised equality, or the expected answer as a whole word at the start of a longer reply."""
    p, e = normalize_answer(predicted), normalize_answer(expected)
    return p == e or (p.split()[:1] == [e]) or normalize_answer(p.split(".")[0]) == e


class JudgeAnswers(CandidateCheck):
    """A VQA judge must answer `answer` on the anchor and `answer_confounder` on the confounder."""

    name = "vqa"

    def __init__(self, vqa) -> None:
        self.vqa = vqa

    def __call__(self, cand, state) -> list[Check]:
        return check_vqa(self.vqa, cand.anchor_image, cand.confounder_image, cand.question, cand.answer,
                         cand.answer_confounder)

    def reason(self, failed: Check) -> str:
        return f"{failed.name}_wrong"


def check_vqa(vqa, anchor, confounder, question: str, answer: str, answer_confounder: str) -> list[Check]:
    checks = []
    for name, image, expected in (("vqa_anchor", anchor, answer), ("vqa_confounder", confounder, answer_confounder)):
        got = vqa.answer(image, question)
        detail = f"judge said {got[:80]!r}, expected {expected!r}"
        checks.append(Check(name, answers_match(got, expected), None, detail))
    return checks


def pass_rate(vqa, anchor, confounder, question: str, answer: str, answer_confounder: str, *,
              samples: int = 8) -> float:
    """Fraction of `samples` attempts in which the target model answers BOTH images correctly."""
    solved = 0
    for _ in range(samples):
        ok_a = answers_match(vqa.answer(anchor, question), answer)
        ok_c = answers_match(vqa.answer(confounder, question), answer_confounder)
        solved += ok_a and ok_c
    return solved / samples


class DifficultyBand(CandidateCheck):
    """The paper's pass@k filter: a target model solves the pair in a fraction of samples inside `band`."""

    name = "difficulty"

    def __init__(self, vqa, band: tuple[float, float] = (0.25, 0.63), samples: int = 8) -> None:
        self.vqa, self.band, self.samples = vqa, band, samples

    def __call__(self, cand, state) -> list[Check]:
        rate = pass_rate(self.vqa, cand.anchor_image, cand.confounder_image, cand.question, cand.answer,
                         cand.answer_confounder, samples=self.samples)
        lo, hi = self.band
        detail = f"pass rate {rate:.2f} over {self.samples} samples (keep [{lo}, {hi}])"
        return [Check(self.name, lo <= rate <= hi, rate, detail)]

    def reason(self, failed: Check) -> str:
        return "too_easy" if failed.score > self.band[1] else "too_hard"


def vision_checks(config, *, verifier=None, target=None) -> list[CandidateCheck]:
    """The checks of one build, cheap first; the VQA judge and the pass@k band only when configured."""
    checks: list[CandidateCheck] = [ImagesNotBlank(), EditIsLocal(max_outside=config.max_outside), NotDuplicate(),
                                    SimilarityBand(config.sim_band, near_copy=config.near_copy)]
    if verifier is not None:
        checks.append(JudgeAnswers(verifier))
    if target is not None:
        checks.append(DifficultyBand(target, config.difficulty_band, config.difficulty_samples))
    return checks


def make_vqa(spec: Any):
    """None for `none`, an object with `.answer` as is, else `openai:<base-url>` / `hf:<path>` (verify.judge)."""
    if spec is None or spec == "none" or spec == "":
        return None
    if hasattr(spec, "answer"):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"VQA spec {spec!r} must be none, openai:<base-url> or hf:<local path>")
    from ctxdata.verify.judge import make_vqa as judge_vqa

    return judge_vqa(spec)


def region_for_meta(region: Any, size: tuple[int, int]) -> list[float] | None:
    """A JSON-able box for `meta`: boxes as is, masks as their bounding box."""
    if region is None:
        return None
    if isinstance(region, (list, tuple)):
        return [float(v) for v in region]
    mask = region_mask(size, region)
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)] if len(xs) else None
