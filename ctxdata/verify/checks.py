"""The verification stage: run every check on every pair, record them all, drop on failure.

A check is a small callable object with a `name` that returns a `ctxdata.schema.Check`. All
checks run (so `checks` in the shards is complete and the rejects say everything that failed);
a pair that fails any of them is dropped under the name of its first failed check.
"""

from __future__ import annotations

from typing import ClassVar, Iterable, Iterator, Protocol

from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Check, Pair


class PairCheck(Protocol):
    name: ClassVar[str]

    def __call__(self, pair: Pair) -> Check: ...


class VerifyPairs(Stage):
    """Run `checks` on each pair; keep pairs that pass them all."""

    name = "verify"

    def __init__(self, checks: list[PairCheck]) -> None:
        self.checks = checks

    def run(self, records: Iterable[Pair], ctx: RunContext) -> Iterator[Pair]:
        for pair in records:
            results = [check(pair) for check in self.checks]
            pair.checks.extend(results)
            failed = [c for c in results if not c.passed]
            if failed:
                detail = "; ".join(f"{c.name}: {c.detail}" if c.detail else c.name for c in failed)
                self.drop(ctx, pair, failed[0].name, detail)
            else:
                yield pair
