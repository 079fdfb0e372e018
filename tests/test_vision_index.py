"""Every index kind against numpy exact search; save/reload; refusing an index built from other vectors."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.vision.index import INDEXES, build_index, ivf_nlist, load_index, recall_at_k

FAISS_KINDS = ["flat", "ivf", "hnsw", "auto"]


def clustered(n: int = 4000, dim: int = 48, clusters: int = 40, spread: float = 0.35, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_numpy_index_is_exact_and_sorted():
    x = clustered(500, 16)
    sims, ids = build_index(x, "numpy").search(x[:50], 7)
    brute = x[:50] @ x.T
    assert sims.dtype == np.float32 and ids.dtype == np.int64 and ids.shape == (50, 7)
    assert (ids[:, 0] == np.arange(50)).all()  # each vector is its own nearest neighbour
    np.testing.assert_allclose(sims, -np.sort(-brute, axis=1)[:, :7], atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-7).all()


def test_k_larger_than_pool_pads_with_minus_one():
    x = clustered(5, 8)
    for kind in ["numpy", "flat"]:
        if kind == "flat":
            pytest.importorskip("faiss")
        sims, ids = build_index(x, kind).search(x, 8)
        assert (ids[:, 5:] == -1).all() and (ids[:, :5] >= 0).all(), kind
        assert np.isneginf(sims[:, 5:]).all()


@pytest.mark.parametrize("kind", FAISS_KINDS)
def test_faiss_kinds_match_exact(kind):
    pytest.importorskip("faiss")
    x = clustered()
    queries = x[::20]
    _, truth = build_index(x, "numpy").search(queries, 10)
    index = build_index(x, kind, seed=0)
    sims, ids = index.search(queries, 10)
    assert sims.dtype == np.float32 and ids.dtype == np.int64
    assert recall_at_k(ids, truth) >= (1.0 if kind in ("flat", "auto") else 0.95)
    # Returned similarities are true inner products, whatever the kind.
    np.testing.assert_allclose(sims, np.einsum("qd,qkd->qk", queries, x[ids]), atol=1e-4)
    if kind == "ivf":
        assert index.params["nprobe"] >= 1 and index.params["tuned_recall"] >= 0.95


def test_auto_is_exact_below_the_limit(monkeypatch):
    pytest.importorskip("faiss")
    import ctxdata.vision.index as vi

    assert build_index(clustered(300), "auto").kind == "flat"
    monkeypatch.setattr(vi, "AUTO_EXACT_LIMIT", 100)
    assert build_index(clustered(300), "auto").kind == "ivf"


def test_ivf_nlist_rule():
    assert ivf_nlist(1_000_000) == 4000
    assert ivf_nlist(10_000) == 256  # 4*sqrt = 400, but only 10k/39 = 256 cells can be trained
    assert ivf_nlist(10) == 1


@pytest.mark.parametrize("kind", ["numpy", "flat", "ivf", "hnsw"])
def test_save_reload_roundtrip(tmp_path, kind):
    if kind != "numpy":
        pytest.importorskip("faiss")
    x = clustered(2000, 32)
    index = build_index(x, kind)
    path = index.save(tmp_path / "sub" / f"pool.{kind}")
    again = load_index(path, x)
    assert (again.kind, again.dim, again.ntotal) == (kind, 32, 2000)
    assert again.params == index.params  # tuned nprobe / efSearch survive the round trip
    s1, i1 = index.search(x[:30], 5)
    s2, i2 = again.search(x[:30], 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)


def test_reload_refuses_other_vectors(tmp_path):
    x = clustered(600, 16)
    path = build_index(x, "numpy").save(tmp_path / "pool.idx")
    with pytest.raises(CtxdataError, match="600 vectors of dimension 16"):
        load_index(path, x[:500])
    with pytest.raises(CtxdataError, match="dimension 16"):
        load_index(path, clustered(600, 24))
    with pytest.raises(CtxdataError, match="built from different vectors"):
        load_index(path, clustered(600, 16, seed=7))
    with pytest.raises(CtxdataError, match="no saved index"):
        load_index(tmp_path / "absent.idx", x)
    assert load_index(path).ntotal == 600  # no vectors given: nothing to check against


def test_bad_arguments():
    x = clustered(50, 8)
    with pytest.raises(ConfigError, match="valid kinds: auto, flat, ivf, hnsw, numpy"):
        build_index(x, "annoy")
    assert list(INDEXES) == ["auto", "flat", "ivf", "hnsw", "numpy"]
    with pytest.raises(ConfigError, match="non-empty 2-D"):
        build_index(np.zeros((0, 8), np.float32), "numpy")
    with pytest.raises(ConfigError, match="dimension 4"):
        build_index(x, "numpy").search(np.zeros((1, 4), np.float32), 3)
