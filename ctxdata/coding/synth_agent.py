"""The scripted agent of `ctxdata synth traces`: one run of a task, as mini-swe-agent messages.

Its runs are shaped after the 415 real mini-swe-agent runs in `../shared/data/traces-dev`
(Gemini 3 Pro on SWE-bench Verified; numbers in docs/coding.md):

- the step count varies per run, lognormal around `SynthConfig.steps` (real: median 33 steps,
  q10 21, q90 60), and a longer run is a larger file;
- commands fail in resolved runs as in unresolved ones (real: ~7% of commands, 80% of runs with at
  least one): the reproduction before the fix, a grep without hits, a path that does not exist, a
  tool that is not installed, an edit that breaks the indentation, an edge case the agent got
  wrong, a wrong test path;
- about one reply a run breaks the one-action rule and gets the format-error message (no exit code);
- thoughts run from one sentence to a paragraph; some restate the issue; long outputs come back
  as head and tail under a warning.

Nothing here depends on whether the run is resolved. As in real runs the agent's own checks pass
at the end either way (only the hidden tests of report.json tell), and the fix it makes, with the
thought that announces it, is the only difference. So length, step count, exit codes and where the
edits land carry no cue to which of two runs is the anchor of a pair.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Callable

SYSTEM = (
    "You are a helpful assistant that can interact multiple times with a computer shell to solve programming tasks.\n"
    "Your response must contain exactly ONE bash code block with ONE command (or commands connected with && or "
    "||).\n\n"
    "Include a THOUGHT section before your command where you explain your reasoning process.\n"
    "Format your response as shown in <format_example>.\n\n<format_example>\nTHOUGHT: Your reasoning and analysis "
    "here\n\n"
    "```bash\nyour_command_here\n```\n</format_example>\n\nFailure to follow these rules will cause your response to "
    "be rejected."
)
INSTRUCTIONS = (
    "<instructions>\n# Task Instructions\n\n## Overview\nYou're a software engineer interacting continuously with a "
    "computer by "
    "submitting commands. You'll be helping implement necessary changes to meet requirements in the PR description.\n"
    "Your task is specifically to make changes to non-test files in the current directory in order to fix the issue "
    "described in the PR description in a way that is general and consistent with the codebase.\n</instructions>"
)
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached"
FORMAT_ERROR = (
    "Please always provide EXACTLY ONE action in triple backticks, found 2 actions.\n\nPlease format your action in "
    "triple "
    "backticks as shown in <response_example>.\n\n<response_example>\nHere are some thoughts about why you want to "
    "perform "
    "the action.\n\n```bash\n<action>\n```\n</response_example>\n\nIf you have completed your assignment, please "
    "consult the "
    "first message about how to\nsubmit your solution (you will not be able to continue working on this task after "
    "that)."
)
TOO_LONG = (
    "<warning>\nThe output of your last command was too long.\nPlease try a different command that produces less "
    "output.\n"
    "If you're looking at a file you can try use head, tail or sed to view a smaller number of lines selectively.\n"
    "If you're using grep or find and it produced too much output, you can use a more selective search "
    "pattern.\n</warning>"
)
STEPS_SPREAD = 0.4  # sigma of log(steps): real runs have q10/median ~0.64 and q90/median ~1.8
SIZE_SPREAD = 0.15  # sigma of log(bytes per step) around the configured mean
FORMAT_ERRORS = (0, 0, 0, 0, 1, 1, 1, 2, 2, 3)  # drawn per run: ~1.2 a run, as in the real runs
P_FAILED_LOOK = 0.05  # an exploration command that fails (no hit, no such file, not installed)
# Chances of the other failures of a run (real runs: 80% have at least one failing command, 2.6 on average).
MISTAKES = {"repro_fails": 0.45, "import": 0.15, "edit": 0.15, "edge": 0.35, "test_path": 0.08}

# How the agent announces each fix, in words: the decisive evidence of a pair of runs of one task.
FIX_PLANS = {
    "boundary": "The filter compares `{fld}` with a strict `<`, so {arg} exactly at the threshold fall through. "
    "I'll make the comparison inclusive.",
    "none_guard": "Iterating over `{arg}` fails when it is None. "
    "I'll return an empty list early when there is nothing to select.",
    "default": "When no threshold is passed, the default is one too low. I'll raise the default by one.",
    "sort_order": "The result is sorted ascending by `{fld}`, but callers expect the largest first. "
    "I'll reverse the sort.",
    "limit": "The final slice cuts the result down to `DEFAULT_LIMIT`. I'll stop truncating it there.",
    "strict_error": "In strict mode a single bad {item} raises and aborts the whole batch. "
    "I'll log a warning and skip it instead.",
}
OPENERS = [
    "I'll start by looking at the repository layout.",
    "First I want to find where `{name}` is defined.",
    "Let me get an overview of the source tree before touching anything.",
    "I need to locate the code the PR description talks about.",
]
LOOK_REASONS = [
    "Before changing anything I want to know who else depends on this behaviour.",
    "Let me check how `{fld}` is used elsewhere, in case the fix has to be consistent with other callers.",
    "I should look at the existing tests to see what behaviour is already pinned down.",
    "It is worth checking the history of this module; maybe the behaviour changed recently.",
    "Let me look at the rest of the module to understand the conventions used there.",
    "I want to be sure there is no second definition of `{name}` that shadows this one.",
]
REFLECTIONS = [  # what the agent makes of the previous output, before saying what it does next
    "The output confirms that `{name}` is defined only once, in the module I expected.",
    "Nothing surprising in that output.",
    "So `{fld}` is read in several places, but only `{name}` filters on it against a threshold.",
    "That matches my understanding of the code so far.",
    "The module is small and the functions follow the same pattern: a threshold, a loop, a sort and a slice.",
    "I see that `DEFAULT_LIMIT` is a module-level constant, so changing it would affect every function here.",
    "The callers pass the threshold positionally in most places, so the signature must not change.",
    "Good, the command ran without errors.",
    "This gives me a clearer picture of how the data flows through `{q}`.",
    "The tests only check the basic path; none of them exercises the case from the PR description.",
]
TIES = [
    "That explains the behaviour described in the PR.",
    "This matches what the PR description reports.",
    "That is the root cause of the reported problem.",
    "",
]
HEDGES = [
    "",
    "This should not take long.",
    "I'll keep the change minimal and consistent with the rest of the module.",
    "I need to be careful not to break the other callers.",
    "The tests in the repository may not cover this case, so I'll verify it myself as well.",
]


@dataclass
class Turn:
    """One assistant reply and what came back; `output` is text, or a filler sized later to a byte budget."""

    thought: str
    command: str
    returncode: int | None
    output: str | Callable[[int], str] = ""
    second_command: str = ""  # a reply with two actions (the format-error turn)


def run_messages(cfg, task, rng: random.Random, fix_kind: str, new_lines: list, patch: str) -> list[dict]:
    """The messages of one run of `task` that ends by submitting `patch` (the fix of `fix_kind`)."""
    target_steps = min(4 * cfg.steps, max(6, round(cfg.steps * rng.lognormvariate(0.0, STEPS_SPREAD))))
    turns = _ScriptedRun(task, rng, fix_kind, new_lines, patch).turns(target_steps)
    target_bytes = cfg.kb * 1024 * len(turns) / cfg.steps * rng.lognormvariate(0.0, SIZE_SPREAD)
    return _messages(task, turns, rng, target_bytes, len(patch))


def _messages(task, turns: list[Turn], rng: random.Random, target_bytes: float, patch_bytes: int) -> list[dict]:
    head = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"<pr_description>\nConsider the following PR description:\n{task.issue}\n</pr_description>"
            f"\n\n{INSTRUCTIONS}",
        },
    ]
    fillers = [t for t in turns if callable(t.output)]
    skeleton = head + [m for t in turns for m in _turn_messages(t, "" if callable(t.output) else t.output)]
    base = len(json.dumps(skeleton)) + 24 * len(skeleton) + patch_bytes + 600  # indent=2 adds ~24 bytes a message
    # Share what is left of the byte target among the fillers, unevenly, as real outputs are.
    weights = [rng.expovariate(1.0) for _ in fillers]
    spare = max(0.0, target_bytes - base) / 1.04  # JSON escapes add ~4%
    budgets = {id(t): max(120, int(spare * w / (sum(weights) or 1.0))) for t, w in zip(fillers, weights)}
    messages = list(head)
    for t in turns:
        output = t.output
        if callable(output):
            output = output(budgets[id(t)])
            if len(output) > 6000 and rng.random() < 0.5:  # the agent asked for too much: head and tail, a warning
                cut = len(output) // 2
                elided = len(output) - cut + rng.randrange(4000, 40000)
                messages += _turn_messages(t, "", too_long=(output[: cut // 2], output[-cut // 2 :], elided))
                continue
        messages += _turn_messages(t, output)
    return messages


def _turn_messages(t: Turn, output: str, too_long: tuple[str, str, int] | None = None) -> list[dict]:
    reply = f"THOUGHT: {t.thought}\n\n```bash\n{t.command}\n```"
    if t.second_command:
        return [
            {"role": "assistant", "content": reply + f"\n\nThen I'll also run:\n\n```bash\n{t.second_command}\n```"},
            {"role": "user", "content": FORMAT_ERROR},
        ]
    if t.returncode is None:  # the submission: its observation is the diff itself
        return [{"role": "assistant", "content": reply}, {"role": "user", "content": output}]
    if too_long:
        head, tail, elided = too_long
        body = (
            f"{TOO_LONG}<output_head>\n{head}\n</output_head>\n<elided_chars>\n{elided} characters elided\n"
            f"</elided_chars>\n<output_tail>\n{tail}\n</output_tail>"
        )
        return [
            {"role": "assistant", "content": reply},
            {"role": "user", "content": f"<returncode>{t.returncode}</returncode>\n{body}"},
        ]
    return [
        {"role": "assistant", "content": reply},
        {"role": "user", "content": f"<returncode>{t.returncode}</returncode>\n<output>\n{output}</output>"},
    ]


class _ScriptedRun:
    """The phases of one run: orient, read, reproduce, look around, edit, verify, clean up, submit."""

    def __init__(self, task, rng: random.Random, fix_kind: str, new_lines: list, patch: str) -> None:
        self.task, self.rng, self.fix_kind, self.new_lines, self.patch = task, rng, fix_kind, new_lines, patch
        self.module, self.fn = task.module, task.target
        self.names = dict(task.target.names, q=task.target.qualname)
        self.path = self.module.path
        self.pkg = self.path.split("/")[1]
        self.mod = self.path.rsplit("/", 1)[1][:-3]
        self.py = rng.choice(["python", "python3"])
        self.script = rng.choice(["reproduce_issue.py", "reproduce.py", f"repro_{self.fn.name}.py"])
        self.prefix = ""  # becomes PYTHONPATH=src when the first run of the script cannot import the package
        self.pools: dict[int, list[str]] = {}  # output lines of the looks around, per kind of look

    def say(self, *sentences: str) -> str:
        return " ".join(s.format(**self.names) for s in sentences if s).strip()

    def reflect(self) -> str:
        """A sentence or two on the previous output, most of the time, and now and then a paragraph."""
        rng, roll = self.rng, self.rng.random()
        if roll < 0.1:  # real thoughts: median ~220 characters, a tail of paragraphs over 1,000
            return " ".join(rng.sample(REFLECTIONS + LOOK_REASONS, rng.randint(3, 6)))
        if roll < 0.4:
            return " ".join(rng.sample(REFLECTIONS, 2))
        return rng.choice(REFLECTIONS) if roll < 0.85 else ""

    def turns(self, target_steps: int) -> list[Turn]:
        rng = self.rng
        optional = {
            name: rng.random() < p
            for name, p in (
                ("read", 0.9),
                ("view_fix", 0.6),
                ("git_diff", 0.3),
                ("edge", 0.5),
                ("pytest", 0.7),
                ("cleanup", 0.6),
            )
        }
        n_format_errors = rng.choice(FORMAT_ERRORS)
        mistakes = {name: rng.random() < p for name, p in MISTAKES.items()}
        core, edit_at, fixed_at = self._core(optional, mistakes)
        while len(core) + n_format_errors > target_steps and any(optional.values()):  # a short run skips the extras
            optional[rng.choice([k for k, v in optional.items() if v])] = False
            core, edit_at, fixed_at = self._core(optional, mistakes)
        n_look = max(0, target_steps - len(core) - n_format_errors)
        after_fix = sum(rng.random() < 0.25 for _ in range(n_look))  # most looking around comes before the fix
        before = [self._look() for _ in range(n_look - after_fix)]
        after = [self._look() for _ in range(after_fix)]
        turns = core[:edit_at] + before + core[edit_at:fixed_at] + after + core[fixed_at:]
        for _ in range(n_format_errors):
            at = rng.randrange(1, len(turns) - 1)
            turns.insert(
                at,
                Turn(
                    self.say(rng.choice(LOOK_REASONS)),
                    self._small_look()[0],
                    None,
                    second_command=self._small_look()[0],
                ),
            )
        return turns

    # --- the fixed phases -------------------------------------------------------------------

    def _core(self, optional: dict, mistakes: dict) -> tuple[list[Turn], int, int]:
        """The phases of a run, the index of its first edit turn and the index after its last one."""
        rng = random.Random(self.rng.random())  # a fresh stream per attempt: dropping an extra changes only that
        saved, self.rng, self.prefix = self.rng, rng, ""
        try:
            out = [self._orient()]
            if optional["read"]:
                out.append(self._read(self.module.lines, "Let me read `{q}` and the code around it."))
            out += self._reproduce(mistakes["import"], mistakes["repro_fails"])
            edit_at = len(out)
            out += self._edit(mistakes["edit"])
            fixed_at = len(out)
            if optional["view_fix"]:
                out.append(
                    self._read(
                        self.new_lines,
                        "Let me look at the edited function to make sure the change is what I intended.",
                    )
                )
            out.append(
                Turn(
                    self.say(self.reflect(), "Now let me re-run the reproduction script.", rng.choice(HEDGES)),
                    f"{self.prefix}{self.py} {self.script}",
                    0,
                    "OK\n",
                )
            )
            if optional["git_diff"]:
                out.append(Turn("Let me review the full diff before going further.", "git diff", 0, self.patch))
            if optional["edge"]:
                out += self._edge_cases(mistakes["edge"])
            if optional["pytest"]:
                out += self._pytest(mistakes["test_path"])
            if optional["cleanup"]:
                junk = " ".join([self.script] + (["test_edge_cases.py"] if optional["edge"] else []))
                out.append(
                    Turn(
                        "The fix works. I'll remove the scripts I created so they do not end up in the patch.",
                        f"rm {junk}",
                        0,
                        "",
                    )
                )
            out.append(
                Turn(
                    self.say(
                        rng.choice(
                            [
                                "I'm confident the change is complete; submitting.",
                                "Everything I tried passes now. Submitting the change.",
                                "The behaviour now matches the PR description, so I'll submit.",
                            ]
                        )
                    ),
                    SUBMIT,
                    None,
                    self.patch,
                )
            )
            return out, edit_at, fixed_at
        finally:
            self.rng = saved

    def _orient(self) -> Turn:
        rng, n = self.rng, self.names
        restated = f"The PR description says that `{n['q']}` {self.task_symptom()}." if rng.random() < 0.5 else ""
        opener = rng.choice(OPENERS)
        choice = rng.randrange(3)
        if choice == 0:
            listing = "".join(
                f"{p} 1 root root {rng.randint(96, 9000):>6} Oct {rng.randint(1, 28):>2} 12:{rng.randint(10, 59)} "
                f"{name}\n"
                for p, name in [
                    ("drwxr-xr-x", "."),
                    ("drwxr-xr-x", ".."),
                    ("drwxr-xr-x", ".git"),
                    ("-rw-r--r--", ".gitignore"),
                    ("-rw-r--r--", "CHANGELOG.md"),
                    ("-rw-r--r--", "LICENSE"),
                    ("-rw-r--r--", "README.md"),
                    ("drwxr-xr-x", "docs"),
                    ("-rw-r--r--", "pyproject.toml"),
                    ("-rw-r--r--", "setup.cfg"),
                    ("drwxr-xr-x", "src"),
                    ("drwxr-xr-x", "tests"),
                    ("-rw-r--r--", "tox.ini"),
                ]
            )
            return Turn(self.say(restated, opener), "ls -la", 0, f"total {rng.randint(60, 200)}\n{listing}")
        if choice == 1:
            return Turn(self.say(restated, opener), f'find src -name "*.py" | grep {self.mod}', 0, f"{self.path}\n")
        start = self.fn.start + 1
        return Turn(
            self.say(restated, opener),
            f'grep -rn "def {self.fn.name}" src/',
            0,
            f"{self.path}:{start}:{self.module.lines[self.fn.start]}",
        )

    def task_symptom(self) -> str:
        from ctxdata.coding.synth import symptom

        return symptom(self.fn, self.task.kind).split(";")[0].split(",")[0]

    def _read(self, lines: list, thought: str) -> Turn:
        rng = self.rng
        lo = max(1, self.fn.start + 1 - rng.randint(2, 12))
        hi = min(len(lines), self.fn.start + len(self.fn.names) + rng.randint(6, 20))
        if rng.random() < 0.3:
            lo, hi = 1, len(lines)
        numbered = "".join(f"{k:6d}\t{lines[k - 1]}" for k in range(lo, hi + 1))
        command = f"cat -n {self.path}" if (lo, hi) == (1, len(lines)) else f"nl -ba {self.path} | sed -n '{lo},{hi}p'"
        return Turn(self.say(self.reflect(), thought, self.rng.choice(HEDGES)), command, 0, numbered)

    def _reproduce(self, import_fails: bool, raises: bool) -> list[Turn]:
        rng, n = self.rng, self.names
        script = reproduce_script(self.module, self.fn, self.task.kind, rng)
        out = [
            Turn(
                self.say(
                    rng.choice(
                        [
                            "I'll write a script that reproduces the problem from the PR description.",
                            "Before changing anything I want a reproduction of the reported behaviour.",
                            "Let me reproduce the issue with a small script first.",
                        ]
                    )
                ),
                f"cat <<'EOF' > {self.script}\n{script}EOF",
                0,
                "",
            )
        ]
        if import_fails:
            out.append(
                Turn(
                    "Now let me run it.",
                    f"{self.py} {self.script}",
                    1,
                    f'Traceback (most recent call last):\n  File "/testbed/{self.script}", line 2, in <module>\n    '
                    f"from {self.pkg}.{self.mod} import {n['q'].split('.')[0]}\nModuleNotFoundError: No module named "
                    f"'{self.pkg}'\n",
                )
            )
            self.prefix = "PYTHONPATH=src "
            thought = (
                "The package is not installed in this environment; it lives under `src/`. "
                "I'll run the script with `PYTHONPATH=src`."
            )
        else:
            thought = rng.choice(["Now let me run it.", "Let me confirm the bug with the script."])
        if raises:
            out.append(
                Turn(
                    thought,
                    f"{self.prefix}{self.py} {self.script}",
                    1,
                    f'Traceback (most recent call last):\n  File "/testbed/{self.script}", line 7, in <module>\n'
                    "    check()\n"
                    f"AssertionError: {self.fn.name} misbehaves\n",
                )
            )
        else:  # the script prints the wrong result instead of failing
            out.append(
                Turn(
                    thought,
                    f"{self.prefix}{self.py} {self.script}",
                    0,
                    f"result: []\nexpected a non-empty result from {self.fn.name}\n",
                )
            )
        return out

    def _edit(self, breaks_first: bool) -> list[Turn]:
        rng, old, new = self.rng, self.module.lines, self.new_lines
        # A wrong run believes in its fix as much as a right one: both tie it to the PR, in words of their own.
        tie = rng.choice(TIES)
        plan = self.say(
            "I understand the problem now.", FIX_PLANS[self.fix_kind], tie, rng.choice(HEDGES)
        )  # short: a render keeps it whole
        lo = next(j for j, (a, b) in enumerate(zip(old, new)) if a != b)
        hi_old, hi_new = len(old), len(new)
        while hi_old > lo and hi_new > lo and old[hi_old - 1] == new[hi_new - 1]:
            hi_old, hi_new = hi_old - 1, hi_new - 1
        lo_ctx = max(0, lo - 1)  # one line of context makes the replaced text unique
        old_block, new_block = "".join(old[lo_ctx:hi_old]), "".join(new[lo_ctx:hi_new])
        method = rng.choice(["python", "heredoc", "sed"] if hi_old > lo else ["python", "heredoc"])

        def edit(block: str) -> str:
            if method == "python":
                return (
                    f"{self.py} - <<'EOF'\nfrom pathlib import Path\np = Path(\"{self.path}\")\nsrc = p.read_text()\n"
                    f"old = '''{old_block}'''\nnew = '''{block}'''\nassert old in src\np.write_text(src.replace(old, "
                    "new, 1))\nEOF"
                )
            if method == "sed":
                body = "\\\n".join(line.rstrip("\n") for line in block.splitlines(True)[lo - lo_ctx :])
                return f"sed -i '{lo + 1},{hi_old}c\\\n{body}' {self.path}"
            return f"cat <<'EOF' > {self.path}\n{''.join(old[:lo_ctx])}{block}{''.join(old[hi_old:])}EOF"

        out = []
        if breaks_first:  # the first try loses the indentation of the new lines
            broken = "".join(line.lstrip(" ") if line.strip() else line for line in new_block.splitlines(True))
            out.append(Turn(plan, edit(broken), 0, ""))
            out.append(
                Turn(
                    "Let me check that the module still imports.",
                    f"{self.prefix}{self.py} {self.script}",
                    1,
                    f'Traceback (most recent call last):\n  File "/testbed/{self.script}", line 2, in <module>\n'
                    f'  File "/testbed/{self.path}", line {lo + 1}\nIndentationError: unexpected indent\n',
                )
            )
            out.append(
                Turn(
                    "The edit lost the indentation. I'll restore the file and apply the change again, keeping the "
                    "indentation.",
                    f"git checkout {self.path}",
                    0,
                    "Updated 1 path from the index\n",
                )
            )
            plan = self.say("Same change as before, this time with the original indentation.")
        out.append(Turn(plan, edit(new_block), 0, ""))
        return out

    def _edge_cases(self, wrong_expectation: bool) -> list[Turn]:
        rng, n = self.rng, self.names
        owner = n["q"].split(".")[0]
        call = f"{owner}().{self.fn.name}" if "." in n["q"] else self.fn.name
        script = (
            f"from types import SimpleNamespace as NS\nfrom {self.pkg}.{self.mod} import {owner}\n\n"
            f"for values in ([], [1], [5, 5, 5], [{rng.randint(0, 9)}, {rng.randint(10, 40)}, "
            f"{rng.randint(41, 99)}]):\n"
            f"    items = [NS({n['fld']}=v) for v in values]\n    print(values, [i.{n['fld']} for i in {call}(items, "
            "10)])\n"
        )
        out = [
            Turn(
                self.say(
                    "Let me also try a few edge cases: an empty input, a single item, equal values.",
                    rng.choice(HEDGES),
                ),
                f"cat <<'EOF' > test_edge_cases.py\n{script}EOF",
                0,
                "",
            )
        ]
        run = f"{self.prefix}{self.py} test_edge_cases.py"
        if wrong_expectation:
            out.append(
                Turn(
                    "Run the edge cases.",
                    run + " && echo ALL_OK",
                    1,
                    'Traceback (most recent call last):\n  File "/testbed/test_edge_cases.py", line 5, in <module>\n'
                    f"    print(values, [i.{n['fld']} for i in {call}(items, 10)])\nTypeError: '<' not supported "
                    "between instances of 'NS' and 'int'\n",
                )
            )
            out.append(
                Turn(
                    "That failure is in my script: I passed the items where the threshold goes in one call. Let me "
                    "fix the script, not the code.",
                    "sed -i 's/(items, 10)/(items, threshold=10)/' test_edge_cases.py",
                    0,
                    "",
                )
            )
        results = "".join(
            f"{v} [{', '.join(str(x) for x in sorted(rng.sample(range(0, 10), rng.randint(0, 3))))}]\n"
            for v in ("[]", "[1]", "[5, 5, 5]", "[mixed]")
        )
        out.append(Turn("Run the edge cases again." if wrong_expectation else "Run the edge cases.", run, 0, results))
        return out

    def _pytest(self, wrong_path: bool) -> list[Turn]:
        out = []
        if wrong_path:
            wrong = f"tests/{self.pkg}/test_{self.mod}.py"
            out.append(
                Turn(
                    "Let me run the existing tests of this module to check for regressions.",
                    f"{self.prefix}{self.py} -m pytest {wrong} -q",
                    4,
                    f"ERROR: file or directory not found: {wrong}\n\nno tests ran in 0.01s\n",
                )
            )
            thought = "The tests live directly under `tests/`. Running the right file."
        else:
            thought = self.say(
                "Let me run the existing tests of this module to check for regressions.", self.rng.choice(HEDGES)
            )
        out.append(
            Turn(
                thought,
                f"{self.prefix}{self.py} -m pytest {self.module.test_path} -q",
                0,
                pytest_output(self.module, self.rng),
            )
        )
        return out

    # --- looking around: the variable part of a run -----------------------------------------

    def _look(self) -> Turn:
        rng = self.rng
        if rng.random() < P_FAILED_LOOK:
            return self._failed_look()
        if rng.random() < 0.3:
            command, output = self._small_look()
            return Turn(self.say(self.reflect(), rng.choice(LOOK_REASONS), rng.choice(HEDGES)), command, 0, output)
        command, thought, fill = filler_output(rng, self.module, self.fn, self.pools)
        return Turn(self.say(self.reflect(), rng.choice(LOOK_REASONS), thought), command, 0, fill)

    def _small_look(self) -> tuple[str, str]:
        rng = self.rng
        choice = rng.randrange(3)
        if choice == 0:
            return (
                f'{self.prefix}{self.py} -c "import {self.pkg}; print({self.pkg}.__version__)"',
                f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}\n",
            )
        if choice == 1:
            return "git status --short", f"?? {self.script}\n"
        lines = [f"{k + 1}:{line}" for k, line in enumerate(self.module.lines) if "DEFAULT_LIMIT" in line]
        return f'grep -n "DEFAULT_LIMIT" {self.path}', "".join(lines)

    def _failed_look(self) -> Turn:
        rng, n = self.rng, self.names
        choice = rng.random()  # weighted as in the real runs: mostly exit 1, rarely 2 or 127
        if choice < 0.6:
            return Turn(
                self.say("Let me check whether `{name}` is referenced in the docs."),
                f'grep -rn "{self.fn.name}" docs/',
                1,
                "",
            )
        if choice < 0.8:
            return Turn(
                self.say("There may be documentation for this module."),
                f"cat docs/{self.mod}.rst",
                1,
                f"cat: docs/{self.mod}.rst: No such file or directory\n",
            )
        if choice < 0.92:
            other = f"src/{self.pkg}/{rng.choice(['utils', 'helpers', 'compat', 'base'])}.py"
            return Turn(
                self.say("The helpers might live in a shared utility module."),
                f"sed -n '1,60p' {other}",
                2,
                f"sed: can't read {other}: No such file or directory\n",
            )
        return Turn(
            self.say("Let me search for other uses of `{fld}` quickly."),
            f'rg "\\.{n["fld"]}\\b" src/',
            127,
            "bash: line 1: rg: command not found\n",
        )


# --- observations -------------------------------------------------------------------------


def reproduce_script(module, fn, kind: str, rng: random.Random) -> str:
    """A script that shows the reported bug (it fails before the fix and prints OK after it)."""
    n = fn.names
    owner = fn.qualname.split(".")[0]
    call = f"{owner}().{fn.name}" if "." in fn.qualname else fn.name
    values = sorted(rng.sample(range(1, 30), 4))
    return (
        f"from types import SimpleNamespace as NS\nfrom {module.path[4:-3].replace('/', '.')} import {owner}\n\n"
        f"def check():\n    items = [NS({n['fld']}=v) for v in {tuple(values)}]\n"
        f"    out = {call}(items, {values[1]})\n    assert out, '{fn.name} misbehaves "
        f"({kind.replace('_', ' ')})'\n\ncheck()\nprint('OK')\n"
    )


def pytest_output(module, rng: random.Random) -> str:
    """A passing run of the module's existing tests (the tests that decide `resolved` are hidden, as in SWE-bench)."""
    tests = len(module.functions) + rng.randint(0, 6)
    line = f"{module.test_path} {'.' * tests}"
    return (
        "============================= test session starts ==============================\n"
        f"platform linux -- Python 3.11.8, pytest-8.1.1, pluggy-1.4.0\nrootdir: /testbed\ncollected {tests} items\n\n"
        f"{line}{' ' * max(1, 72 - len(line))}[100%]\n\n"
        f"============================== {tests} passed in 0.{rng.randint(10, 99)}s ==============================\n"
    )


def filler_output(rng: random.Random, module, fn, pools: dict) -> tuple[str, str, Callable[[int], str]]:
    """A look around the code base: (command, thought, output of about `budget` bytes, made on demand).

    Output lines are drawn from one pool per kind of look and run (`pools`): a random call per
    line would dominate the writer's time.
    """
    choice = rng.randrange(4)
    fld, functions = fn.names["fld"], module.functions
    api = "src/" + module.path.split("/")[1] + "/api.py"
    verbs = ["Filter", "Select", "Collect", "Rank", "Prune", "Fix", "Speed up", "Document", "Refactor"]
    command, thought = [
        (f'grep -rn "{fld}" src/ tests/', f"Let me see where `{fld}` is used across the code base."),
        (f"git log --oneline -n 200 -- {module.path}", f"Let me check the recent history of `{module.path}`."),
        (f"cat {module.test_path}", "Let me look at the existing tests for this module."),
        (f'grep -rn "{fn.name}(" src/ tests/', f"Let me find the callers of `{fn.name}`."),
    ][choice]

    def make() -> str:
        if choice == 0:
            where = rng.choice([module.path, module.test_path])
            return f"{where}:{rng.randint(1, 400)}:{rng.choice(module.lines).rstrip()}\n"
        if choice == 1:
            subject = f"{rng.choice(verbs)} {rng.choice(functions).name}"
            return f"{rng.getrandbits(28):07x} {subject} (#{rng.randint(100, 9999)})\n"
        if choice == 2:
            made = f"make_{rng.choice(functions).names['arg']}({rng.randint(0, 99)})"
            return f"    assert {rng.choice(functions).name}({made}) == expected_{rng.randint(0, 99)}\n"
        where = rng.choice([module.path, module.test_path, api])
        return f"{where}:{rng.randint(1, 600)}:    result = {fn.name}(batch, threshold={rng.randint(1, 50)})\n"

    def fill(budget: int) -> str:
        pool = pools.get(choice) or pools.setdefault(choice, [make() for _ in range(32)])
        return "".join(rng.choices(pool, k=1 + budget * len(pool) // sum(map(len, pool))))

    return command, thought, fill
