"""Synthetic short-trace pairs and task QA: one decisive line, determinism, splits, CLI."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from ctxdata.errors import ConfigError
from ctxdata.io import iter_rows, read_report
from ctxdata.schema import validate_row
from ctxdata.train.synth_task import (
    KINDS,
    SynthTaskConfig,
    differing_lines,
    make_trace_pair,
    read_task,
    score_answer,
    to_pair,
    write_synth_task,
)


def folder_digest(path):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and "_work" not in p.parts and p.name != "config.json")).hexdigest()


def test_traces_differ_in_exactly_the_decisive_line():
    config = SynthTaskConfig(n=40)
    seen = set()
    for i in range(40):
        tp = make_trace_pair(i, config)
        seen.add(tp.kind)
        diff = differing_lines(tp.anchor_trace, tp.confounder_trace)
        assert len(diff) == 1, (tp.kind, diff)
        assert tp.meta["decisive_anchor"] == diff[0][0] and tp.meta["decisive_confounder"] == diff[0][1]
        assert tp.anchor_answer != tp.confounder_answer
        assert tp.anchor_answer.lower() in diff[0][0].lower()  # the answer is readable off that line
        assert len(tp.anchor_trace) < 1200  # short: a few hundred tokens
    assert seen == set(KINDS)


def test_pair_slots_follow_the_label():
    config = SynthTaskConfig(n=20)
    for i in range(20):
        tp = make_trace_pair(i, config)
        pair = to_pair(tp, "train")
        anchor, confounder = pair.contexts()
        assert anchor == tp.anchor_trace and confounder == tp.confounder_trace
        assert pair.method == f"synth:{tp.kind}" and pair.domain == "coding" and 0.9 < pair.similarity < 1
        assert validate_row(pair.to_row()) == []


def test_write_is_deterministic_split_and_loadable(tmp_path):
    config = SynthTaskConfig(n=30, heldout=0.2, seed=4)
    stats = write_synth_task(config, tmp_path / "a")
    write_synth_task(config, tmp_path / "b")
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert stats["train"]["pairs"] == 24 and stats["heldout"]["pairs"] == 6
    train, held = read_task(tmp_path / "a" / "task.jsonl"), read_task(tmp_path / "a" / "task-heldout.jsonl")
    assert len(train) == 48 and len(held) == 12
    assert {it["pair_id"] for it in train}.isdisjoint({it["pair_id"] for it in held})
    assert all(it["prompt"].endswith("Answer with the value only.") and it["answer"] for it in train)
    assert read_report(tmp_path / "a")["pairs"] == 24
    rows = list(iter_rows(tmp_path / "a" / "heldout"))
    assert all(json.loads(r["meta"])["split"] == "heldout" for r in rows)
    datasets = pytest.importorskip("datasets")
    assert len(datasets.load_from_disk(str(tmp_path / "a"))) == 24


def test_score_answer_is_exact_after_normalisation():
    assert score_answer(" 2.31.0.\nbecause...", "2.31.0") == 1.0
    assert score_answer("`./config/app.yaml`", "./config/app.yaml") == 1.0
    assert score_answer("Passed", "passed") == 1.0
    assert score_answer("2.31.1", "2.31.0") == 0.0
    assert score_answer("", "0") == 0.0


def test_config_validation():
    with pytest.raises(ConfigError, match="subset"):
        SynthTaskConfig(kinds=("test", "weather"))
    with pytest.raises(ConfigError):
        SynthTaskConfig(heldout=1.0)


def test_cli_synth_task(tmp_path):
    import typer

    from ctxdata.cli.synth import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["synth", "task", "--n", "12", "--kinds", "test,path", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    methods = {r["method"] for r in iter_rows(tmp_path / "t")}
    assert methods <= {"synth:test", "synth:path"} and methods
    bad = CliRunner().invoke(app, ["synth", "task", "--n", "12", "--kinds", "bogus", "--out", str(tmp_path / "u")])
    assert bad.exit_code != 0


def test_easy_variant_states_the_answer_verbatim_in_the_only_differing_line():
    for index in range(12):
        tp = make_trace_pair(index, SynthTaskConfig(n=12, easy=True))
        diff = differing_lines(tp.anchor_trace, tp.confounder_trace)
        assert diff == [(f"answer: {tp.anchor_answer}", f"answer: {tp.confounder_answer}")]
        assert tp.anchor_answer != tp.confounder_answer
