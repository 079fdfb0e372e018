"""Mask the answer patches inside trajectories, so a context never hands out the answer.

Three things reproduce a patch in a trajectory: the submitted diff (the last observation of a
mini-swe-agent run), `git diff` output during the run, and edit commands (sed, heredocs,
str_replace) whose text contains the patch's added lines. Diff blocks are replaced whole; then
every line of any step that still contains a *significant* added line of either patch is
replaced. A significant line is an added line with at least `MIN_SIGNIFICANT_CHARS` non-space
characters that is not pure punctuation: `)` or `return` alone appear everywhere and carry no
answer, and masking them would destroy the context.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from ctxdata.coding.patch import parse_patch
from ctxdata.coding.trajectory import Step, Trajectory

PATCH_MASK = "[PATCH MASKED]"
LINE_MASK = "[PATCH LINE MASKED]"
ID_MASK = "[INSTANCE]"
MIN_SIGNIFICANT_CHARS = 8
_PUNCT_ONLY = re.compile(r"^[\W_]*$")
# A unified diff: `diff --git` or a `---`/`+++` header pair, then hunks, up to the next non-diff line.
_DIFF_START = re.compile(r"^(diff --git |--- (a/|/dev/null)|Index: )", re.M)
_DIFF_LINE = re.compile(r"^(diff --git |index |--- |\+\+\+ |@@ |[ +\-\\]|new file mode|deleted file mode|similarity index|rename (from|to) |old mode|new mode|Binary files )")


@lru_cache(maxsize=4096)
def _significant(patch: str) -> tuple[str, ...]:
    lines = {line.strip() for line in parse_patch(patch).added_lines}
    return tuple(sorted(line for line in lines if len(line.replace(" ", "")) >= MIN_SIGNIFICANT_CHARS and not _PUNCT_ONLY.match(line)))


def significant_lines(patch: str) -> list[str]:
    """The stripped added lines of `patch` that would give the answer away if seen verbatim."""
    return list(_significant(patch))


def mask_diff_blocks(text: str) -> str:
    """Replace every unified-diff block in `text` with PATCH_MASK."""
    if "diff --git " not in text and "--- " not in text and "Index: " not in text:
        return text  # cheap pre-check: most steps hold no diff
    if not _DIFF_START.search(text):
        return text
    out, in_diff = [], False
    for line in text.split("\n"):
        if _DIFF_START.match(line) or (in_diff and (_DIFF_LINE.match(line) or line == "")):
            if not in_diff:
                out.append(PATCH_MASK)
                in_diff = True
            continue
        in_diff = False
        out.append(line)
    return "\n".join(out)


def mask_lines(text: str, needles: list[str]) -> str:
    """Replace each line of `text` that contains any of `needles` with LINE_MASK."""
    present = [n for n in needles if n in text] if text else []
    if not present:
        return text
    needles = present
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        if len(line) >= MIN_SIGNIFICANT_CHARS and any(n in line for n in needles):
            lines[i] = LINE_MASK
            changed = True
    return "\n".join(lines) if changed else text


def id_tokens(ident: str) -> list[str]:
    """The id itself, plus its trailing issue/PR number when it has 4+ digits (`django__django-10097` -> 10097)."""
    tokens = [ident] if ident else []
    m = re.search(r"-(\d{4,})$", ident or "")
    return tokens + ([m.group(1)] if m else [])


def mask_ids(text: str, ids: list[str]) -> str:
    """Replace instance ids, and their issue numbers as whole words, with ID_MASK."""
    for ident in ids:
        for token in id_tokens(ident):
            if token in text:  # substring first: the regex only runs when it can match
                text = re.sub(rf"(?<![\w.]){re.escape(token)}(?![\w])", ID_MASK, text) if token.isdigit() else text.replace(token, ID_MASK)
    return text


def mask_trajectory(traj: Trajectory, patches: list[str], ids: list[str]) -> Trajectory:
    """A copy of `traj` with every patch in `patches` and every instance id in `ids` masked."""
    needles = sorted({line for patch in patches for line in significant_lines(patch)}, key=len, reverse=True)

    def clean(text: str) -> str:
        return mask_ids(mask_lines(mask_diff_blocks(text), needles), ids)

    steps = [Step(thought=clean(s.thought), action=clean(s.action), observation=clean(s.observation), returncode=s.returncode) for s in traj.steps]
    return replace(traj, steps=steps, patch=PATCH_MASK)


def leaked_lines(text: str, patches: list[str]) -> list[str]:
    """Significant added lines of `patches` that still appear verbatim in `text`."""
    return [line for patch in patches for line in significant_lines(patch) if line in text]
