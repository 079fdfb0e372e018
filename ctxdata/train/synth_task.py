"""Short synthetic tool traces in contrastive pairs, plus verifiable task QA over them.

Each item is two shell traces (a few commands with their outputs, a few hundred tokens) that are
identical except for ONE decisive output line:

    test        `pytest tests/test_x.py::test_y -q` -> "1 passed in 0.31s" | "1 failed in 0.31s"
    returncode  `make build; echo "exit=$?"`         -> "exit=0"            | "exit=2"
    version     `python -c "import pkg; print(pkg.__version__)"` -> "2.31.0" | "2.28.1"
    path        `find . -name settings.toml`          -> "./config/settings.toml" | "./src/app/settings.toml"

The pair (domain `coding`, method `synth:<kind>`) asks which trace supports the answer; the task
QA asks the question about one trace and has an exact, checkable answer (`score_answer`). With
`easy`, the decisive output line is `answer: <value>` (a learnability control: the pair is then
solved by finding the line that repeats the given answer). Items
are split into train and held-out by index, so no trace is in both. Everything derives from
(seed, index): the same seed gives the same bytes. This is the embedded data a 135M model can
learn from on a CPU in minutes.
"""

from __future__ import annotations

import difflib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ctxdata.errors import ConfigError
from ctxdata.pipeline import RunContext, Stage
from ctxdata.schema import Check, Pair

KINDS = ("test", "returncode", "version", "path")
TASK_SUFFIX = "Answer with the value only."
_MODULES = ["urls", "parser", "cache", "auth", "config", "models", "cli", "io", "retry", "render"]
_TESTS = ["trailing_dot", "empty_input", "unicode_path", "timeout", "large_file", "nested_keys", "default_port", "retry_limit"]
_PACKAGES = ["requests", "numpy", "pydantic", "click", "rich", "httpx", "attrs", "jinja2", "pyyaml", "packaging"]
_TARGETS = ["build", "lint", "docs", "install", "check", "dist"]
_DIRS = ["config", "src/app", "etc", "deploy", "src/settings", "conf/local"]
_FILES = ["settings.toml", "logging.ini", "app.yaml", "secrets.env", "routes.json"]


@dataclass
class SynthTaskConfig:
    """What `ctxdata synth task` generates."""

    n: int = 200  # pairs in total (train + held-out); each pair also gives two task QA items
    seed: int = 0  # the same seed gives byte-identical output
    heldout: float = 0.2  # fraction of pairs (the last ones by index) kept for evaluation
    kinds: tuple[str, ...] = KINDS  # which decisive-line kinds to draw from
    filler: int = 3  # non-decisive commands per trace (each adds ~20-40 tokens)
    shard_size: int = 200  # pairs per shard (the unit of resume)
    easy: bool = False  # the decisive output line is "answer: <value>": it states the answer verbatim

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ConfigError(f"kinds must be a non-empty subset of {', '.join(KINDS)}; got {', '.join(unknown) or 'nothing'}")
        if not 0 <= self.heldout < 1:
            raise ConfigError(f"heldout must be in [0, 1), got {self.heldout}")
        if self.n < 2 or self.filler < 0 or self.shard_size < 1:
            raise ConfigError("n must be >= 2, filler >= 0 and shard_size >= 1")

    @property
    def n_train(self) -> int:
        return self.n - round(self.n * self.heldout)


@dataclass
class TracePair:
    """Two traces that differ in one decisive line, and the question that line answers."""

    index: int
    kind: str
    question: str
    anchor_trace: str
    confounder_trace: str
    anchor_answer: str
    confounder_answer: str
    label: str  # the slot (A/B) the anchor trace goes to
    meta: dict[str, Any] = field(default_factory=dict)


def _decisive(kind: str, rng: random.Random) -> tuple[str, str, tuple[str, str], tuple[str, str]]:
    """(question, command, (anchor output, confounder output), (anchor answer, confounder answer))."""
    if kind == "test":
        test = f"tests/test_{rng.choice(_MODULES)}.py::test_{rng.choice(_TESTS)}"
        secs = f"{rng.uniform(0.05, 2.0):.2f}s"
        verdicts = rng.sample(["passed", "failed"], 2)
        return f"Did {test} pass or fail?", f"pytest {test} -q", tuple(f"1 {v} in {secs}" for v in verdicts), tuple(verdicts)
    if kind == "returncode":
        target = rng.choice(_TARGETS)
        codes = rng.sample(["0", "1", "2", "127"], 2)
        command = f'make {target} >/dev/null 2>&1; echo "exit=$?"'
        return f"What exit code did `make {target}` return?", command, tuple(f"exit={c}" for c in codes), tuple(codes)
    if kind == "version":
        pkg = rng.choice(_PACKAGES)
        major, minor = rng.randint(1, 4), rng.randint(0, 30)
        versions = tuple(f"{major}.{m}.{rng.randint(0, 9)}" for m in rng.sample(range(minor, minor + 12), 2))
        return f"Which version of {pkg} is installed?", f'python -c "import {pkg}; print({pkg}.__version__)"', versions, versions
    name = rng.choice(_FILES)
    paths = tuple(f"./{d}/{name}" for d in rng.sample(_DIRS, 2))
    return f"Where is {name}?", f"find . -name {name}", paths, paths


def _filler(rng: random.Random, avoid: str) -> tuple[str, str]:
    """One non-decisive command and its output (never about the decisive subject `avoid`)."""
    choice = rng.randrange(5)
    if choice == 0:
        return "ls src", "  ".join(sorted(rng.sample([f"{m}.py" for m in _MODULES], 4)))
    if choice == 1:
        return "git status --short", "\n".join(f" M src/{m}.py" for m in sorted(rng.sample(_MODULES, 2)))
    if choice == 2:
        pkg = rng.choice([p for p in _PACKAGES if p not in avoid])
        return f"pip show {pkg} | head -1", f"Name: {pkg}"
    if choice == 3:
        mod = rng.choice(_MODULES)
        return f"wc -l src/{mod}.py", f"{rng.randint(20, 400)} src/{mod}.py"
    mod = rng.choice(_MODULES)
    return f"grep -c 'def ' src/{mod}.py", str(rng.randint(1, 30))


def make_trace_pair(index: int, config: SynthTaskConfig) -> TracePair:
    """The `index`-th pair of a run: a pure function of (seed, index)."""
    rng = random.Random(f"synth-task:{config.seed}:{index}")
    kind = config.kinds[rng.randrange(len(config.kinds))]
    question, command, (out_anchor, out_confounder), (anchor_answer, confounder_answer) = _decisive(kind, rng)
    if config.easy:  # the learnability control: matching the answer string to a line is all it takes
        out_anchor, out_confounder = f"answer: {anchor_answer}", f"answer: {confounder_answer}"
    steps = [_filler(rng, question) for _ in range(config.filler)]
    slot = rng.randint(0, len(steps))
    render = lambda out: "\n".join(f"$ {cmd}\n{o}" for cmd, o in steps[:slot] + [(command, out)] + steps[slot:])  # noqa: E731
    return TracePair(
        index=index,
        kind=kind,
        question=question,
        anchor_trace=render(out_anchor),
        confounder_trace=render(out_confounder),
        anchor_answer=anchor_answer,
        confounder_answer=confounder_answer,
        label=rng.choice("AB"),
        meta={"kind": kind, "index": index, "seed": config.seed, "decisive_command": command,
              "decisive_anchor": out_anchor, "decisive_confounder": out_confounder},
    )


def differing_lines(a: str, b: str) -> list[tuple[str, str]]:
    """Line pairs that differ between two traces of equal line count."""
    return [(x, y) for x, y in zip(a.splitlines(), b.splitlines()) if x != y]


def to_pair(tp: TracePair, split: str) -> Pair:
    a, b = (tp.anchor_trace, tp.confounder_trace) if tp.label == "A" else (tp.confounder_trace, tp.anchor_trace)
    diff = differing_lines(tp.anchor_trace, tp.confounder_trace)
    one_line = len(diff) == 1 and len(tp.anchor_trace.splitlines()) == len(tp.confounder_trace.splitlines())
    return Pair(
        domain="coding",
        query=tp.question,
        answer=tp.anchor_answer,
        answer_confounder=tp.confounder_answer,
        label=tp.label,
        method=f"synth:{tp.kind}",
        similarity=difflib.SequenceMatcher(None, tp.anchor_trace, tp.confounder_trace).ratio(),
        anchor_id=f"synth-task-{tp.meta['seed']}-{tp.index}-anchor",
        confounder_id=f"synth-task-{tp.meta['seed']}-{tp.index}-confounder",
        context_a_text=a,
        context_b_text=b,
        checks=[Check("one_decisive_line", one_line, 1.0 if one_line else 0.0, " -> ".join(diff[0]) if diff else "no difference")],
        meta={**tp.meta, "split": split},
    )


class BuildTracePairs(Stage):
    """Indices -> verified pairs (a pair whose traces do not differ in exactly one line is rejected)."""

    name = "build_trace_pairs"

    def __init__(self, config: SynthTaskConfig, split: str) -> None:
        self.config, self.split = config, split

    def run(self, records: Iterable[int], ctx: RunContext) -> Iterator[Pair]:
        for index in records:
            pair = to_pair(make_trace_pair(index, self.config), self.split)
            if pair.checks[0].passed:
                yield pair
            else:
                self.drop(ctx, {"id": f"index-{index}"}, "not exactly one decisive line", pair.checks[0].detail)


def task_prompt(trace: str, question: str) -> str:
    return f"{trace}\n\nQuestion: {question}\n{TASK_SUFFIX}"


def task_items(tp: TracePair, pair_id: str, split: str) -> list[dict[str, Any]]:
    """Two QA items, one per trace: same question, different verifiable answers."""
    return [
        {"prompt": task_prompt(trace, tp.question), "answer": answer, "kind": tp.kind, "pair_id": pair_id, "split": split}
        for trace, answer in ((tp.anchor_trace, tp.anchor_answer), (tp.confounder_trace, tp.confounder_answer))
    ]


def normalize_answer(text: str) -> str:
    """The first line, stripped of spaces, quotes, backticks and a trailing period, lower-cased."""
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first.strip().strip("`'\"").rstrip(".").strip().lower()


def score_answer(completion: str, answer: str) -> float:
    """1.0 when the completion's first line is the answer (exact after normalisation), else 0.0."""
    return float(normalize_answer(completion) == normalize_answer(answer))


def write_synth_task(config: SynthTaskConfig, out: str | Path, *, overwrite: bool = False,
                     on_progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write OUT (train pairs), OUT/heldout (held-out pairs), OUT/task.jsonl and OUT/task-heldout.jsonl."""
    from ctxdata.io import PairOutput, atomic_write_text
    from ctxdata.engine import run_tasks

    out = Path(out)
    splits = {"train": (out, range(config.n_train)), "heldout": (out / "heldout", range(config.n_train, config.n))}
    stats: dict[str, Any] = {}
    for split, (folder, indices) in splits.items():
        cfg = {**asdict(config), "split": split}
        output = PairOutput(folder, cfg, command="synth task", overwrite=overwrite)
        ids = list(indices)
        tasks = [ids[i : i + config.shard_size] for i in range(0, len(ids), config.shard_size)]
        run_tasks(output, tasks, [BuildTracePairs(config, split)], on_task=lambda _t, k: on_progress and on_progress(k))
        report = output.finalize(len(tasks), inputs=len(ids), global_ctx=RunContext(), extra={"split": split})
        items = [item for i in ids for item in _items_for(i, config, split)]
        name = "task.jsonl" if split == "train" else "task-heldout.jsonl"
        atomic_write_text(out / name, "".join(json.dumps(it, sort_keys=True) + "\n" for it in items))
        stats[split] = {"pairs": report["pairs"], "task_items": len(items), "methods": report["methods"], "rejected": report["rejected"]}
    return stats


def _items_for(index: int, config: SynthTaskConfig, split: str) -> list[dict[str, Any]]:
    tp = make_trace_pair(index, config)
    pair = to_pair(tp, split)
    return task_items(tp, pair.pair_id, split) if pair.checks[0].passed else []


def read_task(path: str | Path) -> list[dict[str, Any]]:
    """Task QA items of a `task.jsonl` / `task-heldout.jsonl`."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
