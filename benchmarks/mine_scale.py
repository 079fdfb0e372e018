"""Band-pair mining at 10k / 100k / 1M clustered 512-d vectors: time, peak RSS, recall@10 vs exact.

Each size runs in its own subprocess (so peak RSS is that size's own). Per size it reports:
- mining time: `build_index(kind)` + `mine_band_pairs(..., index=...)` end to end (kNN of every
  vector, band filter, same-question / different-answer rule, dedup);
- recall@10 of the index on 1,000 sampled queries against exact inner-product search;
- the peer: exact faiss `IndexFlatIP` kNN of all n vectors, timed on min(n, 10k) queries and
  extrapolated linearly to n queries above 10k (the printout says when it is extrapolated).

Data: Gaussian clusters (~50 points each, per-cluster spread 0.2-0.6 so intra-cluster cosines span
~0.75-0.96), L2-normalised float32; every record asks one of 5 questions with one of 4 answers.

    python benchmarks/mine_scale.py [--sizes 10000,100000,1000000] [--kind auto] [--k 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

DIM = 512


def clustered_vectors(n: int, dim: int = DIM, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """n unit vectors around n/50 random centres, generated in chunks to keep float64 temporaries small."""
    rng = np.random.default_rng(seed)
    n_clusters = max(1, n // 50)
    centers = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    spread = rng.uniform(0.2, 0.6, n_clusters).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        label = rng.integers(0, n_clusters, m)
        x = centers[label] + spread[label, None] * rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def exact_knn_seconds(x: np.ndarray, k: int, sample: int = 10_000) -> tuple[float, bool]:
    """Seconds for exact IndexFlatIP kNN of all rows; extrapolated from `sample` queries when n > sample."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    nq = min(sample, len(x))
    queries = x[np.random.default_rng(1).choice(len(x), nq, replace=False)] if nq < len(x) else x
    t0 = time.perf_counter()
    index.search(queries, k + 1)
    return (time.perf_counter() - t0) * len(x) / nq, nq < len(x)


def run_one(n: int, kind: str, k: int) -> dict:
    import faiss

    from ctxdata.vision.index import build_index, recall_at_k
    from ctxdata.vision.mine import mine_band_pairs

    x = clustered_vectors(n)
    rng = np.random.default_rng(2)
    questions = [f"Question {q}?" for q in rng.integers(0, 5, n)]
    answers = [f"answer {a}" for a in rng.integers(0, 4, n)]

    t0 = time.perf_counter()
    index = build_index(x, kind)
    t_build = time.perf_counter() - t0
    pairs = mine_band_pairs(x, questions, answers, band=(0.8, 0.95), k=k, index=index)
    t_mine = time.perf_counter() - t0

    probe = x[rng.choice(n, min(1000, n), replace=False)]
    exact = faiss.IndexFlatIP(DIM)
    exact.add(x)
    _, truth = exact.search(probe, k)
    _, found = index.search(probe, k)
    del exact
    recall = recall_at_k(found, truth)
    rss_mine = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    t_exact, extrapolated = exact_knn_seconds(x, k)
    return {
        "n": n, "kind": index.kind, "params": index.params, "build_s": t_build, "mine_s": t_mine,
        "pairs": len(pairs), "recall@10": recall, "peak_rss_mib": rss_mine,
        "exact_s": t_exact, "exact_extrapolated": extrapolated, "threads": faiss.omp_get_max_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated pool sizes")
    ap.add_argument("--kind", default="auto", help="index kind (see ctxdata.vision.index.INDEXES)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.kind, args.k)))
        return

    print(f"mine_band_pairs on clustered {DIM}-d vectors, kind={args.kind}, k={args.k}, band=(0.8, 0.95); "
          f"{os.cpu_count()} cores shared with other jobs (load average {os.getloadavg()[0]:.2f} at start)")
    header = f"{'n':>9} {'index':>6} {'params':>24} {'build s':>8} {'mine s':>8} {'pairs':>9} {'recall@10':>9} {'peak RSS':>9} {'exact flat s':>14} {'speed-up':>8}"
    print(header)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--one", str(n), "--kind", args.kind, "--k", str(args.k)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        rows.append(r)
        params = ",".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["params"].items())
        exact = f"{r['exact_s']:.1f}{'*' if r['exact_extrapolated'] else ''}"
        print(f"{r['n']:>9} {r['kind']:>6} {params:>24} {r['build_s']:>8.1f} {r['mine_s']:>8.1f} {r['pairs']:>9} "
              f"{r['recall@10']:>9.3f} {r['peak_rss_mib']:>7.0f}Mi {exact:>14} {r['exact_s'] / r['mine_s']:>7.1f}x", flush=True)
    print("mine s includes build s. exact flat s: faiss IndexFlatIP kNN of every vector (the peer); "
          "* = timed on 10,000 sampled queries and extrapolated linearly to n queries.")
    big = [r for r in rows if r["n"] >= 1_000_000]
    for r in big:
        ok = r["mine_s"] <= 600 and r["recall@10"] >= 0.95 and r["exact_s"] / r["mine_s"] >= 5
        print(f"1M target (<= 600 s, recall >= 0.95, >= 5x exact): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
