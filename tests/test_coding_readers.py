"""Trajectory readers: every real format parses, detection, forcing a format, the bad-input matrix,
inputs == read + rejected, and location round trips."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from ctxdata.coding.readers import READERS, ReadTrajectories, discover_trace_files, iter_records, load_results
from ctxdata.coding.trajectory import Outcome
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.pipeline import RunContext, run_stages

MINI = "mini-swe-agent-swebench"


def _read_all(path: Path, **kw):
    return [rec for f in discover_trace_files(path) for rec in iter_records(f, **kw)]


def _chat_row(instance_id="owner__repo.deadbeef.func_pm__abc", n_steps=2, **extra):
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "<pr_description>\nConsider the following PR description:\nFix the bug\n</pr_description>"}]
    for i in range(n_steps):
        messages.append({"role": "assistant", "content": f"THOUGHT: step {i}\n\n```bash\nls -{i}\n```"})
        messages.append({"role": "user", "content": f"<returncode>{i}</returncode>\n<output>\nout {i}\n</output>"})
    return {"instance_id": instance_id, "messages": messages, **extra}


# --- real shared data ----------------------------------------------------------------------------


def test_mini_swe_agent_real_runs_with_report_outcomes(shared_traces):
    recs = _read_all(shared_traces / MINI)
    assert len(recs) == 20 and all(r.trajectory for r in recs), [(r.location, r.reason) for r in recs if not r.trajectory]
    by_id = {r.trajectory.id: r.trajectory for r in recs}
    t = by_id["django__django-10097"]
    assert t.format == "mini-swe-agent" and t.repo == "django/django"
    assert t.issue.startswith("Make URLValidator reject invalid characters")
    assert t.patch.startswith("diff --git a/django/core/validators.py")
    assert t.model == "google/gemini-3-pro-preview" and t.outcome.exit_status == "Submitted"
    assert t.steps[0].action == "ls -R django/core | grep validators.py"
    assert t.steps[0].returncode == 0 and t.steps[0].observation == "validators.py"
    assert not t.steps[0].thought.startswith("THOUGHT")
    # outcomes come from logs/<id>/report.json: a known resolved and a known unresolved run
    assert t.outcome.resolved is True and "test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)" in t.outcome.tests["FAIL_TO_PASS"]["success"]
    assert by_id["django__django-13212"].outcome.resolved is False
    assert by_id["scikit-learn__scikit-learn-26194"].repo == "scikit-learn/scikit-learn"
    assert by_id["pytest-dev__pytest-7205"].repo == "pytest-dev/pytest"
    resolved = sum(t.outcome.resolved for t in by_id.values())
    assert resolved == 12  # 12 of the 20 report.json files say resolved


def test_hf_messages_swe_smith_rows(shared_traces):
    recs = list(iter_records(shared_traces / "swe-smith-messages" / "sample.jsonl"))
    assert len(recs) == 5 and all(r.trajectory for r in recs)
    t = recs[0].trajectory
    assert t.id == "oauthlib__oauthlib.1fd52536.combine_file__otc4vogi"
    assert (t.repo, t.base_commit, t.format) == ("oauthlib/oauthlib", "1fd52536", "hf-messages")
    assert t.issue.startswith("Metadata endpoint returns empty claims")
    assert len(t.steps) == 29 and t.steps[-1].action.endswith("git diff --cached")
    assert t.patch == ""  # the sample rows end with the submit command, without its output
    assert recs[0].location.endswith("sample.jsonl:1@0") and ":2@" in recs[1].location


def test_swe_agent_traj_issue_skips_demonstration(shared_traces):
    [rec] = iter_records(shared_traces / "swe-agent" / "pydicom__pydicom-1458.traj")
    t = rec.trajectory
    assert (t.id, t.repo, t.format) == ("pydicom__pydicom-1458", "pydicom/pydicom", "swe-agent")
    assert t.issue.startswith("Pixel Representation attribute should be optional") and "INSTRUCTIONS" not in t.issue
    assert len(t.steps) == 12 and t.steps[0].action == "create reproduce_bug.py" and t.steps[-1].action == "submit"
    assert t.patch.lstrip().startswith("diff --git a/pydicom/pixel_data_handlers/numpy_handler.py")
    assert t.outcome.exit_status == "submitted" and t.outcome.resolved is None


def test_openhands_events_pair_observations_by_cause(shared_traces):
    [rec] = iter_records(shared_traces / "openhands" / "wrong_initial_state.json")
    t = rec.trajectory
    assert t.format == "openhands" and t.id == "wrong_initial_state"
    assert t.issue == "Please rename game_2048.py to 2048.py"
    assert [s.action for s in t.steps] == ["view /workspace", "mv /workspace/game_2048.py /workspace/2048.py", "view /workspace", "finish"]
    assert t.steps[1].returncode == 0 and "2048.py" in t.steps[2].observation
    assert t.model == "claude-3-5-sonnet-20241022" and t.outcome.exit_status == "finish"


def test_nebius_list_one_record_per_element(shared_traces):
    recs = list(iter_records(shared_traces / "nebius-swe-agent-trajectories" / "sample.json"))
    assert [r.location.rsplit("#", 1)[1] for r in recs] == ["0", "1", "2", "3", "4"]
    t = recs[0].trajectory
    assert (t.id, t.repo, t.format, t.model) == ("tomerfiliba__plumbum-366_17", "tomerfiliba/plumbum", "swe-agent-nebius", "swe-agent-llama-70b")
    assert t.issue.startswith("SyntaxError in plumbum/cli/image.py")
    assert t.steps[0].action == "ls -F" and "CHANGELOG.rst" in t.steps[0].observation
    assert t.patch.startswith("\ndiff --git") or t.patch.startswith("diff --git")
    assert t.outcome.resolved is True


def test_mixed_directory_auto_detects_every_format(shared_traces, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(shared_traces / MINI, mixed / "swebench")
    for rel in ["swe-smith-messages/sample.jsonl", "swe-agent/pydicom__pydicom-1458.traj", "openhands/basic.json", "nebius-swe-agent-trajectories/sample.json"]:
        (mixed / Path(rel).name).symlink_to(shared_traces / rel)
    (mixed / ".hidden.json").write_text("{}")
    files = discover_trace_files(mixed, follow_symlinks=True)  # the links point outside `mixed`
    assert files == sorted(files, key=str) and not any(f.name == "report.json" or f.name.startswith(".") for f in files)
    recs = [r for f in files for r in iter_records(f)]
    assert all(r.trajectory for r in recs), [(r.location, r.reason, r.detail) for r in recs if not r.trajectory]
    formats = {r.trajectory.format for r in recs}
    assert formats == set(READERS)
    assert len(recs) == 20 + 5 + 1 + 1 + 5
    assert all(len(r.trajectory.steps) > 0 and r.trajectory.issue for r in recs)


def test_forcing_a_format(shared_traces):
    nebius = shared_traces / "nebius-swe-agent-trajectories" / "sample.json"
    forced = list(iter_records(nebius, fmt="hf-messages"))
    assert len(forced) == 5 and {r.reason for r in forced} == {"missing_messages"}
    [rec] = iter_records(shared_traces / "swe-agent" / "pydicom__pydicom-1458.traj", fmt="swe-agent")
    assert rec.trajectory.format == "swe-agent"
    with pytest.raises(ConfigError, match="valid formats"):
        list(iter_records(nebius, fmt="nope"))


# --- bad input: every problem is a reject with a reason, never an exception ------------------------


def test_bad_input_matrix(tmp_path):
    good = _chat_row()
    (tmp_path / "truncated.json").write_text(json.dumps(good)[:-40])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(good).encode().replace(b"Fix the bug", b"Fix the caf\xe9 bug") + b"\n")
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (tmp_path / "unknown.json").write_text(json.dumps({"foo": 1, "bar": [1, 2]}))
    (tmp_path / "nosteps.jsonl").write_text(json.dumps(_chat_row(n_steps=0)) + "\n")
    lines = [json.dumps(good), json.dumps({"instance_id": "x"}), "{not json", json.dumps(_chat_row(instance_id="owner__big-1", pad="x" * 5000)), json.dumps(_chat_row(instance_id="owner__ok-2"))]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n\n")
    ctx = RunContext()
    stage = ReadTrajectories(max_record_bytes=4000)
    out = list(run_stages([stage], [tmp_path], ctx))
    reasons = {(Path(r.source.split(":")[0].split("#")[0]).name, r.reason) for r in ctx.rejects}
    assert reasons == {
        ("truncated.json", "invalid_json"),
        ("empty.jsonl", "empty_file"),
        ("latin1.jsonl", "not_utf8"),
        ("binary.json", "binary_file"),
        ("unknown.json", "unknown_format"),
        ("nosteps.jsonl", "no_steps"),
        ("mixed.jsonl", "missing_messages"),
        ("mixed.jsonl", "invalid_json"),
        ("mixed.jsonl", "record_too_large"),
    }
    assert all(r.detail and r.kind == "input" and r.stage == "read" for r in ctx.rejects)
    assert [t.id for t in out] == ["owner__repo.deadbeef.func_pm__abc", "owner__ok-2"]
    assert ctx.counters["inputs"] == len(out) + len(ctx.rejects) == 11
    latin = next(r for r in ctx.rejects if r.reason == "not_utf8")
    assert "0xe9" in latin.detail and latin.source.endswith(":1@0")


def test_huge_line_is_skipped_with_bounded_reads(tmp_path):
    path = tmp_path / "huge.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps(_chat_row(instance_id="a__b-1", pad="y" * 3_000_000)) + "\n")
        f.write(json.dumps(_chat_row(instance_id="a__b-2")) + "\n")
    recs = list(iter_records(path, max_record_bytes=64 << 10))
    assert [r.reason for r in recs] == ["record_too_large", None]
    first_line_bytes = path.read_bytes().index(b"\n") + 1
    assert recs[1].location.endswith(f":2@{first_line_bytes}") and recs[1].trajectory.id == "a__b-2"


def test_whitespace_only_and_non_json_files(tmp_path):
    (tmp_path / "ws.json").write_text("  \n\n ")
    (tmp_path / "notes.traj").write_text("hello world")
    assert [r.reason for r in iter_records(tmp_path / "ws.json")] == ["empty_file"]
    assert [r.reason for r in iter_records(tmp_path / "notes.traj")] == ["unknown_format"]


# --- locations, results files, stage -----------------------------------------------------------------


def test_parquet_rows(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [_chat_row(instance_id=f"o__r-{i}") for i in range(3)]
    table = pa.table({"instance_id": [r["instance_id"] for r in rows], "messages": [json.dumps(r["messages"]) for r in rows]})
    pq.write_table(table, tmp_path / "rows.parquet", row_group_size=2)
    recs = list(iter_records(tmp_path / "rows.parquet"))
    assert [r.trajectory.id for r in recs] == ["o__r-0", "o__r-1", "o__r-2"] and recs[2].location.endswith("rows.parquet#2")


def test_results_file_shapes_override_outcomes(tmp_path, shared_traces):
    mapping = tmp_path / "reports.json"
    mapping.write_text(json.dumps({"owner__ok-2": {"resolved": True, "tests_status": {"FAIL_TO_PASS": {"success": ["t1"], "failure": []}}}}))
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"resolved_ids": ["a__b-1"], "unresolved_ids": ["owner__ok-2"], "error_ids": []}))
    assert load_results(mapping)["owner__ok-2"] == Outcome(resolved=True, tests={"FAIL_TO_PASS": {"success": ["t1"], "failure": []}})
    assert load_results(summary) == {"a__b-1": Outcome(resolved=True), "owner__ok-2": Outcome(resolved=False)}
    from_logs = load_results(shared_traces / MINI / "logs")
    assert len(from_logs) == 20 and from_logs["django__django-10097"].resolved is True
    data = tmp_path / "rows.jsonl"
    data.write_text(json.dumps(_chat_row(instance_id="owner__ok-2")) + "\n")
    ctx = RunContext()
    [t] = list(ReadTrajectories(results_path=mapping).run([data], ctx))
    assert t.outcome.resolved is True and t.outcome.tests["FAIL_TO_PASS"]["success"] == ["t1"]
    [t] = list(ReadTrajectories(results_path=summary).run([data], ctx))
    assert t.outcome.resolved is False
    with pytest.raises(CtxdataError, match="does not exist"):
        load_results(tmp_path / "missing.json")


def test_results_file_next_to_traces_is_rejected_with_a_hint(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"resolved_ids": ["x"], "unresolved_ids": []}))
    [rec] = iter_records(tmp_path / "results.json")
    assert rec.reason == "unknown_format" and "--results" in rec.detail


def _oh_events():
    return [
        {"id": 0, "source": "user", "action": "message", "args": {"content": "Fix the parser"}},
        {"id": 1, "source": "agent", "action": "run", "args": {"command": "pytest -q", "thought": "run tests"}},
        {"id": 2, "source": "agent", "observation": "run", "cause": 1, "content": "1 failed", "extras": {"metadata": {"exit_code": 1}}},
        {"id": 3, "source": "agent", "action": "finish", "args": {"thought": "done"}},
    ]


def test_openhands_eval_output_rows_and_pair_histories(tmp_path):
    row = {"instance_id": "acme__parser-12", "instruction": "Fix the parser", "history": _oh_events(), "test_result": {"git_patch": "diff --git a/p.py b/p.py\n"}, "report": {"resolved": True}, "metadata": {"llm_config": {"model": "m-1"}}}
    old = dict(row, instance_id="acme__parser-13", history=[[_oh_events()[1], _oh_events()[2]]])
    (tmp_path / "output.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(old) + "\n")
    a, b = [r.trajectory for r in iter_records(tmp_path / "output.jsonl")]
    assert (a.format, a.repo, a.patch, a.outcome.resolved, a.model) == ("openhands", "acme/parser", "diff --git a/p.py b/p.py\n", True, "m-1")
    assert [(s.action, s.observation, s.returncode) for s in a.steps] == [("pytest -q", "1 failed", 1), ("finish", "", None)]
    assert b.steps[0].action == "pytest -q" and b.steps[0].observation == "1 failed"


def test_json_list_of_rows_and_jsonl_under_a_json_name(tmp_path):
    rows = [_chat_row(instance_id=f"o__r-{i}") for i in range(3)]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    listed = list(iter_records(tmp_path / "rows.json"))
    assert [r.location.rsplit("#", 1)[1] for r in listed] == ["0", "1", "2"] and all(r.trajectory.format == "hf-messages" for r in listed)
    lined = list(iter_records(tmp_path / "lines.json"))
    assert [r.trajectory.id for r in lined] == ["o__r-0", "o__r-1", "o__r-2"] and lined[1].location.endswith(":2@" + str(len(json.dumps(rows[0])) + 1))
    assert listed[2].trajectory.id == lined[2].trajectory.id == "o__r-2"


def test_tool_call_messages_and_content_parts(tmp_path):
    row = {"instance_id": "x__y-1", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Please fix "}, {"type": "text", "text": "it"}]},
        {"role": "assistant", "content": "Looking.", "tool_calls": [{"function": {"name": "execute_bash", "arguments": json.dumps({"command": "ls"})}}]},
        {"role": "tool", "content": "a.py"},
    ]}
    (tmp_path / "t.jsonl").write_text(json.dumps(row) + "\n")
    [rec] = iter_records(tmp_path / "t.jsonl")
    t = rec.trajectory
    assert t.issue == "Please fix it" and (t.steps[0].thought, t.steps[0].action, t.steps[0].observation) == ("Looking.", "ls", "a.py")


def test_step_less_records_of_every_format_are_rejected(tmp_path):
    (tmp_path / "empty.traj").write_text(json.dumps({"trajectory": [], "history": [], "info": {"submission": ""}}))
    (tmp_path / "talk.json").write_text(json.dumps([_oh_events()[0]]))
    for name in ("empty.traj", "talk.json"):
        assert [r.reason for r in iter_records(tmp_path / name)] == ["no_steps"], name


def test_a_field_of_the_wrong_type_is_a_bad_field_reject_naming_it(tmp_path):
    msgs = [{"role": "user", "content": "<pr_description>fix it</pr_description>"}, {"role": "assistant", "content": "THOUGHT: look\n```bash\nls\n```"},
            {"role": "user", "content": "<returncode>0</returncode>\n<output>\na.py\n</output>"}]
    (tmp_path / "num.traj.json").write_text(json.dumps({"trajectory_format": "mini-swe-agent-1", "instance_id": "o__r-1", "messages": msgs, "info": {"submission": 42}}))
    (tmp_path / "listid.traj.json").write_text(json.dumps({"trajectory_format": "mini-swe-agent-1", "instance_id": ["o__r-2"], "messages": msgs, "info": {}}))
    recs = {Path(r.location).name: r for r in _read_all(tmp_path)}
    assert (recs["num.traj.json"].reason, recs["listid.traj.json"].reason) == ("bad_field", "bad_field")
    assert "submission" in recs["num.traj.json"].detail and "int" in recs["num.traj.json"].detail
    assert "instance_id" in recs["listid.traj.json"].detail and "list" in recs["listid.traj.json"].detail


# --- reads never block, nothing found vanishes (issue #10) ---------------------------------------


def _traj_file(path: Path, instance_id: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_chat_row(instance_id=instance_id)))
    return path


def _read_counted(path: Path, **kw):
    ctx = RunContext()
    kept = list(ReadTrajectories(**kw).run([path], ctx))
    assert ctx.counters["inputs"] == len(kept) + len(ctx.rejects)
    return kept, Counter(r.reason for r in ctx.rejects), ctx


def test_a_fifo_is_a_reject_and_never_opened(tmp_path):
    import os
    import threading

    _traj_file(tmp_path / "a.json", "o__r-1")
    os.mkfifo(tmp_path / "pipe.json")
    result = {}
    reader = threading.Thread(target=lambda: result.update(out=_read_counted(tmp_path)), daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading a folder holding a FIFO hung"
    kept, reasons, _ = result["out"]
    assert len(kept) == 1 and reasons == {"not_regular_file": 1}
    assert [r.reason for r in iter_records(tmp_path / "pipe.json")] == ["not_regular_file"]  # named directly, too


def test_symlinks_are_followed_inside_the_root_only_unless_asked(tmp_path):
    root, elsewhere = tmp_path / "traces", tmp_path / "elsewhere"
    _traj_file(root / "real" / "a.json", "o__r-1")
    _traj_file(elsewhere / "run" / "b.json", "o__r-2")
    _traj_file(elsewhere / "c.json", "o__r-3")
    (root / "linked_in").symlink_to(root / "real")  # inside: followed, and a folder reached twice is read once
    (root / "linked_out").symlink_to(elsewhere / "run")  # a symlinked subfolder outside the root
    (root / "c.json").symlink_to(elsewhere / "c.json")
    (root / "dangling.json").symlink_to(tmp_path / "missing.json")
    (root / "loop").symlink_to(root)
    kept, reasons, _ = _read_counted(root)
    assert [t.id for t in kept] == ["o__r-1"]
    assert reasons == {"symlink_outside_root": 2, "broken_symlink": 1}
    kept, reasons, _ = _read_counted(root, follow_symlinks=True)
    assert sorted(t.id for t in kept) == ["o__r-1", "o__r-2", "o__r-3"] and reasons == {"broken_symlink": 1}


def test_an_unreadable_folder_and_other_files_are_counted(tmp_path, monkeypatch):
    import os

    _traj_file(tmp_path / "ok" / "a.json", "o__r-1")
    _traj_file(tmp_path / "locked" / "b.json", "o__r-2")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / ".hidden.json").write_text("{}")  # hidden names are passed over by convention
    real_scandir = os.scandir

    def scandir(path="."):  # as chmod 000 would (tests may run as root, who can list anything)
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    kept, reasons, ctx = _read_counted(tmp_path)
    assert [t.id for t in kept] == ["o__r-1"] and reasons == {"unreadable": 1, "unsupported_file": 1}
    assert any(r.source.endswith("locked") for r in ctx.rejects)


def test_gzipped_json_and_jsonl_are_read_and_a_damaged_gzip_is_a_reject(tmp_path):
    import gzip

    rows = [_chat_row(instance_id=f"o__r-{i}") for i in range(3)]
    (tmp_path / "runs.jsonl.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    (tmp_path / "one.json.gz").write_bytes(gzip.compress(json.dumps(_chat_row(instance_id="o__r-9")).encode()))
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8b\x08\x00not gzip at all")
    cut = gzip.compress("".join(json.dumps(r) + "\n" for r in rows * 50).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(cut[: len(cut) // 2])
    kept, reasons, _ = _read_counted(tmp_path)
    assert sorted(t.id for t in kept if t.source.startswith(str(tmp_path / "runs"))) == ["o__r-0", "o__r-1", "o__r-2"]
    assert "o__r-9" in {t.id for t in kept} and reasons == {"invalid_gzip": 2}
    assert next(t for t in kept if t.id == "o__r-9").source.endswith("one.json.gz")


def test_a_corrupt_or_empty_parquet_file_is_a_reject_and_the_rest_is_read(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [_chat_row(instance_id=f"o__r-{i}") for i in range(3)]
    table = pa.table({"instance_id": [r["instance_id"] for r in rows], "messages": [json.dumps(r["messages"]) for r in rows]})
    pq.write_table(table, tmp_path / "good.parquet")
    data = bytearray((tmp_path / "good.parquet").read_bytes())
    data[-48:-8] = b"\xff" * 40  # the footer (file metadata)
    (tmp_path / "corrupt.parquet").write_bytes(bytes(data))
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1" + b"\x00" * 100)
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    kept, reasons, ctx = _read_counted(tmp_path)
    assert sum(t.source.startswith(str(tmp_path / "good")) for t in kept) == 3
    assert reasons == {"invalid_parquet": 2, "empty_file": 1}


def test_a_utf8_byte_order_mark_is_accepted_in_json_files(tmp_path):
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(_chat_row(instance_id="o__r-1")).encode())
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(_chat_row(instance_id="o__r-2")).encode() + b"\n")
    assert [r.trajectory.id for r in _read_all(tmp_path)] == ["o__r-1", "o__r-2"]


def test_a_file_name_that_is_not_utf8_is_read_and_named(tmp_path):
    import os

    name = os.fsdecode(b"run-\xff.json")
    _traj_file(tmp_path / name, "o__r-1")
    (tmp_path / os.fsdecode(b"bad-\xfe.json")).write_text("{not json")
    kept, reasons, ctx = _read_counted(tmp_path)
    assert [t.id for t in kept] == ["o__r-1"] and kept[0].source.endswith("run-\\xff.json")
    assert reasons == {"invalid_json": 1} and ctx.rejects[0].source.endswith("bad-\\xfe.json")
    json.dumps(kept[0].source).encode("utf-8")  # every writer downstream needs valid UTF-8


def test_the_docs_format_list_is_generated_from_the_registry():
    from ctxdata.coding.formats import formats_markdown

    text = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    block = text.split("<!-- formats:begin -->\n", 1)[1].split("<!-- formats:end -->", 1)[0]
    assert block == formats_markdown(), "docs/formats.md is stale: paste ctxdata.coding.formats.formats_markdown() between the markers"
    assert all(f"- `{name}`:" in block for name in READERS)


def test_a_lone_surrogate_inside_a_json_text_cell_is_replaced_not_a_crash(tmp_path):
    """Found by the fault suite: `messages` as a JSON string (Parquet exports) decoded by the stdlib kept a lone
    surrogate, which no UTF-8 writer (the context store, Arrow) accepts."""
    from ctxdata.coding.build import CodingBuildConfig, signature_stages
    from ctxdata.coding.store import ContextWriter

    row = _chat_row(instance_id="o__r-1", patch="diff --git a/x.py b/x.py\n")
    row["messages"] = json.dumps(row["messages"]).replace("step 0", "step \\ud800")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_text(json.dumps(row) + "\n")
    writer = ContextWriter(tmp_path / "store", "s.bin")
    ctx = RunContext()
    config = CodingBuildConfig(traces=[str(tmp_path / "in")], out=str(tmp_path / "o"))
    [sig] = list(run_stages(signature_stages(config, writer), [tmp_path / "in"], ctx))
    writer.close()
    assert not ctx.rejects and sig.context is not None


def test_the_executed_bash_block_is_the_action_even_after_a_python_block(tmp_path):
    # mini-swe-agent runs the one ```bash block; a ```python block before it is thought, as is text after it.
    turns = [
        "THOUGHT: The implementation is:\n\n```python\nreturn sqrt(sum(zip(a, b)))\n```\n\nzip stops early.\n\n```bash\nhead -n 30 point.py\n```\nThen I patch it.",
        "THOUGHT: two commands\n```bash\nls\n```\n```bash\npwd\n```",  # several ```bash blocks: none ran
        "THOUGHT: only code\n```python\nprint(1)\n```",  # no command block: nothing ran
    ]
    msgs = [{"role": "user", "content": "<pr_description>fix it</pr_description>"}]
    for turn in turns:
        msgs += [{"role": "assistant", "content": turn}, {"role": "user", "content": "<returncode>0</returncode>\n<output>\nok\n</output>"}]
    (tmp_path / "t.traj.json").write_text(json.dumps({"trajectory_format": "mini-swe-agent-1", "instance_id": "o__r-1", "messages": msgs, "info": {}}))
    [rec] = iter_records(tmp_path / "t.traj.json")
    first, several, code_only = rec.trajectory.steps
    assert first.action == "head -n 30 point.py"
    assert first.thought == "The implementation is:\n\n```python\nreturn sqrt(sum(zip(a, b)))\n```\n\nzip stops early.\n\nThen I patch it."
    assert (several.action, code_only.action) == ("", "")
    assert "```bash\npwd" in several.thought and "print(1)" in code_only.thought


def test_a_bare_or_sh_fence_is_the_command_when_a_turn_has_no_bash_block():
    from ctxdata.coding.formats._text import split_thought_action

    assert split_thought_action("THOUGHT: look\n```\nls -la\n```") == ("look", "ls -la")
    assert split_thought_action("Look.\n```python\nx = 1\n```\n```sh\nls\n```") == ("Look.\n```python\nx = 1\n```", "ls")
    assert split_thought_action("```bashrc\nx\n```\n```bash  \nls\n```") == ("```bashrc\nx\n```", "ls")
