"""Mask the answer patches, and restatements of the issues, inside trajectories.

Three things reproduce a patch in a trajectory: the submitted diff (the last observation of a
mini-swe-agent run), `git diff` output during the run, and edit commands (sed, heredocs,
str_replace) whose text contains the patch's added lines. Diff blocks are replaced whole, in
each step before rendering (`mask_diff_blocks`: it needs no patch, so it runs once per
trajectory); then, in the rendered context of a pair, `mask_context` replaces every line that
still holds an *answer line* of either patch, every restatement of either issue, and both
instance ids.

An answer line is an added line with at least `MIN_SIGNIFICANT_CHARS` non-space characters that
is not pure punctuation (`)` or `return` alone appear everywhere and carry no answer) and that is
not also an unchanged or removed line of either patch: such a line is code the repository held
before either fix, which both agents may read, and it is where the decisive evidence lives.

An answer line is found where it stands as code (`answer_spans`): never inside a longer
identifier or keyword (`if x:` is not inside `elif x:`, `instance` is not inside `is_instance`),
and in the prose of a THOUGHT only where the agent quotes it: filling its line, or between
backticks or quotes. A thought that merely uses the same words (`... should return None here`)
is not the line, and keeps its text. The leak check uses the same test, so it flags exactly what
masking would have masked.

The issue texts are the other cue: an agent restates and quotes its own issue throughout its
run, so without masking the query's words pick the anchor context at a glance. Masking both
issues in both contexts, the same way, keeps the masks from carrying a signal of their own:
code the issue quotes (fenced or indented blocks, doctest lines, inline code spans that are
statements rather than names) is masked as whole lines like answer lines, and every verbatim
span of `ISSUE_SHINGLE_WORDS` words of either issue becomes `ISSUE_MASK`.
"""

from __future__ import annotations

import bisect
import keyword
import re
from collections import Counter
from functools import lru_cache
from itertools import accumulate
from typing import Sequence

import numpy as np

from ctxdata.coding.patch import parse_patch

PATCH_MASK = "[PATCH MASKED]"
LINE_MASK = "[PATCH LINE MASKED]"
ISSUE_MASK = "[ISSUE MASKED]"
ISSUE_WORD_MASK = "[TOPIC]"  # about as long as the words it stands for: a context's length does not count its masks
ID_MASK = "[INSTANCE]"
MASK_MARKERS = (PATCH_MASK, LINE_MASK, ISSUE_MASK, ISSUE_WORD_MASK, ID_MASK)  # every marker a mask leaves; the shortcut audit counts these
MIN_SIGNIFICANT_CHARS = 8
ISSUE_SHINGLE_WORDS = 8  # a verbatim run of this many words of an issue is a restatement of it
_PUNCT_ONLY = re.compile(r"^[\W_]*$")
# A unified diff: `diff --git` or a `---`/`+++` header pair, then hunks, up to the next non-diff line.
_DIFF_START = re.compile(r"^(diff --git |--- (a/|/dev/null)|Index: )", re.M)
_DIFF_LINE = re.compile(
    r"^(diff --git |index |--- |\+\+\+ |@@ |[ +\-\\]|new file mode|deleted file mode|similarity index"
    r"|rename (from|to) |old mode|new mode|Binary files )"
)
_WORD = re.compile(r"\w+")
_WORD_SPLIT = re.compile(r"(\w+)")
_LINE_NUMBER = re.compile(r"^\s*\d+[\t:-]")  # `cat -n`, `nl`, `grep -n` (and its context lines) number code lines
_QUOTES = "`'\""
THOUGHT_PREFIX = "THOUGHT: "
MIN_ISSUE_WORD_CHARS = 3
ALIKE_MIN_USES, ALIKE_RATIO = 3, 1.5  # a word both contexts use this often, this evenly, is left unmasked
_MARKER_WORDS = frozenset(w.lower() for m in MASK_MARKERS for w in re.findall(r"\w+", m))
# Words that name no topic: English function words and Python's keywords and commonest names. A
# word only one issue uses is masked unless it is one of these.
PLAIN_WORDS = frozenset(
    """about above after again against all also although among and any are aren't because been before being below
    between both but can cannot could did does doing down during each either else even ever every few for from
    further had has have having her here hers him his how however into its itself just let like may might more
    most much must neither nor not now off once one only other our ours out over own same she should since some
    still such than that the their theirs them then there these they this those though through thus too two under
    until upon very was were what when where whether which while who whom whose why will with within without would
    yet you your yours also get got use used using make made see seems seem way well want need needs""".split()
) | frozenset(k.lower() for k in keyword.kwlist) | {"self", "cls", "none", "true", "false"}
# What ends the prose of a rendered thought: the action, the next step, the exit line, a step elision.
_THOUGHT_ENDS = ("\n$ ", "\n## Step ", "\n(exit ", "\n[... ")


def _is_significant(line: str) -> bool:
    return len(line.replace(" ", "")) >= MIN_SIGNIFICANT_CHARS and not _PUNCT_ONLY.match(line)


@lru_cache(maxsize=4096)
def _patch_lines(patch: str) -> tuple[frozenset[str], frozenset[str]]:
    """(significant stripped added lines, stripped unchanged and removed lines) of one patch."""
    info = parse_patch(patch, functions=False)
    added = frozenset(s for s in map(str.strip, info.added_lines) if _is_significant(s))
    return added, frozenset(map(str.strip, info.removed_lines + info.unchanged_lines))


def _base_lines(patches: Sequence[str]) -> frozenset[str]:
    return frozenset().union(*(_patch_lines(p)[1] for p in patches)) if patches else frozenset()


def significant_lines(patch: str) -> list[str]:
    """The stripped added lines of `patch` that would give the answer away if seen verbatim."""
    return sorted(_patch_lines(patch)[0])


@lru_cache(maxsize=1024)
def answer_lines(patches: tuple[str, ...]) -> tuple[str, ...]:
    """Significant added lines of `patches` that are not unchanged or removed lines of any of them, longest first."""
    base = _base_lines(patches)
    lines = {line for patch in patches for line in _patch_lines(patch)[0] if line not in base}
    return tuple(sorted(lines, key=lambda line: (-len(line), line)))


@lru_cache(maxsize=1024)
def issue_code_lines(issue: str) -> tuple[str, ...]:
    """The significant code lines an issue quotes, longest first.

    Code is what sits in a fenced (```) or indented block, a doctest line (`>>> `/`... `, prompt
    stripped), and an inline `code span` that is a statement or expression rather than a name
    (it holds something besides word characters and dots, e.g. `max_passes = 0`).
    """
    code: set[str] = set()
    fenced = False
    for raw in issue.split("\n"):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            continue
        if stripped.startswith((">>> ", "... ")):
            code.add(stripped[4:].strip())
        elif fenced or raw.startswith(("    ", "\t")):
            code.add(stripped)
        for span in re.findall(r"`([^`\n]+)`", raw):
            if re.search(r"[^\w.]", span.strip()):
                code.add(span.strip())
    lines = {line for line in code if _is_significant(line)}
    return tuple(sorted(lines, key=lambda line: (-len(line), line)))


@lru_cache(maxsize=1024)
def _issue_shingles(issue: str) -> tuple[frozenset[tuple[str, ...]], np.ndarray]:
    """(the `ISSUE_SHINGLE_WORDS`-word shingles of an issue, lower-cased, and their `_shingle_hashes`)."""
    words = [w.lower() for w in _WORD.findall(issue)]
    n = ISSUE_SHINGLE_WORDS
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1)), _shingle_hashes(words)


def _shingle_hashes(words: list[str]) -> np.ndarray:
    """A 64-bit hash of every run of `ISSUE_SHINGLE_WORDS` words, computed at numpy speed.

    Built from Python's `hash()` of each word, which is salted per process: hashes are only ever
    compared within one process, and every hit is confirmed by comparing the words themselves, so
    the masks never depend on them.
    """
    n = ISSUE_SHINGLE_WORDS
    if len(words) < n:
        return np.zeros(0, dtype=np.uint64)
    word_hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    out = np.zeros(len(words) - n + 1, dtype=np.uint64)
    for k in range(n):
        out = out * np.uint64(1_000_003) + word_hashes[k : len(words) - n + 1 + k]
    return out


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


def _thought_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of the prose of every rendered thought, from `THOUGHT: ` to the action or the next step."""
    regions, i = [], text.find(THOUGHT_PREFIX)
    while i != -1:
        if i == 0 or text[i - 1] == "\n":
            ends = [e for e in (text.find(marker, i) for marker in _THOUGHT_ENDS) if e != -1]
            end = min(ends) if ends else len(text)
            regions.append((i, end))
            i = text.find(THOUGHT_PREFIX, end)
        else:
            i = text.find(THOUGHT_PREFIX, i + 1)
    return regions


def _stands_as_code(text: str, start: int, end: int, line_start: int, line_end: int, prose: bool) -> bool:
    """Whether the occurrence text[start:end] of a line is that line, not an incidental match.

    Never inside a longer identifier or keyword; in prose, only quoted (between backticks or
    quotes) or filling its line.
    """
    before = text[start - 1] if start > line_start else " "
    after = text[end] if end < line_end else " "
    if (text[start].isalnum() or text[start] == "_") and (before.isalnum() or before == "_"):
        return False
    if (text[end - 1].isalnum() or text[end - 1] == "_") and (after.isalnum() or after == "_"):
        return False
    if not prose:
        return True
    left = text[line_start:start]
    if left.startswith(THOUGHT_PREFIX):
        left = left[len(THOUGHT_PREFIX) :]
    return (before in _QUOTES or not left.strip()) and (after in _QUOTES or not text[end:line_end].strip())


def answer_spans(text: str, needles: Sequence[str]) -> list[tuple[int, int, str]]:
    """(line start, line end, needle) of every line of `text` where a needle stands as code (see `_stands_as_code`).

    Occurrences are found with `str.find` (C speed) and mapped to their lines, so the cost is a
    few scans of the text, not a Python loop over every line.
    """
    present = [n for n in needles if n in text] if text else []
    if not present:
        return []
    regions = _thought_regions(text)
    starts = [r[0] for r in regions]
    found = []
    for needle in present:
        i = text.find(needle)
        while i != -1:
            start = text.rfind("\n", 0, i) + 1
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            k = bisect.bisect_right(starts, i) - 1
            prose = k >= 0 and i < regions[k][1]
            if _stands_as_code(text, i, i + len(needle), start, end, prose):
                found.append((start, end, needle))
            i = text.find(needle, i + 1)
    return found


def mask_lines(text: str, needles: Sequence[str], marker: str = LINE_MASK) -> str:
    """Replace each line of `text` where a needle stands as code with `marker` (a thought keeps its `THOUGHT: `)."""
    spans = set()
    for start, end, _ in answer_spans(text, needles):
        if text.startswith(THOUGHT_PREFIX, start):
            start += len(THOUGHT_PREFIX)
        if end - start >= MIN_SIGNIFICANT_CHARS:
            spans.add((start, end))
    if not spans:
        return text
    out, pos = [], 0
    for start, end in sorted(spans):
        if start < pos:
            continue
        out += (text[pos:start], marker)
        pos = end
    out.append(text[pos:])
    return "".join(out)


@lru_cache(maxsize=1024)
def _topic_words(issue: str) -> frozenset[str]:
    """The lower-cased words of an issue that can name its topic (not `PLAIN_WORDS`, not short, not numbers).

    A code fence's language tag (```python) is markup, not a word of the issue.
    """
    text = re.sub(r"```[\w+-]*", " ", issue)
    words = {w.lower() for w in _WORD.findall(text) if len(w) >= MIN_ISSUE_WORD_CHARS and not w.isdigit()}
    return frozenset(words - PLAIN_WORDS)


def distinctive_words(issues: Sequence[str], contexts: Sequence[str] = ()) -> list[str]:
    """The topic words that exactly one of `issues` uses: what tells the issues apart, sorted.

    With the pair's `contexts`, a word every context uses alike is left out (`_used_alike`): the
    project's name or `python` in both runs tells the runs apart no better than a coin. The words
    of the mask markers are left out too, so a marker is never masked inside another one.
    """
    return _distinctive(issues, [_WORD.findall(text.lower()) for text in contexts])


def _distinctive(issues: Sequence[str], context_words: Sequence[list[str]]) -> list[str]:
    counts: dict[str, int] = {}
    for issue in issues:
        for word in _topic_words(issue) - _MARKER_WORDS:
            counts[word] = counts.get(word, 0) + 1
    words = sorted(w for w, n in counts.items() if n == 1)
    if len(context_words) < 2 or not words:
        return words
    uses = [Counter(lowered) for lowered in context_words]
    return [w for w in words if not _used_alike([u[w] for u in uses])]


def _used_alike(counts: list[int]) -> bool:
    """Every context uses the word at least `ALIKE_MIN_USES` times, and none more than `ALIKE_RATIO` times another."""
    return min(counts) >= ALIKE_MIN_USES and max(counts) <= ALIKE_RATIO * min(counts)


def _restated_words(words: list[str], issues: Sequence[str], parts: list[str]) -> np.ndarray:
    """A flag per word: it lies in a verbatim run of `ISSUE_SHINGLE_WORDS` words of an issue, inside one line."""
    n = ISSUE_SHINGLE_WORDS
    covered = np.zeros(len(words), dtype=bool)
    tables = [_issue_shingles(issue) for issue in issues if issue]
    if not tables or len(words) < n:
        return covered
    candidates = np.flatnonzero(np.isin(_shingle_hashes(words), np.concatenate([t[1] for t in tables])))
    for i in candidates.tolist():
        run = tuple(words[i : i + n])
        if any(run in t[0] for t in tables) and "\n" not in "".join(parts[2 * i + 2 : 2 * (i + n) - 1 : 2]):
            covered[i : i + n] = True
    return covered


def _mask_issue_text(parts: list[str], words: list[str], issues: Sequence[str], base: frozenset[str], kill: frozenset[str]) -> str:
    """One text, split around its words (`parts`, lower-cased `words`): restated runs -> ISSUE_MASK, `kill` words -> ISSUE_WORD_MASK.

    A restated run on a line the repository already held (`base`, line numbers aside) is left alone.
    """
    covered = _restated_words(words, issues, parts)
    if covered.any():
        text = "".join(parts)
        offsets = [0, *accumulate(map(len, parts))]  # word k spans offsets[2k+1]..offsets[2k+2]
        firsts = np.flatnonzero(covered & ~np.r_[False, covered[:-1]]).tolist()
        lasts = np.flatnonzero(covered & ~np.r_[covered[1:], False]).tolist()
        for k, last in zip(firsts, lasts):
            a, b = offsets[2 * k + 1], offsets[2 * last + 2]
            line_end = text.find("\n", b)
            line = text[text.rfind("\n", 0, a) + 1 : len(text) if line_end == -1 else line_end]
            if base and _LINE_NUMBER.sub("", line).strip() in base:
                covered[k : last + 1] = False
                continue
            parts[2 * k + 1] = ISSUE_MASK
            parts[2 * k + 2 : 2 * last + 2] = [""] * (2 * (last - k))
    if kill:
        hits = np.fromiter(map(kill.__contains__, words), dtype=bool, count=len(words)) & ~covered
        for k in np.flatnonzero(hits).tolist():
            parts[2 * k + 1] = ISSUE_WORD_MASK
    return "".join(parts)


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


ISSUE_MASKING = ("words", "spans", "none")  # how much of the two issues `mask_pair` masks, most first


def mask_pair(texts: Sequence[str], patches: Sequence[str], ids: Sequence[str], issues: Sequence[str] = (),
              issue_masking: str = "words") -> list[str]:
    """Mask, in the rendered contexts of a pair, the answer lines of `patches`, restatements of `issues`, and `ids`.

    Pass both contexts, both patches, both issues and both ids: every mask is the same rule applied
    to the same inputs on each side. `issue_masking` (one of ISSUE_MASKING): `spans` masks the code
    the issues quote and their verbatim `ISSUE_SHINGLE_WORDS`-word runs; `words` also masks every
    topic word only one issue uses (`distinctive_words`, chosen once from both contexts); `none`
    masks no issue text. Each text is split into words once, at C speed.
    """
    if issue_masking not in ISSUE_MASKING:
        raise ValueError(f"issue_masking must be one of {ISSUE_MASKING}, got {issue_masking!r}")
    patches = tuple(patches)
    needles = answer_lines(patches)
    texts = [mask_lines(text, needles) for text in texts]
    if issues and issue_masking != "none":
        base = _base_lines(patches)
        code = sorted({line for issue in issues for line in issue_code_lines(issue) if line not in base}, key=lambda s: (-len(s), s))
        split = [_WORD_SPLIT.split(mask_lines(text, code, ISSUE_MASK)) for text in texts]
        words = [list(map(str.lower, parts[1::2])) for parts in split]
        kill = frozenset(_distinctive(issues, words) if issue_masking == "words" else ())
        texts = [_mask_issue_text(parts, low, issues, base, kill) for parts, low in zip(split, words)]
    tokens = [t for ident in ids for t in id_tokens(ident)]
    return [_mask_tokens(text, tokens) for text in texts]


def mask_context(text: str, patches: Sequence[str], ids: Sequence[str], issues: Sequence[str] = (), issue_masking: str = "words") -> str:
    """`mask_pair` for one context alone (the distinctive words then come from the issues only)."""
    return mask_pair([text], patches, ids, issues, issue_masking)[0]


def leaked_lines(text: str, patches: Sequence[str]) -> list[str]:
    """Answer lines of `patches` that still stand as code in `text` (what `mask_context` would have masked)."""
    return sorted({needle for _, _, needle in answer_spans(text, answer_lines(tuple(patches)))})
