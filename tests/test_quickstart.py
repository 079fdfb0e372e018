import json

import pytest
from typer.testing import CliRunner

from ctxdata.cli.main import app


@pytest.mark.slow
def test_quickstart_runs_end_to_end_on_a_tiny_model(tmp_path, monkeypatch):
    monkeypatch.setenv("CTXDATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "qs"
    result = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--model", "tiny-llama", "--steps", "2",
                                      "--traces", "30", "--task-pairs", "16", "--probe-limit", "4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "quickstart.json").read_text())
    assert summary["build-coding"]["pairs"] > 0 and summary["build-vision"]["pairs"] > 0
    assert summary["export verl"]["exported"] == summary["build-coding"]["pairs"]
    assert summary["export easyr1"]["exported"] == summary["build-vision"]["pairs"]
    assert summary["probe before"]["n"] == summary["probe after"]["n"] == 4
    assert (out / "run-contextrl" / "metrics.jsonl").exists()
    assert "probe accuracy on held-out trace pairs: before" in result.output
    import datasets

    assert len(datasets.load_from_disk(str(out / "pairs-vision"))) == summary["build-vision"]["pairs"]
