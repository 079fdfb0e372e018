"""The executor seam without Ray: options, the local engine, and the per-repository cascade."""

from __future__ import annotations

import dataclasses

import pytest

from ctxdata.coding.cascade import CascadeConfig, SignTrajectories, mine_candidates
from ctxdata.coding.repo_groups import mine_by_repo
from ctxdata.coding.synth import SynthConfig, write_traces
from ctxdata.coding.readers import ReadTrajectories, discover_trace_files
from ctxdata.engine import ENGINES, EngineOptions, run_tasks
from ctxdata.engine.local import LocalEngine
from ctxdata.errors import ConfigError
from ctxdata.io import PairOutput
from ctxdata.pipeline import RunContext, run_stages


def test_an_unknown_engine_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid engines: local, ray"):
        EngineOptions(engine="spark")
    assert list(ENGINES) == ["local", "ray"]


def test_ray_options_need_the_ray_engine():
    with pytest.raises(ConfigError, match="--engine ray"):
        EngineOptions(ray_address="auto")
    EngineOptions(engine="ray", ray_address="auto", num_gpus=1, concurrency=4)  # fine


def test_the_local_pool_gives_the_bytes_of_one_process(tmp_path, pair_factory):
    tasks = [[pair_factory(query=f"q{t}-{i}") for i in range(3)] for t in range(5)]
    shards = {}
    for name, workers in (("one", 1), ("pool", 2)):
        output = PairOutput(tmp_path / name, {"seed": 0}, command="test")
        with LocalEngine(workers) as engine:
            seen = []
            run_tasks(output, tasks, [], engine=engine, on_task=lambda i, n: seen.append(i))
        assert sorted(seen) == list(range(5))
        shards[name] = [p.read_bytes() for p in sorted((tmp_path / name).glob("pairs-*.arrow"))]
    assert len(shards["one"]) == 5 and shards["pool"] == shards["one"]


@pytest.mark.parametrize(
    "levels, runs",
    [
        (("repo", "commit", "file", "function", "issue"), 1),
        (("repo", "file"), 1),
        (("repo", "commit", "file", "function", "issue", "instance"), 2),  # instance blocks are mined first
    ],
)
def test_mining_per_repository_equals_mining_everything(tmp_path, levels, runs):
    write_traces(SynthConfig(n=90, seed=4, kb=4, repos=5, runs_per_task=runs), tmp_path, workers=1)
    files = discover_trace_files(tmp_path)
    sigs = list(run_stages([ReadTrajectories(), SignTrajectories()], files, RunContext()))
    for config in (
        CascadeConfig(levels=levels, seed=3),
        CascadeConfig(levels=levels, seed=3, max_pairs_per_trajectory=2, window=3),
    ):
        whole, grouped = RunContext(), RunContext()
        expected = mine_candidates(sigs, config, whole)
        got = mine_by_repo(sigs, config, grouped, LocalEngine(1))
        assert len({c.meta["repo"] for c in expected}) > 1  # several repositories really were merged
        if "instance" in levels and config.max_pairs_per_trajectory > 1:  # instance pairs, then the others
            kinds = [c.level == "instance" for c in expected]
            assert kinds[0] and not kinds[-1] and kinds == sorted(kinds, reverse=True)
        assert [dataclasses.asdict(c) for c in got] == [dataclasses.asdict(c) for c in expected]
        assert grouped.counters == whole.counters
