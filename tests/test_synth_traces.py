"""Synthetic trajectories: layout, determinism, sibling structure, runs per task, readback, and no structural cue."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxdata.coding.patch import parse_patch
from ctxdata.coding.readers import discover_trace_files, iter_records
from ctxdata.coding.synth import SynthConfig, make_run, write_traces
from ctxdata.errors import ConfigError


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_summary(tmp_path):
    stats = write_traces(SynthConfig(n=7, siblings=3, repos=2), tmp_path, workers=1)
    assert (
        stats["trajectories"] == stats["tasks"] == 7
        and stats["sibling_groups"] == 3
        and stats["repos"] == 2
        and stats["files"] == 14
    )
    trajs = sorted((tmp_path / "trajs").glob("*/*.traj.json"))
    reports = sorted((tmp_path / "logs").glob("*/report.json"))
    assert len(trajs) == len(reports) == 7
    for t in trajs:
        assert t.parent.name + ".traj.json" == t.name and (tmp_path / "logs" / t.parent.name / "report.json").is_file()
        data = json.loads(t.read_text())
        assert data["trajectory_format"] == "mini-swe-agent-1" and data["info"]["submission"].startswith("diff --git")
        assert data["messages"][-1]["content"] == data["info"]["submission"]
    assert stats["traj_bytes"] == sum(p.stat().st_size for p in trajs)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    cfg = SynthConfig(n=240, seed=3, kb=4, steps=8)
    write_traces(cfg, tmp_path / "a", workers=1)
    write_traces(cfg, tmp_path / "b", workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_traces(SynthConfig(n=240, seed=4, kb=4, steps=8), tmp_path / "c", workers=1)
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_siblings_share_repo_commit_file_function_with_different_patches(tmp_path):
    cfg = SynthConfig(n=24, siblings=4, repos=3)
    write_traces(cfg, tmp_path, workers=1)
    trajs = [r.trajectory for f in discover_trace_files(tmp_path) for r in iter_records(f)]
    assert len(trajs) == 24 and all(trajs)
    groups = defaultdict(list)
    for t in trajs:
        groups[(int(t.id.rsplit("-", 1)[1]) - 1000) // cfg.siblings].append(t)
    assert len(groups) == 6
    for members in groups.values():
        assert len({t.repo for t in members}) == 1 and len({t.base_commit for t in members}) == 1
        functions = {tuple(parse_patch(t.patch).functions) for t in members}
        assert len(functions) == 1 and len(next(iter(functions))) == 1  # one (file, function) for the whole group
        changes = [t.patch.split("\n@@", 1)[1] for t in members]
        for x, tx in zip(changes, members):  # different changes; only two wrong runs may make the same wrong one
            assert all(
                x != y or not (tx.outcome.resolved or ty.outcome.resolved)
                for y, ty in zip(changes, members)
                if ty is not tx
            )
        assert {t.outcome.resolved for t in members} == {True, False}
        fn = next(iter(functions))[0][1]
        assert all(fn in t.issue for t in members)
    assert len({t.repo for t in trajs}) == 3


def test_readback_fields_and_sizes_vary_like_real_runs(tmp_path):
    write_traces(SynthConfig(n=40, kb=30, steps=24), tmp_path, workers=1)
    steps, sizes = [], []
    for path in discover_trace_files(tmp_path):
        [rec] = iter_records(path)
        t = rec.trajectory
        assert t.format == "mini-swe-agent" and t.model == "synth/scripted-agent" and len(t.base_commit) == 40
        assert t.steps[-1].observation == t.patch and t.steps[-1].returncode is None
        assert t.outcome.tests["FAIL_TO_PASS"] and t.outcome.resolved is not None
        steps.append(len(t.steps))
        sizes.append(path.stat().st_size)
    steps.sort()
    # each run draws its own step count around the median (real runs: q10/median ~0.64, q90/median ~1.8)
    assert 18 <= steps[20] <= 30 and steps[4] < steps[20] < steps[36]
    assert 0.75 * 30 * 1024 < sum(sizes) / len(sizes) < 1.3 * 30 * 1024  # the mean lands near --kb


def test_instances_are_independent_of_n():
    small, big = SynthConfig(n=10), SynthConfig(n=5000)
    assert make_run(small, 4) == make_run(big, 4)
    assert make_run(SynthConfig(n=10, runs_per_task=3), 4, 2) == make_run(SynthConfig(n=50, runs_per_task=5), 4, 2)


def test_runs_per_task_share_the_task_and_differ_in_the_run(tmp_path):
    cfg = SynthConfig(n=12, runs_per_task=4, siblings=3)
    stats = write_traces(cfg, tmp_path, workers=1)
    assert stats["trajectories"] == 48 and stats["tasks"] == 12 and stats["files"] == 96
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-1", "run-2", "run-3", "run-4"]
    runs = defaultdict(list)
    for folder in sorted(tmp_path.iterdir()):
        assert len(list((folder / "trajs").iterdir())) == len(list((folder / "logs").iterdir())) == 12
        for path in discover_trace_files(folder):
            [rec] = iter_records(path)  # the outcome comes from the run's own logs/<id>/report.json
            runs[rec.trajectory.id].append(rec.trajectory)
    assert len(runs) == 12
    identical_patches = 0
    for task_runs in runs.values():
        assert len(task_runs) == 4
        assert len({(t.issue, t.repo, t.base_commit) for t in task_runs}) == 1  # one task
        assert len({tuple((s.thought, s.action) for s in t.steps) for t in task_runs}) == 4  # four different runs
        assert {t.outcome.resolved for t in task_runs} == {True, False}  # runs 1 and 2 always disagree
        for t in task_runs:  # a run that fixed the issue's bug is resolved; a run that changed something else is not
            assert t.outcome.resolved == (t.outcome.tests["FAIL_TO_PASS"]["success"] != [])
        identical_patches += len(task_runs) - len({t.patch for t in task_runs})
    assert identical_patches > 0  # some runs submit the same patch (they must not pair)


def test_runs_per_task_build_instance_pairs_and_a_second_copy_is_all_duplicates(tmp_path):
    from ctxdata.coding.build import CodingBuildConfig, build_coding
    from ctxdata.io import iter_rows

    write_traces(SynthConfig(n=12, runs_per_task=2, siblings=3), tmp_path / "runs", workers=1)
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "runs")], out=str(tmp_path / "out"), workers=1))
    # runs 1 and 2 of a task always have different outcomes, so different patches: one instance candidate per task
    assert report["levels"]["instance"]["candidates"] == 12 and report["levels"]["instance"]["pairs"] >= 10
    rows = [r for r in iter_rows(tmp_path / "out") if r["method"] == "condition:instance"]
    assert len(rows) == report["levels"]["instance"]["pairs"]
    for row in rows:
        meta = json.loads(row["meta"]) if isinstance(row["meta"], str) else row["meta"]
        assert row["anchor_id"] == row["confounder_id"] and row["answer"] != row["answer_confounder"]
        assert meta["anchor_run"] != meta["confounder_run"] and meta["anchor_resolved"] is True
        assert (
            "[INSTANCE]" not in row["query"] and row["anchor_id"] not in row["context_a_text"] + row["context_b_text"]
        )
    # the same folder given twice: every run of the second copy is a byte-duplicate, the pairs do not change
    again = build_coding(
        CodingBuildConfig(
            traces=[str(tmp_path / "runs"), str(tmp_path / "runs")], out=str(tmp_path / "twice"), workers=1
        )
    )
    assert {s["name"]: s for s in again["stages"]}["dedupe"]["dropped"] == {"duplicate_run": 24}
    assert again["pairs"] == report["pairs"] and again["methods"] == report["methods"]


@pytest.mark.parametrize("bad", [dict(n=0), dict(siblings=0), dict(steps=3), dict(kb=0), dict(runs_per_task=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        SynthConfig(**bad)


def test_cli_writes_and_prints_summary(tmp_path):
    from ctxdata.cli.main import app

    result = CliRunner().invoke(
        app, ["synth", "traces", "--n", "5", "--siblings", "2", "--out", str(tmp_path / "s"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "sibling groups" in result.output and "trajectories" in result.output
    assert len(list((tmp_path / "s" / "trajs").iterdir())) == 5
    result = CliRunner().invoke(
        app, ["synth", "traces", "--n", "3", "--runs-per-task", "2", "--out", str(tmp_path / "k"), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    assert [len(list((tmp_path / "k" / f"run-{k}" / "trajs").iterdir())) for k in (1, 2)] == [3, 3]


@pytest.mark.slow
def test_structural_predictors_are_at_chance_on_a_synth_build(tmp_path):
    """Every structural predictor of the build's audit (length, steps, exit codes, mask counts and positions) names
    the anchor at chance. n ~ 290 pairs: under no cue a predictor's accuracy has sd ~ 0.5 / sqrt(n) ~ 0.03, so 0.60
    sits ~3.4 sd above chance (one-sided p ~ 3e-4 per predictor), while the generator this replaced gave 0.82 for
    fewer-failing-exits (~11 sd). Runs per task 3: about two thirds of the pairs are `instance` pairs."""
    from ctxdata.coding.build import CodingBuildConfig, build_coding

    write_traces(SynthConfig(n=200, runs_per_task=3, seed=5), tmp_path / "runs", workers=2)
    # the generator's own cues: unfiltered (the shortcut filter would hide them), each run in one pair
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "runs")], out=str(tmp_path / "out"), workers=1,
                                            max_shortcut=None, max_pairs_per_trajectory=1))
    assert report["pairs"] >= 250 and report["methods"]["condition:instance"] >= 150
    audit = report["audit"]["domains"]["coding"]
    structural = [p for p in audit["predictors"] if p["family"] == "structural"]
    assert len(structural) >= 6 and all(p["n"] == report["pairs"] for p in structural)
    for predictor in structural:
        assert 0.40 <= predictor["accuracy"] <= 0.60, (predictor["name"], predictor["accuracy"], predictor["ci"])
