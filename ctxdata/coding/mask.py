"""Mask the answer patches inside trajectories, so a context never hands out the answer.

Three things reproduce a patch in a trajectory: the submitted diff (the last observation of a
mini-swe-agent run), `git diff` output during the run, and edit commands (sed, heredocs,
str_replace) whose text contains the patch's added lines. Diff blocks are replaced whole, in
each step before rendering (`mask_diff_blocks`: it needs no patch, so it runs once per
trajectory); then, in the rendered context of a pair, every line that still contains a
*significant* added line of either patch is replaced (`mask_context`), and so are both instance
ids. A significant line is an added line with at least `MIN_SIGNIFICANT_CHARS` non-space
characters that is not pure punctuation: `)` or `return` alone appear everywhere and carry no
answer, and masking them would destroy the context.
"""

from __future__ import annotations

import re
from functools import lru_cache

from ctxdata.coding.patch import parse_patch

PATCH_MASK = "[PATCH MASKED]"
LINE_MASK = "[PATCH LINE MASKED]"
ID_MASK = "[INSTANCE]"
MASK_MARKERS = (PATCH_MASK, LINE_MASK, ID_MASK)  # every marker a mask leaves; the shortcut audit counts these
MIN_SIGNIFICANT_CHARS = 8
_PUNCT_ONLY = re.compile(r"^[\W_]*$")
# A unified diff: `diff --git` or a `---`/`+++` header pair, then hunks, up to the next non-diff line.
_DIFF_START = re.compile(r"^(diff --git |--- (a/|/dev/null)|Index: )", re.M)
_DIFF_LINE = re.compile(r"^(diff --git |index |--- |\+\+\+ |@@ |[ +\-\\]|new file mode|deleted file mode|similarity index|rename (from|to) |old mode|new mode|Binary files )")


@lru_cache(maxsize=4096)
def _significant(patch: str) -> tuple[str, ...]:
    lines = {line.strip() for line in parse_patch(patch, functions=False).added_lines}
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
    """Replace each line of `text` that contains any of `needles` with LINE_MASK.

    Occurrences are found with `str.find` (C speed) and mapped to their lines, so the cost is a
    few scans of the text, not a Python loop over every line.
    """
    present = [n for n in needles if n in text] if text else []
    if not present:
        return text
    spans = set()
    for needle in present:
        i = text.find(needle)
        while i != -1:
            start = text.rfind("\n", 0, i) + 1
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            if end - start >= MIN_SIGNIFICANT_CHARS:
                spans.add((start, end))
            i = text.find(needle, end)
    out, pos = [], 0
    for start, end in sorted(spans):
        out += (text[pos:start], LINE_MASK)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def id_tokens(ident: str) -> list[str]:
    """The id itself, plus its trailing issue/PR number when it has 4+ digits (`django__django-10097` -> 10097)."""
    tokens = [ident] if ident else []
    m = re.search(r"-(\d{4,})$", ident or "")
    return tokens + ([m.group(1)] if m else [])


def word_starts(text: str, token: str) -> list[int]:
    """Offsets where `token` stands as a whole word: not inside a longer number, identifier or dotted version.

    The same test as the regex `(?<![\\w.])TOKEN(?!\\w)`, but found with `str.find` and a look at the
    characters around each hit, so no pattern is compiled per id and no callback runs per number.
    """
    starts, size, i = [], len(token), text.find(token)
    while i != -1:
        before = text[i - 1] if i else " "
        after = text[i + size] if i + size < len(text) else " "
        if not (before.isalnum() or before in "_.") and not (after.isalnum() or after == "_"):
            starts.append(i)
        i = text.find(token, i + 1)
    return starts


def _mask_tokens(text: str, tokens: list[str]) -> str:
    for token in tokens:
        if token not in text:
            continue
        if token.isdigit():  # an issue number: only as a whole word, `10097` but not `110097` or `1.10097`
            pieces, pos = [], 0
            for start in word_starts(text, token):
                pieces += (text[pos:start], ID_MASK)
                pos = start + len(token)
            text = "".join(pieces) + text[pos:] if pieces else text
        else:
            text = text.replace(token, ID_MASK)
    return text


def mask_context(text: str, patches: list[str], ids: list[str]) -> str:
    """Mask, in an already rendered context, every line holding a significant line of `patches`, and `ids`."""
    needles = sorted({line for patch in patches for line in significant_lines(patch)}, key=len, reverse=True)
    return _mask_tokens(mask_lines(text, needles), [t for ident in ids for t in id_tokens(ident)])


def leaked_lines(text: str, patches: list[str]) -> list[str]:
    """Significant added lines of `patches` that still appear verbatim in `text`."""
    return [line for patch in patches for line in significant_lines(patch) if line in text]
