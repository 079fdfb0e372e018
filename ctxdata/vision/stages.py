"""The per-task stages of build-vision: make the confounder, verify it, emit the pair.

    MakeConfounder -> CheckImages -> CheckEdit -> CheckSimilarity -> JudgeVQA -> DifficultyBand -> ToPair

Every stage drops a candidate through `VisionStage.reject`, which counts the reason twice: in
the stage stats (report `rejected`) and under `<strategy>:rejected:<reason>` (the per-strategy
summary table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Pair, image_cell
from ctxdata.verify import vision as checks
from ctxdata.vision.edit import EditFailed
from ctxdata.vision.images import png_bytes
from ctxdata.vision.templates import normalize_answer


@dataclass
class BuildState:
    """What the stages share: the pool, its embeddings, and the (lazily built) backends."""

    pool: Any
    vectors: np.ndarray  # (n_images, dim), row i = pool image i
    rows: dict[str, int]  # image id -> vector row
    embedder: Any
    editors: Any  # EditorChoice or None
    config: Any
    answerer: Any = None
    verifier: Any = None
    target: Any = None  # --difficulty model


class VisionStage(Stage):
    def __init__(self, state: BuildState):
        self.state = state

    def reject(self, ctx: RunContext, cand, reason: str, detail: str = "") -> None:
        ctx.counters[f"{cand.strategy}:rejected:{reason}"] += 1
        ctx.reject(cand.source, reason, detail, stage=self.name)


class MakeConfounder(VisionStage):
    """Edit the anchor image, or fetch (and if needed, answer) the neighbour."""

    name = "confounder"

    def run(self, records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
        pool = self.state.pool
        for cand in records:
            rec = pool.records[cand.anchor]
            if cand.strategy == "edit":
                try:
                    result = self.state.editors.for_record(rec).edit(pool.images[rec.image_id], cand.plan, record=rec, seed=cand.seed)
                except EditFailed as exc:
                    self.reject(ctx, cand, exc.reason, exc.detail)
                    continue
                cand.confounder_image, cand.region, cand.answer_confounder = result.image, result.region, result.new_answer
                cand.confounder_id = f"{rec.image_id}#{cand.method}:{cand.seed:08x}"
            elif cand.neighbour_image is not None:
                cand.confounder_image = pool.images[cand.neighbour_image]
                cand.answer_confounder = self.state.answerer.answer(cand.confounder_image, rec.question).strip().rstrip(".")
                cand.confounder_id, cand.region = cand.neighbour_image, rec.region
            else:
                other = pool.records[cand.confounder]
                cand.confounder_image, cand.answer_confounder = pool.images[other.image_id], other.answer
                cand.confounder_id, cand.region = other.image_id, rec.region
            if normalize_answer(cand.answer_confounder) == normalize_answer(rec.answer):
                self.reject(ctx, cand, "same_answer", f"confounder also answers {rec.answer!r}")
                continue
            yield cand


class CheckImages(VisionStage):
    name = "check_images"

    def run(self, records, ctx):
        for cand in records:
            check = checks.check_images(self.state.pool.images[self.state.pool.records[cand.anchor].image_id], cand.confounder_image)
            cand.checks.append(check)
            if check.passed:
                yield cand
            else:
                self.reject(ctx, cand, "image_blank", check.detail)


class CheckEdit(VisionStage):
    """Edits only: pixels changed inside the decisive region, and (almost) nowhere else."""

    name = "check_edit"

    def run(self, records, ctx):
        for cand in records:
            if cand.strategy == "edit":
                original = self.state.pool.images[self.state.pool.records[cand.anchor].image_id]
                found = checks.check_edit(original, cand.confounder_image, cand.region, max_outside=self.state.config.max_outside)
                cand.checks.extend(found)
                failed = [c for c in found if not c.passed]
                if failed:
                    self.reject(ctx, cand, failed[0].name, failed[0].detail)
                    continue
            yield cand


class CheckSimilarity(VisionStage):
    """The confounder's embedder cosine to the anchor must lie in --sim-band (edits embedded in one batch)."""

    name = "check_similarity"

    def run(self, records, ctx):
        cands = list(records)
        new = [c for c in cands if c.strategy == "edit" or c.neighbour_image is not None]
        if new:
            vecs = self.state.embedder.embed([c.confounder_image for c in new], progress=False)
            for cand, vec in zip(new, vecs):
                anchor_row = self.state.rows[self.state.pool.records[cand.anchor].image_id]
                cand.cosine = float(np.dot(self.state.vectors[anchor_row], vec))
        band = self.state.config.sim_band
        for cand in cands:
            check = checks.check_similarity(cand.cosine, band)
            cand.checks.append(check)
            if check.passed:
                yield cand
            else:
                self.reject(ctx, cand, "similarity_below_band" if cand.cosine < band[0] else "similarity_above_band", check.detail)


class JudgeVQA(VisionStage):
    name = "verifier"

    def run(self, records, ctx):
        for cand in records:
            rec = self.state.pool.records[cand.anchor]
            found = checks.check_vqa(self.state.verifier, self.state.pool.images[rec.image_id], cand.confounder_image, rec.question, rec.answer, cand.answer_confounder)
            cand.checks.extend(found)
            failed = [c for c in found if not c.passed]
            if failed:
                self.reject(ctx, cand, f"{failed[0].name}_wrong", failed[0].detail)
                continue
            yield cand


class DifficultyBand(VisionStage):
    name = "difficulty"

    def run(self, records, ctx):
        cfg = self.state.config
        for cand in records:
            rec = self.state.pool.records[cand.anchor]
            check = checks.check_difficulty(self.state.target, self.state.pool.images[rec.image_id], cand.confounder_image, rec.question,
                                            rec.answer, cand.answer_confounder, band=cfg.difficulty_band, samples=cfg.difficulty_samples)
            cand.checks.append(check)
            if check.passed:
                yield cand
            else:
                self.reject(ctx, cand, "too_easy" if check.score > cfg.difficulty_band[1] else "too_hard", check.detail)


class ToPair(VisionStage):
    """Candidate -> schema Pair: PNG-encoded images in the label's slots, provenance in meta."""

    name = "to_pair"

    def run(self, records, ctx):
        pool = self.state.pool
        for cand in records:
            rec = pool.records[cand.anchor]
            anchor = image_cell(png_bytes(pool.images[rec.image_id]), rec.image_id)
            confounder = image_cell(png_bytes(cand.confounder_image), cand.confounder_id)
            a, b = (anchor, confounder) if cand.label == "A" else (confounder, anchor)
            meta = {
                "strategy": cand.strategy,
                "question_type": rec.qtype,
                "region": checks.region_for_meta(cand.region, pool.images[rec.image_id].size),
                "pool": pool.name,
                "source": rec.source,
                "embedder": self.state.config.embedder,
            }
            if cand.plan is not None:
                meta.update(instruction=cand.plan.instruction, edit_op=cand.plan.op)
            if cand.neighbour_image is not None:
                meta["confounder_answered_by"] = self.state.config.answerer
            ctx.counters[f"{cand.strategy}:kept"] += 1
            yield Pair(domain="vision", query=rec.question, answer=rec.answer, answer_confounder=cand.answer_confounder, label=cand.label,
                       method=cand.method, similarity=round(cand.cosine, 6), anchor_id=rec.image_id, confounder_id=cand.confounder_id,
                       context_a_image=a, context_b_image=b, checks=list(cand.checks), meta=meta)


def vision_stages(state: BuildState) -> list[Stage]:
    """The per-task pipeline; the optional judges only when configured."""
    stages: list[Stage] = [MakeConfounder(state), CheckImages(state), CheckEdit(state), CheckSimilarity(state)]
    if state.verifier is not None:
        stages.append(JudgeVQA(state))
    if state.target is not None:
        stages.append(DifficultyBand(state))
    return stages + [ToPair(state)]
