"""Synthetic mini-swe-agent runs on sibling SWE-bench-style tasks, with report.json outcomes.

    write_traces(SynthConfig(n=1000, seed=0), Path("synth/"))
    # synth/trajs/<id>/<id>.traj.json + synth/logs/<id>/report.json
    write_traces(SynthConfig(n=300, runs_per_task=4), Path("runs/"))
    # runs/run-1/trajs/<id>/<id>.traj.json ... runs/run-4/logs/<id>/report.json

A small world of repos -> files -> functions is generated from the seed. Tasks come in sibling
groups: the tasks of a group share repo, base commit, file and function, and each has a different
bug there (a different mutation kind), so a different issue. The scripted agent
(`ctxdata.coding.synth_agent`) runs each task `runs_per_task` times. A run either fixes the
issue's bug (resolved) or makes a plausible wrong change at the same place (resolved: false);
two runs of one task may submit the same patch. Runs are shaped after real mini-swe-agent runs
and their shape does not depend on the outcome (see `synth_agent`). Each task and each run has
its own RNG stream, so the output is byte-identical for a seed whatever the workers or `n`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ctxdata.errors import ConfigError

OWNERS = ["acme", "orbital", "lumen", "quartz", "nimbus", "vertex", "harbor", "cobalt", "meridian", "tundra"]
NAMES = ["tessera", "ledgerly", "pipewise", "gridkit", "parsel", "quiver", "stratum", "beacon", "foliage", "runnel"]
P_RESOLVED = 0.6  # chance that a run fixes the right bug (Gemini 3 Pro, mini-swe-agent: 0.73 on SWE-bench Verified)
P_COMMENTED = 0.3  # chance that a run writes its fix with a trailing comment (so correct runs differ too)
MIN_STEPS = 6  # locate, reproduce (write, run), edit, re-run, submit


@dataclass
class SynthConfig:
    """Sizes and structure of a synthetic trajectory set."""

    n: int = 100  # number of tasks (task instances)
    seed: int = 0  # same seed -> byte-identical files
    repos: int = 6  # repositories in the synthetic world
    files_per_repo: int = 4  # Python modules per repository
    functions_per_file: int = 6  # functions/methods per module (the sibling targets)
    siblings: int = 3  # tasks per sibling group (same repo, commit, file, function; different bug)
    runs_per_task: int = 1  # agent runs per task; more than 1 writes run-1/ ... run-K/, one results folder each
    steps: int = 30  # median agent steps of a run; each run draws its own count (real runs: ~0.6x to ~1.8x)
    kb: float = 60.0  # mean size of one trajectory file in KB; longer runs are larger (real: ~50 KB of step text)

    def __post_init__(self) -> None:
        for name in ("n", "repos", "files_per_repo", "functions_per_file", "siblings", "runs_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"synth {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < MIN_STEPS:
            raise ConfigError(
                f"synth steps must be >= {MIN_STEPS} (locate, reproduce, run, edit, re-run, submit), got {self.steps}"
            )
        if self.kb <= 0:
            raise ConfigError(f"synth kb must be > 0, got {self.kb}")

    @property
    def n_groups(self) -> int:
        return -(-self.n // self.siblings)


@dataclass
class SynthTask:
    """One task instance: where its bug is, which kind it is, and its issue text."""

    index: int
    id: str
    repo: str
    commit: str
    module: "Module"
    target: "SynthFunction"
    kind: str  # the bug the issue reports (one of MUTATIONS)
    variant: int  # the form of its correct fix (`fix_variant`)
    issue: str
    wrong_kinds: tuple[str, ...]  # the changes a wrong run makes instead (kinds no sibling task has, if any)
    first_resolved: bool  # outcome of run 1; run 2 has the other, so every task with 2+ runs has both


def repo_name(cfg: SynthConfig, r: int) -> str:
    suffix = "" if r < len(NAMES) else str(r // len(NAMES))
    return f"{OWNERS[(r * 7 + cfg.seed) % len(OWNERS)]}/{NAMES[r % len(NAMES)]}{suffix}"


def group_target(cfg: SynthConfig, g: int) -> tuple[int, int, int, int]:
    """(repo, file, function, commit) indices of sibling group g: groups spread over repos first."""
    r = g % cfg.repos
    f = (g // cfg.repos) % cfg.files_per_repo
    k = (g // (cfg.repos * cfg.files_per_repo)) % cfg.functions_per_file
    commit = (g // (cfg.repos * cfg.files_per_repo * cfg.functions_per_file)) % 3
    return r, f, k, commit


def commit_sha(cfg: SynthConfig, r: int, c: int) -> str:
    return random.Random(f"{cfg.seed}:commit:{r}:{c}").getrandbits(160).to_bytes(20, "big").hex()


def instance_id(cfg: SynthConfig, i: int) -> str:
    owner, name = repo_name(cfg, group_target(cfg, i // cfg.siblings)[0]).split("/")
    return f"{owner}__{name}-{1000 + i}"


def make_task(cfg: SynthConfig, i: int) -> SynthTask:
    """Task i: its sibling group fixes repo, commit, file and function; its place in the group the bug kind."""
    g, s = divmod(i, cfg.siblings)
    r, f, k, c = group_target(cfg, g)
    repo = repo_name(cfg, r)
    module = build_module(cfg.seed, repo, f, cfg.functions_per_file)
    kinds = random.Random(f"{cfg.seed}:group:{g}").sample(MUTATIONS, len(MUTATIONS))
    kind = kinds[s % len(kinds)]
    rng = random.Random(f"{cfg.seed}:instance:{i}")
    unused = kinds[cfg.siblings :]  # a wrong run should not submit a sibling task's fix
    wrong = tuple(unused) if unused else tuple(m for m in MUTATIONS if m != kind)
    # Each group has both outcomes once it has 2+ tasks; the rest is a coin flip.
    first_resolved = (s % 2 == 0) if s < 2 and cfg.siblings > 1 else rng.random() < P_RESOLVED
    issue = issue_text(module, module.functions[k], kind, rng)
    return SynthTask(
        i,
        instance_id(cfg, i),
        repo,
        commit_sha(cfg, r, c),
        module,
        module.functions[k],
        kind,
        fix_variant(s, rng),
        issue,
        wrong,
        first_resolved,
    )


def fix_variant(sibling: int, rng: random.Random) -> int:
    """The form of a fix: the plainest one (0) or one marked by the task's place in its group, half and half.

    Right and wrong fixes draw their forms alike, so a form (say, an added line that is a substring of
    the line it replaces) says nothing about which run is resolved; repeats of a kind in a group larger
    than the kinds get forms of their own (10, 11, ...).
    """
    repeat, slot = divmod(sibling, len(MUTATIONS))
    return 10 * repeat + (0 if rng.random() < 0.5 else 1 + slot)


def make_run(cfg: SynthConfig, i: int, run: int = 0) -> tuple[str, dict, dict]:
    """Run `run` of task i -> (instance_id, mini-swe-agent trajectory dict, SWE-bench report dict)."""
    from ctxdata.coding.synth_agent import run_messages

    task = make_task(cfg, i)
    rng = random.Random(f"{cfg.seed}:run:{i}:{run}")
    resolved = (
        task.first_resolved if run == 0 else (not task.first_resolved if run == 1 else rng.random() < P_RESOLVED)
    )
    fix_kind = task.kind if resolved else rng.choice(task.wrong_kinds)
    variant = task.variant if resolved else fix_variant(task.index % cfg.siblings, rng)
    new_lines = fix_lines(task.module, task.target, fix_kind, variant, commented=rng.random() < P_COMMENTED)
    patch = unified_diff(task.module.path, task.module.lines, new_lines)
    messages = run_messages(cfg, task, rng, fix_kind, new_lines, patch)
    traj = {
        "info": {
            "exit_status": "Submitted",
            "submission": patch,
            "model_stats": {
                "instance_cost": round(rng.uniform(0.05, 1.2), 4),
                "api_calls": sum(m["role"] == "assistant" for m in messages),
            },
            "mini_version": "1.15.0",
            "config": {"model": {"model_name": "synth/scripted-agent"}},
        },
        "messages": messages,
        "trajectory_format": "mini-swe-agent-1",
        "instance_id": task.id,
        "base_commit": task.commit,  # not in mini-swe-agent's schema; the reader uses it when present
    }
    return task.id, traj, _report(task.id, task.target, task.kind, resolved, task.module)


def _report(iid: str, target: "SynthFunction", kind: str, resolved: bool, module: "Module") -> dict:
    test_file = module.test_path
    f2p = [f"{test_file}::test_{target.name}_{kind}"]
    p2p = [f"{test_file}::test_{fn.name}_basic" for fn in module.functions]
    return {
        iid: {
            "patch_is_None": False,
            "patch_exists": True,
            "patch_successfully_applied": True,
            "resolved": resolved,
            "tests_status": {
                "FAIL_TO_PASS": {"success": f2p if resolved else [], "failure": [] if resolved else f2p},
                "PASS_TO_PASS": {"success": p2p, "failure": []},
                "FAIL_TO_FAIL": {"success": [], "failure": []},
                "PASS_TO_FAIL": {"success": [], "failure": []},
            },
        }
    }


def run_folder(cfg: SynthConfig, out: Path, run: int) -> Path:
    """Where run `run` (0-based) goes: `out` itself for one run per task, else `out/run-<run+1>`."""
    return out if cfg.runs_per_task == 1 else out / f"run-{run + 1}"


def _write_one(args: tuple[SynthConfig, Path, int, int]) -> tuple[int, int]:
    cfg, out, i, run = args
    iid, traj, report = make_run(cfg, i, run)
    folder = run_folder(cfg, out, run)
    traj_dir, log_dir = folder / "trajs" / iid, folder / "logs" / iid
    traj_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    a = json.dumps(traj, indent=2).encode()  # as mini-swe-agent and the SWE-bench harness write them
    b = json.dumps(report, indent=4).encode()
    (traj_dir / f"{iid}.traj.json").write_bytes(a)
    (log_dir / "report.json").write_bytes(b)
    return len(a), len(b)


def write_traces(cfg: SynthConfig, out: Path, workers: int | None = None, on_progress=None) -> dict:
    """Write `cfg.n` tasks x `cfg.runs_per_task` runs (a trajectory and a report each) under `out`; returns counts."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created if missing)")
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    total = cfg.n * cfg.runs_per_task
    jobs = ((cfg, out, i, run) for run in range(cfg.runs_per_task) for i in range(cfg.n))
    traj_bytes = report_bytes = 0
    if workers > 1 and total >= 200:
        import multiprocessing as mp

        from ctxdata.parallel import die_with_parent

        with mp.get_context("fork").Pool(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for a, b in pool.imap_unordered(_write_one, jobs, chunksize=64):
                traj_bytes, report_bytes = traj_bytes + a, report_bytes + b
                if on_progress:
                    on_progress(1)
    else:
        for job in jobs:
            a, b = _write_one(job)
            traj_bytes, report_bytes = traj_bytes + a, report_bytes + b
            if on_progress:
                on_progress(1)
    repos = {group_target(cfg, g)[0] for g in range(cfg.n_groups)}
    return {
        "files": 2 * total,
        "trajectories": total,
        "tasks": cfg.n,
        "runs_per_task": cfg.runs_per_task,
        "repos": len(repos),
        "sibling_groups": cfg.n_groups,
        "traj_bytes": traj_bytes,
        "report_bytes": report_bytes,
    }


# --- the synthetic world: modules of small filter-style functions, and bugs to fix in them ------

MUTATIONS = ["boundary", "none_guard", "default", "sort_order", "limit", "strict_error"]
VERBS = ["filter", "select", "collect", "rank", "prune", "gather", "pick", "scan", "merge", "score"]
NOUNS = ["records", "events", "rows", "entries", "jobs", "tokens", "packets", "samples", "spans", "tasks"]
FIELDS = ["score", "size", "priority", "weight", "age", "offset", "latency", "count"]
MODULES = ["core", "io", "models", "validators", "parsers", "cache", "scheduler", "routing", "storage", "metrics"]
CLASSES = ["Pipeline", "Registry", "Planner", "Collector", "Dispatcher", "Indexer", "Tracker", "Resolver"]

FUNCTION_TEMPLATE = [
    "def {name}({selfp}{arg}, {opt}=None, strict=False):",
    '    """{doc}"""',
    "    if {opt} is None:",
    "        {opt} = {default}",
    "    {acc} = []",
    "    for {item} in {arg}:",
    "        if {item}.{fld} < {opt}:",
    "            {acc}.append({item})",
    "        elif strict and {item}.{fld} == {const}:",
    '            raise ValueError("{msg}: %r" % ({item},))',
    "    {acc}.sort(key=lambda x: x.{fld})",
    '    logger.debug("{name}: kept %d of %d", len({acc}), len({arg}))',
    "    return {acc}[:{limit}]",
]


@dataclass
class SynthFunction:
    """One generated function or method and the names used in its body."""

    name: str
    qualname: str
    start: int  # index of its `def` line in Module.lines
    indent: str
    names: dict = field(default_factory=dict)


@dataclass
class Module:
    """One generated Python module of a synthetic repo."""

    repo: str
    path: str
    test_path: str
    lines: list  # lines with their "\n"
    functions: list


@lru_cache(maxsize=256)
def build_module(seed: int, repo: str, f: int, n_functions: int) -> Module:
    """The module `f` of `repo` (cached: all siblings of a group read the same module)."""
    rng = random.Random(f"{seed}:module:{repo}:{f}")
    pkg = repo.split("/")[1].replace("-", "_")
    mod = MODULES[f % len(MODULES)] + ("" if f < len(MODULES) else str(f // len(MODULES)))
    cls = rng.choice(CLASSES)
    lines = [
        f'"""{mod.capitalize()} helpers of {pkg}."""\n',
        "\n",
        "from __future__ import annotations\n",
        "\n",
        "import logging\n",
        "\n",
    ]
    lines += ["logger = logging.getLogger(__name__)\n", "\n", f"DEFAULT_LIMIT = {rng.randint(20, 90)}\n", "\n", "\n"]
    n_methods = (n_functions + 1) // 2
    lines += [f"class {cls}:\n", f'    """Selects {rng.choice(NOUNS)} for the {mod} stage."""\n', "\n"]
    lines += [
        "    def __init__(self, threshold=10, strict=False):\n",
        "        self._threshold = threshold\n",
        "        self.strict = strict\n",
        "\n",
    ]
    functions, used = [], set()
    for k in range(n_functions):
        method = k < n_methods
        if k == n_methods:
            lines += ["\n"]
        name = f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"
        while name in used:
            name += "_v2"
        used.add(name)
        noun = name.split("_")[1]
        names = dict(
            name=name,
            selfp="self, " if method else "",
            arg=noun,
            opt="threshold",
            acc="kept",
            item=noun[:-1],
            fld=rng.choice(FIELDS),
            default="self._threshold" if method else str(rng.randint(2, 40)),
            const=rng.randint(0, 9),
            msg=f"invalid {noun[:-1]}",
            limit="DEFAULT_LIMIT",
            doc=f"Return the {noun} below the threshold, sorted.",
        )
        indent = "    " if method else ""
        functions.append(SynthFunction(name, f"{cls}.{name}" if method else name, len(lines), indent, names))
        lines += [indent + t.format(**names) + "\n" for t in FUNCTION_TEMPLATE] + ["\n"]
        if not method:
            lines += ["\n"]
    return Module(repo, f"src/{pkg}/{mod}.py", f"tests/test_{mod}.py", lines, functions)


FIX_COMMENTS = {
    "boundary": "keep {arg} at the threshold",
    "none_guard": "nothing to select",
    "default": "the threshold is inclusive",
    "sort_order": "largest {fld} first",
    "limit": "callers slice the result themselves",
    "strict_error": "skip bad {arg} instead of aborting",
}


def fix_lines(module: Module, fn: SynthFunction, kind: str, variant: int, commented: bool = False) -> list:
    """The module's lines after a fix of bug `kind` in `fn`; `variant` separates repeats of a kind."""
    n, i, at = fn.names, fn.indent, fn.start
    new = list(module.lines)
    bump = f" + {variant}" if variant else ""
    if kind == "boundary":
        new[at + 6] = f"{i}        if {n['item']}.{n['fld']} <= {n['opt']}{bump}:\n"
    elif kind == "none_guard":
        guard = f"if not {n['arg']}:" if not variant else f"if {n['arg']} is None or len({n['arg']}) < {variant}:"
        new[at + 2 : at + 2] = [f"{i}    {guard}\n", f"{i}        return []\n"]
    elif kind == "default":
        new[at + 3] = f"{i}        {n['opt']} = {n['default']} + {1 + variant}\n"
    elif kind == "sort_order":
        new[at + 10] = (
            f"{i}    {n['acc']}.sort(key=lambda x: x.{n['fld']}, reverse=True)\n"
            if not variant
            else f"{i}    {n['acc']}.sort(key=lambda x: (-x.{n['fld']}, {variant}))\n"
        )
    elif kind == "limit":
        new[at + 12] = (
            f"{i}    return {n['acc']}\n"
            if not variant
            else f"{i}    return {n['acc']}[: {n['limit']} * {variant + 1}]\n"
        )
    else:  # strict_error
        tag = f" ({variant})" if variant else ""
        new[at + 9 : at + 10] = [
            f'{i}            logger.warning("{n["msg"]}{tag}: %r", {n["item"]})\n',
            f"{i}            continue\n",
        ]
    if commented:
        first = next(j for j, (a, b) in enumerate(zip(module.lines, new)) if a != b)
        new[first] = new[first].rstrip("\n") + "  # " + FIX_COMMENTS[kind].format(**n) + "\n"
    return new


SYMPTOMS = {
    "boundary": "drops {arg} whose `{fld}` is exactly the threshold; they should be kept",
    "none_guard": "raises `TypeError: 'NoneType' object is not iterable` when `{arg}` is None or empty",
    "default": "uses a threshold one too low when `{opt}` is not given, so borderline {arg} disappear",
    "sort_order": "returns {arg} in ascending `{fld}` order although callers expect the largest first",
    "limit": "silently truncates the result to `DEFAULT_LIMIT` {arg}",
    "strict_error": "aborts the whole batch with `ValueError` in strict mode instead of skipping the bad {item}",
}


def symptom(fn: SynthFunction, kind: str) -> str:
    return SYMPTOMS[kind].format(**fn.names)


def issue_text(module: Module, fn: SynthFunction, kind: str, rng: random.Random) -> str:
    """The issue of bug `kind` in `fn`: a title, a description and a reproduction hint."""
    n, said = fn.names, symptom(fn, kind)
    title = f"`{fn.qualname}` {said.split(';')[0].split(',')[0]}"
    return (
        f"{title}\n\nDescription\n\n`{fn.qualname}` in `{module.path}` {said}.\n\nTo reproduce:\n```python\n"
        f"from {module.path[4:-3].replace('/', '.')} import {fn.qualname.split('.')[0]}\n# call {fn.name} on a few "
        f"{n['arg']} with {n['fld']} around the threshold\n```\n"
        f"Seen in {rng.choice(['production', 'CI', 'a downstream project', 'the nightly job'])} after upgrading "
        f"{module.repo}."
    )


def _blob(lines: list) -> str:
    """The abbreviated git blob id of a file's content, as `index` lines show it."""
    data = "".join(lines).encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()[:10]


def unified_diff(path: str, old: list, new: list) -> str:
    """A git-style diff of one contiguous change (3 lines of context, python-driver hunk header)."""
    lo = 0
    while lo < min(len(old), len(new)) and old[lo] == new[lo]:
        lo += 1
    hi_old, hi_new = len(old), len(new)
    while hi_old > lo and hi_new > lo and old[hi_old - 1] == new[hi_new - 1]:
        hi_old, hi_new = hi_old - 1, hi_new - 1
    start, end_old = max(0, lo - 3), min(len(old), hi_old + 3)
    end_new = hi_new + (end_old - hi_old)
    # Hunk context as git prints it with the `diff=python` driver: the nearest def/class, unindented.
    context = next(
        (
            old[j].strip()
            for j in range(start - 1, -1, -1)
            if old[j].lstrip().startswith(("def ", "class ", "async def "))
        ),
        "",
    )
    n_old, n_new = end_old - start, end_new - start

    def span(first: int, count: int) -> str:
        return str(first) if count == 1 else f"{first},{count}"

    out = [
        f"diff --git a/{path} b/{path}\n",
        f"index {_blob(old)}..{_blob(new)} 100644\n",
        f"--- a/{path}\n",
        f"+++ b/{path}\n",
    ]
    out.append(f"@@ -{span(start + 1, n_old)} +{span(start + 1, n_new)} @@{' ' + context if context else ''}\n")
    out += [" " + line for line in old[start:lo]]
    out += ["-" + line for line in old[lo:hi_old]] + ["+" + line for line in new[lo:hi_new]]
    out += [" " + line for line in old[hi_old:end_old]]
    return "".join(out)
