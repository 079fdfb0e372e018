import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxdata.cli.main import app
from ctxdata.coding.build import CodingBuildConfig, build_coding
from ctxdata.coding.mask import leaked_lines
from ctxdata.coding.readers import discover_trace_files
from ctxdata.coding.synth import SynthConfig, write_traces
from ctxdata.errors import CtxdataError
from ctxdata.io import iter_rows


@pytest.fixture(scope="module")
def synth_traces(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_traces(SynthConfig(n=60, seed=3, kb=6), out, workers=1)
    return out


def _rows(out):
    return list(iter_rows(out))


def _assert_invariants(report, rows):
    assert report["inputs"] == report["trajectories_read"] + report["inputs_rejected"]
    assert report["trajectories_read"] == report["trajectories_signed"] + report["records_rejected"]
    assert report["candidates"] == report["pairs"] + report["candidates_rejected"]
    assert len(rows) == report["pairs"]
    for row in rows:
        checks = json.loads(row["checks"])
        assert {c["name"] for c in checks} >= {"contexts_differ", "no_patch_leak", "length_ratio", "no_id_shortcut", "answers_differ"}
        assert all(c["passed"] for c in checks)
        for ctx in (row["context_a_text"], row["context_b_text"]):
            assert leaked_lines(ctx, [row["answer"], row["answer_confounder"]]) == []
            assert row["anchor_id"] not in ctx and row["confounder_id"] not in ctx


def test_real_trajectories_give_file_and_function_pairs(shared_traces, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "real"
    # one pair per run, so the greedy matching leaves runs for the file level too (at 2 the function level takes them all)
    report = build_coding(CodingBuildConfig(traces=[str(shared_traces / "mini-swe-agent-swebench")], out=str(out),
                                            max_pairs_per_trajectory=1))
    assert report["inputs"] == 20  # the 20 trajectories; report.json sidecars are not inputs
    assert report["methods"].get("condition:file", 0) >= 1 and report["methods"].get("condition:function", 0) >= 1
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == report["pairs"] and set(ds["domain"]) == {"coding"}
    _assert_invariants(report, _rows(out))
    meta = json.loads(ds[0]["meta"])
    assert meta["level"] == ds[0]["method"].split(":")[1]


def test_a_folder_mixing_every_shared_format(shared_traces, tmp_path):
    report = build_coding(CodingBuildConfig(traces=[str(shared_traces)], out=str(tmp_path / "mixed")))
    formats = {json.loads(r["meta"])["anchor_format"] for r in _rows(tmp_path / "mixed")}
    # 20 + 5 + 5 + 1 + 3 records, all parse; SOURCES.md is found, not read, and counted
    assert report["inputs"] == 35 and report["inputs_rejected"] == 1 and report["rejected"]["unsupported_file"] == 1
    assert "mini-swe-agent" in formats
    _assert_invariants(report, _rows(tmp_path / "mixed"))
    # The reader counts files in and records out (26 files hold the 34 records, plus SOURCES.md); the report says so.
    read = next(s for s in report["stages"] if s["name"] == "read")
    assert read["in_unit"] == "files" and read["in"] == len(discover_trace_files(shared_traces)) < read["out"] == 34


def _write_bad_inputs(folder: Path) -> dict[str, str]:
    """One file per kind of bad input, mapped to the reject reason expected for it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "truncated.traj.json").write_text('{"instance_id": "a__b-1", "messages": [{"role": "user", "con')
    (folder / "empty.jsonl").write_bytes(b"")
    (folder / "latin1.jsonl").write_bytes('{"instance_id": "x", "messages": []}'.encode() + b"\xff\xfe caf\xe9\n")
    (folder / "nomessages.jsonl").write_text(json.dumps({"instance_id": "o__r.abc12345.func_pm__x", "text": "hi"}) + "\n")
    (folder / "binary.json").write_bytes(bytes(range(256)) * 8)
    (folder / "huge.jsonl").write_text('{"instance_id": "o__r.abc12345.x", "messages": "' + "x" * 3_000_000 + '"}\n')
    (folder / "deep.traj.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than any JSON parser recurses
    return {"truncated.traj.json": "invalid_json", "empty.jsonl": "empty_file", "latin1.jsonl": "not_utf8",
            "nomessages.jsonl": "missing_messages", "binary.json": "binary_file", "huge.jsonl": "record_too_large",
            "deep.traj.json": "invalid_json"}


def test_bad_inputs_are_rejected_with_reasons_and_the_run_finishes(synth_traces, tmp_path):
    traces = tmp_path / "traces"
    shutil.copytree(synth_traces, traces)
    expected = _write_bad_inputs(traces / "bad")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build-coding", "--traces", str(traces), "--max-shortcut", "off", "--out", str(out), "--max-record-bytes", str(1 << 20)])
    assert result.exit_code == 0, result.output
    rejects = [json.loads(l) for l in (out / "rejects.jsonl").read_text().splitlines()]
    by_file = {Path(r["source"].split(":")[0].split("#")[0]).name: r["reason"] for r in rejects if r["kind"] == "input"}
    for name, reason in expected.items():
        assert by_file.get(name) == reason, (name, by_file)
    report = json.loads((out / "report.json").read_text())
    assert report["inputs_rejected"] == len(expected)
    assert report["inputs"] == 60 + len(expected)
    _assert_invariants(report, _rows(out))


def test_exit_code_1_only_when_nothing_could_be_read(tmp_path):
    bad = tmp_path / "bad"
    _write_bad_inputs(bad)
    result = CliRunner().invoke(app, ["build-coding", "--traces", str(bad), "--out", str(tmp_path / "out"), "--max-record-bytes", str(1 << 20)])
    assert result.exit_code == 1
    assert "no trajectory could be read" in result.output and "Traceback" not in result.output
    assert len((tmp_path / "out" / "rejects.jsonl").read_text().splitlines()) == 7
    missing = CliRunner().invoke(app, ["build-coding", "--traces", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_kill_then_rerun_gives_the_same_shards(synth_traces, tmp_path, monkeypatch):
    import ctxdata.io

    clean = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "clean"), shard_size=5))
    assert len(clean["shards"]) >= 3
    real_write = ctxdata.io.PairOutput.write_task
    calls = {"n": 0}

    def dying_write(self, task, rows, ctx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed while building the third shard
        return real_write(self, task, rows, ctx)

    monkeypatch.setattr(ctxdata.io.PairOutput, "write_task", dying_write)
    with pytest.raises(KeyboardInterrupt):
        build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "killed"), shard_size=5))
    monkeypatch.setattr(ctxdata.io.PairOutput, "write_task", real_write)
    resumed = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "killed"), shard_size=5))
    assert resumed["resumed_tasks"] == 2
    assert resumed["shards"] == clean["shards"]
    for shard in clean["shards"]:
        assert (tmp_path / "clean" / shard).read_bytes() == (tmp_path / "killed" / shard).read_bytes()
    assert (tmp_path / "clean" / "rejects.jsonl").read_text() == (tmp_path / "killed" / "rejects.jsonl").read_text()


def test_same_seed_same_bytes_other_seed_other_labels(synth_traces, tmp_path):
    reports = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        reports[name] = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / name), seed=seed))
    for shard in reports["a"]["shards"]:
        assert (tmp_path / "a" / shard).read_bytes() == (tmp_path / "b" / shard).read_bytes()
    labels = lambda n: [r["label"] for r in iter_rows(tmp_path / n, ["label"])]
    assert labels("a") != labels("c")
    assert abs(labels("a").count("A") - labels("a").count("B")) <= 2


def test_cli_build_and_inspect(synth_traces, tmp_path):
    out = tmp_path / "cli"
    runner = CliRunner()
    result = runner.invoke(app, ["build-coding", "--traces", str(synth_traces), "--max-shortcut", "off", "--out", str(out), "--levels", "repo,file,function", "--max-context-tokens", "512"])
    assert result.exit_code == 0, result.output
    assert "cascade levels" in result.output and "pairs written" in result.output
    report = json.loads((out / "report.json").read_text())
    assert "issue" not in report["levels"] and report["pairs"] > 0
    assert all(len(r["context_a_text"]) <= 512 * 4 + 200 for r in iter_rows(out, ["context_a_text"]))
    shown = runner.invoke(app, ["inspect", str(out), "--samples", "1"])
    assert shown.exit_code == 0 and "context A" in shown.output
    bad = runner.invoke(app, ["build-coding", "--traces", str(synth_traces), "--max-shortcut", "off", "--out", str(out), "--levels", "repo,module"])
    assert bad.exit_code == 1 and "valid levels" in bad.output
    changed = runner.invoke(app, ["build-coding", "--traces", str(synth_traces), "--max-shortcut", "off", "--out", str(out), "--seed", "9"])
    assert changed.exit_code == 1 and "--overwrite" in changed.output


def test_config_rejects_bad_values():
    with pytest.raises(CtxdataError):
        CodingBuildConfig(traces=[], out="x")
    with pytest.raises(CtxdataError, match="max-context-tokens"):
        CodingBuildConfig(traces=["x"], out="x", max_context_tokens=10)
    with pytest.raises(CtxdataError, match="--workers must be >= 0"):
        CodingBuildConfig(traces=["x"], out="x", workers=-2)


def test_parallel_workers_write_the_same_bytes(synth_traces, tmp_path, monkeypatch):
    import ctxdata.coding.build as build

    serial = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "serial"), shard_size=8, workers=1))
    monkeypatch.setattr(build, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(build, "PARALLEL_MIN_CANDIDATES", 1)
    parallel = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "parallel"), shard_size=8, workers=2))
    assert parallel["shards"] == serial["shards"] and parallel["stages"] == serial["stages"]
    for shard in serial["shards"]:
        assert (tmp_path / "serial" / shard).read_bytes() == (tmp_path / "parallel" / shard).read_bytes()


def test_judge_is_wired_into_the_build(synth_traces, tmp_path):
    """An OpenAI-compatible judge that always answers "A" cannot tell contexts apart in both
    orders, so every pair is dropped as ambiguous, with a `judge` check recorded."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": "A"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # a wide length band: short synthetic runs (their step counts vary) must all reach the judge
        report = build_coding(CodingBuildConfig(traces=[str(synth_traces)], max_shortcut=None, out=str(tmp_path / "judged"), max_length_ratio=10.0,
                                                judge=f"openai:http://127.0.0.1:{server.server_address[1]}/v1"))
    finally:
        server.shutdown()
    assert report["pairs"] == 0 and report["rejected"] == {"judge_ambiguous": report["candidates"]}
    assert len(seen) == 2 * report["candidates"]  # both A/B orders per pair
    prompt = seen[0]["messages"][-1]["content"]
    assert "Context A:\n## Step 1" in prompt and "Output A or B directly." in prompt
    rejects = [json.loads(l) for l in (tmp_path / "judged" / "rejects.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rejects} == {"judge"}


def test_sigkill_mid_run_then_rerun_gives_the_same_shards(tmp_path):
    """A real kill (SIGKILL of the CLI process while it writes shards), not a simulated exception."""
    import os
    import signal
    import subprocess
    import sys
    import time

    traces = tmp_path / "traces"
    write_traces(SynthConfig(n=300, seed=11, kb=4), traces, workers=1)
    args = ["--traces", str(traces), "--shard-size", "1", "--workers", "1", "--max-shortcut", "off"]  # the kill, not MiniLM
    clean = build_coding(CodingBuildConfig(traces=[str(traces)], out=str(tmp_path / "clean"), shard_size=1, max_shortcut=None))
    cmd = [sys.executable, "-m", "ctxdata", "build-coding", *args, "--out", str(tmp_path / "killed")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "CTXDATA_PROGRESS": "0"})
    work = tmp_path / "killed" / "_work"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and len(list(work.glob("task-*.done"))) < 5:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(work.glob("task-*.done")))
    if proc.returncode != -signal.SIGKILL or done >= len(clean["shards"]):
        pytest.skip("the build finished before it could be killed")
    assert not (tmp_path / "killed" / "report.json").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CTXDATA_PROGRESS": "0"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    resumed = json.loads((tmp_path / "killed" / "report.json").read_text())
    assert resumed["resumed_tasks"] >= 5 and resumed["shards"] == clean["shards"]
    for shard in clean["shards"]:
        assert (tmp_path / "clean" / shard).read_bytes() == (tmp_path / "killed" / shard).read_bytes()
    assert (tmp_path / "clean" / "rejects.jsonl").read_text() == (tmp_path / "killed" / "rejects.jsonl").read_text()
    assert not list((tmp_path / "killed").glob(".*.tmp-*")) and not (work / "contexts").exists()


def test_ctrl_c_is_one_clean_line_and_exit_130(synth_traces, tmp_path, monkeypatch):
    import ctxdata.coding.build

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ctxdata.coding.build, "build_coding", interrupted)
    result = CliRunner().invoke(app, ["build-coding", "--traces", str(synth_traces), "--max-shortcut", "off", "--out", str(tmp_path / "out")])
    assert result.exit_code == 130
    assert "interrupted" in result.output and "resume" in result.output and "Traceback" not in result.output


def test_an_output_path_that_cannot_be_made_is_one_clean_line(synth_traces, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    result = CliRunner().invoke(app, ["build-coding", "--traces", str(synth_traces), "--max-shortcut", "off", "--out", str(tmp_path / "a-file" / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot access" in result.output and "a-file" in result.output


def test_lone_surrogate_escapes_become_replacement_characters_not_a_crash(tmp_path):
    write_traces(SynthConfig(n=12, seed=2, kb=4), tmp_path / "traces", workers=1)
    files = sorted((tmp_path / "traces" / "trajs").rglob("*.json"))
    for path in files:  # a lone \ud800 (and \udfff) escape in every issue text, as a cut tool output can leave
        doc = json.loads(path.read_text())
        doc["messages"][1]["content"] = doc["messages"][1]["content"].replace("PR description:\n", "PR description:\ncut here \ud800 and \udfff\n", 1)
        path.write_text(json.dumps(doc))  # ensure_ascii: written as \\ud800 escapes
    assert "\\ud800" in files[0].read_text()
    report = build_coding(CodingBuildConfig(traces=[str(tmp_path / "traces")], out=str(tmp_path / "out")))
    rows = _rows(tmp_path / "out")
    assert report["trajectories_read"] == 12 and report["inputs_rejected"] == 0 and rows
    assert all("cut here \ufffd and \ufffd" in row["query"] for row in rows)


def test_randomly_mutated_trajectories_never_crash_the_build(tmp_path):
    """Seeded fuzzing: values of the wrong JSON type anywhere in a record end as rejects with reasons."""
    import copy
    import random

    write_traces(SynthConfig(n=8, seed=4, kb=3), tmp_path / "base", workers=1)
    base = [json.loads(p.read_text()) for p in sorted((tmp_path / "base" / "trajs").rglob("*.json"))]
    weird = [None, 0, -1, 1.5e308, True, "", [], {}, [None], {"a": None}, "\x00", "\ud800", 2**70, [[[]]], {"role": None}, {"content": 3}]

    def paths(obj, at=()):
        yield at
        items = obj.items() if isinstance(obj, dict) else enumerate(obj[:6]) if isinstance(obj, list) else ()
        for key, value in items:
            yield from paths(value, at + (key,))

    rng = random.Random(0)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(150):
        doc = copy.deepcopy(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(list(paths(doc))[1:])
            target = doc
            for key in parents:
                target = target[key]
            target[last] = copy.deepcopy(rng.choice(weird))
        suffix = ".traj.json" if i % 3 else ".jsonl"
        (inputs / f"m{i:03d}{suffix}").write_text(json.dumps(doc) + "\n")
    report = build_coding(CodingBuildConfig(traces=[str(inputs)], out=str(tmp_path / "out")))
    _assert_invariants(report, _rows(tmp_path / "out"))
    assert report["inputs"] == 150 and report["rejected"].get("parse_error", 0) <= 5  # the safety net is rarely needed
