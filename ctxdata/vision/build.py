"""`build-vision`: image pool -> candidate pairs (edits and neighbours) -> verified vision pairs.

Global phase (cheap to redo on resume): load the pool (bad rows -> rejects), embed every pool
image (on the engine: batches of `batch_size` images, one model per actor on Ray), build (or
reload) one index over the gathered vectors, mine neighbour candidates, plan edit candidates,
assign seeded roles (the edited image is the anchor in half of the edits; retrieval pairs are
swapped in half) and balanced A/B labels with seeded shuffles, split candidates into tasks.
Per-task phase (through `ctxdata.engine.run_tasks`, so a killed run resumes and the same seed
gives the same shards; on Ray an actor pool holding the editors and VQA models): the stages in
`vision_stages` make the confounder (edit or neighbour) and verify it (`vision/checks.py`).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ctxdata.errors import ConfigError
from ctxdata.pipeline import RunContext
from ctxdata.vision.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_POOL_PIXELS
from ctxdata.vision.pool import Pool, QARecord, nothing_read_error
from ctxdata.vision.templates import EditPlan, load_instructions, plan_from_template

STRATEGIES = ("edit", "retrieval")


@dataclass
class VisionConfig:
    """Everything that determines a build-vision run (written to config.json)."""

    out: str | None = None  # output folder (required by build_vision)
    overwrite: bool = False  # replace an output folder written with another config
    pool: str | None = None  # pool folder / .parquet / datasets folder; None = the built-in demo pool
    strategies: tuple[str, ...] = STRATEGIES  # which candidate sources to use: edit, retrieval
    edit_model: str = "auto"  # auto | procedural | classical | sdxl | instruct-pix2pix
    edit_model_path: str | None = None  # local diffusers folder (else the local HF cache)
    edit_steps: int | None = None  # diffusion inference steps (None = the editor's default)
    instructions: str | None = None  # JSONL of per-(image, question) instructions + new answers
    edits_per_image: int = 2  # at most this many edit candidates per pool image (seeded choice)
    embedder: str = "efficientnet-lite0"  # embedder spec (see ctxdata.vision.embed)
    index: str = "auto"  # auto | flat | ivf | hnsw | numpy
    index_path: str | None = None  # save the index here, or reload it when it exists
    sim_band: tuple[float, float] = (0.90, 1.0)  # keep confounders whose cosine to the anchor is in [lo, hi]
    near_copy: float = 0.25  # same-size images with at most this fraction of pixels changed pass below lo (0: off)
    embedder_blind: float = 0.995  # pairs at or above this cosine are counted as embedder-blind (MMVP)
    k: int = 10  # neighbours examined per image when mining
    answerer: str | None = None  # VQA model answering a question on a neighbour that lacks it
    blind_embedder: str | None = None  # second embedder for MMVP-style blind pairs
    blind_thresholds: tuple[float, float] = (0.95, 0.6)  # (cos above under --embedder, cos below under the blind one)
    verifier: str = "none"  # none | hf:<path> | openai:<base-url>: VQA judge of both answers
    difficulty: str | None = None  # target VQA model for the pass@k band filter
    difficulty_band: tuple[float, float] = (0.25, 0.63)  # keep pairs solved in this fraction of samples
    difficulty_samples: int = 8  # samples per pair for the pass@k filter
    max_outside: float = 0.02  # edits: max fraction of pixels outside the region that may change
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are rejected as decompression bombs
    max_pool_pixels: int = DEFAULT_MAX_POOL_PIXELS  # decoded pixels the whole pool may hold; later images are rejected
    hash_inputs: bool = False  # resume checks the pool's contents (sha256), not just paths, sizes and mtimes
    demo_families: int = 10  # demo pool: synthetic scene families (base + one edited sibling)
    seed: int = 0  # seeds edit choices, editors, the roles and the A/B labels
    shard_size: int = 64  # candidates per task / shard (the unit of resume)
    batch_size: int = 32  # images per embedding call (one Ray Data batch); output bytes do not depend on it
    engine: str = "local"  # local | ray: where embedding and the per-task stages run (bytes do not depend on it)
    workers: int = 1  # ray: parallel tasks, and the CPUs of a local cluster (0 = every core)
    ray_address: str | None = None  # --engine ray: join this cluster, else start a local one
    num_gpus: float = 0.0  # --engine ray: GPUs per model actor (embedder; editor, verifier and judges of a task)
    concurrency: int = 0  # --engine ray: model actors per stage (0 = workers)
    audit: str = "fast"  # shortcut audit at the end: fast | full (adds MiniLM) | off; never changes the pairs

    def __post_init__(self) -> None:
        self.strategies = tuple(self.strategies)
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad or not self.strategies:
            raise ConfigError(f"--strategy must be a comma list of {', '.join(STRATEGIES)}, got {','.join(self.strategies) or 'nothing'}")
        lo, hi = self.sim_band = tuple(float(v) for v in self.sim_band)
        if not -1.0 <= lo < hi <= 1.0:
            raise ConfigError(f"--sim-band needs -1 <= lo < hi <= 1, got {lo},{hi}; e.g. --sim-band 0.9,1")
        if not 0.0 <= self.near_copy <= 1.0:
            raise ConfigError(f"--near-copy is a fraction of pixels in [0, 1] (0 turns it off), got {self.near_copy}")
        d_lo, d_hi = self.difficulty_band = tuple(float(v) for v in self.difficulty_band)
        if not 0.0 <= d_lo <= d_hi <= 1.0:
            raise ConfigError(f"difficulty band needs 0 <= lo <= hi <= 1, got {d_lo},{d_hi}")
        self.blind_thresholds = tuple(float(v) for v in self.blind_thresholds)
        if self.shard_size < 1 or self.edits_per_image < 1 or self.k < 1 or self.difficulty_samples < 1:
            raise ConfigError("--shard-size, edits_per_image, k and difficulty_samples must be >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        from ctxdata.audit.run import check_audit_mode
        from ctxdata.engine import engine_options

        engine_options(self)  # rejects an unknown engine, or Ray options without --engine ray
        check_audit_mode(self.audit)
        if self.edit_model_path and self.edit_model not in ("sdxl", "instruct-pix2pix"):
            raise ConfigError(f"--edit-model-path is for the diffusion editors; set --edit-model sdxl or instruct-pix2pix (got {self.edit_model})")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class Candidate:
    """One candidate pair: an anchor QA record and how to get its confounder."""

    strategy: str  # edit | retrieval
    method: str  # edit:<editor> | retrieval:faiss | retrieval:blind
    record: int  # index in pool.records: the record edited, or the retrieval anchor's
    label: str = "A"  # slot of the anchor (balanced by a seeded shuffle)
    edited: str | None = None  # edits: which role the edited image takes, anchor | confounder (seeded, balanced)
    confounder: int | None = None  # retrieval: index of the confounder record
    neighbour_image: str | None = None  # retrieval via --answerer: the neighbour image, answered by the model
    cosine: float | None = None  # retrieval: the mining cosine
    plan: EditPlan | None = None  # edit: what to change, and the expected new answer
    seed: int = 0  # per-candidate seed (editor noise, free spots)
    source: str = ""  # human-readable id for rejects
    # filled by the stages:
    question: str = ""
    answer: str = ""
    answer_confounder: str = ""
    anchor_image: Any = None
    confounder_image: Any = None
    anchor_id: str = ""
    confounder_id: str = ""
    region: Any = None  # where the decisive change is: the edit's region, or the anchor record's
    checks: list = field(default_factory=list)

    def set_roles(self, anchor: tuple[Any, str, str], confounder: tuple[Any, str, str]) -> None:
        """Each role as (image, id, answer)."""
        self.anchor_image, self.anchor_id, self.answer = anchor
        self.confounder_image, self.confounder_id, self.answer_confounder = confounder

    def original_and_edited(self) -> tuple[Any, Any]:
        """Edits: (the pool image, the edited image), whichever role each took."""
        if self.edited == "anchor":
            return self.confounder_image, self.anchor_image
        return self.anchor_image, self.confounder_image


def load_any_pool(config: VisionConfig, ctx: RunContext) -> Pool:
    from ctxdata.vision.demo import demo_pool
    from ctxdata.vision.pool import load_pool

    if config.pool is None:
        pool = demo_pool(seed=config.seed, families=config.demo_families)
        ctx.stage("pool").n_in += pool.inputs
        ctx.stage("pool").n_out += pool.inputs
        return pool
    return load_pool(config.pool, ctx, max_pixels=config.max_pixels, max_pool_pixels=config.max_pool_pixels)


def image_ids(pool: Pool) -> list[str]:
    return list(pool.images)


def plan_edits(pool: Pool, config: VisionConfig, ctx: RunContext, editor_method) -> list[Candidate]:
    """Up to `edits_per_image` edit candidates per image, from the instructions file or templates."""
    from ctxdata.vision.mine import normalize_question

    overrides = load_instructions(config.instructions) if config.instructions else {}
    by_image: dict[str, list[tuple[int, EditPlan]]] = {}
    for r, rec in enumerate(pool.records):
        rng = random.Random(f"{config.seed}:{rec.image_id}:{rec.question}")
        plan = overrides.get((rec.image_id, normalize_question(rec.question))) or plan_from_template(rec.qtype, rec.question, rec.answer, rng)
        if plan is None:
            ctx.counters["edit:no_template"] += 1
            continue
        by_image.setdefault(rec.image_id, []).append((r, plan))
    out = []
    for image_id, options in by_image.items():
        rng = random.Random(f"{config.seed}:pick:{image_id}")
        chosen = sorted(rng.sample(options, min(config.edits_per_image, len(options))), key=lambda t: t[0])
        for r, plan in chosen:
            rec = pool.records[r]
            out.append(Candidate("edit", editor_method(rec), r, plan=plan, seed=rng.randrange(2**31), source=f"edit:{image_id}:{rec.question}"))
    return out


def balanced_coins(n: int, key: str) -> list[bool]:
    """n booleans, half of them True, in a seeded random order."""
    coins = ([True, False] * (n // 2 + 1))[:n]
    random.Random(key).shuffle(coins)
    return coins


def assign_labels(candidates: list[Candidate], seed: int) -> None:
    """Balanced A/B: half the slots each, permuted with a seeded shuffle."""
    for cand, first in zip(candidates, balanced_coins(len(candidates), f"labels:{seed}")):
        cand.label = "A" if first else "B"


def assign_roles(candidates: list[Candidate], seed: int) -> None:
    """Take the role cue away: the edited image is the anchor in half of the edits, and half of the
    retrieval pairs swap anchor and confounder (mining emits them in pool order), both seeded.

    Edits are balanced within each (editor, operation): an operation moves image statistics one way
    (a removal leaves less, a copy adds more), so balancing inside it keeps brightness, saturation
    and edge counts from predicting the label by the luck of the draw on a small pool.
    """
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for cand in candidates:
        if cand.strategy == "edit":
            groups.setdefault((cand.method, cand.plan.op), []).append(cand)
    for (method, op), edits in sorted(groups.items()):
        for cand, edited_anchor in zip(edits, balanced_coins(len(edits), f"roles:{seed}:{method}:{op}")):
            cand.edited = "anchor" if edited_anchor else "confounder"
    pairs = [c for c in candidates if c.confounder is not None]
    for cand, swap in zip(pairs, balanced_coins(len(pairs), f"swap:{seed}")):
        if swap:
            cand.record, cand.confounder = cand.confounder, cand.record


def chunk(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def strategy_summary(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per strategy: candidates, kept, embedder-blind kept, rejections by reason (from the report's counters)."""
    counters, rows = report.get("counters", {}), []
    for strategy in STRATEGIES:
        candidates = counters.get(f"{strategy}:candidates", 0)
        kept = sum(n for m, n in report.get("methods", {}).items() if m.startswith(strategy))
        prefix = f"{strategy}:rejected:"
        reasons = {k[len(prefix):]: n for k, n in counters.items() if k.startswith(prefix)}
        blind = counters.get(f"{strategy}:embedder_blind", 0)  # kept pairs the embedder cannot tell apart (MMVP)
        rows.append({"strategy": strategy, "candidates": candidates, "kept": kept, "embedder_blind": blind,
                     "rejected": reasons})
    return rows


class NearCopies:
    """`(a, b) -> bool mask`: which image pairs are near-copies (same size, at most `max_changed` of the
    pixels changed), judged on 64x64 thumbnails made on first use; the `similarity_band` check
    confirms on full pixels. Lets mining keep the copies an embedder pushed below the band."""

    def __init__(self, images: list[Any], max_changed: float, side: int = 64):
        self.images, self.max_changed, self.side = images, max_changed, side
        self.thumbs: dict[int, np.ndarray] = {}

    def thumb(self, row: int) -> np.ndarray:
        if row not in self.thumbs:
            from PIL import Image

            small = self.images[row].convert("RGB").resize((self.side, self.side), Image.BOX)
            self.thumbs[row] = np.asarray(small, dtype=np.int16)
        return self.thumbs[row]

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        from ctxdata.vision.checks import NEAR_COPY_TOL

        keep = np.zeros(len(a), dtype=bool)
        for n, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
            if self.images[x].size == self.images[y].size:
                changed = np.abs(self.thumb(x) - self.thumb(y)).max(axis=2) > NEAR_COPY_TOL
                keep[n] = changed.mean() <= self.max_changed
        return keep


def mine_retrieval(pool: Pool, vectors: np.ndarray, rows: dict[str, int], config: VisionConfig, index,
                   ctx: RunContext) -> list[Candidate]:
    """Neighbour candidates: same question, different answers, cosine in band (+ answerer, + blind)."""
    from ctxdata.vision.mine import DUPLICATE_COSINE, blind_pairs, knn_pairs, mine_band_pairs, normalize_question

    recs = pool.records
    image_index = np.array([rows[r.image_id] for r in recs], dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    out: list[Candidate] = []
    ids = list(rows)
    near_copy = NearCopies([pool.images[i] for i in ids], config.near_copy) if config.near_copy > 0 else None
    for p in mine_band_pairs(vectors, [r.question for r in recs], [r.answer for r in recs], image_index=image_index,
                             band=config.sim_band, k=config.k, index=index, near_copy=near_copy):
        seen.add((p.i, p.j))
        source = f"retrieval:{recs[p.i].image_id}|{recs[p.j].image_id}:{recs[p.i].question}"
        out.append(Candidate("retrieval", "retrieval:faiss", p.i, confounder=p.j, cosine=p.cosine, source=source))
    if config.answerer:  # neighbours that lack the question: the answerer supplies their answer
        asked: dict[str, set[str]] = {}
        for r in recs:
            asked.setdefault(r.image_id, set()).add(normalize_question(r.question))
        by_image: dict[str, list[int]] = {}
        for n, r in enumerate(recs):
            by_image.setdefault(r.image_id, []).append(n)
        lo, hi = config.sim_band
        a, b, cos = knn_pairs(vectors, k=config.k, index=index, skip_above=min(hi, DUPLICATE_COSINE))
        cos = np.minimum(cos, 1.0)
        for x, y, c in zip(a, b, cos):
            rescued = c < lo and near_copy is not None and near_copy(np.array([x]), np.array([y]))[0]
            if not (lo <= c <= hi or rescued):
                continue
            for src, dst in ((ids[x], ids[y]), (ids[y], ids[x])):
                for n in by_image.get(src, []):
                    if normalize_question(recs[n].question) not in asked.get(dst, set()):
                        out.append(Candidate("retrieval", "retrieval:faiss", n, neighbour_image=dst, source=f"answerer:{src}|{dst}:{recs[n].question}"))
    if config.blind_embedder:
        from ctxdata.vision.embed import make_embedder

        images = [pool.images[i] for i in ids]
        v2 = make_embedder(config.blind_embedder).embed(images, progress=False)
        hi1, lo2 = config.blind_thresholds
        blind = {(min(p.i, p.j), max(p.i, p.j)): p.cosine for p in blind_pairs(vectors, v2, hi1=hi1, lo2=lo2, k=config.k, kind=config.index)}
        for (x, y), c in sorted(blind.items()):
            for i in np.nonzero(image_index == x)[0]:
                for j in np.nonzero(image_index == y)[0]:
                    ri, rj = recs[i], recs[j]
                    key = (min(i, j), max(i, j))
                    if key not in seen and normalize_question(ri.question) == normalize_question(rj.question) and ri.answer.lower() != rj.answer.lower():
                        seen.add(key)
                        out.append(Candidate("retrieval", "retrieval:blind", int(i), confounder=int(j), cosine=c, source=f"blind:{ri.image_id}|{rj.image_id}:{ri.question}"))
    return out


class EmbedImages:
    """A batch of images -> their vectors; one embedder (one model) per worker or actor."""

    def __init__(self, embedder, use_gpu: bool = False) -> None:
        self.embedder, self.use_gpu = embedder, use_gpu

    def __call__(self, images: list) -> np.ndarray:
        if self.use_gpu:  # a Ray actor that reserved a GPU (--num-gpus)
            import torch

            self.embedder.device = "cuda" if torch.cuda.is_available() else self.embedder.device
        return self.embedder.embed(images, progress=False)


def embed_pool(pool: Pool, embedder, engine=None, on_batch=None) -> tuple[np.ndarray, dict[str, int]]:
    """Every pool image's vector (at least one image), embedded in batches of `embedder.batch_size` on `engine`."""
    ids = image_ids(pool)
    images = [pool.images[i] for i in ids]
    if engine is None or engine.name == "local":  # the embedder already uses every core (threads)
        vectors = embedder.embed(images, progress=on_batch is None)
    else:
        bs = embedder.batch_size
        batches = [images[s : s + bs] for s in range(0, len(images), bs)]
        parts: list = [None] * len(batches)
        for index, vecs in engine.map(EmbedImages(embedder, use_gpu=getattr(engine, "num_gpus", 0) > 0), batches, models=True):
            parts[index] = vecs
            if on_batch:
                on_batch(len(vecs))
        vectors = np.concatenate(parts)
    return np.ascontiguousarray(vectors, dtype=np.float32), {i: n for n, i in enumerate(ids)}


def pool_index(vectors: np.ndarray, config: VisionConfig):
    from pathlib import Path

    from ctxdata.vision.index import build_index, load_index

    if config.index_path and Path(config.index_path).is_file():
        return load_index(config.index_path, vectors)
    index = build_index(vectors, config.index, seed=config.seed)
    if config.index_path:
        index.save(config.index_path)
    return index


def build_vision(config: VisionConfig, progress=None) -> dict[str, Any]:
    """Run the whole pipeline into `config.out`; returns the report (also written to out/report.json)."""
    from pathlib import Path

    from ctxdata.engine import engine_options, make_engine, run_tasks
    from ctxdata.io import PairOutput
    from ctxdata.vision.checks import make_vqa
    from ctxdata.vision.edit import EditorChoice
    from ctxdata.vision.embed import make_embedder
    from ctxdata.vision.stages import BuildState, vision_stages

    if not config.out:
        raise ConfigError("build-vision needs an output folder (--out)")
    output = PairOutput(config.out, config.to_dict(), command="build-vision", overwrite=config.overwrite)
    ctx = RunContext()
    editors = EditorChoice(config.edit_model, model_path=config.edit_model_path, steps=config.edit_steps) if "edit" in config.strategies else None
    embedder = make_embedder(config.embedder, batch_size=config.batch_size)
    pool = load_any_pool(config, ctx)
    with make_engine(engine_options(config)) as engine:
        embed_task = progress.add_task("embed pool images", total=len(pool.images)) if progress else None
        on_batch = (lambda n: progress.update(embed_task, advance=n)) if progress else None
        vectors, rows = embed_pool(pool, embedder, engine, on_batch) if pool.images else (np.zeros((0, 1), np.float32), {})
        candidates: list[Candidate] = []
        if "retrieval" in config.strategies and len(rows) >= 2:
            answerer = make_vqa(config.answerer)
            candidates += mine_retrieval(pool, vectors, rows, config, pool_index(vectors, config), ctx)
        else:
            answerer = None
        if editors is not None:
            candidates += plan_edits(pool, config, ctx, lambda rec: editors.for_record(rec).method)
        assign_roles(candidates, config.seed)
        assign_labels(candidates, config.seed)
        for cand in candidates:
            ctx.counters[f"{cand.strategy}:candidates"] += 1
        output.write_input_rejects(ctx.rejects)
        state = BuildState(pool, vectors, rows, embedder, editors, config, answerer=answerer,
                           verifier=make_vqa(config.verifier), target=make_vqa(config.difficulty))
        tasks = chunk(candidates, config.shard_size)
        pair_task = progress.add_task("edit + verify (candidates)", total=len(candidates)) if progress else None
        on_task = (lambda _i, n: progress.update(pair_task, advance=n)) if progress else None
        run_tasks(output, tasks, vision_stages(state), engine=engine, on_task=on_task, models=True)
    report = output.finalize(len(tasks), inputs=pool.inputs, global_ctx=ctx, extra={"candidates": len(candidates)},
                             summarize=lambda merged: {"strategies": strategy_summary(merged)})
    error = nothing_read_error(pool, config.pool, ctx, Path(config.out) / "rejects.jsonl") if config.pool is not None else None
    if error is not None:  # after finalize, so rejects.jsonl says why
        raise error
    from ctxdata.audit.run import audit_after_build

    return audit_after_build(config.out, report, config.audit)


__all__ = ["VisionConfig", "Candidate", "QARecord", "assign_labels", "assign_roles", "plan_edits", "strategy_summary"]
