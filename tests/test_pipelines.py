"""The runnable pipeline scripts stay runnable and agree with the CLI."""

import json
import subprocess
import sys

from conftest import REPO
from ctxdata.coding.synth import SynthConfig, write_traces


def test_coding_pairs_script_matches_build_coding(tmp_path):
    traces = tmp_path / "traces"
    write_traces(SynthConfig(n=30, seed=1, kb=4), traces, workers=1)
    script = subprocess.run([sys.executable, str(REPO / "pipelines" / "coding_pairs.py"), str(traces), str(tmp_path / "script")],
                            capture_output=True, text=True)
    assert script.returncode == 0, script.stderr
    cli = subprocess.run([sys.executable, "-m", "ctxdata", "build-coding", "--traces", str(traces), "--out", str(tmp_path / "cli")],
                         capture_output=True, text=True, env={"CTXDATA_PROGRESS": "0", **__import__("os").environ})
    assert cli.returncode == 0, cli.stderr
    a = json.loads((tmp_path / "script" / "report.json").read_text())
    b = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert a["pairs"] == b["pairs"] > 0 and a["methods"] == b["methods"]
