"""Synthetic mini-swe-agent trajectories for sibling SWE-bench-style tasks, with report.json outcomes.

    write_traces(SynthConfig(n=1000, seed=0), Path("synth/"))
    # synth/trajs/<id>/<id>.traj.json + synth/logs/<id>/report.json

A small world of repos -> files -> functions is generated from the seed. Tasks come in sibling
groups: every instance of a group shares repo, base commit, file and function, gets a DIFFERENT
bug in that function (a different mutation kind), a related issue text and its own outcome, so
siblings make contrastive pairs. Each instance is generated from its own RNG stream, so output is
byte-identical for a seed whatever the number of workers.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ctxdata.errors import ConfigError

SYSTEM = (
    "You are a helpful assistant that can interact multiple times with a computer shell to solve programming tasks.\n"
    "Your response must contain exactly ONE bash code block with ONE command (or commands connected with && or ||).\n\n"
    "Include a THOUGHT section before your command where you explain your reasoning process.\n"
    "Format your response as shown in <format_example>.\n\n<format_example>\nTHOUGHT: Your reasoning and analysis here\n\n"
    "```bash\nyour_command_here\n```\n</format_example>\n\nFailure to follow these rules will cause your response to be rejected."
)
INSTRUCTIONS = (
    "<instructions>\n# Task Instructions\n\n## Overview\nYou're a software engineer interacting continuously with a computer by "
    "submitting commands. You'll be helping implement necessary changes to meet requirements in the PR description.\n"
    "Your task is specifically to make changes to non-test files in the current directory in order to fix the issue "
    "described in the PR description in a way that is general and consistent with the codebase.\n</instructions>"
)
OWNERS = ["acme", "orbital", "lumen", "quartz", "nimbus", "vertex", "harbor", "cobalt", "meridian", "tundra"]
NAMES = ["tessera", "ledgerly", "pipewise", "gridkit", "parsel", "quiver", "stratum", "beacon", "foliage", "runnel"]
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached"


@dataclass
class SynthConfig:
    """Sizes and structure of a synthetic trajectory set."""

    n: int = 100  # number of task instances (trajectories)
    seed: int = 0  # same seed -> byte-identical files
    repos: int = 6  # repositories in the synthetic world
    files_per_repo: int = 4  # Python modules per repository
    functions_per_file: int = 6  # functions/methods per module (the sibling targets)
    siblings: int = 3  # instances per sibling group (same repo, commit, file, function)
    steps: int = 12  # agent steps per trajectory (>= 6: locate, read, reproduce, edit, test, submit)
    kb: float = 20.0  # approximate size of one trajectory file in KB

    def __post_init__(self) -> None:
        for name in ("n", "repos", "files_per_repo", "functions_per_file", "siblings"):
            if getattr(self, name) < 1:
                raise ConfigError(f"synth {name} must be >= 1, got {getattr(self, name)}")
        if self.steps < 6:
            raise ConfigError(f"synth steps must be >= 6 (locate, read, reproduce, edit, test, submit), got {self.steps}")
        if self.kb <= 0:
            raise ConfigError(f"synth kb must be > 0, got {self.kb}")

    @property
    def n_groups(self) -> int:
        return -(-self.n // self.siblings)


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


def make_instance(cfg: SynthConfig, i: int) -> tuple[str, dict, dict]:
    """Instance i -> (instance_id, mini-swe-agent trajectory dict, SWE-bench report dict)."""
    g, s = divmod(i, cfg.siblings)
    r, f, k, c = group_target(cfg, g)
    repo = repo_name(cfg, r)
    module = build_module(cfg.seed, repo, f, cfg.functions_per_file)
    target = module.functions[k]
    group_rng = random.Random(f"{cfg.seed}:group:{g}")
    kinds = group_rng.sample(MUTATIONS, len(MUTATIONS))
    kind = kinds[s % len(kinds)]
    rng = random.Random(f"{cfg.seed}:instance:{i}")
    iid = instance_id(cfg, i)
    old_lines, new_lines, issue_text = mutate(module, target, kind, variant=s // len(kinds), rng=rng)
    patch = unified_diff(module.path, old_lines, new_lines, rng)
    # Each group has both outcomes once it has 2+ members; the rest is a coin flip.
    resolved = (s % 2 == 0) if s < 2 and cfg.siblings > 1 else rng.random() < 0.55
    messages = _messages(cfg, rng, module, target, kind, issue_text, patch, resolved, new_lines)
    traj = {
        "info": {
            "exit_status": "Submitted",
            "submission": patch,
            "model_stats": {"instance_cost": round(rng.uniform(0.02, 0.4), 4), "api_calls": cfg.steps},
            "mini_version": "1.15.0",
            "config": {"model": {"model_name": "synth/scripted-agent"}},
        },
        "messages": messages,
        "trajectory_format": "mini-swe-agent-1",
        "instance_id": iid,
        "base_commit": commit_sha(cfg, r, c),  # not in mini-swe-agent's schema; the reader uses it when present
    }
    return iid, traj, _report(iid, target, kind, resolved, module)


def _report(iid: str, target: SynthFunction, kind: str, resolved: bool, module: Module) -> dict:
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


def _turn(thought: str, command: str) -> dict:
    return {"role": "assistant", "content": f"THOUGHT: {thought}\n\n```bash\n{command}\n```"}


def _obs(returncode: int, output: str) -> dict:
    return {"role": "user", "content": f"<returncode>{returncode}</returncode>\n<output>\n{output}</output>"}


def _messages(cfg, rng, module, target, kind, issue_text, patch, resolved, new_lines) -> list[dict]:
    q, path = target.qualname, module.path
    start = target.start + 1
    numbered = "".join(f"{n:6d}\t{line}\n" for n, line in enumerate(module.lines, 1))
    script = reproduce_script(module, target, kind)
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"<pr_description>\nConsider the following PR description:\n{issue_text}\n</pr_description>\n\n{INSTRUCTIONS}"}]
    say = rng.choice  # phrasing varies per instance, so siblings differ beyond their observations
    turns = [
        (_turn(say([f"The issue is about `{q}`. Let me find where it is defined.", f"First I need to locate `{target.name}` in the source tree."]), f'grep -rn "def {target.name}" src/'), _obs(0, f"{path}:{start}:{module.lines[target.start]}\n")),
        (_turn(say([f"Let me read `{path}` around `{q}`.", f"`{q}` lives in `{path}`; I'll look at the whole module."]), f"cat -n {path}"), _obs(0, numbered)),
        (_turn(say(["I'll write a script that reproduces the problem from the PR description.", f"Before changing anything I want a reproduction of the `{kind.replace('_', ' ')}` problem."]), f"cat <<'EOF' > reproduce.py\n{script}EOF"), _obs(0, "")),
        (_turn(say(["Now run the reproduction script.", "Let me confirm the bug with the script."]), "python reproduce.py"), _obs(1, f"Traceback (most recent call last):\n  File \"/testbed/reproduce.py\", line 6, in <module>\n    check()\nAssertionError: {target.name} misbehaves ({kind.replace('_', ' ')})\n")),
    ]
    fixed = "".join(new_lines)
    final = [
        (_turn(f"I'll apply the fix inside `{q}`.", f"cat <<'EOF' > {path}\n{fixed}EOF"), _obs(0, "")),
        (_turn("Re-run the reproduction script to confirm the fix.", "python reproduce.py"), _obs(0 if resolved or rng.random() < 0.5 else 1, "OK\n")),
        (_turn("Run the module's tests to check for regressions.", f"python -m pytest {module.test_path} -q"), _obs(0 if resolved else 1, pytest_output(module, target, kind, resolved))),
        (_turn("The change is complete; submitting.", SUBMIT), {"role": "user", "content": patch}),
    ]
    n_filler = max(0, cfg.steps - len(turns) - len(final))
    # Size the filler outputs so the written file (indent=2 JSON, patch twice) lands near cfg.kb.
    base = len(json.dumps(msgs + [m for pair in turns + final for m in pair], indent=2)) + len(json.dumps(patch)) + 700
    budget = int((cfg.kb * 1024 - base) / max(1, n_filler) / 1.03) - 250
    filler = [filler_output(rng, module, target, budget) for _ in range(n_filler)]
    for command, thought, output in filler:
        turns.append((_turn(thought, command), _obs(0, output)))
    for pair in turns + final:
        msgs.extend(pair)
    return msgs


def _write_one(args: tuple[SynthConfig, Path, int]) -> tuple[int, int]:
    cfg, out, i = args
    iid, traj, report = make_instance(cfg, i)
    traj_dir, log_dir = out / "trajs" / iid, out / "logs" / iid
    traj_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    a = json.dumps(traj, indent=2).encode()  # as mini-swe-agent and the SWE-bench harness write them
    b = json.dumps(report, indent=4).encode()
    (traj_dir / f"{iid}.traj.json").write_bytes(a)
    (log_dir / "report.json").write_bytes(b)
    return len(a), len(b)


def write_traces(cfg: SynthConfig, out: Path, workers: int | None = None, on_progress=None) -> dict:
    """Write `cfg.n` trajectories + reports under `out`; returns counts and bytes."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created if missing)")
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    jobs = ((cfg, out, i) for i in range(cfg.n))
    traj_bytes = report_bytes = 0
    if workers > 1 and cfg.n >= 200:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
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
    return {"files": 2 * cfg.n, "trajectories": cfg.n, "repos": len(repos), "sibling_groups": cfg.n_groups, "traj_bytes": traj_bytes, "report_bytes": report_bytes}


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
    lines = [f'"""{mod.capitalize()} helpers of {pkg}."""\n', "\n", "from __future__ import annotations\n", "\n", "import logging\n", "\n"]
    lines += ["logger = logging.getLogger(__name__)\n", "\n", f"DEFAULT_LIMIT = {rng.randint(20, 90)}\n", "\n", "\n"]
    n_methods = (n_functions + 1) // 2
    lines += [f"class {cls}:\n", f'    """Selects {rng.choice(NOUNS)} for the {mod} stage."""\n', "\n"]
    lines += ["    def __init__(self, threshold=10, strict=False):\n", "        self._threshold = threshold\n", "        self.strict = strict\n", "\n"]
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
            name=name, selfp="self, " if method else "", arg=noun, opt="threshold", acc="kept", item=noun[:-1],
            fld=rng.choice(FIELDS), default="self._threshold" if method else str(rng.randint(2, 40)), const=rng.randint(0, 9),
            msg=f"invalid {noun[:-1]}", limit="DEFAULT_LIMIT", doc=f"Return the {noun} below the threshold, sorted.",
        )
        indent = "    " if method else ""
        functions.append(SynthFunction(name, f"{cls}.{name}" if method else name, len(lines), indent, names))
        lines += [indent + t.format(**names) + "\n" for t in FUNCTION_TEMPLATE] + ["\n"]
        if not method:
            lines += ["\n"]
    return Module(repo, f"src/{pkg}/{mod}.py", f"tests/test_{mod}.py", lines, functions)


def mutate(module: Module, fn: SynthFunction, kind: str, variant: int, rng: random.Random) -> tuple[list, list, str]:
    """(old lines, fixed lines, issue text) for bug `kind` in `fn`; `variant` separates repeats."""
    n, i, at = fn.names, fn.indent, fn.start
    new = list(module.lines)
    bump = f" + {variant}" if variant else ""
    if kind == "boundary":
        new[at + 6] = f"{i}        if {n['item']}.{n['fld']} <= {n['opt']}{bump}:\n"
        symptom = f"drops {n['arg']} whose `{n['fld']}` is exactly the threshold; they should be kept"
    elif kind == "none_guard":
        new[at + 2 : at + 2] = [f"{i}    if not {n['arg']}:\n", f"{i}        return []\n"]
        symptom = f"raises `TypeError: 'NoneType' object is not iterable` when `{n['arg']}` is None or empty"
    elif kind == "default":
        new[at + 3] = f"{i}        {n['opt']} = {n['default']} + {1 + variant}\n"
        symptom = f"uses a threshold one too low when `{n['opt']}` is not given, so borderline {n['arg']} disappear"
    elif kind == "sort_order":
        new[at + 10] = f"{i}    {n['acc']}.sort(key=lambda x: x.{n['fld']}, reverse=True{', ' * 0})\n" if not variant else f"{i}    {n['acc']}.sort(key=lambda x: (-x.{n['fld']}, {variant}))\n"
        symptom = f"returns {n['arg']} in ascending `{n['fld']}` order although callers expect the largest first"
    elif kind == "limit":
        new[at + 12] = f"{i}    return {n['acc']}\n" if not variant else f"{i}    return {n['acc']}[: {n['limit']} * {variant + 1}]\n"
        symptom = f"silently truncates the result to `DEFAULT_LIMIT` {n['arg']}"
    else:  # strict_error
        new[at + 9 : at + 10] = [f"{i}            logger.warning(\"{n['msg']}: %r\", {n['item']})\n", f"{i}            continue\n"]
        symptom = f"aborts the whole batch with `ValueError` in strict mode instead of skipping the bad {n['item']}"
    title = f"`{fn.qualname}` {symptom.split(';')[0].split(',')[0]}"
    body = (
        f"{title}\n\nDescription\n\n`{fn.qualname}` in `{module.path}` {symptom}.\n\nTo reproduce:\n```python\n"
        f"from {module.path[4:-3].replace('/', '.')} import {fn.qualname.split('.')[0]}\n# call {fn.name} on a few {n['arg']} with {n['fld']} around the threshold\n```\n"
        f"Seen in {rng.choice(['production', 'CI', 'a downstream project', 'the nightly job'])} after upgrading {module.repo}."
    )
    return module.lines, new, body


def unified_diff(path: str, old: list, new: list, rng: random.Random) -> str:
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
    context = next((old[j].strip() for j in range(start - 1, -1, -1) if old[j].lstrip().startswith(("def ", "class ", "async def "))), "")
    n_old, n_new = end_old - start, end_new - start

    def span(first: int, count: int) -> str:
        return str(first) if count == 1 else f"{first},{count}"

    out = [f"diff --git a/{path} b/{path}\n", f"index {rng.getrandbits(28):07x}..{rng.getrandbits(28):07x} 100644\n", f"--- a/{path}\n", f"+++ b/{path}\n"]
    out.append(f"@@ -{span(start + 1, n_old)} +{span(start + 1, n_new)} @@{' ' + context if context else ''}\n")
    out += [" " + line for line in old[start:lo]]
    out += ["-" + line for line in old[lo:hi_old]] + ["+" + line for line in new[lo:hi_new]]
    out += [" " + line for line in old[hi_old:end_old]]
    return "".join(out)


def reproduce_script(module: Module, fn: SynthFunction, kind: str) -> str:
    n = fn.names
    owner = fn.qualname.split(".")[0]
    call = f"{owner}().{fn.name}" if "." in fn.qualname else fn.name
    return (
        f"from types import SimpleNamespace as NS\nfrom {module.path[4:-3].replace('/', '.')} import {owner}\n\n"
        f"def check():\n    items = [NS({n['fld']}=v) for v in (1, 5, 10, 15)]\n"
        f"    out = {call}(items, 10)\n    assert out, 'empty result ({kind})'\n\ncheck()\nprint('OK')\n"
    )


def pytest_output(module: Module, fn: SynthFunction, kind: str, resolved: bool) -> str:
    tests = [f"test_{f.name}_basic" for f in module.functions] + [f"test_{fn.name}_{kind}"]
    marks = "." * (len(tests) - 1) + ("." if resolved else "F")
    head = "============================= test session starts ==============================\n"
    head += f"platform linux -- Python 3.11.8, pytest-8.1.1, pluggy-1.4.0\nrootdir: /testbed\ncollected {len(tests)} items\n\n"
    head += f"{module.test_path} {marks}{' ' * max(1, 72 - len(module.test_path) - len(marks))}[100%]\n\n"
    if resolved:
        return head + f"============================== {len(tests)} passed in 0.{len(tests) + 11}s ==============================\n"
    return head + (
        f"=================================== FAILURES ===================================\n_____ test_{fn.name}_{kind} _____\n\n"
        f"    def test_{fn.name}_{kind}():\n>       assert {fn.name}(make_{fn.names['arg']}()) == expected\nE       AssertionError\n\n"
        f"{module.test_path}:{len(tests) * 9}: AssertionError\n=========================== short test summary info ============================\n"
        f"FAILED {module.test_path}::test_{fn.name}_{kind} - AssertionError\n========================= 1 failed, {len(tests) - 1} passed in 0.31s =========================\n"
    )


def filler_output(rng: random.Random, module: Module, fn: SynthFunction, budget: int) -> tuple[str, str, str]:
    """One exploration step (command, thought, output) whose output is about `budget` bytes."""
    choice = rng.randrange(3)
    lines, size = [], 0
    if choice == 0:
        fld = fn.names["fld"]
        command, thought = f'grep -rn "{fld}" src/ tests/', f"Let me see where `{fld}` is used across the code base."
        make = lambda: f"{rng.choice([module.path, module.test_path])}:{rng.randint(1, 400)}:{rng.choice(module.lines).rstrip()}\n"  # noqa: E731
    elif choice == 1:
        command, thought = f"git log --oneline -n 200 -- {module.path}", f"Let me check the recent history of `{module.path}`."
        make = lambda: f"{rng.getrandbits(28):07x} {rng.choice(VERBS).capitalize()} {rng.choice(NOUNS)} by {rng.choice(FIELDS)} (#{rng.randint(100, 9999)})\n"  # noqa: E731
    else:
        command, thought = f"cat {module.test_path}", "Let me look at the existing tests for this module."
        make = lambda: f"    assert {rng.choice(module.functions).name}(make_{rng.choice(NOUNS)}({rng.randint(0, 99)})) == expected_{rng.randint(0, 99)}\n"  # noqa: E731
    while size < budget:
        line = make()
        lines.append(line)
        size += len(line)
    return command, thought, "".join(lines)
