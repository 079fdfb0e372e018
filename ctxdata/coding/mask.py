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
from typing import Sequence

from ctxdata.coding.patch import parse_patch

PATCH_MASK = "[PATCH MASKED]"
LINE_MASK = "[PATCH LINE MASKED]"
ISSUE_MASK = "[ISSUE MASKED]"
ISSUE_WORD_MASK = "[ISSUE WORD]"
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
def issue_code_lines(issue: str, base: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The significant code lines an issue quotes, longest first, except lines in `base` (code that already exists).

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
    lines = {line for line in code if _is_significant(line) and line not in base}
    return tuple(sorted(lines, key=lambda line: (-len(line), line)))


@lru_cache(maxsize=1024)
def _issue_shingles(issue: str) -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """(lower-cased words, `ISSUE_SHINGLE_WORDS`-word shingles) of an issue."""
    words = [w.lower() for w in _WORD.findall(issue)]
    n = ISSUE_SHINGLE_WORDS
    return frozenset(words), frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


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


def mask_issue_spans(text: str, issues: Sequence[str], base: frozenset[str] = frozenset()) -> str:
    """Replace every verbatim run of `ISSUE_SHINGLE_WORDS`+ words of any of `issues`, inside one line, with ISSUE_MASK.

    Lines in `base` (code the repository held before either fix) are left alone. Only runs of
    words that all occur in an issue are looked up, so most of a context costs one set lookup a word.
    """
    n = ISSUE_SHINGLE_WORDS
    tables = [_issue_shingles(issue) for issue in issues if issue]
    if not tables or not text:
        return text
    vocab = frozenset().union(*(t[0] for t in tables))
    shingles = frozenset().union(*(t[1] for t in tables))
    spans: list[list[int]] = []
    line_start = 0
    for line in text.split("\n"):
        if _LINE_NUMBER.sub("", line).strip() in base:
            line_start += len(line) + 1
            continue
        words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(line)]
        run: list[tuple[int, int, str]] = []
        for word in words + [(0, 0, "")]:  # a sentinel ends the last run
            if word[2] and word[2] in vocab:
                run.append(word)
                continue
            for i in range(len(run) - n + 1):
                if tuple(w[2] for w in run[i : i + n]) in shingles:
                    a, b = line_start + run[i][0], line_start + run[i + n - 1][1]
                    if spans and a <= spans[-1][1]:
                        spans[-1][1] = max(spans[-1][1], b)
                    else:
                        spans.append([a, b])
            run = []
        line_start += len(line) + 1
    if not spans:
        return text
    out, pos = [], 0
    for a, b in spans:
        out += (text[pos:a], ISSUE_MASK)
        pos = b
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
    counts: dict[str, int] = {}
    for issue in issues:
        for word in _topic_words(issue) - _MARKER_WORDS:
            counts[word] = counts.get(word, 0) + 1
    words = sorted(w for w, n in counts.items() if n == 1)
    if len(contexts) < 2 or not words:
        return words
    uses = [Counter(_WORD.findall(text.lower())) for text in contexts]
    return [w for w in words if not _used_alike([u[w] for u in uses])]


def _used_alike(counts: list[int]) -> bool:
    """Every context uses the word at least `ALIKE_MIN_USES` times, and none more than `ALIKE_RATIO` times another."""
    return min(counts) >= ALIKE_MIN_USES and max(counts) <= ALIKE_RATIO * min(counts)


def mask_issue_words(text: str, words: Sequence[str]) -> str:
    """Replace every whole-word, case-insensitive occurrence of `words` with ISSUE_WORD_MASK.

    Code lines too: the code an issue names is the code its agent reads, so an issue's words in a
    file view are the same topical cue as in a thought. Found with `str.find` on the lower-cased
    text and a look at the neighbouring characters: one C-speed scan a word, not a regex callback
    per word of the context.
    """
    lower = text.lower()
    if not words or len(lower) != len(text):  # a few characters change length when lower-cased: leave such text
        return text
    hits: list[tuple[int, int]] = []
    for word in words:
        i = lower.find(word)
        while i != -1:
            j = i + len(word)
            if not (i and (lower[i - 1].isalnum() or lower[i - 1] == "_")) and not (j < len(lower) and (lower[j].isalnum() or lower[j] == "_")):
                hits.append((i, j))
            i = lower.find(word, j)
    if not hits:
        return text
    out, pos = [], 0
    for i, j in sorted(hits):
        out += (text[pos:i], ISSUE_WORD_MASK)
        pos = j
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


ISSUE_MASKING = ("words", "spans", "none")  # how much of the two issues `mask_context` masks, most first


def mask_context(text: str, patches: Sequence[str], ids: Sequence[str], issues: Sequence[str] = (),
                 issue_masking: str = "words", issue_words: Sequence[str] | None = None) -> str:
    """Mask, in an already rendered context, the answer lines of `patches`, restatements of `issues`, and `ids`.

    `issue_masking` (one of ISSUE_MASKING): `spans` masks the code the issues quote and their
    verbatim `ISSUE_SHINGLE_WORDS`-word spans; `words` also masks `issue_words` (default: every
    topic word only one of the issues uses, `distinctive_words`); `none` masks no issue text.
    Pass both patches, both issues and both ids of a pair, for both of its contexts (`mask_pair`
    does): the masks are then the same rule applied to the same inputs on each side.
    """
    if issue_masking not in ISSUE_MASKING:
        raise ValueError(f"issue_masking must be one of {ISSUE_MASKING}, got {issue_masking!r}")
    patches = tuple(patches)
    text = mask_lines(text, answer_lines(patches))
    if issues and issue_masking != "none":
        base = _base_lines(patches)
        code = sorted({line for issue in issues for line in issue_code_lines(issue, base)}, key=lambda s: (-len(s), s))
        text = mask_issue_spans(mask_lines(text, code, ISSUE_MASK), issues, base)
        if issue_masking == "words":
            text = mask_issue_words(text, distinctive_words(issues) if issue_words is None else issue_words)
    return _mask_tokens(text, [t for ident in ids for t in id_tokens(ident)])


def mask_pair(texts: Sequence[str], patches: Sequence[str], ids: Sequence[str], issues: Sequence[str],
              issue_masking: str = "words") -> list[str]:
    """Both rendered contexts of a pair, masked by one rule: the distinctive words are chosen once, from both."""
    words = distinctive_words(issues, texts) if issue_masking == "words" else None
    return [mask_context(text, patches, ids, issues, issue_masking, words) for text in texts]


def leaked_lines(text: str, patches: Sequence[str]) -> list[str]:
    """Answer lines of `patches` that still stand as code in `text` (what `mask_context` would have masked)."""
    return sorted({needle for _, _, needle in answer_spans(text, answer_lines(tuple(patches)))})
