"""Synthetic trajectories: layout, determinism, sibling structure, and readback through the readers."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxdata.coding.patch import parse_patch
from ctxdata.coding.readers import discover_trace_files, iter_records
from ctxdata.coding.synth import SynthConfig, make_instance, write_traces
from ctxdata.errors import ConfigError


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_summary(tmp_path):
    stats = write_traces(SynthConfig(n=7, siblings=3, repos=2), tmp_path, workers=1)
    assert stats["trajectories"] == 7 and stats["sibling_groups"] == 3 and stats["repos"] == 2 and stats["files"] == 14
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
    cfg = SynthConfig(n=240, seed=3, kb=4)
    write_traces(cfg, tmp_path / "a", workers=1)
    write_traces(cfg, tmp_path / "b", workers=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    write_traces(SynthConfig(n=240, seed=4, kb=4), tmp_path / "c", workers=1)
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
        assert len({t.patch.split("\n@@", 1)[1] for t in members}) == len(members)  # different changes
        assert {t.outcome.resolved for t in members} == {True, False}
        fn = next(iter(functions))[0][1]
        assert all(fn in t.issue for t in members)
    assert len({t.repo for t in trajs}) == 3


def test_readback_fields_and_sizes(tmp_path):
    write_traces(SynthConfig(n=3, kb=20, steps=14), tmp_path, workers=1)
    for path in discover_trace_files(tmp_path):
        [rec] = iter_records(path)
        t = rec.trajectory
        assert t.format == "mini-swe-agent" and len(t.steps) == 14 and t.model == "synth/scripted-agent"
        assert t.steps[-1].observation == t.patch and len(t.base_commit) == 40
        assert t.outcome.tests["FAIL_TO_PASS"] and t.outcome.resolved is not None
        assert 17_000 < path.stat().st_size < 24_000


def test_instances_are_independent_of_n():
    small, big = SynthConfig(n=10), SynthConfig(n=5000)
    assert make_instance(small, 4) == make_instance(big, 4)


@pytest.mark.parametrize("bad", [dict(n=0), dict(siblings=0), dict(steps=3), dict(kb=0)])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ConfigError):
        SynthConfig(**bad)


def test_cli_writes_and_prints_summary(tmp_path):
    from ctxdata.cli.main import app

    result = CliRunner().invoke(app, ["synth", "traces", "--n", "5", "--siblings", "2", "--out", str(tmp_path / "s"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "sibling groups" in result.output and "trajectories" in result.output
    assert len(list((tmp_path / "s" / "trajs").iterdir())) == 5
