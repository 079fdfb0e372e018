"""Vector indexes for cosine kNN over L2-normalised embeddings (inner product = cosine).

Kinds (the `INDEXES` registry):
- `numpy`: exact, blocked matrix products, no faiss. The light twin CI can always run.
- `flat`:  exact faiss `IndexFlatIP`. O(n) per query: fine up to ~50k vectors, ~hours at 1M x 1M.
- `ivf`:   faiss `IndexIVFFlat`, nlist ~ 4*sqrt(n) coarse cells trained on a sample; `nprobe` is
           tuned at build time on held-in queries until recall@10 against exact search >= target.
           Stores the raw vectors, so returned similarities are exact inner products.
- `hnsw`:  faiss `IndexHNSWFlat` (inner product), `efSearch` tuned the same way. No training,
           but slower to build than IVF on 2 cores and not GPU-capable.
- `auto`:  `flat` up to AUTO_EXACT_LIMIT (50k) vectors, `ivf` above. Exact search is affordable
           below that size and gives recall 1; above it IVF was the fastest kind to reach recall
           >= 0.95 in benchmarks/mine_scale.py (see docs/vision-search.md).

faiss-gpu is used for `flat`/`ivf` automatically when `faiss.get_num_gpus() > 0`.
A saved index (`save(path)`) writes the index to `path` and a JSON sidecar `path.json` holding the
kind, dimension, count and a few sample rows, so `load_index(path, vectors)` can refuse an index
built from other vectors instead of silently returning wrong neighbours.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ctxdata._deps import require
from ctxdata.errors import ConfigError, CtxdataError

AUTO_EXACT_LIMIT = 50_000
TARGET_RECALL = 0.95  # recall@10 the approximate kinds are tuned to reach at build time
_SAMPLE_ROWS = 8  # rows stored in the sidecar to recognise the vectors an index was built from


def _as_matrix(vectors: np.ndarray, what: str = "vectors") -> np.ndarray:
    arr = np.ascontiguousarray(vectors, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ConfigError(f"{what} must be a non-empty 2-D array (n, dim), got shape {np.shape(vectors)}")
    return arr


def _faiss():
    faiss = require("faiss")
    # One OpenMP thread per usable core; OMP_NUM_THREADS (if the user set it) wins.
    if "OMP_NUM_THREADS" not in os.environ:
        faiss.omp_set_num_threads(max(1, len(os.sched_getaffinity(0))))
    return faiss


class VectorIndex:
    """Base: `search(queries, k) -> (sims float32 (n,k), ids int64 (n,k))`, ids -1 when absent."""

    kind = "base"

    def __init__(self, dim: int, ntotal: int, sample: np.ndarray):
        self.dim, self.ntotal, self._sample = dim, ntotal, sample
        self.params: dict = {}  # tuned search parameters (nprobe, efSearch), recorded in the sidecar

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _as_matrix(queries, "queries")
        if queries.shape[1] != self.dim:
            raise ConfigError(f"queries have dimension {queries.shape[1]}, the index has {self.dim}")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        sims, ids = self._search(queries, k)
        return sims.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self._write(tmp)
        os.replace(tmp, path)
        meta = {"kind": self.kind, "dim": self.dim, "ntotal": self.ntotal, "params": self.params, "sample": self._sample.tolist()}
        Path(str(path) + ".json").write_text(json.dumps(meta))
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, dim={self.dim}, ntotal={self.ntotal}, params={self.params})"

    def _search(self, queries, k):  # pragma: no cover - abstract
        raise NotImplementedError

    def _write(self, path: Path) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class NumpyIndex(VectorIndex):
    """Exact search with blocked matmul + argpartition; memory stays O(block * n)."""

    kind = "numpy"

    def __init__(self, vectors: np.ndarray, sample: np.ndarray):
        super().__init__(vectors.shape[1], vectors.shape[0], sample)
        self.vectors = vectors

    def _search(self, queries, k):
        n, kk = self.ntotal, min(k, self.ntotal)
        sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        block = max(1, min(4096, (1 << 26) // max(n, 1)))  # ~256 MB of float32 scores per block
        for start in range(0, len(queries), block):
            scores = queries[start : start + block] @ self.vectors.T
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(scores), 1))
            top_scores = np.take_along_axis(scores, top, axis=1)
            # Ties broken by id so every kind that is exact agrees on the order.
            order = np.lexsort((top, -top_scores), axis=1)
            sims[start : start + block, :kk] = np.take_along_axis(top_scores, order, axis=1)
            ids[start : start + block, :kk] = np.take_along_axis(top, order, axis=1)
        return sims, ids

    def _write(self, path):
        with open(path, "wb") as fh:
            np.save(fh, self.vectors)


class FaissIndex(VectorIndex):
    """A faiss index (flat / ivf / hnsw); moved to the GPUs when faiss sees any."""

    def __init__(self, kind: str, index, dim: int, ntotal: int, sample: np.ndarray):
        super().__init__(dim, ntotal, sample)
        self.kind, self.index = kind, index

    def set_params(self, **params) -> None:
        faiss = _faiss()
        for name, value in params.items():
            if name == "nprobe":
                faiss.extract_index_ivf(self.index).nprobe = int(value)
            elif name == "efSearch":
                self.index.hnsw.efSearch = int(value)
            self.params[name] = int(value)

    def _search(self, queries, k):
        sims, ids = self.index.search(queries, k)
        sims[ids < 0] = -np.inf
        return sims, ids

    def _write(self, path):
        faiss = _faiss()
        index = faiss.index_gpu_to_cpu(self.index) if _on_gpu(self.index) else self.index
        faiss.write_index(index, str(path))


def _on_gpu(index) -> bool:
    return "Gpu" in type(index).__name__


def _to_gpu_if_available(faiss, index):
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0 and hasattr(faiss, "index_cpu_to_all_gpus"):
        return faiss.index_cpu_to_all_gpus(index)
    return index


def _sample_rows(vectors: np.ndarray) -> np.ndarray:
    idx = np.linspace(0, len(vectors) - 1, num=min(_SAMPLE_ROWS, len(vectors))).astype(np.int64)
    return vectors[idx].copy()


def _build_numpy(vectors, seed):
    return NumpyIndex(vectors, _sample_rows(vectors))


def _build_flat(vectors, seed):
    faiss = _faiss()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return FaissIndex("flat", _to_gpu_if_available(faiss, index), vectors.shape[1], len(vectors), _sample_rows(vectors))


def ivf_nlist(n: int) -> int:
    """~4*sqrt(n) cells, but at least 39 training points per cell (faiss's k-means minimum)."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def _build_ivf(vectors, seed):
    faiss = _faiss()
    n, dim = vectors.shape
    nlist = ivf_nlist(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10  # k-means converges enough for coarse cells; 25 iterations doubled build time
    # 64 points per cell is plenty for coarse cells and keeps training at 1M to well under a minute.
    rng = np.random.default_rng(seed)
    train = vectors if n <= 64 * nlist else vectors[np.sort(rng.choice(n, 64 * nlist, replace=False))]
    index.train(train)
    index.add(vectors)
    wrapped = FaissIndex("ivf", _to_gpu_if_available(faiss, index), dim, n, _sample_rows(vectors))
    _tune(wrapped, vectors, "nprobe", start=1, limit=nlist, seed=seed)
    return wrapped


def _build_hnsw(vectors, seed):
    faiss = _faiss()
    n, dim = vectors.shape
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(vectors)
    wrapped = FaissIndex("hnsw", index, dim, n, _sample_rows(vectors))
    _tune(wrapped, vectors, "efSearch", start=16, limit=4096, seed=seed)
    return wrapped


def _tune(index: FaissIndex, vectors: np.ndarray, param: str, *, start: int, limit: int, seed: int, k: int = 10) -> None:
    """Double `param` from `start` until recall@k on 256 sampled rows (vs exact) reaches TARGET_RECALL."""
    rng = np.random.default_rng(seed + 1)
    queries = vectors[rng.choice(len(vectors), size=min(256, len(vectors)), replace=False)]
    k = min(k, len(vectors))
    _, truth = NumpyIndex(vectors, vectors[:1]).search(queries, k)
    value = start
    while True:
        index.set_params(**{param: min(value, limit)})
        _, found = index.search(queries, k)
        index.params["tuned_recall"] = recall_at_k(found, truth)
        if index.params["tuned_recall"] >= TARGET_RECALL or value >= limit:
            return
        value *= 2


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top-k ids (truth) that appear in `found`, per query row."""
    hits = sum(len(np.intersect1d(f[f >= 0], t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, int((truth >= 0).sum()))


def _resolve_auto(n: int) -> str:
    return "flat" if n <= AUTO_EXACT_LIMIT else "ivf"


INDEXES = {
    "auto": None,  # resolved by size in build_index (see module docstring)
    "flat": _build_flat,
    "ivf": _build_ivf,
    "hnsw": _build_hnsw,
    "numpy": _build_numpy,
}


def build_index(vectors: np.ndarray, kind: str = "auto", *, seed: int = 0) -> VectorIndex:
    """Index L2-normalised `vectors` (n, dim) for inner-product kNN; see INDEXES for the kinds."""
    if kind not in INDEXES:
        raise ConfigError(f"unknown index kind {kind!r}; valid kinds: {', '.join(INDEXES)}")
    vectors = _as_matrix(vectors)
    if kind == "auto":
        kind = _resolve_auto(len(vectors))
    if kind == "ivf" and len(vectors) < 39:
        kind = "flat"  # too few points to train any coarse quantizer: exact is cheaper anyway
    return INDEXES[kind](vectors, seed)


def load_index(path: str | Path, vectors: np.ndarray | None = None) -> VectorIndex:
    """Reload an index saved with `.save(path)`; refuse it when it was built from other `vectors`."""
    path = Path(path)
    meta_path = Path(str(path) + ".json")
    if not path.is_file() or not meta_path.is_file():
        raise CtxdataError(f"no saved index at {path} (expected {path} and {meta_path}); build one first or drop --index-path")
    meta = json.loads(meta_path.read_text())
    sample = np.asarray(meta["sample"], dtype=np.float32)
    if vectors is not None:
        _check_matches(path, meta, sample, _as_matrix(vectors))
    if meta["kind"] == "numpy":
        with open(path, "rb") as fh:
            index: VectorIndex = NumpyIndex(np.load(fh), sample)
    else:
        faiss = _faiss()
        raw = faiss.read_index(str(path))
        index = FaissIndex(meta["kind"], raw if meta["kind"] == "hnsw" else _to_gpu_if_available(faiss, raw), meta["dim"], meta["ntotal"], sample)
        index.set_params(**{k: v for k, v in meta["params"].items() if k in ("nprobe", "efSearch")})
    index.params.update(meta["params"])
    return index


def _check_matches(path: Path, meta: dict, sample: np.ndarray, vectors: np.ndarray) -> None:
    n, dim = vectors.shape
    if (meta["ntotal"], meta["dim"]) != (n, dim):
        raise CtxdataError(
            f"the index at {path} holds {meta['ntotal']} vectors of dimension {meta['dim']}, but the current "
            f"embeddings are {n} x {dim}: it was built from another pool or embedder. Delete it or pass a new --index-path."
        )
    if not np.allclose(_sample_rows(vectors), sample, atol=1e-4):
        raise CtxdataError(
            f"the index at {path} has the right shape ({n} x {dim}) but was built from different vectors "
            "(sample rows differ). Delete it or pass a new --index-path."
        )
