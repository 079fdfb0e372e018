"""--max-shortcut: calibrated per-pair predictors, a drop that ignores whether the predictor is right, the build wiring."""

import json
import random

import numpy as np
import pytest

from ctxdata.coding.build import CodingBuildConfig, build_coding
from ctxdata.coding.checks import NoShortcut
from ctxdata.coding.shortcut import calibrate, calibration_sample, shortcut_predictor_names
from ctxdata.errors import CtxdataError
from ctxdata.io import iter_rows
from conftest import make_pair


def _planted(n: int, seed: int = 0, cue: float = 0.8, margin_cue: bool = False) -> list:
    """Pairs whose anchor context is the longer one `cue` of the time, by a margin that varies from pair to pair.

    With `margin_cue`, half the pairs are long-anchor pairs with a large margin, the other half a
    coin flip with a small one: the predictor is sure of the first half only.
    """
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        base, extra = rng.randint(200, 400), rng.randint(0, 400)
        anchor, confounder = "$ ls\nout\n" * base, "$ ls\nout\n" * base
        if margin_cue:
            cued = i % 4 < 2
            extra = rng.randint(200, 400) if cued else rng.randint(1, 60)
            anchor_longer = cued or rng.random() < 0.5
        else:
            anchor_longer = rng.random() < cue
        if anchor_longer:
            anchor += "$ cat\nx\n" * extra
        else:
            confounder += "$ cat\nx\n" * extra
        label = "A" if i % 2 else "B"
        a, b = (anchor, confounder) if label == "A" else (confounder, anchor)
        pairs.append(make_pair(label=label, context_a_text=a, context_b_text=b, anchor_id=f"r__x-{i}", confounder_id=f"r__y-{i}"))
    return pairs


def _mirror(pair):
    """The same pair with the contexts swapped: the label flips, nothing else changes."""
    return make_pair(label="B" if pair.label == "A" else "A", context_a_text=pair.context_b_text,
                     context_b_text=pair.context_a_text, anchor_id=pair.anchor_id, confounder_id=pair.confounder_id)


def test_calibration_turns_a_planted_cue_into_confident_probabilities():
    calibration = calibrate(_planted(400))
    longer = calibration.names.index("longer-context")
    assert calibration.weights[longer][0] > 1.0  # a strong cue gets a large weight
    assert calibration.confidences([]).shape == (0, len(calibration.names) + 1)
    # the calibrated probability is honest: among pairs where it says ~p, the longer context is the anchor ~p of the time
    fresh = _planted(600, seed=1)
    from ctxdata.coding.shortcut import pair_row

    conf = calibration.confidences([pair_row(p) for p in fresh])[:, longer]
    right = np.array([(len(p.context_a_text) > len(p.context_b_text)) == (p.label == "A") for p in fresh])
    for lo, hi in ((0.5, 0.7), (0.7, 0.9), (0.9, 1.0)):
        inside = (conf > lo) & (conf <= hi)
        if inside.sum() >= 40:
            assert abs(right[inside].mean() - conf[inside].mean()) < 0.12, (lo, hi)


def test_the_drop_ignores_whether_the_predictor_is_right_so_no_reverse_cue_is_left():
    pairs = _planted(400, margin_cue=True)
    check = NoShortcut(calibrate(pairs), 0.6)
    kept = [p for p in pairs if check(p).passed]
    assert 0 < len(kept) < len(pairs)
    # a pair and its mirror (contexts swapped, label flipped) are kept or dropped together
    assert all(check(p).passed == check(_mirror(p)).passed for p in pairs[:100])
    # confident wrong pairs go too: on the kept pairs the cue is near chance, not reversed
    right = [(len(p.context_a_text) > len(p.context_b_text)) == (p.label == "A") for p in kept]
    assert 0.4 <= sum(right) / len(right) <= 0.65
    failed = check(next(p for p in pairs if not check(p).passed))
    assert failed.name == "shortcut" and "puts" in failed.detail and failed.score > 0.6


def test_max_shortcut_must_be_a_probability_above_one_half():
    for bad in (0.5, 0.3, 1.5):
        with pytest.raises(CtxdataError, match="max-shortcut"):
            CodingBuildConfig(traces=["x"], out="x", max_shortcut=bad)
    assert CodingBuildConfig(traces=["x"], out="x", max_shortcut=0.6).max_shortcut == 0.6


def test_the_filter_uses_the_audits_per_pair_structural_and_topical_predictors():
    from ctxdata.audit.predictors import PREDICTORS

    names = shortcut_predictor_names()
    assert "query-tfidf-pair" in names and "longer-context" in names
    assert all(PREDICTORS[n].per_pair and PREDICTORS[n].family in ("structural", "topical") for n in names)
    assert "query-minilm-chunk" not in names and "answer-tfidf-pair" not in names  # no model; answer evidence is the task
    full = shortcut_predictor_names("full")
    assert set(full) - set(names) == {"query-minilm-chunk"} and "answer-tfidf-pair" not in full
    with pytest.raises(CtxdataError, match="shortcut-predictors must be one of fast, full"):
        CodingBuildConfig(traces=["x"], out="x", shortcut_predictors="minilm")
    default = CodingBuildConfig(traces=["x"], out="x")
    assert (default.max_shortcut, default.shortcut_predictors, default.max_pairs_per_trajectory) == (0.85, "full", 2)


def test_max_shortcut_off_and_bad_values_on_the_command_line():
    from ctxdata.coding.shortcut import parse_max_shortcut

    assert parse_max_shortcut("off") is None and parse_max_shortcut("OFF") is None and parse_max_shortcut("0.9") == 0.9
    for bad in ("0.4", "1.5", "high"):
        with pytest.raises(CtxdataError, match="max-shortcut"):
            parse_max_shortcut(bad)


def test_too_few_candidates_skip_the_filter_and_say_so_without_loading_minilm(tmp_path, monkeypatch):
    from ctxdata.audit import predictors
    from ctxdata.coding.synth import SynthConfig, write_traces

    def no_model():
        raise AssertionError("MiniLM was loaded for a filter that cannot calibrate")

    monkeypatch.setattr(predictors, "minilm", no_model)
    write_traces(SynthConfig(n=24, seed=7, kb=3), tmp_path / "t", workers=1)
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), audit="off"))
    assert report["candidates"] < 50 and "shortcut" not in report["rejected"] and "shortcut_calibration" not in report
    assert report["shortcut_filter_skipped"].startswith(f"--max-shortcut skipped: {report['candidates']} candidate pairs")
    from typer.testing import CliRunner

    from ctxdata.cli.main import app

    result = CliRunner().invoke(app, ["build-coding", "--traces", str(tmp_path / "t"), "--out", str(tmp_path / "cli"), "--audit", "off"])
    assert result.exit_code == 0 and "--max-shortcut skipped" in " ".join(result.output.split())


def test_the_default_filter_without_minilm_stops_early_naming_both_ways_out(tmp_path, monkeypatch):
    from ctxdata.audit import predictors
    from ctxdata.coding.synth import SynthConfig, write_traces
    from ctxdata.errors import MissingDependencyError

    def missing():
        raise MissingDependencyError("sentence_transformers is needed here but is not installed")

    monkeypatch.setattr(predictors, "minilm", missing)
    write_traces(SynthConfig(n=60, seed=3, kb=3), tmp_path / "t", workers=1)
    with pytest.raises(MissingDependencyError, match="ctxdata\\[train\\].*--shortcut-predictors fast.*--max-shortcut off"):
        build_coding(CodingBuildConfig(traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), audit="off"))
    assert not list((tmp_path / "o").glob("pairs-*.arrow"))  # before phase 2: nothing written


def test_the_default_build_filters_on_minilm_and_its_audit_shows_it(tmp_path):
    """The real default path: MiniLM calibrates, drops are counted, the end audit reads the remembered scores."""
    pytest.importorskip("sentence_transformers")
    from ctxdata.coding.synth import SynthConfig, write_traces

    write_traces(SynthConfig(n=60, seed=3, kb=1, steps=6), tmp_path / "t", workers=1)
    # short contexts (one 900-character chunk each), so MiniLM has little to embed; every other setting is the default
    class Bars:  # what rich's Progress is asked to show
        def __init__(self):
            self.tasks, self.done = [], {}

        def add_task(self, description, total=None):
            self.tasks.append((description, total))
            return len(self.tasks) - 1

        def update(self, task, total=None, advance=0):
            self.done[task] = self.done.get(task, 0) + advance

    bars = Bars()
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "t")], out=str(tmp_path / "o"), max_context_tokens=200),
                          progress=bars)
    minilm_bar = next(i for i, (d, _) in enumerate(bars.tasks) if "query-minilm-chunk" in d)  # minutes on real runs
    assert bars.tasks[minilm_bar][1] == bars.done[minilm_bar] == report["candidates"]
    assert report["candidates"] >= 50 and report["candidates"] == report["pairs"] + report["candidates_rejected"]
    assert "query-minilm-chunk" in report["shortcut_calibration"]["rounds"][0]["predictors"]
    assert report["audit"]["mode"] == "full"  # every kept pair was scored by the filter already
    minilm = next(p for p in report["audit"]["domains"]["coding"]["predictors"] if p["name"] == "query-minilm-chunk")
    assert minilm["n"] == report["pairs"] > 0
    for row in iter_rows(tmp_path / "o", ["checks"]):
        shortcut = next(c for c in json.loads(row["checks"]) if c["name"] == "shortcut")
        assert shortcut["passed"] and shortcut["score"] <= 0.85


def test_minilm_scores_are_remembered_so_calibration_and_filter_embed_a_context_once(monkeypatch):
    pytest.importorskip("sentence_transformers")
    import ctxdata.audit.predictors as P
    from ctxdata.coding.shortcut import pair_row

    on_topic = make_pair(label="A", query="the date parser drops the timezone offset",
                         context_a_text="$ cat dates.py\nparse the timezone offset of a date string\n" * 5,
                         context_b_text="$ cat plot.py\ndraw a red bar chart with matplotlib\n" * 5)
    first = P.PREDICTORS["query-minilm-chunk"].scores([pair_row(on_topic)])
    assert first[0] > 0.1  # the context about the query's topic wins, by a real margin
    monkeypatch.setattr(P, "minilm", lambda: pytest.fail("scored twice: the memo missed"))
    assert P.PREDICTORS["query-minilm-chunk"].scores([pair_row(on_topic)]).tolist() == first.tolist()
    swapped = make_pair(label="B", query=on_topic.query, context_a_text=on_topic.context_b_text,
                        context_b_text=on_topic.context_a_text)  # the same contexts swapped: no new embedding
    assert P.PREDICTORS["query-minilm-chunk"].scores([pair_row(swapped)]).tolist() == (-first).tolist()


def test_calibration_sample_is_seeded_and_bounded():
    class C:
        def __init__(self, i):
            self.source = f"a{i}|b{i}"

    cands = [C(i) for i in range(50)]
    assert calibration_sample(cands, 0) == cands
    sample = calibration_sample(cands, 0, limit=10)
    assert len(sample) == 10 and sample == calibration_sample(cands, 0, limit=10) != calibration_sample(cands, 1, limit=10)
    assert [cands.index(c) for c in sample] == sorted(cands.index(c) for c in sample)


def test_build_with_max_shortcut_counts_the_drops_and_is_byte_identical_twice(tmp_path):
    from ctxdata.coding.synth import SynthConfig, write_traces

    traces = tmp_path / "traces"
    write_traces(SynthConfig(n=60, seed=3, kb=6), traces, workers=1)
    reports = [build_coding(CodingBuildConfig(traces=[str(traces)], out=str(tmp_path / name), max_shortcut=0.55, shortcut_predictors="fast", audit="off"))
               for name in ("a", "b")]
    report = reports[0]
    assert report["rejected"].get("shortcut", 0) > 0
    assert report["candidates"] == report["pairs"] + report["candidates_rejected"]
    first = report["shortcut_calibration"]["rounds"][0]
    assert first["n"] > 0 and "query-tfidf-pair" in first["predictors"]
    for shard in report["shards"]:
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    for row in iter_rows(tmp_path / "a", ["checks"]):
        shortcut = next(c for c in json.loads(row["checks"]) if c["name"] == "shortcut")
        assert shortcut["passed"] and shortcut["score"] <= 0.55


def test_a_worker_filters_on_the_drivers_minilm_scores_without_embedding_again(monkeypatch):
    """A phase-2 worker is another process: the calibration's MiniLM scores travel with the filter (pickled)."""
    import pickle

    pytest.importorskip("sentence_transformers")
    import ctxdata.audit.predictors as P
    from ctxdata.coding.shortcut import pair_row

    pair = make_pair(label="A", query="the csv reader skips the header row twice",
                     context_a_text="$ cat io.py\nread the csv header row once\n" * 5,
                     context_b_text="$ cat ui.py\nrender the settings dialog\n" * 5)
    names = shortcut_predictor_names("full")
    calibration = calibrate(_planted(40) + [pair], names)  # on the driver: embeds, and remembers
    driver = calibration.confidences([pair_row(pair)])[0]
    check = pickle.loads(pickle.dumps(NoShortcut(calibration, 0.99, P.remembered_best_chunks())))
    monkeypatch.setattr(P, "_BEST_CHUNK", {})  # a fresh worker process: nothing remembered
    monkeypatch.setattr(P, "minilm", lambda: pytest.fail("the worker embedded a context the driver had scored"))
    assert check(pair).score == round(float(driver.max()), 4)


def test_rounds_refit_on_the_pairs_no_earlier_round_was_sure_of_and_the_filter_takes_the_surest_round():
    from ctxdata.coding.shortcut import calibrate_in_rounds, pair_row

    pairs, names, p = _planted(400, margin_cue=True), shortcut_predictor_names(), 0.6
    rounds = calibrate_in_rounds(pairs, names, p).rounds
    assert len(rounds) >= 2 and rounds[0] == calibrate(pairs, names)
    rows, left = [pair_row(x) for x in pairs], np.ones(len(pairs), bool)
    for k, calibration in enumerate(rounds):
        assert calibration.n == left.sum()  # fitted on exactly the pairs no earlier round was surer than p of
        sure = calibration.confidences(rows).max(axis=1)
        if k == len(rounds) - 1:
            assert (sure[left] <= p).all()  # the last round drops none of them: that is why it is the last
        left &= sure <= p
    check = NoShortcut(calibrate_in_rounds(pairs, names, p), p)
    assert [check(x).passed for x in pairs] == left.tolist()  # a pair stays only if no round is surer than p
