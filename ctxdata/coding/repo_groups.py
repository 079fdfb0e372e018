"""The cascade as independent per-repository groups (what `--engine ray` runs as a `groupby`).

Every blocking key starts with the repository, so condition filtering never pairs two
repositories and each repository's signatures can be mined on their own. Merging the groups
gives exactly `mine_candidates` over all signatures:

- within a repository, pairs, levels and the greedy per-trajectory cap are the same (block order,
  id order and patch identity are decided inside the repository);
- the global order is "deepest level first, then block key": the `instance` blocks (one per task)
  are mined first, then blocking depth d from the deepest up, where a block key has d + 1 parts;
  every key starts with the repository, so a stable sort of the concatenated groups on
  (not instance, -len(block), repository) restores it;
- the balanced A/B labels are a seeded shuffle over that whole order, so they are assigned once,
  after the merge.
"""

from __future__ import annotations

from typing import Sequence

from ctxdata.coding.cascade import Candidate, CascadeConfig, Signature, _assign_labels, mine_candidates
from ctxdata.pipeline import RunContext


class MineRepository:
    """One repository's signatures (in input order) -> its candidates and counters (on a worker)."""

    def __init__(self, config: CascadeConfig) -> None:
        self.config = config

    def __call__(self, sigs: list[Signature]) -> tuple[list[Candidate], dict[str, int]]:
        ctx = RunContext()
        return mine_candidates(sigs, self.config, ctx), dict(ctx.counters)


def merge_repository_groups(groups: Sequence[list[Candidate]], seed: int) -> list[Candidate]:
    """The per-repository candidate lists in `mine_candidates` order, labels assigned over all of them."""
    merged = sorted(
        (c for group in groups for c in group), key=lambda c: (c.level != "instance", -len(c.block), c.block[0])
    )
    _assign_labels(merged, seed)
    return merged


def mine_by_repo(sigs: Sequence[Signature], config: CascadeConfig, ctx: RunContext, engine) -> list[Candidate]:
    """`mine_candidates(sigs, config, ctx)`, run as one group per repository on `engine`."""
    groups = []
    for _repo, (candidates, counters) in engine.group_map(MineRepository(config), sigs, key=lambda sig: sig.repo):
        groups.append(candidates)
        ctx.counters.update(counters)
    ctx.counters["unpaired trajectories"] += 0  # present even when there is no group, as mine_candidates does
    return merge_repository_groups(groups, config.seed)
