"""Band-pair and blind-pair mining: the band, the same-question/different-answer rule, uniqueness, cost."""

from __future__ import annotations

import numpy as np
import pytest

from ctxdata.errors import ConfigError
from ctxdata.vision.index import build_index
from ctxdata.vision.mine import NeighborPair, SimilarityBand, blind_pairs, knn_pairs, mine_band_pairs, normalize_question


def at_cosines(cosines: list[float], dim: int = 8) -> np.ndarray:
    """Row 0 = e0; row r = cos*e0 + sin*e_r, so cos(row 0, row r) = cosines[r-1] exactly."""
    v = np.zeros((len(cosines) + 1, dim), np.float32)
    v[0, 0] = 1
    for r, c in enumerate(cosines, start=1):
        v[r, 0], v[r, r] = c, np.sqrt(1 - c * c)
    return v


def brute_force(vectors, questions, answers, lo, hi, image_index=None):
    image_index = np.arange(len(questions)) if image_index is None else np.asarray(image_index)
    sims = vectors @ vectors.T
    out = set()
    for i in range(len(questions)):
        for j in range(i + 1, len(questions)):
            a, b = image_index[i], image_index[j]
            same_q = normalize_question(questions[i]) == normalize_question(questions[j])
            diff_a = normalize_question(answers[i]) != normalize_question(answers[j])
            if a != b and lo <= sims[a, b] <= hi and same_q and diff_a:
                out.add((i, j))
    return out


def test_normalize_question():
    assert normalize_question("  What   COLOUR is the\tcar?? ") == "what colour is the car"
    assert normalize_question("¿Cuántos?") == "cuántos"
    assert normalize_question("3.5") == "3.5"  # inner punctuation stays
    assert normalize_question("...") == ""


def test_band_keeps_only_confusable_not_duplicate_pairs():
    # Neighbours of row 0 at cosines 0.999 (duplicate), 0.95, 0.85 (in band), 0.5 (too far).
    v = at_cosines([0.999, 0.95, 0.85, 0.5])
    q = ["How many dogs?"] * 5
    a = ["0", "1", "2", "3", "4"]
    pairs = mine_band_pairs(v, q, a, band=(0.8, 0.98), k=4, kind="numpy")
    assert all(isinstance(p, NeighborPair) for p in pairs)
    assert {(p.i, p.j) for p in pairs if p.i == 0} == {(0, 2), (0, 3)}
    assert {(p.i, p.j) for p in pairs} == brute_force(v, q, a, 0.8, 0.98)
    cos = {(p.i, p.j): p.cosine for p in pairs}
    assert cos[(0, 2)] == pytest.approx(0.95, abs=1e-5)


def test_same_question_different_answer_rule():
    v = at_cosines([0.9, 0.9, 0.9, 0.9])
    q = ["What colour is the car?", "what colour is the car", "What colour is the car?", "Is it raining?", "What colour is the car ?"]
    a = ["red", "Blue", "red ", "no", "RED"]
    pairs = {(p.i, p.j) for p in mine_band_pairs(v, q, a, band=(0.5, 0.99), k=4, kind="numpy")}
    # 0-1: same question (normalised), red vs blue -> kept. 0-2, 0-4: same answer -> dropped.
    # 0-3: another question -> dropped. 1-2 (cos 0.81) and 1-4: blue vs red -> kept.
    assert pairs == {(0, 1), (1, 2), (1, 4)} == brute_force(v, q, a, 0.5, 0.99)


def test_image_index_maps_records_to_images():
    v = at_cosines([0.9, 0.3])  # image 0 ~ image 1; image 2 is far from both
    records = [  # (image, question, answer)
        (0, "How many cups?", "2"),
        (0, "Is there milk?", "yes"),
        (1, "How many cups?", "3"),
        (1, "Is there milk?", "yes"),
        (1, "How many cups?", "2"),
        (2, "How many cups?", "5"),
        (0, "How many cups?", "4"),  # same image as record 0: never paired with it
    ]
    img, q, a = map(list, zip(*records))
    pairs = mine_band_pairs(v, q, a, image_index=img, band=(0.8, 0.95), k=2, kind="numpy")
    got = [(p.i, p.j) for p in pairs]
    assert got == sorted(brute_force(v, q, a, 0.8, 0.95, img)) == [(0, 2), (2, 6), (4, 6)]
    with pytest.raises(ConfigError, match="point into the 3 vector rows"):
        mine_band_pairs(v, q, a, image_index=[0, 0, 1, 1, 1, 3, 0])
    with pytest.raises(ConfigError, match="7 records"):
        mine_band_pairs(v, q, a, image_index=[0, 1])


def clustered(n, dim=32, clusters=None, spread=0.25, seed=0):
    rng = np.random.default_rng(seed)
    clusters = clusters or max(2, n // 20)
    centers = rng.normal(size=(clusters, dim))
    x = centers[rng.integers(0, clusters, n)] + spread * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["numpy", "flat", "ivf"])
def test_pairs_unique_sorted_and_match_brute_force(kind):
    if kind != "numpy":
        pytest.importorskip("faiss")
    x = clustered(600)
    rng = np.random.default_rng(1)
    q = [["How many?", "What colour?"][int(t)] for t in rng.integers(0, 2, 600)]
    a = [str(t) for t in rng.integers(0, 3, 600)]
    # k covers every cluster mate (~30 per cluster), so the kNN candidates equal all band pairs.
    pairs = mine_band_pairs(x, q, a, band=(0.85, 0.97), k=80, kind=kind)
    keys = [(p.i, p.j) for p in pairs]
    assert keys == sorted(set(keys)) and all(i < j for i, j in keys)
    truth = brute_force(x, q, a, 0.85, 0.97)
    found = set(keys)
    assert found <= truth and len(found) >= (1.0 if kind != "ivf" else 0.95) * len(truth) > 50
    assert mine_band_pairs(x, q, a, band=(0.85, 0.97), k=80, kind=kind) == pairs  # deterministic


def test_duplicates_do_not_hide_in_band_neighbours():
    # 12 copies of one image, then an in-band variant; with k=3 the first search sees only copies.
    v = np.vstack([np.repeat(at_cosines([0.9])[:1], 12, axis=0), at_cosines([0.9])[1:]])
    q, a = ["Which way?"] * 13, ["left"] * 12 + ["right"]
    pairs = mine_band_pairs(v, q, a, band=(0.8, 0.98), k=3, kind="numpy")
    assert len(pairs) == 12 and all(p.j == 12 for p in pairs)


def test_prebuilt_index_and_cost_is_knn_not_all_pairs():
    x = clustered(3000)
    index = build_index(x, "numpy")
    queried = []
    search = index.search
    index.search = lambda qs, k: queried.append((len(qs), k)) or search(qs, k)
    a, b, _ = knn_pairs(x, k=10, index=index, skip_above=0.999)
    # n queries for k+1 neighbours (+ at most a re-search of duplicate-saturated rows): O(n k) pairs.
    assert queried[0] == (3000, 11) and sum(n for n, _ in queried[1:]) < 300
    assert len(a) <= 3000 * 10 and (a < b).all()
    with pytest.raises(ConfigError, match="index holds 3000"):
        mine_band_pairs(x[:10], ["q"] * 10, ["a"] * 10, index=index)


def test_band_validation_and_empty_inputs():
    with pytest.raises(ConfigError, match="lo < hi"):
        SimilarityBand(0.9, 0.8)
    with pytest.raises(ConfigError, match="k must be"):
        mine_band_pairs(at_cosines([0.9]), ["q", "q"], ["a", "b"], k=0)
    with pytest.raises(ConfigError, match="one entry per record"):
        mine_band_pairs(at_cosines([0.9]), ["q", "q"], ["a"])
    assert mine_band_pairs(at_cosines([0.9])[:1], ["q"], ["a"]) == []


def test_blind_pairs_mmvp():
    v1 = at_cosines([0.99, 0.97, 0.5, 0.99])  # embedder 1: rows 1, 2, 4 look like row 0
    v2 = clustered(5, dim=16, clusters=5, spread=0.0, seed=3)  # embedder 2: 5 unrelated images
    v2[1] = v2[0]  # ... except row 1, which embedder 2 also finds identical to row 0
    sims2 = v2 @ v2.T
    pairs = blind_pairs(v1, v2, hi1=0.95, lo2=0.6, k=4, kind="numpy")
    expected = {(i, j) for i in range(5) for j in range(i + 1, 5) if (v1 @ v1.T)[i, j] > 0.95 and sims2[i, j] < 0.6}
    assert {(p.i, p.j) for p in pairs} == expected and (0, 1) not in expected and (0, 2) in expected
    for p in pairs:
        assert p.cosine > 0.95 and p.cosine_other == pytest.approx(sims2[p.i, p.j], abs=1e-5)
    with pytest.raises(ConfigError, match="row-aligned"):
        blind_pairs(v1, v2[:3])


def test_near_copy_keeps_chosen_pairs_below_the_band_and_hi_defaults_to_one():
    v = at_cosines([1.0, 0.95, 0.6, 0.5])  # row 1 is an exact copy of row 0 by cosine
    q, a = ["How many dogs?"] * 5, ["0", "1", "2", "3", "4"]
    asked = []

    def near_copy(x, y):
        asked.append(sorted(zip(x.tolist(), y.tolist())))
        return (x == 0) & (y == 3)  # only rows 0 and 3 are pixel near-copies

    mined = mine_band_pairs(v, q, a, band=SimilarityBand(lo=0.8), k=4, kind="numpy", near_copy=near_copy)
    pairs = {(p.i, p.j) for p in mined}
    assert {(0, 1), (0, 2), (0, 3)} <= pairs and (0, 4) not in pairs  # cosine 1.0 kept: pixels decide duplicates
    assert all(x < y for call in asked for x, y in call) and (0, 1) not in asked[0]  # only below-band pairs are asked
