"""The registry of meaning-blind predictors of `label`: `PREDICTORS`, a plain dict.

A predictor's `scores(rows)` gives one float per pair: > 0 picks context A as the anchor, < 0
picks B, 0 abstains. Rows are plain dicts as read from the shards (`ctxdata.schema` columns).
A `per_pair` predictor's score for a pair depends on that pair alone, so a build can use it as a
per-pair filter; the others (corpus IDF, cross-validated models) are fitted on the rows given.

Families: `structural` (coding: length, steps, exit codes, masks), `topical` (query against each
context), `answer-evidence` (answer against each context: the task's intended signal, reported
but not a shortcut), `image` (statistics of each image alone), `learned` (cross-validated models).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ctxdata.audit import text as T
from ctxdata.audit.images import STAT_NAMES, edited_slot, row_image_stats
from ctxdata.audit.learned import cross_validated
from ctxdata.coding.mask import MASK_MARKERS
from ctxdata.errors import ConfigError

FAMILIES = ("structural", "topical", "answer-evidence", "image", "learned")
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Predictor:
    """One cheap, meaning-blind predictor of which context is the anchor."""

    name: str
    family: str  # one of FAMILIES
    domains: tuple[str, ...]  # the pair domains it applies to
    doc: str  # one line: what it looks at and which side it picks
    score_fn: Callable[[Rows], np.ndarray]
    per_pair: bool = True  # a pair's score depends on that pair alone (usable as a per-pair filter)
    needs_embedding: bool = False  # runs MiniLM (only in a full audit)

    @property
    def shortcut(self) -> bool:
        """Answer-evidence is the skill the pairs train, so it never counts as a shortcut."""
        return self.family != "answer-evidence"

    def scores(self, rows: Rows) -> np.ndarray:
        return np.asarray(self.score_fn(list(rows)), dtype=float).reshape(len(rows))


def _texts(row: dict[str, Any]) -> tuple[str, str]:
    return row.get("context_a_text") or "", row.get("context_b_text") or ""


def _structure_diff(key: str, sign: float = 1.0) -> Callable[[Rows], np.ndarray]:
    def scores(rows: Rows) -> np.ndarray:
        out = []
        for r in rows:
            a, b = _texts(r)
            out.append(sign * (T.context_structure(a)[key] - T.context_structure(b)[key]))
        return np.array(out)

    return scores


def _pair_tfidf(probe: Callable[[dict[str, Any]], str]) -> Callable[[Rows], np.ndarray]:
    def scores(rows: Rows) -> np.ndarray:
        return np.array([np.subtract(*T.pair_tfidf(probe(r), *_texts(r))) for r in rows])

    return scores


def _corpus_tfidf(probe: Callable[[dict[str, Any]], str]) -> Callable[[Rows], np.ndarray]:
    """IDF fitted on every query and context of the rows given (the issue's measurement)."""

    def scores(rows: Rows) -> np.ndarray:
        docs = [T.term_counts(t) for r in rows for t in (r.get("query") or "", *_texts(r))]
        idf, unseen = T.idf_from(docs)
        out = []
        for r in rows:
            p, (a, b) = T.term_counts(probe(r)), _texts(r)
            out.append(
                T.tfidf_cosine(p, T.term_counts(a), idf, unseen) - T.tfidf_cosine(p, T.term_counts(b), idf, unseen)
            )
        return np.array(out)

    return scores


def _query(row: dict[str, Any]) -> str:
    return row.get("query") or ""


def _answer_added(row: dict[str, Any]) -> str:
    return T.added_lines_text(row.get("answer") or "")


def _verbatim(rows: Rows) -> np.ndarray:
    return np.array(
        [T.verbatim_spans(_query(r), _texts(r)[0]) - T.verbatim_spans(_query(r), _texts(r)[1]) for r in rows],
        dtype=float,
    )


_MODEL: list[Any] = []


def minilm():
    """The offline MiniLM sentence encoder, loaded once per process."""
    if not _MODEL:
        from ctxdata.coding.cascade import load_minilm

        _MODEL.append(load_minilm())
    return _MODEL[0]


_BEST_CHUNK: dict[bytes, float] = {}  # (query, context) digest -> best-chunk cosine, per process
_BEST_CHUNK_LIMIT = 200_000


def _minilm_chunk(rows: Rows) -> np.ndarray:
    """Cosine of the query to the best 900-character chunk of each context, A minus B.

    Scores are remembered per process: `--max-shortcut` with MiniLM scores a candidate's masked
    contexts once to calibrate and again to filter, and embedding is the whole cost.
    """
    if not rows:
        return np.zeros(0)
    keys = [_digest(_query(r), text) for r in rows for text in _texts(r)]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in _BEST_CHUNK}.values())
    fresh: dict[bytes, float] = {}
    if todo:
        model = minilm()
        queries = model.encode([_query(rows[i // 2]) for i in todo], batch_size=32, normalize_embeddings=True,
                               show_progress_bar=False)
        spans, pieces = [], []
        for i in todo:
            parts = T.chunks(_texts(rows[i // 2])[i % 2])
            spans.append((len(pieces), len(pieces) + len(parts)))
            pieces += parts
        vectors = model.encode(pieces, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        for q, i, (s, e) in zip(queries, todo, spans):
            fresh[keys[i]] = float((vectors[s:e] @ q).max())
    best = np.array([fresh[k] if k in fresh else _BEST_CHUNK[k] for k in keys])
    if len(_BEST_CHUNK) + len(fresh) > _BEST_CHUNK_LIMIT:
        _BEST_CHUNK.clear()
    _BEST_CHUNK.update(fresh)
    return best[0::2] - best[1::2]


def remembered_best_chunks() -> dict[bytes, float]:
    """The MiniLM best-chunk scores this process has computed, for a build to ship to its workers."""
    return dict(_BEST_CHUNK)


def remember_best_chunks(scores: dict[bytes, float]) -> None:
    """Take scores another process computed (a build's calibration on the driver): a worker then does not embed
    those contexts again, and filters on the very scores the calibration saw."""
    if len(_BEST_CHUNK) + len(scores) > _BEST_CHUNK_LIMIT:
        _BEST_CHUNK.clear()
    _BEST_CHUNK.update(scores)


def _digest(query: str, text: str) -> bytes:
    return hashlib.blake2b(query.encode("utf-8", "surrogatepass") + b"\x00" + text.encode("utf-8", "surrogatepass"),
                           digest_size=16).digest()


STRUCTURE_KEYS = (
    "chars",
    "steps",
    "exits",
    "exits_nonzero",
    "elided_chars",
    "masks",
    "mask_first_pos",
    "mask_mean_pos",
    *(f"masks:{m}" for m in MASK_MARKERS),
)
_LOG_KEYS = {"chars", "elided_chars"}


def coding_features(rows: Rows) -> np.ndarray:
    """Symmetric features of the learned coding model: structure and lexical topicality, A minus B."""
    cols = []
    for key in STRUCTURE_KEYS:
        f = (lambda v: np.log1p(v)) if key in _LOG_KEYS else (lambda v: v)
        cols.append([f(T.context_structure(a)[key]) - f(T.context_structure(b)[key]) for a, b in map(_texts, rows)])
    cols.append(_pair_tfidf(_query)(rows))
    cols.append(_corpus_tfidf(_query)(rows))
    cols.append(
        [
            np.log1p(T.verbatim_spans(_query(r), _texts(r)[0])) - np.log1p(T.verbatim_spans(_query(r), _texts(r)[1]))
            for r in rows
        ]
    )
    return np.array(cols, dtype=float).T.reshape(len(rows), -1)


def _stat(stats: dict[str, float], key: str) -> float:
    value = stats.get(key, 0.0)
    return float(np.log1p(value)) if key in ("file_bytes", "pixels") else float(value)


def image_features(rows: Rows) -> np.ndarray:
    """Symmetric image-statistics features, A minus B."""
    out = []
    for r in rows:
        a, b = row_image_stats(r)
        out.append([_stat(a, k) - _stat(b, k) for k in STAT_NAMES])
    return np.array(out, dtype=float).reshape(len(rows), len(STAT_NAMES))


def _image_diff(key: str, sign: float) -> Callable[[Rows], np.ndarray]:
    def scores(rows: Rows) -> np.ndarray:
        return np.array([sign * (_stat(a, key) - _stat(b, key)) for a, b in map(row_image_stats, rows)])

    return scores


def edited_target(rows: Rows) -> np.ndarray:
    """+1 where context A is the edited image, -1 where B is, 0 for pairs that are not edits."""
    return np.array([{"A": 1.0, "B": -1.0}.get(edited_slot(r) or "", 0.0) for r in rows])


def _is_edit(rows: Rows) -> np.ndarray:
    return edited_target(rows) != 0


# Scores of "which context is the edited one" (> 0: A). Their label predictors pick the other image.
EDITED_DETECTORS: dict[str, Callable[[Rows], np.ndarray]] = {
    "edited:noise-inconsistency": _image_diff("noise_inconsistency", 1.0),
    "edited:learned": cross_validated(image_features, target=edited_target, trainable=_is_edit),
}


def _negated(fn: Callable[[Rows], np.ndarray]) -> Callable[[Rows], np.ndarray]:
    return lambda rows: -np.asarray(fn(rows), dtype=float)


def _slug(marker: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", marker.lower()).strip("-")


C, V = ("coding",), ("vision",)
_LIST: list[Predictor] = [
    Predictor(
        "longer-context", "structural", C, "the longer rendered context is the anchor", _structure_diff("chars")
    ),
    Predictor("more-steps", "structural", C, "the context with more steps is the anchor", _structure_diff("steps")),
    Predictor(
        "fewer-failing-exits",
        "structural",
        C,
        "the context with fewer non-zero exit codes is the anchor",
        _structure_diff("exits_nonzero", -1.0),
    ),
    Predictor(
        "more-masks", "structural", C, "the context with more mask markers is the anchor", _structure_diff("masks")
    ),
    *(
        Predictor(
            f"more-masks:{_slug(m)}",
            "structural",
            C,
            f"the context with more {m} markers is the anchor",
            _structure_diff(f"masks:{m}"),
        )
        for m in MASK_MARKERS
    ),
    Predictor(
        "earlier-first-mask",
        "structural",
        C,
        "the context whose first mask comes earlier (relative position) is the anchor",
        _structure_diff("mask_first_pos", -1.0),
    ),
    Predictor(
        "query-tfidf-pair",
        "topical",
        C,
        "higher TF-IDF cosine to the query, IDF from this pair's three texts",
        _pair_tfidf(_query),
    ),
    Predictor(
        "query-tfidf-corpus",
        "topical",
        C,
        "higher TF-IDF cosine to the query, IDF fitted on the whole folder",
        _corpus_tfidf(_query),
        per_pair=False,
    ),
    Predictor(
        "query-verbatim-8gram", "topical", C, "more distinct 8-word spans of the query quoted verbatim", _verbatim
    ),
    Predictor(
        "query-minilm-chunk",
        "topical",
        C,
        "higher MiniLM cosine between the query and the best 900-char chunk",
        _minilm_chunk,
        needs_embedding=True,
    ),
    Predictor(
        "answer-tfidf-pair",
        "answer-evidence",
        C,
        "higher TF-IDF cosine to the answer patch's added lines (per pair)",
        _pair_tfidf(_answer_added),
    ),
    Predictor(
        "answer-tfidf-corpus",
        "answer-evidence",
        C,
        "higher TF-IDF cosine to the answer patch's added lines (folder IDF)",
        _corpus_tfidf(_answer_added),
        per_pair=False,
    ),
    Predictor(
        "learned-coding",
        "learned",
        C,
        "5-fold logistic regression on structural + lexical topical features",
        cross_validated(coding_features),
        per_pair=False,
    ),
    Predictor("darker", "image", V, "the darker image is the anchor", _image_diff("brightness", -1.0)),
    Predictor(
        "higher-contrast", "image", V, "the image with more contrast is the anchor", _image_diff("contrast", 1.0)
    ),
    Predictor("less-saturated", "image", V, "the less saturated image is the anchor", _image_diff("saturation", -1.0)),
    Predictor(
        "more-edges", "image", V, "the image with more edge pixels is the anchor", _image_diff("edge_density", 1.0)
    ),
    Predictor(
        "more-colours", "image", V, "the image with more distinct colours is the anchor", _image_diff("colours", 1.0)
    ),
    Predictor(
        "larger-file", "image", V, "the image with more encoded bytes is the anchor", _image_diff("file_bytes", 1.0)
    ),
    Predictor(
        "more-bytes-per-pixel",
        "image",
        V,
        "the image with more encoded bytes per pixel is the anchor",
        _image_diff("bytes_per_pixel", 1.0),
    ),
    Predictor(
        "more-pixels", "image", V, "the larger image (width x height) is the anchor", _image_diff("pixels", 1.0)
    ),
    Predictor("jpeg", "image", V, "the JPEG-encoded image is the anchor", _image_diff("is_jpeg", 1.0)),
    Predictor(
        "blockier",
        "image",
        V,
        "the image with stronger 8x8 JPEG blocking is the anchor",
        _image_diff("blockiness", 1.0),
    ),
    Predictor(
        "looks-unedited",
        "image",
        V,
        "the image whose local noise is more uniform (looks unedited) is the anchor",
        _negated(EDITED_DETECTORS["edited:noise-inconsistency"]),
    ),
    Predictor(
        "learned-image",
        "learned",
        V,
        "5-fold logistic regression on the image statistics",
        cross_validated(image_features),
        per_pair=False,
    ),
    Predictor(
        "learned-looks-unedited",
        "learned",
        V,
        "the image a 5-fold edit detector (image statistics -> which one was edited) calls unedited is the anchor",
        _negated(EDITED_DETECTORS["edited:learned"]),
        per_pair=False,
    ),
]
PREDICTORS: dict[str, Predictor] = {p.name: p for p in _LIST}
assert len(PREDICTORS) == len(_LIST) and all(p.family in FAMILIES for p in _LIST)


def get_predictor(name: str) -> Predictor:
    """The predictor called `name`; an unknown name lists the valid ones."""
    try:
        return PREDICTORS[name]
    except KeyError:
        raise ConfigError(f"unknown predictor {name!r}; valid: {', '.join(PREDICTORS)}") from None


def predictors_for(domain: str, *, embed: bool) -> list[Predictor]:
    """The predictors that apply to `domain` (MiniLM ones only when `embed`)."""
    return [p for p in PREDICTORS.values() if domain in p.domains and (embed or not p.needs_embedding)]
