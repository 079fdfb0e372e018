import json

import pytest

from conftest import make_pair
from ctxdata.errors import CtxdataError
from ctxdata.io import PairOutput, iter_rows, run_tasks
from ctxdata.pipeline import Filter, RunContext, Stage


class KeepLabelA(Filter):
    name = "keep_a"

    def keep(self, pair):
        return (pair.label == "A", "label_is_b")


class Boom(Stage):
    """Fails on the n-th task to simulate a kill mid-run."""

    name = "boom"

    def __init__(self, fail_on_query=None):
        self.fail_on_query = fail_on_query

    def run(self, records, ctx):
        for r in records:
            if r.query == self.fail_on_query:
                raise KeyboardInterrupt
            yield r


def _tasks():
    return [[make_pair(query=f"q{t}-{i}", label="AB"[(t + i) % 2]) for i in range(4)] for t in range(3)]


def _build(out, stages, overwrite=False):
    output = PairOutput(out, {"seed": 7, "out": str(out)}, command="test", overwrite=overwrite)
    tasks = _tasks()
    skipped = run_tasks(output, tasks, stages)
    report = output.finalize(len(tasks), inputs=12, global_ctx=RunContext())
    return report, skipped


def test_shards_load_with_datasets_and_counts_add_up(tmp_path):
    datasets = pytest.importorskip("datasets")
    report, _ = _build(tmp_path / "o", [KeepLabelA()])
    ds = datasets.load_from_disk(str(tmp_path / "o"))
    assert len(ds) == report["pairs"] == 6
    assert report["rejected"] == {"label_is_b": 6}
    assert report["stages"] == [{"name": "keep_a", "in": 12, "out": 6, "dropped": {"label_is_b": 6}}]
    rejects = [json.loads(l) for l in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 6 and {r["reason"] for r in rejects} == {"label_is_b"}
    assert report["pairs"] + report["candidates_rejected"] == 12
    assert [r["query"] for r in iter_rows(tmp_path / "o", ["query"])] == list(ds["query"])


def test_kill_and_resume_gives_identical_shards(tmp_path):
    clean, _ = _build(tmp_path / "clean", [KeepLabelA()])
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path / "killed", [KeepLabelA(), Boom(fail_on_query="q2-0")])
    done = sorted(p.name for p in (tmp_path / "killed" / "_work").glob("*.done"))
    assert done == ["task-00000.done", "task-00001.done"]
    resumed, skipped = _build(tmp_path / "killed", [KeepLabelA(), Boom()])
    assert skipped == 2
    for shard in clean["shards"]:
        assert (tmp_path / "clean" / shard).read_bytes() == (tmp_path / "killed" / shard).read_bytes()
    assert resumed["pairs"] == clean["pairs"] and resumed["rejected"] == clean["rejected"]


def test_same_seed_gives_byte_identical_shards_in_different_folders(tmp_path):
    a, _ = _build(tmp_path / "a", [KeepLabelA()])
    b, _ = _build(tmp_path / "b", [KeepLabelA()])
    assert a["shards"] == b["shards"]
    for shard in a["shards"]:
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()


def test_changed_config_refuses_to_resume_without_overwrite(tmp_path):
    PairOutput(tmp_path / "o", {"seed": 1}, command="test").write_input_rejects([])
    with pytest.raises(CtxdataError, match="changed: seed"):
        PairOutput(tmp_path / "o", {"seed": 2}, command="test")
    PairOutput(tmp_path / "o", {"seed": 2}, command="test", overwrite=True)
    assert json.loads((tmp_path / "o" / "config.json").read_text())["seed"] == 2


def test_zero_pairs_still_loads(tmp_path):
    datasets = pytest.importorskip("datasets")
    output = PairOutput(tmp_path / "o", {}, command="test")
    run_tasks(output, [[make_pair(label="B")]], [KeepLabelA()])
    output.finalize(1, inputs=1, global_ctx=RunContext())
    assert len(datasets.load_from_disk(str(tmp_path / "o"))) == 0


def test_no_temporary_files_are_left_behind(tmp_path):
    _build(tmp_path / "o", [KeepLabelA()])
    assert not [p for p in (tmp_path / "o").rglob("*") if ".tmp" in p.name]


def test_a_killed_writers_temporaries_are_removed_and_a_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys

    from ctxdata.io import remove_dead_temporaries

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / f".pairs-00003.arrow.tmp-{dead}").write_bytes(b"half")
    (tmp_path / f".pairs-00004.arrow.tmp-{os.getppid()}").write_bytes(b"being written")  # a live writer
    (tmp_path / "pairs-00001.arrow").write_bytes(b"done")
    assert remove_dead_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".pairs-00004.arrow.tmp-{os.getppid()}", "pairs-00001.arrow"]


def test_a_damaged_shard_is_an_error_naming_it(tmp_path):
    output = PairOutput(tmp_path / "out", {"x": 1}, command="t")
    run_tasks(output, [[make_pair(query=f"q{i}") for i in range(20)]], [])
    output.finalize(1, inputs=20, global_ctx=RunContext())
    shard = next((tmp_path / "out").glob("pairs-*.arrow"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(CtxdataError, match=rf"shard .*{shard.name} cannot be read"):
        list(iter_rows(tmp_path / "out"))
