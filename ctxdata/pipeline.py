"""Stages and the small executor that chains them.

A stage takes an iterator of records and yields records (as datatrove's `run` does). A filter
answers `keep(record) -> bool | (bool, reason)`. A pipeline is a plain list of stages:

    stages = [ReadTrajectories(...), MinePairs(...), MaskPatches(), VerifyPairs(...)]
    for pair in run_stages(stages, paths, ctx): ...

Every stage counts what came in and what went out; every drop goes through `ctx.reject`, which
counts it under a named reason and keeps the record's source and detail for `rejects.jsonl`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Iterator

INPUT = "input"  # a reject of something read from disk (a file, a line, an image)
RECORD = "record"  # a reject of a record that was read but cannot be used (e.g. a trajectory with no patch)
CANDIDATE = "candidate"  # a reject of a candidate pair


@dataclass
class Reject:
    """One rejected input or candidate, as one line of `rejects.jsonl`."""

    source: str
    reason: str
    detail: str = ""
    stage: str = ""
    kind: str = CANDIDATE

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason, "detail": self.detail[:500], "stage": self.stage, "kind": self.kind}


@dataclass
class StageStats:
    """What one stage saw: records in, records out, and drops by reason."""

    name: str
    n_in: int = 0
    n_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    in_unit: str = ""  # what `n_in` counts when it is not records (e.g. "files" for the reader)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "in": self.n_in, "out": self.n_out, "dropped": dict(sorted(self.dropped.items()))}
        return {**d, "in_unit": self.in_unit} if self.in_unit else d

    def merge(self, other: dict[str, Any]) -> None:
        self.in_unit = self.in_unit or other.get("in_unit", "")
        self.n_in += other["in"]
        self.n_out += other["out"]
        self.dropped.update(other.get("dropped", {}))


class RunContext:
    """Per-run (or per-task) bookkeeping shared by the stages: stats, rejects, counters."""

    def __init__(self, on_reject: Callable[[Reject], None] | None = None) -> None:
        self.stats: dict[str, StageStats] = {}
        self.rejects: list[Reject] = []
        self.counters: Counter = Counter()  # free-form named counts (e.g. pairs per cascade level)
        self._on_reject = on_reject

    def stage(self, name: str) -> StageStats:
        if name not in self.stats:
            self.stats[name] = StageStats(name)
        return self.stats[name]

    def reject(self, source: str, reason: str, detail: str = "", *, stage: str, kind: str = CANDIDATE) -> None:
        """Drop a record: count it under `reason` and keep it for the rejects file."""
        self.stage(stage).dropped[reason] += 1
        rej = Reject(source=str(source), reason=reason, detail=str(detail), stage=stage, kind=kind)
        if self._on_reject is not None:
            self._on_reject(rej)
        else:
            self.rejects.append(rej)

    def merge(self, other: "RunContext") -> None:
        """Fold another context (e.g. a worker's) into this one, keeping stage order."""
        for name, st in other.stats.items():
            self.stage(name).merge(st.to_dict())
        for rej in other.rejects:
            if self._on_reject is not None:
                self._on_reject(rej)
            else:
                self.rejects.append(rej)
        self.counters.update(other.counters)

    def rejected_by_reason(self) -> dict[str, int]:
        total: Counter = Counter()
        for st in self.stats.values():
            total.update(st.dropped)
        return dict(sorted(total.items()))


def stage_label(stage: dict[str, Any]) -> str:
    """A report stage's name, saying what its input count counts when that is not records."""
    return f"{stage['name']} ({stage['in_unit']} in)" if stage.get("in_unit") else stage["name"]


def record_source(record: Any) -> str:
    """The best human-readable id of a record, for rejects."""
    for attr in ("source", "pair_id", "id", "record_id"):
        value = record.get(attr) if isinstance(record, dict) else getattr(record, attr, None)
        if value:
            return str(value)
    return repr(record)[:120]


class Stage:
    """One job over a stream of records. Subclasses implement `run` and set `name`."""

    name: ClassVar[str] = "stage"
    reject_kind: ClassVar[str] = CANDIDATE
    in_unit: ClassVar[str] = ""  # set when the stage's input is not records, e.g. "files"

    def run(self, records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
        raise NotImplementedError

    def drop(self, ctx: RunContext, record: Any, reason: str, detail: str = "") -> None:
        ctx.reject(record_source(record), reason, detail, stage=self.name, kind=self.reject_kind)


class Filter(Stage):
    """A stage that keeps or drops each record; `keep` returns a bool or `(bool, reason)`."""

    name: ClassVar[str] = "filter"

    def keep(self, record: Any) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def run(self, records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
        for record in records:
            verdict = self.keep(record)
            ok, reason = verdict if isinstance(verdict, tuple) else (verdict, self.name)
            if ok:
                yield record
            else:
                self.drop(ctx, record, reason)


def _counted(records: Iterable[Any], stats: StageStats, attr: str) -> Iterator[Any]:
    for record in records:
        setattr(stats, attr, getattr(stats, attr) + 1)
        yield record


def run_stages(stages: list[Stage], records: Iterable[Any], ctx: RunContext) -> Iterator[Any]:
    """Chain `stages` lazily over `records`, counting each stage's in and out."""
    stream: Iterable[Any] = records
    for stage in stages:
        stats = ctx.stage(stage.name)
        stats.in_unit = stats.in_unit or stage.in_unit
        stream = _counted(stage.run(_counted(stream, stats, "n_in"), ctx), stats, "n_out")
    return iter(stream)
