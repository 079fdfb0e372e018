"""The per-task stages of build-vision: make the confounder, embed it, verify it, emit the pair.

    MakeConfounder -> EmbedConfounders -> VerifyCandidates(vision_checks(...)) -> ToPair

The checks, and the reason each one drops a candidate under, live in `vision/checks.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Pair, image_cell
from ctxdata.vision.checks import VerifyCandidates, reject, region_for_meta, vision_checks
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
        reject(ctx, cand, reason, detail, stage=self.name)


class MakeConfounder(VisionStage):
    """Edit the pool image, or fetch (and if needed, answer) the neighbour; put each image in its role.

    An edit's edited image is the anchor, with the plan's new answer, when `cand.edited == "anchor"`
    (half of the edits, seeded in `assign_roles`), so "which image was edited" says nothing about the label.
    """

    name = "confounder"

    def run(self, records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
        pool = self.state.pool
        for cand in records:
            rec = pool.records[cand.record]
            cand.question, cand.region = rec.question, rec.region
            original = (pool.images[rec.image_id], rec.image_id, rec.answer)
            if cand.strategy == "edit":
                try:
                    editor = self.state.editors.for_record(rec)
                    result = editor.edit(pool.images[rec.image_id], cand.plan, record=rec, seed=cand.seed)
                except EditFailed as exc:
                    self.reject(ctx, cand, exc.reason, exc.detail)
                    continue
                cand.region = result.region
                edited = (result.image, f"{rec.image_id}#{cand.method}:{cand.seed:08x}", result.new_answer)
                cand.set_roles(*((edited, original) if cand.edited == "anchor" else (original, edited)))
            elif cand.neighbour_image is not None:
                image = pool.images[cand.neighbour_image]
                answer = self.state.answerer.answer(image, rec.question).strip().rstrip(".")
                cand.set_roles(original, (image, cand.neighbour_image, answer))
            else:
                other = pool.records[cand.confounder]
                cand.set_roles(original, (pool.images[other.image_id], other.image_id, other.answer))
            if normalize_answer(cand.answer_confounder) == normalize_answer(cand.answer):
                self.reject(ctx, cand, "same_answer", f"confounder also answers {cand.answer!r}")
                continue
            yield cand


class EmbedConfounders(VisionStage):
    """The cosine of each image the build made or answered (edits, answered neighbours) to its pool image.

    One embedder batch per task; the `similarity_band` check reads `cand.cosine`."""

    name = "embed"

    def run(self, records, ctx):
        cands = list(records)
        new = [c for c in cands if c.strategy == "edit" or c.neighbour_image is not None]
        if new:
            images = [c.original_and_edited()[1] if c.strategy == "edit" else c.confounder_image for c in new]
            vecs = self.state.embedder.embed(images, progress=False)
            for cand, vec in zip(new, vecs):
                row = self.state.rows[self.state.pool.records[cand.record].image_id]
                cand.cosine = float(np.dot(self.state.vectors[row], vec))
        yield from cands


class ToPair(VisionStage):
    """Candidate -> schema Pair: PNG-encoded images in the label's slots, provenance in meta.

    Both images go through the same PNG encoder, so the file format carries no trace of which one
    was edited. A pair at or above `embedder_blind` cosine is one the embedder cannot tell apart
    (MMVP's "blind" pairs): `meta.embedder_blind` and the `<strategy>:embedder_blind` counter say so.
    """

    name = "to_pair"

    def run(self, records, ctx):
        pool, config = self.state.pool, self.state.config
        for cand in records:
            rec = pool.records[cand.record]
            anchor = image_cell(png_bytes(cand.anchor_image), cand.anchor_id)
            confounder = image_cell(png_bytes(cand.confounder_image), cand.confounder_id)
            a, b = (anchor, confounder) if cand.label == "A" else (confounder, anchor)
            blind = cand.cosine >= config.embedder_blind
            meta = {
                "strategy": cand.strategy,
                "question_type": rec.qtype,
                "region": region_for_meta(cand.region, cand.anchor_image.size),
                "pool": pool.name,
                "source": rec.source,
                "embedder": config.embedder,
                "embedder_blind": blind,
            }
            if cand.plan is not None:
                meta.update(instruction=cand.plan.instruction, edit_op=cand.plan.op, edited=cand.edited)
            if cand.neighbour_image is not None:
                meta["confounder_answered_by"] = config.answerer
            ctx.counters[f"{cand.strategy}:kept"] += 1
            ctx.counters[f"{cand.strategy}:embedder_blind"] += blind
            yield Pair(domain="vision", query=cand.question, answer=cand.answer,
                       answer_confounder=cand.answer_confounder, label=cand.label, method=cand.method,
                       similarity=round(cand.cosine, 6), anchor_id=cand.anchor_id, confounder_id=cand.confounder_id,
                       context_a_image=a, context_b_image=b, checks=list(cand.checks), meta=meta)


def vision_stages(state: BuildState) -> list[Stage]:
    """The per-task pipeline; the optional VQA judge and pass@k band join the checks only when configured."""
    checks = vision_checks(state.config, verifier=state.verifier, target=state.target)
    return [MakeConfounder(state), EmbedConfounders(state), VerifyCandidates(state, checks), ToPair(state)]
