"""Meaning-blind text features of coding pairs: structure of a rendered context, and lexical similarity.

A rendered context looks like `## Step N / THOUGHT: ... / $ action / observation / (exit N)` (see
`ctxdata.coding.render`); the masks are the markers in `ctxdata.coding.mask.MASK_MARKERS`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache
from typing import Iterable

from ctxdata.coding.mask import MASK_MARKERS

STEP = re.compile(r"^## Step \d+\s*$", re.M)
EXIT = re.compile(r"^\(exit (-?\d+)\)\s*$", re.M)
ELIDED = re.compile(r"\[\.\.\. (\d+) chars elided \.\.\.\]")
TOKEN = re.compile(r"[a-z_][a-z0-9_]+")
NGRAM = 8  # words in a verbatim span of the query (the "restates its own issue" measure)


@lru_cache(maxsize=4096)
def context_structure(text: str) -> dict[str, float]:
    """Counts a reader sees without reading: length, steps, exit codes, masks and where they sit."""
    exits = [int(code) for code in EXIT.findall(text)]
    size = max(len(text), 1)
    stats = {
        "chars": float(len(text)),
        "steps": float(len(STEP.findall(text))),
        "exits": float(len(exits)),
        "exits_nonzero": float(sum(1 for code in exits if code != 0)),
        "elided_chars": float(sum(int(n) for n in ELIDED.findall(text))),
    }
    positions = []
    for marker in MASK_MARKERS:
        found = [m.start() / size for m in re.finditer(re.escape(marker), text)]
        stats[f"masks:{marker}"] = float(len(found))
        positions += found
    stats["masks"] = float(len(positions))
    stats["mask_first_pos"] = min(positions, default=1.0)  # relative position; 1.0 when nothing is masked
    stats["mask_mean_pos"] = sum(positions) / len(positions) if positions else 1.0
    return stats


@lru_cache(maxsize=8192)
def term_counts(text: str) -> Counter:
    return Counter(TOKEN.findall(text.lower()))


def added_lines_text(patch: str) -> str:
    """The added lines of a unified diff (the answer's evidence), or the text itself if it is no diff."""
    from ctxdata.coding.patch import parse_patch

    added = parse_patch(patch, functions=False).added_lines
    return "\n".join(added) if added else patch


def idf_from(docs: Iterable[Counter]) -> tuple[dict[str, float], float]:
    """Smoothed IDF (as scikit-learn's): log((1 + n) / (1 + df)) + 1; the second value is an unseen term's IDF."""
    df: Counter = Counter()
    n = 0
    for doc in docs:
        df.update(doc.keys())
        n += 1
    unseen = math.log(1 + n) + 1
    return {t: math.log((1 + n) / (1 + d)) + 1 for t, d in df.items()}, unseen


def tfidf_cosine(a: Counter, b: Counter, idf: dict[str, float], unseen: float) -> float:
    """Cosine of sublinear-TF x IDF vectors (0 when either is empty)."""

    def weights(doc: Counter) -> dict[str, float]:
        return {t: (1 + math.log(c)) * idf.get(t, unseen) for t, c in doc.items()}

    wa, wb = weights(a), weights(b)
    if len(wa) > len(wb):
        wa, wb = wb, wa
    dot = sum(w * wb[t] for t, w in wa.items() if t in wb)
    norm = math.sqrt(sum(w * w for w in wa.values())) * math.sqrt(sum(w * w for w in wb.values()))
    return dot / norm if norm else 0.0


def pair_tfidf(probe: str, context_a: str, context_b: str) -> tuple[float, float]:
    """Cosine of `probe` to each context, IDF fitted on these three texts alone (a per-pair score)."""
    docs = [term_counts(probe), term_counts(context_a), term_counts(context_b)]
    idf, unseen = idf_from(docs)
    return tfidf_cosine(docs[0], docs[1], idf, unseen), tfidf_cosine(docs[0], docs[2], idf, unseen)


def query_ngrams(query: str, n: int = NGRAM) -> set[str]:
    words = TOKEN.findall(query.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@lru_cache(maxsize=4096)
def _word_stream(text: str) -> str:
    return " " + " ".join(TOKEN.findall(text.lower())) + " "


def verbatim_spans(query: str, context: str, n: int = NGRAM) -> int:
    """How many distinct n-word spans of the query appear verbatim (as words) in the context."""
    stream = _word_stream(context)
    return sum(1 for gram in query_ngrams(query, n) if f" {gram} " in stream)


def chunks(text: str, size: int = 900) -> list[str]:
    """Consecutive `size`-character chunks (the last may be shorter); at least one."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
