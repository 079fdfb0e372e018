"""Neighbour-pair mining: near-duplicate images whose answers differ ("similarity retrieval").

Inputs are *records* and *vectors*, kept apart because one image may carry several questions:

- `questions[r]`, `answers[r]`: record r is one (image, question, answer) row of a VQA pool;
- `vectors`: one L2-normalised embedding per *image*, shape (n_images, dim);
- `image_index[r]`: the vector row of record r's image (default: record r <-> vector r).

A `NeighborPair(i, j, cosine)` names two *records* i < j whose images are k-nearest neighbours
with cosine inside the band [lo, hi], and that ask the same (normalised) question with
different (normalised) answers: the anchor / confounder material of a contrastive pair.
Below `lo` they are not confusable, unless `near_copy` says the two images are copies that differ
in a small region (the embedder missed it). Whether two images are duplicates is for pixels to
say, not the cosine: copies that differ in a small decisive region sit at 0.999-1.0, so `hi`
defaults to 1. Cost is kNN (near-linear with an approximate index), never all pairs.

`blind_pairs` is the MMVP recipe ("Eyes Wide Shut", Tong et al. 2024): images one embedder (CLIP)
finds nearly identical while another (a vision-only model) sees them as clearly different.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np

from ctxdata.errors import ConfigError
from ctxdata.vision.index import VectorIndex, build_index

# A row whose k neighbours all lie above this is searched deeper: a cluster of copies at cosine ~1
# must not hide the neighbours behind it.
DUPLICATE_COSINE = 0.9999


class NeighborPair(NamedTuple):
    """Two rows (records for mine_band_pairs, vectors for blind_pairs), i < j, and their cosine."""

    i: int
    j: int
    cosine: float
    cosine_other: float | None = None  # blind_pairs: the cosine under the second embedder


@dataclass(frozen=True)
class SimilarityBand:
    """Cosine interval [lo, hi] of image pairs worth mining."""

    lo: float = 0.80  # below: the two images are not confusable
    hi: float = 1.0  # above: excluded (1.0 keeps the embedder-blind pairs; pixels decide duplicates)

    def __post_init__(self):
        if not -1.0 <= self.lo < self.hi <= 1.0:
            raise ConfigError(f"similarity band needs -1 <= lo < hi <= 1, got lo={self.lo}, hi={self.hi}; e.g. band=(0.8, 0.98)")


_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


def normalize_question(q: str) -> str:
    """Lowercase, collapse whitespace, strip punctuation at both ends ("What colour?" -> "what colour")."""
    return _EDGE_PUNCT.sub("", " ".join(str(q).lower().split()))


def _codes(texts: Sequence[str]) -> np.ndarray:
    table: dict[str, int] = {}
    return np.fromiter((table.setdefault(normalize_question(t), len(table)) for t in texts), dtype=np.int64, count=len(texts))


def knn_pairs(vectors: np.ndarray, *, k: int, index: VectorIndex | None = None, kind: str = "auto", seed: int = 0, skip_above: float | None = None):
    """Unique unordered neighbour pairs (a < b) of every vector with its k nearest others.

    Returns (a int64, b int64, cos float32). When `skip_above` is set, rows whose k neighbours all
    lie above it (a cluster of duplicates) are searched again with up to 4x k, so duplicates do not
    hide the in-band neighbours behind them.
    """
    n = len(vectors)
    if index is None:
        index = build_index(vectors, kind, seed=seed)
    elif index.ntotal != n or index.dim != vectors.shape[1]:
        raise ConfigError(f"index holds {index.ntotal} x {index.dim} vectors but {n} x {vectors.shape[1]} were given")
    kq = min(k + 1, n)  # +1: a vector is its own nearest neighbour
    sims, ids = index.search(vectors, kq)
    parts = [_edges(np.arange(n), sims, ids)]
    rows, k_max = np.arange(n), min(4 * (k + 1), n)
    while skip_above is not None and kq < k_max:
        rows = rows[sims[:, -1] > skip_above]  # -inf (absent) never counts as a duplicate
        if len(rows) == 0:
            break
        kq = min(2 * kq, k_max)
        sims, ids = index.search(vectors[rows], kq)
        parts.append(_edges(rows, sims, ids))
    a, b, cos = (np.concatenate(x) for x in zip(*parts))
    key = a * n + b
    key, first = np.unique(key, return_index=True)  # sorted by (a, b): deterministic order
    return a[first], b[first], cos[first]


def _edges(rows: np.ndarray, sims: np.ndarray, ids: np.ndarray):
    src = np.repeat(rows, ids.shape[1])
    dst, cos = ids.ravel(), sims.ravel()
    keep = (dst >= 0) & (dst != src)
    src, dst, cos = src[keep], dst[keep], cos[keep]
    return np.minimum(src, dst), np.maximum(src, dst), cos.astype(np.float32)


def _record_pairs(a, b, cos, image_index, n_images, qcode, acode):
    """Expand image pairs (a, b) to the record pairs on them with same question, different answer."""
    order = np.argsort(image_index, kind="stable")
    counts = np.bincount(image_index, minlength=n_images)  # records per image
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    ca, cb = counts[a], counts[b]
    total = ca * cb
    pid = np.repeat(np.arange(len(a)), total)
    offset = np.arange(int(total.sum())) - np.repeat(np.cumsum(total) - total, total)
    ra = order[starts[a][pid] + offset // cb[pid]]
    rb = order[starts[b][pid] + offset % cb[pid]]
    keep = (qcode[ra] == qcode[rb]) & (acode[ra] != acode[rb])
    ra, rb, c = ra[keep], rb[keep], cos[pid][keep]
    i, j = np.minimum(ra, rb), np.maximum(ra, rb)
    _, first = np.unique(i * len(image_index) + j, return_index=True)
    return i[first], j[first], c[first]


def mine_band_pairs(
    vectors: np.ndarray,
    questions: Sequence[str],
    answers: Sequence[str],
    *,
    image_index: Sequence[int] | np.ndarray | None = None,
    band: SimilarityBand | tuple[float, float] = SimilarityBand(),
    k: int = 10,
    index: VectorIndex | None = None,
    kind: str = "auto",
    seed: int = 0,
    near_copy: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> list[NeighborPair]:
    """Record pairs (i < j) on neighbouring images, cosine in `band`, same question, different answer.

    vectors: (n_images, dim) L2-normalised image embeddings; questions/answers: one per record;
    image_index[r]: vector row of record r (None = identity, needs len(questions) == n_images).
    k: neighbours examined per image; index: a prebuilt VectorIndex over `vectors` (e.g. reloaded
    from --index-path), else one of `kind` is built. near_copy(a, b): a bool mask over neighbour
    image rows a, b below `lo` that are kept anyway. Output is sorted by (i, j), each pair once.
    """
    band = band if isinstance(band, SimilarityBand) else SimilarityBand(*band)
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n_rec = len(questions)
    if len(answers) != n_rec:
        raise ConfigError(f"questions ({n_rec}) and answers ({len(answers)}) must have one entry per record")
    image_index = np.arange(n_rec) if image_index is None else np.asarray(image_index, dtype=np.int64)
    if len(image_index) != n_rec:
        raise ConfigError(f"image_index has {len(image_index)} entries for {n_rec} records")
    if n_rec and (image_index.min() < 0 or image_index.max() >= len(vectors)):
        raise ConfigError(f"image_index must point into the {len(vectors)} vector rows")
    if n_rec == 0 or len(vectors) < 2:
        return []
    a, b, cos = knn_pairs(vectors, k=k, index=index, kind=kind, seed=seed, skip_above=min(band.hi, DUPLICATE_COSINE))
    cos = np.minimum(cos, 1.0)  # float32 rounding puts identical vectors at 1.0000001
    in_band = (cos >= band.lo) & (cos <= band.hi)
    below = np.nonzero(cos < band.lo)[0]
    if near_copy is not None and len(below):
        in_band[below[near_copy(a[below], b[below])]] = True
    i, j, c = _record_pairs(a[in_band], b[in_band], cos[in_band], image_index, len(vectors), _codes(questions), _codes(answers))
    return [NeighborPair(int(x), int(y), float(z)) for x, y, z in zip(i, j, c)]


def blind_pairs(
    v1: np.ndarray,
    v2: np.ndarray,
    *,
    hi1: float = 0.95,
    lo2: float = 0.6,
    k: int = 10,
    kind: str = "auto",
    seed: int = 0,
) -> list[NeighborPair]:
    """MMVP pairs: cos > hi1 under embedder 1 (v1) and cos < lo2 under embedder 2 (v2), sorted by (i, j).

    v1, v2: (n, d1) and (n, d2) L2-normalised embeddings of the same n images, row-aligned.
    `cosine` is the embedder-1 cosine, `cosine_other` the embedder-2 one.
    """
    v1 = np.ascontiguousarray(v1, dtype=np.float32)
    v2 = np.ascontiguousarray(v2, dtype=np.float32)
    if len(v1) != len(v2):
        raise ConfigError(f"v1 ({len(v1)} rows) and v2 ({len(v2)} rows) must embed the same images, row-aligned")
    if len(v1) < 2:
        return []
    a, b, cos1 = knn_pairs(v1, k=k, kind=kind, seed=seed)
    close = cos1 > hi1
    a, b, cos1 = a[close], b[close], cos1[close]
    cos2 = np.einsum("ij,ij->i", v2[a], v2[b]) if len(a) else np.zeros(0, np.float32)
    far = cos2 < lo2
    return [NeighborPair(int(x), int(y), float(c1), float(c2)) for x, y, c1, c2 in zip(a[far], b[far], cos1[far], cos2[far])]
