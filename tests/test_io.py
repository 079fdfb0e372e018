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
    with pytest.raises(CtxdataError, match=rf"shard .*{shard.name} does not match its sha256"):
        list(iter_rows(tmp_path / "out"))


def _finished(out, config=None, n=3):
    output = PairOutput(out, config or {"x": 1}, command="t")
    run_tasks(output, [[make_pair(query=f"q{t}-{i}") for i in range(4)] for t in range(n)], [])
    return output.finalize(n, inputs=4 * n, global_ctx=RunContext())


def test_overwrite_never_deletes_a_folder_that_is_not_ours(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "thesis.txt").write_text("x")
    with pytest.raises(CtxdataError, match="not a ctxdata output folder.*never deletes"):
        PairOutput(tmp_path / "p", {"x": 1}, command="t", overwrite=True)
    assert (tmp_path / "p" / "thesis.txt").read_text() == "x"
    # a folder that looks like an output (config.json) but has no marker is not ours either
    (tmp_path / "p" / "config.json").write_text("{}")
    with pytest.raises(CtxdataError, match="no .ctxdata-output marker"):
        PairOutput(tmp_path / "p", {"x": 1}, command="t", overwrite=True)
    assert (tmp_path / "p" / "thesis.txt").exists()


def test_overwrite_deletes_an_empty_folder_or_a_marked_one(tmp_path):
    (tmp_path / "empty").mkdir()
    PairOutput(tmp_path / "empty", {"x": 1}, command="t", overwrite=True)
    assert (tmp_path / "empty" / ".ctxdata-output").is_file()
    _finished(tmp_path / "o")
    PairOutput(tmp_path / "o", {"x": 2}, command="t", overwrite=True)
    assert not list((tmp_path / "o").glob("pairs-*.arrow")) and not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_out_may_not_be_contain_or_lie_inside_an_input(tmp_path, where):
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "run.json").write_text("{}")
    out = {"same": traces, "parent": tmp_path, "inside": traces / "pairs"}[where]
    with pytest.raises(CtxdataError, match="--out"):
        PairOutput(out, {"traces": [str(traces)]}, command="t", overwrite=True)
    assert (traces / "run.json").exists() and not (traces / "pairs").exists()


def test_changed_inputs_refuse_to_resume_and_name_what_changed(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    for i in range(5):
        (traces / f"r{i}.json").write_text("{}")
    config = {"traces": [str(traces)], "seed": 0}
    _finished(tmp_path / "o", config)
    PairOutput(tmp_path / "o", config, command="t")  # unchanged inputs: resumes
    (traces / "r1.json").unlink()
    (traces / "r2.json").write_text('{"changed": 1}')
    with pytest.raises(CtxdataError, match=r"other inputs.*1 removed \(.*r1.json\).*1 modified \(.*r2.json\)"):
        PairOutput(tmp_path / "o", config, command="t")
    PairOutput(tmp_path / "o", config, command="t", overwrite=True)  # rebuilds: no stale shard remains
    assert not list((tmp_path / "o").glob("pairs-*.arrow"))


def test_hash_inputs_sees_a_same_size_same_mtime_edit(tmp_path):
    import os

    traces = tmp_path / "traces"
    traces.mkdir()
    f = traces / "r.json"
    f.write_text('{"a": 1}')
    st = f.stat()
    config = {"traces": [str(traces)], "hash_inputs": True}
    _finished(tmp_path / "o", config)
    f.write_text('{"a": 2}')
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(CtxdataError, match="1 modified"):
        PairOutput(tmp_path / "o", config, command="t")


def test_a_config_change_before_any_finished_work_does_not_block_the_rerun(tmp_path):
    PairOutput(tmp_path / "o", {"format": "nebius"}, command="t")  # e.g. the run then stopped on a bad --format
    PairOutput(tmp_path / "o", {"format": "swe-agent-nebius"}, command="t")  # corrected: no --overwrite needed
    assert json.loads((tmp_path / "o" / "config.json").read_text())["format"] == "swe-agent-nebius"


def test_changed_message_lists_only_what_changed(tmp_path):
    _finished(tmp_path / "o", {"levels": ("repo", "file"), "seed": 1})
    with pytest.raises(CtxdataError, match=r"\(changed: seed\)"):
        PairOutput(tmp_path / "o", {"levels": ("repo", "file"), "seed": 2}, command="t")


def test_a_shard_damaged_between_runs_is_rebuilt_on_resume(tmp_path):
    clean = _finished(tmp_path / "o")
    shard = tmp_path / "o" / clean["shards"][1]
    good = shard.read_bytes()
    shard.write_bytes(good[:-10] + b"0" * 10)
    output = PairOutput(tmp_path / "o", {"x": 1}, command="t")
    tasks = [[make_pair(query=f"q{t}-{i}") for i in range(4)] for t in range(3)]
    assert run_tasks(output, tasks, []) == 2
    assert shard.read_bytes() == good


@pytest.mark.parametrize("damage", ["text", "flip", "state", "state_shape", "report", "report_fields"])
def test_a_damaged_folder_is_one_error_naming_the_file(tmp_path, damage):
    from ctxdata.io import read_report

    report = _finished(tmp_path / "o")
    shard = tmp_path / "o" / report["shards"][0]
    if damage == "text":
        shard.write_text("just some text\n")
    elif damage == "flip":
        data = bytearray(shard.read_bytes())
        data[len(data) // 2] ^= 0xFF
        shard.write_bytes(bytes(data))
    elif damage == "state":
        (tmp_path / "o" / "state.json").write_text("{not json")
    elif damage == "state_shape":
        (tmp_path / "o" / "state.json").write_text('{"_data_files": "x"}')
    elif damage == "report":
        (tmp_path / "o" / "report.json").write_text("[1, 2")
    else:
        (tmp_path / "o" / "report.json").write_text('{"pairs": "many"}')
    name = {"text": shard.name, "flip": shard.name, "state": "state.json", "state_shape": "state.json"}.get(damage, "report.json")
    with pytest.raises(CtxdataError, match=name):
        read_report(tmp_path / "o")
        list(iter_rows(tmp_path / "o"))


def test_a_foreign_datasets_folder_is_one_error(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(CtxdataError, match="not a ctxdata pair shard"):
        list(iter_rows(tmp_path / "ds"))


def test_a_write_error_names_the_file(tmp_path, monkeypatch):
    import errno

    from ctxdata.io import atomic_write_bytes

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(tmp_path / "pairs-00001.arrow", b"x")
    assert info.value.filename == str(tmp_path / "pairs-00001.arrow")
    assert not list(tmp_path.iterdir())


def test_switching_hash_inputs_is_named_not_reported_as_every_file_modified(tmp_path):
    traces = tmp_path / "traces"
    traces.mkdir()
    (traces / "r.json").write_text("{}")
    _finished(tmp_path / "o", {"traces": [str(traces)]})
    with pytest.raises(CtxdataError, match="another --hash-inputs setting"):
        PairOutput(tmp_path / "o", {"traces": [str(traces)], "hash_inputs": True}, command="t")
