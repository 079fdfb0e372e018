"""The README's guarantees, end to end through the CLI (issue #10): what --overwrite deletes, what a
resume checks, reads that never block, one clean line for every failure, workers that die with
their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctxdata.cli.main import app
from ctxdata.coding.synth import SynthConfig, write_traces
from ctxdata.io import iter_rows

import ctxdata

SRC = Path(ctxdata.__file__).resolve().parents[1]  # the ctxdata under test, for subprocesses


def _traces(folder: Path, n: int = 24, seed: int = 5) -> Path:
    write_traces(SynthConfig(n=n, seed=seed, kb=3), folder, workers=1)
    return folder


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _clean(result) -> None:
    assert "Traceback" not in result.output, result.output


def _shards(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("pairs-*.arrow"))}


def test_overwrite_leaves_a_foreign_folder_and_the_inputs_alone(tmp_path):
    traces = _traces(tmp_path / "traces")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "thesis.txt").write_text("four years")
    result = _run("build-coding", "--traces", traces, "--out", tmp_path / "p", "--overwrite")
    assert result.exit_code == 1 and "never deletes" in result.output and "pass --overwrite" not in result.output
    assert (tmp_path / "p" / "thesis.txt").read_text() == "four years"
    n_files = len(list(traces.rglob("*")))
    for out in (traces, traces / "pairs", tmp_path):
        result = _run("build-coding", "--traces", traces, "--out", out, "--overwrite")
        assert result.exit_code == 1 and "--out" in result.output, result.output
        _clean(result)
    assert len(list(traces.rglob("*"))) == n_files


def test_a_rerun_on_changed_inputs_refuses_and_overwrite_rebuilds_exactly(tmp_path):
    traces = _traces(tmp_path / "traces", n=30)
    assert _run("build-coding", "--traces", traces, "--out", tmp_path / "o", "--shard-size", "2").exit_code == 0
    removed = sorted((traces / "trajs").iterdir())[:6]
    for folder in removed:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    result = _run("build-coding", "--traces", traces, "--out", tmp_path / "o", "--shard-size", "2")
    assert result.exit_code == 1 and "6 removed" in " ".join(result.output.split()), result.output
    result = _run("build-coding", "--traces", traces, "--out", tmp_path / "o", "--shard-size", "2", "--overwrite")
    assert result.exit_code == 0, result.output
    assert _run("build-coding", "--traces", traces, "--out", tmp_path / "fresh", "--shard-size", "2").exit_code == 0
    assert _shards(tmp_path / "o") == _shards(tmp_path / "fresh")  # nothing stale, nothing mixed
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["inputs"] == json.loads((tmp_path / "fresh" / "report.json").read_text())["inputs"]
    used = {i for row in iter_rows(tmp_path / "o", ["anchor_id", "confounder_id"]) for i in row.values()}
    assert used and not used & {p.name for p in removed}


def test_a_fifo_and_a_non_utf8_file_name_do_not_stop_the_build(tmp_path):
    traces = _traces(tmp_path / "traces", n=12)
    os.mkfifo(traces / "trajs" / "pipe.json")
    first = next((traces / "trajs").iterdir())
    odd = first.with_name(os.fsdecode(b"odd-\xff"))
    first.rename(odd)
    proc = subprocess.run(
        [sys.executable, "-m", "ctxdata", "build-coding", "--traces", str(traces), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SRC,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["rejected"].get("not_regular_file") == 1 and report["pairs"] > 0
    assert report["inputs"] == report["stages"][0]["out"] + report["inputs_rejected"]


def test_a_bad_format_or_results_leaves_nothing_that_blocks_the_corrected_rerun(tmp_path):
    traces = _traces(tmp_path / "traces", n=12)
    out = tmp_path / "o"
    result = _run("build-coding", "--traces", traces, "--out", out, "--format", "nebius")
    assert result.exit_code == 1 and "swe-agent-nebius" in result.output
    result = _run("build-coding", "--traces", traces, "--out", out, "--results", tmp_path / "missing.json")
    assert result.exit_code == 1 and "missing.json" in result.output
    result = _run("build-coding", "--traces", traces, "--out", out, "--format", "mini-swe-agent")
    assert result.exit_code == 0, result.output


def test_format_help_lists_the_reader_registry():
    from ctxdata.coding.formats import READERS

    result = _run("build-coding", "--help")
    text = " ".join(result.output.replace("│", " ").split())
    for name in READERS:
        assert name in text, name


def test_the_changed_message_lists_only_what_changed(tmp_path):
    traces = _traces(tmp_path / "traces", n=12)
    assert _run("build-coding", "--traces", traces, "--out", tmp_path / "o").exit_code == 0
    result = _run("build-coding", "--traces", traces, "--out", tmp_path / "o", "--seed", "3")
    assert result.exit_code == 1 and "(changed: seed)" in " ".join(result.output.split()), result.output


def test_build_vision_exits_1_when_no_row_can_be_read(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "qa.jsonl").write_text(
        json.dumps({"image": "missing.png", "question": "q?", "answer": "a"}) + "\n{bad\n"
    )
    result = _run(
        "build-vision",
        "--pool",
        tmp_path / "pool",
        "--out",
        tmp_path / "o",
        "--strategy",
        "edit",
        "--edit-model",
        "procedural",
    )
    assert result.exit_code == 1 and "no usable row" in result.output and "image_missing" in result.output, (
        result.output
    )
    _clean(result)
    assert (tmp_path / "o" / "rejects.jsonl").read_text().count("\n") == 2


def test_a_full_disk_names_the_file_and_removes_the_context_store(tmp_path, monkeypatch):
    import errno

    from ctxdata.coding import store

    traces = _traces(tmp_path / "traces", n=12)
    real_add = store.ContextWriter.add

    def add(self, ctx):
        real_add(self, ctx)
        self._fh.flush()
        raise store.named_os_error(OSError(errno.ENOSPC, "No space left on device"), self._tmp)

    monkeypatch.setattr(store.ContextWriter, "add", add)
    result = _run("build-coding", "--traces", traces, "--out", tmp_path / "o")
    assert (
        result.exit_code == 1 and "No space left on device" in result.output and "slice-00000.bin" in result.output
    ), result.output
    assert not (tmp_path / "o" / "_work" / "contexts").exists()


def test_sigterm_is_one_clean_line(tmp_path):
    script = (
        "import sys, time\n"
        "from ctxdata.cli.main import app\n"
        "@app.command('nap')\n"
        "def nap():\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "sys.argv = ['ctxdata', 'nap']\n"
        "app()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=SRC,
        env={**os.environ, "PYTHONPATH": str(SRC), "CTXDATA_DEBUG": "0"},
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2  # one message (rich may wrap it)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_workers_die_with_their_parent():
    script = (
        "import os, time\n"
        "from ctxdata.parallel import worker_pool\n"
        "with worker_pool(2) as pool:\n"
        "    pids = set(pool.map(os.getpid, [None] * 0) or [])\n"
        "    futures = [pool.submit(time.sleep, 60) for _ in range(2)]\n"
        "    time.sleep(3)\n"
        "    print(' '.join(str(p.pid) for p in pool._processes.values()), flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=SRC,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "orphaned workers survived a SIGKILL of their parent"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:  # a zombie (reaped by init soon) counts as dead
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_synth_traces_with_a_worker_pool_ends_without_a_worker_traceback(tmp_path):
    # The fork pool's workers inherited the CLI's SIGTERM handler, so the pool's terminate() at the
    # end printed one `Terminated` traceback per worker on a successful run.
    proc = subprocess.run(
        [sys.executable, "-m", "ctxdata", "synth", "traces", "--n", "200", "--workers", "2", "--out", str(tmp_path / "t")],
        capture_output=True, text=True, timeout=120, cwd=SRC, env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and len(list((tmp_path / "t").rglob("*.traj.json"))) == 200
